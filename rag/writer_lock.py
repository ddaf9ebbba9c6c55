"""The store's folder and one writer at a time. An embedded store has a writer lock: one writing
process (Chroma's embedded mode does not survive two), through ``filelock``, held until the process
exits; a user who may read the store but not write it asks a private copy of it. A Chroma server
store has a write lease (``ServerLease``): a record in the server naming the run that writes, given up
when the run ends and lost when its holder stops renewing it, so a killed writer blocks others for at
most ``LEASE_S`` seconds. A ``--workers`` ingest is one run: its workers write under its lease."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .errors import StoreBusyError, StoreError

log = logging.getLogger(__name__)
# A write lease lasts this long after its holder's last renewal; the holder renews it every sixth of that.
LEASE_S = 60.0

_held: dict[str, object] = {}  # lock file path -> the FileLock this process holds
_copies: dict[str, Path] = {}  # read-only store folder -> this process's copy of it
_guard = threading.Lock()


def make_store_dir(store_dir: Path) -> None:
    """Create the store folder, or say which setting names a place that cannot be one."""
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
        probe = store_dir / ".write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as e:
        raise StoreError(f"RAG_STORE={str(store_dir)!r} (or --store): cannot create or write the store folder there "
                         f"({e.strerror or e}); choose a writable folder") from None


def folder_to_open(store_dir: Path) -> Path:
    """The folder Chroma opens for ``store_dir``: the folder itself (created if need be), or, where
    this user may read a store there but not write it, a private copy made once per process. Chroma
    opens its database for writing even to read it, so without the copy a read-only store could not
    be asked at all; writing to it is still refused (``acquire_writer_lock``)."""
    try:
        make_store_dir(store_dir)
        return store_dir
    except StoreError:
        if not os.access(store_dir / "chroma.sqlite3", os.R_OK):
            raise
    key = str(store_dir.resolve())
    with _guard:
        if key not in _copies:
            _copies[key] = _read_only_copy(store_dir)
        return _copies[key]


def _read_only_copy(store_dir: Path) -> Path:
    """Chroma's files of ``store_dir`` (its database and index folders, not uploads or caches)
    copied into a temporary folder this user owns, removed when the process exits."""
    copy = Path(tempfile.mkdtemp(prefix="rag-read-only-store-"))
    atexit.register(shutil.rmtree, copy, True)
    size = 0
    try:
        for entry in store_dir.iterdir():
            if entry.name == "chroma.sqlite3":
                shutil.copyfile(entry, copy / entry.name)  # the contents, not the read-only mode
                size += entry.stat().st_size
            elif entry.is_dir() and _is_segment_folder(entry.name):
                (copy / entry.name).mkdir()
                for f in entry.iterdir():
                    if f.is_file():
                        shutil.copyfile(f, copy / entry.name / f.name)
                        size += f.stat().st_size
    except OSError as e:
        shutil.rmtree(copy, ignore_errors=True)
        raise StoreError(f"the store at {store_dir} is read-only for this user, and it cannot be copied to read it "
                         f"({e.strerror or e}: {e.filename}); ask its owner for read access to every file in it") from None
    log.warning("the store at %s is read-only for this user: answering from a private copy of it (%.1f MiB in %s); "
                "writing to it needs write access", store_dir, size / 2**20, copy)
    return copy


def _is_segment_folder(name: str) -> bool:
    """Chroma keeps each vector index in a folder named by a UUID."""
    return len(name) == 36 and name.count("-") == 4 and all(c in "0123456789abcdef-" for c in name)


def holds_writer_lock(store_dir: Path) -> bool:
    """Whether this process holds ``store_dir``'s writer lock."""
    with _guard:
        return str((store_dir / ".writer.lock").resolve()) in _held


