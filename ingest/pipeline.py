"""The ingest entry point: files -> clean -> chunk -> embed -> store, idempotently."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
import logging
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from rag.bridge import TERM_VERSION, store_terms
from rag.embed import Embedder, get_embedder, vector_space
from rag.errors import ConfigError, DocumentError, EmbedderMismatchError, RagError, StoreBusyError, StoreError
from rag.settings import Settings
from rag.store import ArticleRecords, ArticleState, ArticleStore, get_store
from rag.types import FileResult, IngestReport

from .chunk import article_sentences, article_terms, chunk_article, chunk_morphemes, chunk_model, chunk_vectors, embedding_text
from .clean import CleanResult, clean_page, raw_article, read_page
from .read import SUPPORTED_SUFFIXES, decode, read_bytes
from .writer import StoreProcess, use_store_process

log = logging.getLogger(__name__)
# Bump when cleaning or chunking changes, so stored articles are rebuilt on the next ingest.
PIPELINE_VERSION = "5"
# Articles are written to Chroma in batches of about this many chunks (a Chroma call is a transaction).
WRITE_BATCH_CHUNKS = 512
# The stored state of this many files' articles is read in one Chroma call.
STATE_BATCH = 256


def collect_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[FileResult]]:
    """Expand folders (recursively; hidden files skipped) into their .txt/.html/.htm pages. A link
    that leads out of its folder is not followed, and other files are skipped, each reported; a path
    that does not exist is a failure."""
    files: list[Path] = []
    results: list[FileResult] = []
    for p in map(Path, paths):
        if p.is_dir():
            root = p.resolve()
            for f in sorted(p.rglob("*")):
                if f.name.startswith(".") or not f.is_file():
                    continue
                if not f.resolve().is_relative_to(root):
                    results.append(FileResult(str(f), None, "skipped",
                                              message=f"{f}: a link out of {p}; not followed"))
                elif f.suffix.lower() not in SUPPORTED_SUFFIXES:
                    results.append(FileResult(str(f), None, "skipped",
                                              message=f"{f}: not a .txt, .html or .htm page; skipped"))
                else:
                    files.append(f)
        elif p.exists():
            files.append(p)
        else:
            results.append(FileResult(str(p), None, "failed", message=f"{p}: no such file or folder"))
    return files, results


def check_rebuild(files: list[Path], results: list[FileResult]) -> None:
    """A rebuild deletes the store's contents, so a path that does not exist (a typo would leave the
    store holding only part of what it held) or no page to ingest at all (no .txt, .html or .htm file:
    a rebuild from ``report.pdf`` alone would empty the store) refuses it before anything is deleted."""
    missing = [r.message for r in results if r.status == "failed"]
    if missing or not any(f.suffix.lower() in SUPPORTED_SUFFIXES for f in files):
        why = "; ".join(missing) or "no .txt, .html or .htm page among them"
        raise DocumentError(f"--rebuild: {why[:500]}; nothing was deleted (the store is as it was)")


def article_id_for(path: Path) -> str:
    """A document's id is its file name without extension."""
    return path.stem


def clean_file(path: Path, settings: Settings, embedder: Embedder | None = None) -> CleanResult:
    """Read and clean one file (``rag clean`` uses this to show the audit)."""
    data = read_bytes(path, settings.max_file_bytes)
    return clean_bytes(data, article_id_for(path), embedder, source_path=str(path), max_chars=settings.max_page_chars)


def clean_bytes(data: bytes, article_id: str, embedder: Embedder | None, source_path: str | None = None,
                name: str | None = None, clean: bool = True, max_chars: int | None = None) -> CleanResult:
    """Decode and clean one page; a page of more than ``max_chars`` characters is refused before any
    analysis (the work per file stays bounded: RAG_MAX_PAGE_CHARS)."""
    name = name or source_path or article_id
    text = decode(data, name)
    if max_chars is not None and len(text) > max_chars:
        raise DocumentError(f"{name}: the page holds {len(text):,} characters, over the limit of {max_chars:,} "
                            "(RAG_MAX_PAGE_CHARS); a news page is far shorter")
    if not clean:
        return raw_article(text, article_id, source_path)
    # the similarity feature embeds candidate sentences once: the embedder's memo hands the same
    # vectors to the sentence records, so a kept sentence is not embedded again
    embed = embedder.embed_passages if embedder is not None else None
    return clean_page(read_page(text, name), article_id, embed=embed, source_path=source_path)


