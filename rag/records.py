"""What the store holds, as our own types, and how it maps to Chroma's records and metadata.

No Chroma here: ``rag.store`` reads and writes the records; everything above it (ingest, the
doctor, the CLI and the UI) sees these types, never Chroma's nested column lists.
"""

from __future__ import annotations

import base64
import datetime
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
    """One chunk record, with what ``rag doctor`` checks of it."""

    record_id: str
    article_id: str
    raw_hash: str | None
    source_path: str | None
    start: int
    end: int
    text: str
    n_chunks: int | None = None  # how many chunks and sentences their article has
    n_sentences: int | None = None
    sentence_spans: tuple[tuple[int, int], ...] = ()  # this chunk's sentences (offsets in the article)
    vector_bytes: int = 0  # size of its stored sentence vectors ("svec", decoded)

    @classmethod
    def from_chroma(cls, record_id: str, meta: dict, document: str) -> "StoredRecord":
        try:
            vector_bytes = len(base64.b64decode(meta.get("svec") or "", validate=True))
        except ValueError:
            vector_bytes = -1
        spans = tuple((int(a), int(b)) for a, b in json.loads(meta.get("sentences") or "[]"))
        return cls(record_id, meta.get("article_id", ""), meta.get("raw_hash"), meta.get("source_path") or None,
                   int(meta.get("start", 0)), int(meta.get("end", 0)), document or "",
                   meta.get("n_chunks"), meta.get("n_sentences"), spans, vector_bytes)


def content_id(*parts: str) -> str:
    """A record id from its content (chunks: article, title, text; sentences: article, text), so an
    unchanged text keeps its id and its stored vector."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def date_int(value: str, what: str = "date filter") -> int:
    """'2024-01-26' -> 20240126 (Chroma compares numbers, not date strings); a day that is not in the
    calendar (2024-13-45) is refused like any other non-date, naming ``what`` gave it."""
    digits = str(value).replace("-", "").replace(".", "")
    try:
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError(value)
        datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise StoreError(f"{what} {value!r} is not a date like 2024-01-26 (YYYY-MM-DD)") from None
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
    if filters.get("since") or filters.get("until"):  # an undated article (date_int 0) is in no date range
        clauses.append({"date_int": {"$gte": date_int(filters["since"]) if filters.get("since") else 1}})
    if filters.get("until"):
        clauses.append({"date_int": {"$lte": date_int(filters["until"])}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def encode_vectors(vecs: np.ndarray) -> str:
    """A chunk's sentence vectors as one metadata string: float16, row after row, in base64.
    Half a float32's size; a cosine computed from them differs by about 1e-4 (float16 keeps 11 bits)."""
    return base64.b64encode(np.ascontiguousarray(vecs, dtype="<f2").tobytes()).decode("ascii")


def decode_vectors(text: str, dim: int) -> np.ndarray:
    """The rows ``encode_vectors`` wrote, as float32; a string that does not hold whole rows of
    ``dim`` is a StoreError."""
    raw = base64.b64decode(text or "", validate=True)
    if len(raw) % (2 * dim):
        raise StoreError(f"stored sentence vectors of {len(raw)} bytes are not rows of {dim} float16 values")
    return np.frombuffer(raw, dtype="<f2").reshape(-1, dim).astype(np.float32)


def chunk_metadata(c: Chunk, base: dict, n_chunks: int, n_sentences: int, morphs: list[str],
                   sentence_vecs: np.ndarray) -> dict:
    """A chunk's metadata; ``sentence_vecs`` are its sentences' vectors, in order ("svec"), which the
    answer step compares with the question (no per-sentence records, so no index over them)."""
    return {
        **base, "index": c.index, "title": c.title, "title_derived": c.title_derived, "publisher": c.publisher or "",
        "date": c.date or "", "date_int": int(c.date.replace("-", "")) if c.date else 0,
        "start": c.start, "end": c.end, "n_chunks": n_chunks, "n_sentences": n_sentences,
        "sentences": json.dumps([[s.start, s.end] for s in c.sentences]),
        "morphs": " ".join(morphs), "svec": encode_vectors(sentence_vecs),
    }


def holds_sentence_vectors(meta: dict, dim: int) -> bool:
    """Whether a chunk record holds one vector of ``dim`` per sentence (without decoding them)."""
    text = meta.get("svec") or ""
    size = len(text) * 3 // 4 - text[-2:].count("=")
    return bool(text) and size == 2 * dim * len(json.loads(meta.get("sentences") or "[]"))


def chunk_sentence_vectors(meta: dict, dim: int) -> list[tuple[int, int, np.ndarray]]:
    """(start, end, vector) of each sentence of a chunk record; empty when the record holds none
    or a count that does not match its sentences (an incomplete record)."""
    offsets = json.loads(meta.get("sentences") or "[]")
    if not meta.get("svec"):
        return []
    try:
        vecs = decode_vectors(meta["svec"], dim)
    except (StoreError, ValueError):  # damaged: read as missing (the doctor names it, ingest rewrites it)
        return []
    if len(vecs) != len(offsets):
        return []
    return [(int(s), int(e), v) for (s, e), v in zip(offsets, vecs)]


def chunk_from_record(chunk_id: str, document: str, meta: dict) -> Chunk:
    offsets = json.loads(meta.get("sentences") or "[]")
    start = int(meta["start"])
    sents = tuple(Sentence(s, e, document[s - start : e - start]) for s, e in offsets)
    return Chunk(chunk_id=chunk_id, article_id=meta["article_id"], index=int(meta.get("index", 0)),
                 text=document, start=start, end=int(meta["end"]), sentences=sents,
                 title=meta.get("title", ""), publisher=meta.get("publisher") or None,
                 date=meta.get("date") or None, title_derived=bool(meta.get("title_derived", False)))
