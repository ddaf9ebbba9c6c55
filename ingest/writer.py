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
import pickle
import queue
import signal
import threading
from collections import deque
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

from rag.errors import RagError, StoreError
from rag.settings import Settings

log = logging.getLogger(__name__)

ASYNC_CALLS = frozenset({"write_articles", "write_terms"})
STOP = "__stop__"


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
    target = settings.store_dir.resolve()
    return any(_same_path(key, target) for key in systems)


def _same_path(key, target: Path) -> bool:
    try:
        return Path(str(key)).resolve() == target
    except (OSError, ValueError):
        return False


class StoreProcess:
    """An ``ArticleStore`` living in a child process (see the module's docstring)."""

    def __init__(self, settings: Settings, embedder_name: str, dim: int) -> None:
        ctx = mp.get_context("spawn")  # never fork: Kiwi's and the model's threads are running here
        self._calls, child_calls = ctx.Pipe(duplex=False)[::-1]
        child_replies, self._replies = ctx.Pipe(duplex=False)[::-1]
        self._proc = ctx.Process(target=_serve, args=(child_calls, child_replies, settings, embedder_name, dim),
                                 name="rag-store-writer", daemon=True)
        with _sigint_ignored():  # a Ctrl-C while the child starts must not stop it: close() does
            self._proc.start()
        child_calls.close()
        child_replies.close()
        self._pending: deque[Future] = deque()
        self._pending_lock = threading.Lock()
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._errors: list[BaseException] = []
        self._dead: BaseException | None = None
        self._closed = False
        # Calls are pickled here and sent by a thread of their own: a Ctrl-C (which only this thread
        # receives) can then never cut a message in half, which would leave the child waiting for the rest
        self._sender = threading.Thread(target=self._send_calls, name="rag-store-calls", daemon=True)
        self._reader = threading.Thread(target=self._read_replies, name="rag-store-replies", daemon=True)
        self._sender.start()
        self._reader.start()

    # ---- calls -----------------------------------------------------------------------------------
    def submit(self, name: str, *args) -> Future:
        """Send ``name(*args)`` to the store without waiting; the future holds its answer."""
        fut: Future = Future()
        try:
            data = pickle.dumps((name, args), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            fut.set_exception(StoreError(f"{name}: the call could not be sent to the store process ({e})"))
            return fut
        with self._pending_lock:
            if self._dead is not None or self._closed:
                fut.set_exception(self._dead or StoreError("the store process is closed"))
                return fut
            self._pending.append(fut)  # replies come in the order calls are queued
            self._outbox.put(data)
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
        """Wait for every call sent so far; the first write error since the last ``wait()``, if any.
        A write that follows a failed one before the ``wait()`` is not made (the child skips it), so
        a batch is written whole or reported failed whole."""
        stopped = None
        if self._dead is None and not self._closed:
            try:
                self.call("_ping")
            except RagError as e:  # the child died meanwhile
                stopped = e
        errors, self._errors = self._errors, []
        if stopped is not None:
            errors.append(stopped)
        elif self._dead is not None:
            errors.append(self._dead)
        return errors[0] if errors else None

    def close(self, timeout: float = 600.0) -> None:
        """Stop the child after the calls already queued; never raises."""
        with self._pending_lock:
            if self._closed:
                return
            self._closed = True
            self._outbox.put(STOP)
        self._sender.join(timeout)
        self._proc.join(timeout)
        if self._proc.is_alive():
            log.warning("the store process did not stop in %.0f s; terminating it", timeout)
            self._proc.terminate()
            self._proc.join(10)
        self._reader.join(10)
        for conn in (self._calls, self._replies):
            conn.close()

    def __enter__(self) -> "StoreProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the two threads -------------------------------------------------------------------------
    def _send_calls(self) -> None:
        while True:
            data = self._outbox.get()
            try:
                if data is STOP:
                    self._calls.send_bytes(pickle.dumps(STOP))
                    return
                self._calls.send_bytes(data)
            except (OSError, EOFError, ValueError):  # the child is gone: the reader fails what is pending
                return

    def _read_replies(self) -> None:
        while True:
            try:
                ok, value = self._replies.recv()
            except (EOFError, OSError):
                break
            except Exception as e:  # an answer that cannot be read back
                ok, value = False, StoreError(f"the store process's answer could not be read ({e})")
            with self._pending_lock:
                fut = self._pending.popleft() if self._pending else None
            if fut is not None:
                (fut.set_result if ok else fut.set_exception)(value)
        code = self._proc.exitcode if not self._proc.is_alive() else None
        dead = StoreError("the store process stopped" + (f" (exit code {code})" if code else "")
                          + "; what it had not written is reported failed, and the next ingest writes it")
        with self._pending_lock:
            if not self._closed:
                self._dead = dead
            while self._pending:
                self._pending.popleft().set_exception(dead)


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while a child is started (an ignored signal stays ignored in it); only the main
    thread can change signal handling, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _serve(calls, replies, settings: Settings, embedder_name: str, dim: int) -> None:
    """The child: run each call on the store, in order, and send back (ok, answer or error). After a
    write fails, the writes that follow are skipped until the parent's next ``wait()`` (``_ping``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (close())
    from rag.store import ArticleStore

    store = ArticleStore(settings, embedder_name, dim)
    special = {"_rebuild_keyword_index": lambda: (store.keyword_index(), None)[1], "_ping": lambda: None}
    write_failed = False
    while True:
        try:
            msg = pickle.loads(calls.recv_bytes())
        except (EOFError, OSError):
            break
        if msg == STOP:
            break
        name, args = msg
        if name == "_ping":
            write_failed = False
        if name in ASYNC_CALLS and write_failed:
            reply = (False, StoreError(f"{name}: not written, as an earlier write of the batch failed"))
        else:
            try:
                fn = special.get(name) or getattr(store, name)
                reply = (True, fn(*args))
            except BaseException as e:  # every error goes back to the caller
                write_failed = write_failed or name in ASYNC_CALLS
                reply = (False, e if isinstance(e, RagError) else StoreError(f"{type(e).__name__}: {e}"))
        try:
            replies.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as e:  # an answer that cannot be pickled
            replies.send((False, StoreError(f"{name}: the store's answer could not be sent back ({e})")))
        except (OSError, EOFError):  # the parent is gone
            break
    replies.close()