def ingest_paths(paths: Iterable[str | Path], settings: Settings, *, prune: bool = False, clean: bool = True,
                 progress: Callable[[str, int, int], None] | None = None, replace: bool = False,
                 keyword_index: bool = True, rebuild: bool = False) -> IngestReport:
    """Ingest files and folders into the store at ``settings.store_dir`` (or ``RAG_CHROMA_URL``).

    Unchanged files are skipped without re-cleaning or re-embedding; a changed file replaces its
    article's chunks; a bad file is reported and the rest still ingest. With ``prune``, articles
    whose source file no longer exists are removed. ``keyword_index=False`` leaves the keyword index
    to be rebuilt later (``ingest.parallel`` rebuilds it once after all its workers). ``rebuild``
    builds a new store from the pages beside the old one (which may be another embedder's) and swaps it
    in only when it holds at least one article; it is refused, leaving the store as it is, when a path
    does not exist or no page is given (``check_rebuild``), and fails with ``DocumentError``, leaving
    the store as it was, when no page could be ingested.

    Example::

        report = ingest_paths(["seeds/"], Settings.from_env())
        print(report.count("new"), report.chunks_written)
    """
    started = time.perf_counter()
    embedder = get_embedder(settings)
    check_late_chunking(settings, embedder)
    files, results = collect_files(paths)
    results = list(results)
    if rebuild:
        check_rebuild(files, results)
    # a large ingest writes through a child process, so Chroma's writes overlap the cleaning here
    store = (StoreProcess(settings, embedder.name, embedder.dim) if use_store_process(settings, len(files))
             else get_store(settings, embedder))
    try:
        return _ingest_files(files, results, store, settings, embedder, started, prune=prune, clean=clean,
                             progress=progress, replace=replace, keyword_index=keyword_index, rebuild=rebuild)
    finally:
        if isinstance(store, StoreProcess):
            store.close()


def _ingest_files(files: list[Path], results: list[FileResult], store, settings: Settings, embedder: Embedder,
                  started: float, *, prune: bool, clean: bool, progress, replace: bool,
                  keyword_index: bool, rebuild: bool = False) -> IngestReport:
    # a second writer (the embedded store's lock, a server store's write lease) stops the run here, at once
    store.begin_writes("rag ingest --rebuild" if rebuild else "rag ingest")
    try:
        model_seconds = embedder.seconds  # time inside the model, cleaning's coherence check included
        stages = _Stages(embedder)
        if rebuild:  # by whoever writes (the store process, for a large ingest), beside the live store
            store.begin_rebuild()
        try:
            try:
                store.count()  # a store built with another embedder stops the run here, at once
            except (EmbedderMismatchError, StoreBusyError):
                raise
            except StoreError as e:  # unreachable: every file will say so, and the summary is printed
                log.warning("%s", e)
            written = _ingest_each(files, results, store, settings, embedder, stages, clean=clean,
                                   progress=progress, replace=replace)
            if prune:
                with stages("prune"):
                    results.extend(_prune(store))
            if rebuild:
                finish_rebuild(store, results)
        except BaseException:
            if rebuild:
                abort_rebuild(store)
            raise
        with stages("keyword_index"):
            try:
                if keyword_index:
                    store.keyword_index()  # rebuild and save now rather than on the first question
            except RagError as e:  # the store went away: every file already says so; the next run rebuilds it
                log.warning("keyword index not rebuilt: %s", e)
        return IngestReport(tuple(results), written, time.perf_counter() - started, embedder.seconds - model_seconds,
                            stages.report())
    finally:
        store.end_writes()


def finish_rebuild(store, results: list[FileResult]) -> None:
    """Swap a rebuilt store in (``ArticleStore.finish_rebuild``), or say why the old one was kept."""
    if store.finish_rebuild():
        return
    failed = [r for r in results if r.status == "failed"]
    why = f" ({len(failed)} failed; first: {failed[0].message[:300]})" if failed else ""
    raise DocumentError(f"--rebuild: no page could be ingested{why}; nothing was replaced (the store is as it was)")


def abort_rebuild(store) -> None:
    """Drop an interrupted rebuild's collections if the store still answers (what is left is never
    read, and the next rebuild or ``rag doctor --repair`` deletes it)."""
    try:
        store.abort_rebuild()
    except Exception as e:
        log.warning("the unfinished rebuild was not dropped (it is never read; rag doctor --repair deletes it): %s", e)


