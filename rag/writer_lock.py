"""The embedded store's writer lock: one writing process at a time (Chroma's embedded mode does not
survive two), through ``filelock``, held until the process exits."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .errors import StoreError

_held: dict[str, object] = {}  # lock file path -> the FileLock this process holds
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
        holder.write_text(f"pid {os.getpid()}", encoding="utf-8")
        _held[key] = lock
        return lock
