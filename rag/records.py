"""What the store holds, as our own types, and how it maps to Chroma's records and metadata.

No Chroma here: ``rag.store`` reads and writes the records; everything above it (ingest, the
doctor, the CLI and the UI) sees these types, never Chroma's nested column lists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from .errors import StoreError
from .types import Chunk, Sentence


@dataclass(frozen=True)
class StoredSentence:
    article_id: str
    start: int
    end: int
    text: str
    vector: np.ndarray


@dataclass(frozen=True)
class ArticleRecords:
    """Everything stored for one article: its chunks and sentences with their vectors."""

    article_id: str
    chunks: list[Chunk]
    chunk_vecs: np.ndarray
    chunk_morphs: list[list[str]]
    sentence_ids: list[str]
    sentences: list[Sentence]
    sentence_vecs: np.ndarray
    raw_hash: str
    source_path: str | None
    terms: tuple[tuple[str, str], ...] = ()  # Korean nouns of the article and their tags (term collections)


@dataclass(frozen=True)
class ArticleState:
    """What the store holds for one article: enough to tell unchanged from changed or half-written."""

    raw_hash: str | None
    complete: bool
    chunk_ids: tuple[str, ...]
    source_path: str | None


@dataclass(frozen=True)
class StoredArticle:
    """One stored article, as ``rag articles`` and the chat page list it."""

    article_id: str
    title: str | None
    publisher: str | None
    date: str | None
    source_path: str | None
    chunks: int

    def to_dict(self) -> dict:
        return {"title": self.title, "publisher": self.publisher, "date": self.date,
                "source_path": self.source_path, "chunks": self.chunks}


@dataclass(frozen=True)
class StoredRecord:
    """One chunk or sentence record, with what ``rag doctor`` checks of it."""

    record_id: str
    article_id: str
    raw_hash: str | None
    source_path: str | None
    start: int
    end: int
    text: str
    n_chunks: int | None = None  # chunk records: how many chunks and sentences their article has
    n_sentences: int | None = None

    @classmethod
    def from_chroma(cls, record_id: str, meta: dict, document: str) -> "StoredRecord":
        return cls(record_id, meta.get("article_id", ""), meta.get("raw_hash"), meta.get("source_path") or None,
                   int(meta.get("start", 0)), int(meta.get("end", 0)), document or "",
                   meta.get("n_chunks"), meta.get("n_sentences"))


def content_id(*parts: str) -> str:
    """A record id from its content (chunks: article, title, text; sentences: article, text), so an
    unchanged text keeps its id and its stored vector."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def date_int(value: str) -> int:
    """'2024-01-26' -> 20240126 (Chroma compares numbers, not date strings)."""
    digits = str(value).replace("-", "").replace(".", "")
    if len(digits) != 8 or not digits.isdigit():
        raise StoreError(f"date filter {value!r} is not a date like 2024-01-26")
    return int(digits)


def build_where(filters: dict | None) -> dict | None:
    """Chroma ``where`` clause for ``{"publisher": str|list, "since": date, "until": date}``."""
    if not filters:
        return None
    clauses = []
    pub = filters.get("publisher")
    if pub:
        pubs = [pub] if isinstance(pub, str) else list(pub)
        clauses.append({"publisher": {"$in": pubs}} if len(pubs) > 1 else {"publisher": pubs[0]})
    if filters.get("since"):
        clauses.append({"date_int": {"$gte": date_int(filters["since"])}})
    if filters.get("until"):
        clauses.append({"date_int": {"$lte": date_int(filters["until"])}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def chunk_metadata(c: Chunk, base: dict, n_chunks: int, n_sentences: int, morphs: list[str]) -> dict:
    return {
        **base, "index": c.index, "title": c.title, "publisher": c.publisher or "",
        "date": c.date or "", "date_int": int(c.date.replace("-", "")) if c.date else 0,
        "start": c.start, "end": c.end, "n_chunks": n_chunks, "n_sentences": n_sentences,
        "sentences": json.dumps([[s.start, s.end] for s in c.sentences]),
        "morphs": " ".join(morphs),
    }


def chunk_from_record(chunk_id: str, document: str, meta: dict) -> Chunk:
    offsets = json.loads(meta.get("sentences") or "[]")
    start = int(meta["start"])
    sents = tuple(Sentence(s, e, document[s - start : e - start]) for s, e in offsets)
    return Chunk(chunk_id=chunk_id, article_id=meta["article_id"], index=int(meta.get("index", 0)),
                 text=document, start=start, end=int(meta["end"]), sentences=sents,
                 title=meta.get("title", ""), publisher=meta.get("publisher") or None,
                 date=meta.get("date") or None)