def _ingest_each(files: list[Path], results: list[FileResult], store, settings: Settings, embedder: Embedder,
                 stages: "_Stages", *, clean: bool, progress, replace: bool) -> int:
    """Ingest the files into ``store``, their results added to ``results`` in file order; the chunks
    written are returned."""
    seen_ids: dict[str, Path] = {}
    written = 0
    pending: list[tuple[FileResult, ArticleRecords]] = []
    in_flight: list[FileResult] = []  # written by the store process, not yet confirmed
    order = {str(p): i for i, p in enumerate(files)}
    states: dict[str, ArticleState] = {}
    next_states = _states_request(store, files[:STATE_BATCH])
    for n, path in enumerate(files, 1):
        if progress:
            progress(str(path), n, len(files))
        article_id = article_id_for(path)
        if (n - 1) % STATE_BATCH == 0:  # what the store holds of the next files, in one call
            with stages("read"):
                states = next_states()
                # asked now, answered while these files are prepared (the store process's calls queue)
                next_states = _states_request(store, files[n - 1 + STATE_BATCH : n - 1 + 2 * STATE_BATCH])
        if article_id in seen_ids:
            results.append(FileResult(str(path), article_id, "failed",
                                      message=f"{path}: article id {article_id!r} is also used by {seen_ids[article_id]}"))
            continue
        seen_ids[article_id] = path
        try:
            result = _ingest_one(path, article_id, settings, embedder, store, clean, stages, replace,
                                 state=states.get(article_id, _UNKNOWN))
        except RagError as e:  # every FAILED line names its file (an embedder's or store's error does not)
            message = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
            result = FileResult(str(path), article_id, "failed", message=message)
        except Exception as e:  # an unexpected failure in one file must not stop the others
            log.exception("ingest of %s failed", path)
            result = FileResult(str(path), article_id, "failed",
                                message=f"{path}: unexpected {type(e).__name__}: {e}")
        if isinstance(result, tuple):  # prepared: written with others in one batch
            pending.append(result)
            if sum(len(rec.chunks) for _, rec in pending) >= WRITE_BATCH_CHUNKS:
                written += _flush(store, pending, in_flight, results, stages, embedder)
        else:
            results.append(result)
    written += _flush(store, pending, in_flight, results, stages, embedder)
    written += _settle(store, in_flight, results, stages)
    results.sort(key=lambda r: order.get(r.path, -1))  # file order; bad paths first, as collected
    return written


def _flush(store, pending: list, in_flight: list[FileResult], results: list[FileResult], stages: "_Stages",
           embedder: Embedder) -> int:
    """Write the prepared articles in one batch; if the store refuses, each of them is reported failed.
    Their Korean nouns new to the store's term collection are encoded and added first (a cache of
    word vectors for the English-question bridge, independent of the articles' records; the term
    version is part of every article's hash, so a new one re-ingests them all). The batch before is
    confirmed first (``_settle``): a store process is only sent a batch, and writes it while the next
    is prepared. The chunks confirmed written are returned."""
    written = _settle(store, in_flight, results, stages)
    if not pending:
        return written
    try:
        try:
            with stages("terms"):
                store_terms(store, [t for _, rec in pending for t in rec.terms], embedder)
            with stages("write"):
                store.write_articles([rec for _, rec in pending])
        except Exception:
            store.wait()  # what a store process was sent of this batch is done, and its errors consumed
            raise
    except RagError as e:
        results.extend(FileResult(r.path, r.article_id, "failed", message=f"{r.path}: {e}") for r, _ in pending)
        pending.clear()
        return written
    except Exception as e:
        log.exception("store write failed")
        results.extend(FileResult(r.path, r.article_id, "failed",
                                  message=f"{r.path}: store write failed: {type(e).__name__}: {e}") for r, _ in pending)
        pending.clear()
        return written
    in_flight.extend(r for r, _ in pending)
    pending.clear()
    return written


def _settle(store, in_flight: list[FileResult], results: list[FileResult], stages: "_Stages") -> int:
    """Wait for the batch sent to the store (a store process's; one here is written already); report
    its files written, or failed with the store's error. The chunks written are returned."""
    if not in_flight:
        return 0
    with stages("write"):
        error = store.wait()
    if error is not None:
        if not isinstance(error, RagError):
            log.error("store write failed: %s", error)
        results.extend(FileResult(r.path, r.article_id, "failed", message=f"{r.path}: {error}") for r in in_flight)
        in_flight.clear()
        return 0
    results.extend(in_flight)
    n = sum(r.chunks for r in in_flight)
    in_flight.clear()
    return n


