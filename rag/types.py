"""Data types that cross module boundaries, in flow order.

Article -> Block (cleaning audit) -> Sentence -> Chunk -> Hit -> Citation -> Answer.
Dicts appear only at the JSON edges (``to_dict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Block:
    """One block of a raw page and what cleaning decided about it."""

    index: int
    text: str
    kept: bool
    reason: str
    role: str = ""  # what the cleaning model read it as: article, caption, title, byline, furniture
    score: float | None = None  # its probability of being article text (or a caption)
    why: tuple = ()  # the features that pushed hardest, as (name, contribution) pairs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["why"] = dict(self.why)
        return d


@dataclass(frozen=True)
class Article:
    """A cleaned article: its own paragraphs only, plus what its byline states."""

    article_id: str
    title: str
    text: str
    publisher: str | None = None
    reporter: str | None = None
    date: str | None = None  # ISO "YYYY-MM-DD" when the byline states it
    source_path: str | None = None
    title_derived: bool = False  # the page has no headline line: the title is made from the story's first clause

    @property
    def date_int(self) -> int | None:
        return int(self.date.replace("-", "")) if self.date else None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Sentence:
    """A sentence of a cleaned article, with character offsets into ``Article.text``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Chunk:
    """Whole sentences of one article, sized for the embedder, with offsets into the cleaned text."""

    chunk_id: str
    article_id: str
    index: int
    text: str
    start: int
    end: int
    sentences: tuple[Sentence, ...]
    title: str
    publisher: str | None = None
    date: str | None = None
    title_derived: bool = False  # the title was made from the story's first clause (no headline on the page)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sentences"] = [asdict(s) for s in self.sentences]
        return d


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and its score (higher is better)."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    keyword_rank: int | None = None

    def to_dict(self) -> dict:
        return {
            "article_id": self.chunk.article_id,
            "chunk_id": self.chunk.chunk_id,
            "title": self.chunk.title,
            "title_derived": self.chunk.title_derived,
            "publisher": self.chunk.publisher,
            "date": self.chunk.date,
            "text": self.chunk.text,
            "start": self.chunk.start,
            "end": self.chunk.end,
            "score": round(self.score, 6),
            "dense_rank": self.dense_rank,
            "keyword_rank": self.keyword_rank,
        }


@dataclass(frozen=True)
class Citation:
    """A numbered pointer from an answer to the exact sentence(s) it rests on."""

    n: int
    article_id: str
    chunk_id: str
    title: str
    publisher: str | None
    date: str | None
    quote: str
    start: int  # offsets of the quote in the cleaned article text
    end: int
    passage: str  # the whole retrieved passage the quote sits in
    passage_start: int
    title_derived: bool = False  # the article's title was made from its first clause (no headline)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """What ``ask()`` returns."""

    question: str
    text: str
    language: str  # "ko" or "en"
    citations: tuple[Citation, ...]
    abstained: bool
    retrieved: tuple[Hit, ...]
    timings_ms: dict = field(default_factory=dict)
    mode: str = "extractive"
    standalone_question: str | None = None
    notice: str | None = None  # e.g. why the LLM answer was replaced by the extractive one
    confidence: float = 0.0
    short_answer: str | None = None  # the span that answers, as it stands in the quoted sentence
    undated_left_out: int | None = None  # stored articles with no date that a since/until filter left out

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "text": self.text,
            "language": self.language,
            "abstained": self.abstained,
            "mode": self.mode,
            "confidence": round(self.confidence, 4),
            "short_answer": self.short_answer,
            "notice": self.notice,
            "undated_left_out": self.undated_left_out,
            "citations": [c.to_dict() for c in self.citations],
            "retrieved": [h.to_dict() for h in self.retrieved],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


@dataclass(frozen=True)
class FileResult:
    """The outcome of ingesting one file."""

    path: str
    article_id: str | None
    status: str  # "new" | "changed" | "unchanged" | "failed" | "pruned" | "skipped"
    chunks: int = 0
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IngestReport:
    """Summary of one ingest run."""

    files: tuple[FileResult, ...]
    chunks_written: int
    seconds: float
    embed_seconds: float = 0.0
    # seconds per step outside the embedding model (read, clean, split, vectors, morphemes, write,
    # keyword_index), plus "model": time inside it; they add up to ``seconds`` less loop overhead
    stages: dict = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> bool:
        return self.count("failed") > 0

    def to_dict(self) -> dict:
        return {
            "new": self.count("new"),
            "changed": self.count("changed"),
            "unchanged": self.count("unchanged"),
            "failed": self.count("failed"),
            "pruned": self.count("pruned"),
            "skipped": self.count("skipped"),
            "chunks_written": self.chunks_written,
            "seconds": round(self.seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "files": [f.to_dict() for f in self.files],
        }
