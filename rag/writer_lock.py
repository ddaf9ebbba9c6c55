"""The embedded store's folder: creating it, its writer lock (one writing process at a time: Chroma's
embedded mode does not survive two), through ``filelock``, held until the process exits, and a
private copy of it for a user who may read the store but not write it."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from .errors import StoreError

log = logging.getLogger(__name__)
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
            raise StoreError(
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