class _Stages:
    """Wall time per ingest step, split into time inside the embedding model and time outside it."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.wall: dict[str, float] = {}
        self.model: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t, m = time.perf_counter(), self.embedder.seconds
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - t
            self.model[name] = self.model.get(name, 0.0) + self.embedder.seconds - m

    def report(self) -> dict:
        out = {k: self.wall[k] - self.model[k] for k in self.wall}
        out["model"] = sum(self.model.values())
        return out


def _raw_hash(data: bytes, settings: Settings, embedder: Embedder) -> str:
    h = hashlib.sha256(data)
    h.update(f"|{PIPELINE_VERSION}|{TERM_VERSION}|{settings.chunk_chars}|{settings.chunk_overlap}|{vector_space(embedder.name)}"
             f"|{settings.chunk_vectors}{chunk_model() if settings.chunk_vectors == 'derived' else ''}".encode())
    return h.hexdigest()


def is_stored_copy(data: bytes, state: ArticleState, settings: Settings, embedder: Embedder) -> bool:
    """Whether a stored article (``state``) is complete and was made from these very bytes, as an
    unchanged file is recognised on every ingest (an upload of the same page again is that article)."""
    return state.complete and state.raw_hash == _raw_hash(data, settings, embedder)


def _states_request(store, paths: list[Path]) -> Callable[[], dict]:
    """Ask for the stored states of these files' articles (None: not stored): the answer, when
    called; empty when the store cannot say (each file then asks for itself and reports the error).
    A store process answers while the files before these are prepared."""
    ids = [article_id_for(p) for p in paths]
    fut = store.submit("article_states", ids) if ids else None

    def answer() -> dict:
        try:
            found = fut.result() if fut is not None else {}
        except RagError:
            return {}
        return {i: found.get(i) for i in ids}
    return answer


_UNKNOWN = object()  # no prefetched state: look it up


def _ingest_one(path: Path, article_id: str, settings: Settings, embedder: Embedder,
                store: ArticleStore, clean: bool = True, stages: "_Stages | None" = None, replace: bool = False,
                state=_UNKNOWN) -> "FileResult | tuple[FileResult, ArticleRecords]":
    """Read, clean, chunk and embed one file: a ``FileResult`` when there is nothing to write
    (unchanged), else the result and the records for the caller to write in a batch. A file whose
    article id is already stored from another path does not replace that article unless ``replace``;
    if its content is the stored article's, it is the same article (a copy; or the file moved, or
    ``replace``: then the store follows it to its new path). ``state`` is what the store holds of the
    article, when the caller already asked."""
    stages = stages or _Stages(embedder)
    with stages("read"):
        if state is _UNKNOWN:
            state = store.article_state(article_id)
        source = str(path.resolve())
        data = read_bytes(path, settings.max_file_bytes)
        raw_hash = _raw_hash(data, settings, embedder) + ("" if clean else "-raw")
        unchanged = state is not None and state.complete and state.raw_hash == raw_hash
        elsewhere = state is not None and state.source_path and state.source_path != source
        if elsewhere and not replace and not unchanged:
            raise DocumentError(
                f"{path}: an article with id {article_id!r} is already stored from {state.source_path}; "
                "rename this file to add it as a new article, or ingest it with --replace to replace that one")
        if elsewhere and unchanged and (replace or not Path(state.source_path).exists()):
            store.move_article(article_id, source)  # moved (a new checkout, a renamed folder), or --replace
    if unchanged:
        return FileResult(str(path), article_id, "unchanged", len(state.chunk_ids))
    with stages("clean"):
        cleaned = clean_bytes(data, article_id, embedder, source_path=source, clean=clean, max_chars=settings.max_page_chars)
    article = cleaned.article
    with stages("split"):
        sentences = article_sentences(article)
        if not sentences:
            raise DocumentError(f"{path}: no sentences found in the cleaned article")
        chunks = chunk_article(article, sentences, min(settings.chunk_chars, embedder.max_chars),
                               settings.chunk_overlap)
    with stages("vectors"):
        if settings.chunk_vectors == "late":
            chunk_vecs, sent_vecs = late_vectors(chunks, sentences, embedder, store if state is not None else None)
        else:
            # every sentence is embedded once (cleaning's similarity feature already did most of them)
            texts = [s.text for s in sentences]  # a stored sentence is known by its text
            stored = store.sentence_vectors_of(article_id) if state is not None else {}
            sent_vecs = _vectors_with_reuse(texts, texts, embedder, lambda _keys: stored)
        if settings.chunk_vectors == "derived":  # from the sentences' vectors and the title's
            title_vec = embedder.embed_passages([article.title])[0] if article.title else None
            chunk_vecs = chunk_vectors(chunks, sentences, sent_vecs, title_vec)
        elif settings.chunk_vectors == "embedded":
            chunk_vecs = _vectors_with_reuse([c.chunk_id for c in chunks], [embedding_text(c) for c in chunks],
                                             embedder, store.vectors if state is not None else lambda ids: {})
    with stages("morphemes"):
        morphs = chunk_morphemes(article, chunks)
        terms = article_terms(article)
    status = "new" if state is None else "changed"
    return (FileResult(str(path), article_id, status, len(chunks)),
            ArticleRecords(article_id, chunks, chunk_vecs, morphs, sentences, sent_vecs, raw_hash,
                           article.source_path, terms))


def check_late_chunking(settings: Settings, embedder: Embedder) -> None:
    """``RAG_CHUNK_VECTORS=late`` needs an embedder with per-token states: refused before any work."""
    if settings.chunk_vectors == "late" and not getattr(embedder, "late_chunking", False):
        raise ConfigError(f"RAG_CHUNK_VECTORS=late needs per-token states, which RAG_EMBEDDER={embedder.name!r} "
                          "does not give: use RAG_EMBEDDER=e5, or RAG_CHUNK_VECTORS=embedded or derived")


def late_vectors(chunks, sentences, embedder: Embedder, store=None) -> tuple[np.ndarray, np.ndarray]:
    """Late chunking: one pass over each chunk's embedding text (title, then the chunk) gives the
    chunk's vector and its sentences' vectors, pooled from the chunk's own token states; a sentence
    that two chunks share takes its vector from the first. An unchanged chunk (by id, in ``store``)
    keeps its stored vectors and is not passed again."""
    check_late_chunking(Settings(chunk_vectors="late"), embedder)
    row = {(s.start, s.end): i for i, s in enumerate(sentences)}
    chunk_vecs = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    sent_vecs = np.zeros((len(sentences), embedder.dim), dtype=np.float32)
    done = np.zeros(len(sentences), dtype=bool)
    known = store.vectors([c.chunk_id for c in chunks]) if store is not None else {}
    stored_sents = store.sentence_vectors_of(chunks[0].article_id) if store is not None and chunks else {}
    todo = []
    for n, c in enumerate(chunks):
        rows = [row[(s.start, s.end)] for s in c.sentences]
        if c.chunk_id in known and all(s.text in stored_sents for s in c.sentences):
            chunk_vecs[n] = known[c.chunk_id]
            for r, s in zip(rows, c.sentences):
                if not done[r]:
                    sent_vecs[r], done[r] = stored_sents[s.text], True
        else:
            todo.append(n)
    texts = [embedding_text(chunks[n]) for n in todo]
    spans = []
    for n in todo:
        c = chunks[n]
        shift = len(embedding_text(c)) - len(c.text) - c.start  # the title and its newline come first
        spans.append([(s.start + shift, s.end + shift) for s in c.sentences])
    for n, (vec, svecs) in zip(todo, embedder.embed_late(texts, spans)):
        chunk_vecs[n] = vec
        for s, v in zip(chunks[n].sentences, svecs):
            r = row[(s.start, s.end)]
            if not done[r]:
                sent_vecs[r], done[r] = v, True
    return chunk_vecs, sent_vecs


def _vectors_with_reuse(ids: list[str], texts: list[str], embedder: Embedder, lookup) -> np.ndarray:
    """Vectors for ``texts``; those whose key (in ``ids``) ``lookup(ids)`` holds are reused, never
    re-embedded."""
    known = lookup(ids)
    missing = [i for i, cid in enumerate(ids) if cid not in known]
    fresh = embedder.embed_passages([texts[i] for i in missing])
    out = np.zeros((len(ids), embedder.dim), dtype=np.float32)
    for i, cid in enumerate(ids):
        if cid in known:
            out[i] = known[cid]
    for row, i in enumerate(missing):
        out[i] = fresh[row]
    return out


def _prune(store: ArticleStore) -> list[FileResult]:
    out = []
    for article_id, info in store.articles().items():
        src = info.source_path
        if src and not Path(src).exists():
            n = store.delete_article(article_id)
            out.append(FileResult(src, article_id, "pruned", n, f"{src}: file is gone; removed {n} chunks"))
    return out
