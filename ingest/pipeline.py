"""The ingest entry point: files -> clean -> chunk -> embed -> store, idempotently."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from rag.embed import Embedder, get_embedder
from rag.errors import DocumentError, RagError
from rag.korean import content_morphemes
from rag.settings import Settings
from rag.store import ArticleStore, get_store
from rag.types import FileResult, IngestReport

from .chunk import article_sentences, chunk_article, embedding_text, sentence_ids
from .clean import CleanResult, clean_html, clean_text, raw_article
from .read import SUPPORTED_SUFFIXES, decode, is_html, read_bytes

log = logging.getLogger(__name__)
# Bump when cleaning or chunking changes, so stored articles are rebuilt on the next ingest.
PIPELINE_VERSION = "1"


def collect_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[FileResult]]:
    """Expand folders (non-recursive hidden files skipped); unknown paths become failures."""
    files: list[Path] = []
    failures: list[FileResult] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")
                                and f.suffix.lower() in SUPPORTED_SUFFIXES))
        elif p.exists():
            files.append(p)
        else:
            failures.append(FileResult(str(p), None, "failed", message=f"{p}: no such file or folder"))
    return files, failures


def article_id_for(path: Path) -> str:
    """A document's id is its file name without extension."""
    return path.stem


def clean_file(path: Path, settings: Settings, embedder: Embedder | None = None) -> CleanResult:
    """Read and clean one file (``rag clean`` uses this to show the audit)."""
    data = read_bytes(path, settings.max_file_bytes)
    return clean_bytes(data, article_id_for(path), settings, embedder, source_path=str(path))


def clean_bytes(data: bytes, article_id: str, settings: Settings, embedder: Embedder | None,
                source_path: str | None = None, name: str | None = None, clean: bool = True) -> CleanResult:
    name = name or source_path or article_id
    text = decode(data, name)
    if not clean:
        return raw_article(text, article_id, source_path)
    embed = embedder.embed_passages if embedder is not None else None
    if is_html(name, text):
        return clean_html(text, article_id, embed=embed, source_path=source_path)
    return clean_text(text, article_id, embed=embed, source_path=source_path)


def ingest_paths(paths: Iterable[str | Path], settings: Settings, *, prune: bool = False, clean: bool = True,
                 progress: Callable[[str, int, int], None] | None = None) -> IngestReport:
    """Ingest files and folders into the store at ``settings.store_dir`` (or ``RAG_CHROMA_URL``).

    Unchanged files are skipped without re-cleaning or re-embedding; a changed file replaces its
    article's chunks; a bad file is reported and the rest still ingest. With ``prune``, articles
    whose source file no longer exists are removed.

    Example::

        report = ingest_paths(["seeds/"], Settings.from_env())
        print(report.count("new"), report.chunks_written)
    """
    started = time.perf_counter()
    embedder = get_embedder(settings)
    store = get_store(settings, embedder)
    store.acquire_writer_lock()  # a second writer on an embedded store fails here, at once
    files, results = collect_files(paths)
    results = list(results)
    seen_ids: dict[str, Path] = {}
    written = 0
    embed_seconds = 0.0
    for n, path in enumerate(files, 1):
        if progress:
            progress(str(path), n, len(files))
        article_id = article_id_for(path)
        if article_id in seen_ids:
            results.append(FileResult(str(path), article_id, "failed",
                                      message=f"{path}: article id {article_id!r} is also used by {seen_ids[article_id]}"))
            continue
        seen_ids[article_id] = path
        try:
            result, secs = _ingest_one(path, article_id, settings, embedder, store, clean)
        except RagError as e:
            result, secs = FileResult(str(path), article_id, "failed", message=str(e)), 0.0
        except Exception as e:  # an unexpected failure in one file must not stop the others
            log.exception("ingest of %s failed", path)
            result, secs = FileResult(str(path), article_id, "failed",
                                      message=f"{path}: unexpected {type(e).__name__}: {e}"), 0.0
        embed_seconds += secs
        if result.status in ("new", "changed"):
            written += result.chunks
        results.append(result)
    if prune:
        results.extend(_prune(store))
    store.keyword_index()  # rebuild and save now rather than on the first question
    return IngestReport(tuple(results), written, time.perf_counter() - started, embed_seconds)


def _raw_hash(data: bytes, settings: Settings, embedder: Embedder) -> str:
    h = hashlib.sha256(data)
    h.update(f"|{PIPELINE_VERSION}|{settings.chunk_chars}|{settings.chunk_overlap}|{embedder.name}".encode())
    return h.hexdigest()


def _ingest_one(path: Path, article_id: str, settings: Settings, embedder: Embedder,
                store: ArticleStore, clean: bool = True) -> tuple[FileResult, float]:
    data = read_bytes(path, settings.max_file_bytes)
    raw_hash = _raw_hash(data, settings, embedder) + ("" if clean else "-raw")
    state = store.article_state(article_id)
    if state is not None and state.complete and state.raw_hash == raw_hash:
        return FileResult(str(path), article_id, "unchanged", len(state.chunk_ids)), 0.0
    cleaned = clean_bytes(data, article_id, settings, embedder, source_path=str(path.resolve()), clean=clean)
    article = cleaned.article
    sentences = article_sentences(article)
    if not sentences:
        raise DocumentError(f"{path}: no sentences found in the cleaned article")
    chunks = chunk_article(article, sentences, min(settings.chunk_chars, embedder.max_chars),
                           settings.chunk_overlap)
    t0 = time.perf_counter()
    chunk_vecs = _vectors_with_reuse([c.chunk_id for c in chunks], [embedding_text(c) for c in chunks],
                                     embedder, store.vectors)
    sent_ids = sentence_ids(article, sentences)
    sent_vecs = _vectors_with_reuse(sent_ids, [s.text for s in sentences], embedder,
                                    store.sentence_vectors_by_id)
    secs = time.perf_counter() - t0
    morphs = [content_morphemes(f"{c.title}\n{c.text}") for c in chunks]
    store.write_article(article_id, chunks, chunk_vecs, morphs, sent_ids, sentences, sent_vecs,
                        raw_hash, article.source_path)
    status = "new" if state is None else "changed"
    return FileResult(str(path), article_id, status, len(chunks)), secs


def _vectors_with_reuse(ids: list[str], texts: list[str], embedder: Embedder, lookup) -> np.ndarray:
    """Vectors for ``texts``; those whose id is already stored are reused, never re-embedded."""
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
        src = info.get("source_path")
        if src and not Path(src).exists():
            n = store.delete_article(article_id)
            out.append(FileResult(src, article_id, "pruned", n, f"{src}: file is gone; removed {n} chunks"))
    return out