def acquire_writer_lock(store_dir: Path):
    """Claim ``store_dir`` for writing in this process (again: a no-op), or fail at once with a
    message naming the holder."""
    from filelock import FileLock, Timeout

    make_store_dir(store_dir)
    path = store_dir / ".writer.lock"
    holder = path.with_name(".writer.holder")
    key = str(path.resolve())
    with _guard:  # the lock belongs to the process, not to one store object
        if key in _held:
            return _held[key]
        lock = FileLock(path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            try:
                who = holder.read_text(encoding="utf-8").strip() or "another process"
            except OSError:
                who = "another process"
            raise StoreBusyError(
                f"the store at {store_dir} is being written by {who}; an embedded store takes one "
                "writer at a time. Wait for it to finish, or run a Chroma server and set RAG_CHROMA_URL.") from None
        except OSError as e:  # a lock file this user may not open: another user's
            raise StoreError(
                f"cannot take the writer lock of the store at {store_dir}: {path} ({_owner(path)}) is not writable "
                f"by this user ({e.strerror or e}). Every user who writes to a store needs write access to it; "
                "when no one is writing, the store's owner may delete that file.") from None
        try:
            holder.write_text(f"pid {os.getpid()}", encoding="utf-8")
        except OSError as e:  # another user's note: only the message for a second writer loses its pid
            log.warning("could not note this process as the writer in %s (%s)", holder, e.strerror or e)
        _held[key] = lock
        return lock


def _owner(path: Path) -> str:
    """Who owns a file, as a person reads it ("owned by alice", or by uid)."""
    try:
        uid = path.stat().st_uid
    except OSError:
        return "owner unknown"
    try:
        import pwd

        return f"owned by {pwd.getpwuid(uid).pw_name}"
    except (ImportError, KeyError):
        return f"owned by uid {uid}"


class ServerLease:
    """A server store's write lease: a collection of its own (no records) whose metadata names the
    holder, a token and when the lease expires (the clocks of the writers' machines are compared).
    Taking it is ``create_collection``, which the server grants one client only; an expired lease is
    first renamed away (by its id: of two clients taking it over at once, one creates the new lease
    and the other is refused). A thread renews it while held; a run's workers join it by its token,
    and every write checks that the lease is still this run's."""

    def __init__(self, client, name: str, token: str, owner: str, ttl: float, where: str, renew: bool) -> None:
        self._client, self.name, self.token, self.owner, self.ttl, self._where = client, name, token, owner, ttl, where
        self._expires = time.time() + ttl
        self._checked = time.monotonic()
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer = None
        if renew:
            self._renewer = threading.Thread(target=self._renew_loop, name="rag-write-lease", daemon=True)
            self._renewer.start()

    @classmethod
    def take(cls, client, name: str, purpose: str, where: str, ttl: float = LEASE_S) -> "ServerLease":
        """The lease, or ``StoreBusyError`` at once naming its holder."""
        token = uuid.uuid4().hex
        owner = f"{purpose} (pid {os.getpid()} on {socket.gethostname()})"
        for _ in range(5):
            try:
                client.create_collection(name, metadata=cls._meta(owner, token, ttl), embedding_function=None)
                return cls(client, name, token, owner, ttl, where, renew=True)
            except Exception as e:
                if "already exists" not in str(e):
                    raise
            held = _get(client, name)
            if held is None:  # given up meanwhile
                continue
            meta = held.metadata or {}
            expires = float(meta.get("expires") or 0)
            if expires > time.time():
                raise StoreBusyError(
                    f"the store {where} is being written by {meta.get('owner') or 'another process'} (its write "
                    f"lease runs to {time.strftime('%H:%M:%S', time.localtime(expires))}); a server store takes one "
                    f"writing run at a time. Wait for it to finish (a writer that stopped gives its lease up "
                    f"{ttl:.0f} s after its last renewal).")
            log.warning("taking over the write lease on %s from %s, expired at %s", where, meta.get("owner"),
                        time.strftime("%H:%M:%S", time.localtime(expires)))
            retired = f"{name[:40]}-expired-{uuid.uuid4().hex[:8]}"
            try:
                held.modify(name=retired)
                client.delete_collection(retired)
            except Exception as e:  # another client took it over first: its create wins, ours is refused
                log.debug("expired lease %s: %s", name, e)
        raise StoreError(f"could not take the write lease on the store {where}: it changed hands while trying")

    @classmethod
    def join(cls, client, name: str, token: str, where: str, ttl: float = LEASE_S) -> "ServerLease":
        """The lease a run's parent holds, for its workers: checked, not renewed or given up by them."""
        return cls(client, name, token, "", ttl, where, renew=False)

    @staticmethod
    def _meta(owner: str, token: str, ttl: float) -> dict:
        return {"owner": owner, "token": token, "expires": time.time() + ttl}

    def check(self) -> None:
        """Raise ``StoreBusyError`` if this run no longer holds the lease (its holder stalled past the
        expiry and another run took it). The holder knows from its renewals; a worker asks the server,
        at most every sixth of the lease."""
        if self._lost is None and self._renewer is None and time.monotonic() - self._checked > self.ttl / 6:
            held = _get(self._client, self.name)
            meta = (held.metadata or {}) if held is not None else {}
            if meta.get("token") != self.token:
                self._lost = meta.get("owner") or "nobody"
            self._checked = time.monotonic()
        if self._lost is None and self._renewer is not None and time.time() > self._expires:
            self._lost = "nobody (it expired: this run could not renew it)"
        if self._lost is not None:
            raise StoreBusyError(f"this run lost its write lease on the store {self._where} to {self._lost}; "
                                 "what it had not written is reported failed")

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 6):
            try:
                held = _get(self._client, self.name)
                meta = (held.metadata or {}) if held is not None else {}
                if meta.get("token") != self.token:
                    self._lost = meta.get("owner") or "nobody"
                    return
                new = self._meta(self.owner, self.token, self.ttl)
                held.modify(metadata=new)
                self._expires = new["expires"]
            except Exception as e:  # the server does not answer: tried again; writes fail once it expires
                log.warning("could not renew the write lease on %s: %s", self._where, e)

    def release(self) -> None:
        """Give the lease up (a joined lease is its parent's to give up)."""
        if self._renewer is None:
            return
        self._stop.set()
        self._renewer.join(timeout=30)
        try:
            held = _get(self._client, self.name)
            if held is not None and (held.metadata or {}).get("token") == self.token:
                self._client.delete_collection(self.name)
        except Exception as e:  # it expires by itself
            log.warning("could not give up the write lease on %s (it expires in %.0f s): %s", self._where, self.ttl, e)


def _get(client, name: str):
    """The collection ``name``, or None when there is none."""
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name, embedding_function=None)
    except NotFoundError:
        return None
