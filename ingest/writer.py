"""The store in a second process while a large ingest runs, so Chroma's writes overlap the cleaning.

Chroma's local store holds Python's GIL for the whole of an ``upsert`` (a Python loop beside it ran
at 0.6% of its speed), so a write thread in the ingesting process only took turns with Kiwi and the
cleaning code (measured slower: README, Performance and scale). In a process of its own the write
runs on the other core while this one prepares the next batch.

``StoreProcess`` opens the ``ArticleStore`` in a spawned child and forwards calls to it, in order,
over a pipe: a call waits for its answer, except the writes (``write_articles``, ``write_terms``),
which return at once; ``wait()`` waits until every call sent has finished and returns the first
write error since the last ``wait()``. ``submit`` sends any call without waiting (a prefetch). The
child ignores Ctrl-C: the ingesting process stops it with ``close()``, after the write in progress,
so an interrupted ingest leaves the store as a crash would at worst, which ``article_state`` detects.

Only an embedded store that this process has not opened (nor locked for writing) is handed to a
child: a Chroma client keeps its own view of the index, so a process that had the store open would
not see the child's writes (``use_store_process``).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
from collections import deque
from concurrent.futures import Future

from rag.errors import RagError, StoreError
from rag.settings import Settings

log = logging.getLogger(__name__)

ASYNC_CALLS = frozenset({"write_articles", "write_terms"})
STOP = None


# ``auto`` hands the store to a child from this many files on: below one write batch of articles
# (WRITE_BATCH_CHUNKS, about 170 pages) nothing overlaps, and starting the child costs about a second
AUTO_MIN_FILES = 200


def use_store_process(settings: Settings, n_files: int) -> bool:
    """Whether an ingest of ``n_files`` files writes through a child process (``RAG_INGEST_WRITER``):
    ``process`` always and ``auto`` from ``AUTO_MIN_FILES`` files, for an embedded store that this
    process has not opened; ``inline`` never."""
    if settings.chroma_url or settings.ingest_writer == "inline" or _opened_here(settings):
        return False
    return settings.ingest_writer == "process" or n_files >= AUTO_MIN_FILES


def _opened_here(settings: Settings) -> bool:
    """Whether this process already holds a Chroma client on the store's folder, or its writer lock
    (which the child could then not take)."""
    import sys

    from rag.writer_lock import holds_writer_lock

    if holds_writer_lock(settings.store_dir):
        return True
    shared = sys.modules.get("chromadb.api.shared_system_client")
    if shared is None:
        return False
    systems = getattr(shared.SharedSystemClient, "_identifier_to_system", {})
    target = str(settings.store_dir.resolve())
    return any(str(key) == target or str(key) == str(settings.store_dir) for key in systems)


class StoreProcess:
    """An ``ArticleStore`` living in a child process (see the module's docstring)."""

    def __init__(self, settings: Settings, embedder_name: str, dim: int) -> None:
        ctx = mp.get_context("spawn")  # never fork: Kiwi's and the model's threads are running here
        self._calls, child_calls = ctx.Pipe(duplex=False)[::-1]
        child_replies, self._replies = ctx.Pipe(duplex=False)[::-1]
        self._proc = ctx.Process(target=_serve, args=(child_calls, child_replies, settings, embedder_name, dim),
                                 name="rag-store-writer", daemon=True)
        self._proc.start()
        child_calls.close()
        child_replies.close()
        self._pending: deque[Future] = deque()
        self._pending_lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._dead: BaseException | None = None
        self._reader = threading.Thread(target=self._read_replies, name="rag-store-replies", daemon=True)
        self._reader.start()
        self._closed = False

    # ---- calls -----------------------------------------------------------------------------------
    def submit(self, name: str, *args) -> Future:
        """Send ``name(*args)`` to the store without waiting; the future holds its answer."""
        fut: Future = Future()
        with self._pending_lock:
            if self._dead is not None or self._closed:
                fut.set_exception(self._dead or StoreError("the store process is closed"))
                return fut
            self._pending.append(fut)
            try:
                self._calls.send((name, args))
            except (OSError, EOFError, BrokenPipeError) as e:
                self._pending.pop()
                fut.set_exception(StoreError(f"the store process is gone ({e})"))
        return fut

    def call(self, name: str, *args):
        return self.submit(name, *args).result()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ASYNC_CALLS:
            def send(*args):
                fut = self.submit(name, *args)
                fut.add_done_callback(self._keep_error)
            return send
        return lambda *args: self.call(name, *args)

    def keyword_index(self) -> None:
        """Rebuild and save the keyword index in the child (the index itself stays there)."""
        self.call("_rebuild_keyword_index")

    def _keep_error(self, fut: Future) -> None:
        e = fut.exception()
        if e is not None:
            self._errors.append(e)

    def wait(self) -> BaseException | None:
        """Wait for every call sent so far; the first write error since the last ``wait()``, if any."""
        stopped = None
        if self._dead is None and not self._closed:
            try:
                self.call("_ping")
            except RagError as e:  # the child died meanwhile
                stopped = e
        errors, self._errors = self._errors, []
        if stopped is not None:
            errors.append(stopped)
        if self._dead is not None and stopped is None:
            errors.append(self._dead)
        return errors[0] if errors else None

    def close(self, timeout: float = 600.0) -> None:
        """Stop the child after the calls already sent; never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            self._calls.send(STOP)
        except (OSError, EOFError):
            pass
        self._proc.join(timeout)
        if self._proc.is_alive():
            log.warning("the store process did not stop in %.0f s; terminating it", timeout)
            self._proc.terminate()
            self._proc.join(10)
        self._reader.join(10)
        self._calls.close()

    def __enter__(self) -> "StoreProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- replies ---------------------------------------------------------------------------------
    def _read_replies(self) -> None:
        while True:
            try:
                ok, value = self._replies.recv()
            except (EOFError, OSError):
                break
            with self._pending_lock:
                fut = self._pending.popleft()
            (fut.set_result if ok else fut.set_exception)(value)
        code = self._proc.exitcode if not self._proc.is_alive() else None
        dead = StoreError("the store process stopped" + (f" (exit code {code})" if code else "")
                          + "; what it had not written is reported failed, and the next ingest writes it")
        with self._pending_lock:
            if not self._closed:
                self._dead = dead
            while self._pending:
                self._pending.popleft().set_exception(dead)


def _serve(calls, replies, settings: Settings, embedder_name: str, dim: int) -> None:
    """The child: run each call on the store, in order, and send back (ok, answer or error)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (close())
    from rag.store import ArticleStore

    store = ArticleStore(settings, embedder_name, dim)
    special = {"_rebuild_keyword_index": lambda: (store.keyword_index(), None)[1], "_ping": lambda: None}
    while True:
        try:
            msg = calls.recv()
        except (EOFError, OSError):
            break
        if msg is STOP:
            break
        name, args = msg
        try:
            fn = special.get(name) or getattr(store, name)
            reply = (True, fn(*args))
        except BaseException as e:  # every error goes back to the caller
            reply = (False, e if isinstance(e, RagError) else StoreError(f"{type(e).__name__}: {e}"))
        try:
            replies.send(reply)
        except Exception as e:  # an answer that cannot be pickled
            replies.send((False, StoreError(f"{name}: the store's answer could not be sent back ({e})")))
    replies.close()
