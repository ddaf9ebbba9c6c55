"""Sentence-aware chunking with Kiwi: whole sentences up to a character budget, with overlap."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np

from rag.korean import content_morphemes, content_of, normalize, parse_many, split_analyzed
from rag.records import content_id
from rag.types import Article, Chunk, Sentence

# How much the article title's vector counts in a chunk's vector against the mean of the chunk's
# sentences: fitted on the development split by ``python -m eval.fit chunkvec``, which writes this file.
CHUNK_MODEL = Path(__file__).with_name("chunk_model.json")


@functools.cache
def chunk_model() -> tuple[float, bool]:
    """The fitted (title weight, whether sentences count by their length) from ``CHUNK_MODEL``."""
    m = json.loads(CHUNK_MODEL.read_text(encoding="utf-8"))
    return float(m["title_weight"]), m.get("sentence_weights", "equal") == "length"


_PARAGRAPH = re.compile(r"[^\n]+(?:\n(?!\n)[^\n]+)*")


def article_sentences(article: Article) -> list[Sentence]:
    """Every sentence of the cleaned text, paragraph by paragraph, with offsets into ``article.text``."""
    # those cleaning did not analyse (and the title, which indexing reads), in one Kiwi call
    parse_many([*(m.group(0) for m in _PARAGRAPH.finditer(article.text)), normalize(article.title or "")])
    return [sent for sent, _ in _analyzed(article)]


def _analyzed(article: Article):
    for m in _PARAGRAPH.finditer(article.text):
        yield from split_analyzed(m.group(0), offset=m.start())


def chunk_morphemes(article: Article, chunks: list[Chunk]) -> list[list[str]]:
    """Each chunk's content morphemes for keyword search (title first), taken from the Kiwi pass
    that split the sentences (cached), not from a second analysis of the chunk text."""
    by_span = {(s.start, s.end): content_of(morphs) for s, morphs in _analyzed(article)}
    title = content_morphemes(article.title) if article.title else []
    return [title + [t for s in c.sentences for t in by_span.get((s.start, s.end), ())] for c in chunks]


def article_terms(article: Article) -> tuple[tuple[str, str], ...]:
    """The article's Korean nouns with their Kiwi tags (for the store's term collections), from the
    cached Kiwi pass."""
    from rag.bridge import nouns_of
    from rag.korean import analyze

    vocab: dict[str, str] = nouns_of(analyze(article.title)) if article.title else {}
    for _, morphs in _analyzed(article):
        nouns_of(morphs, vocab)
    return tuple(sorted(vocab.items()))


_hash = content_id  # ids are content hashes: an unchanged chunk keeps its id and its stored vector


def chunk_article(article: Article, sentences: list[Sentence], max_chars: int = 450,
                  overlap: int = 1) -> list[Chunk]:
    """Group whole sentences into chunks of at most ``max_chars`` (a longer sentence stands alone),
    each sharing ``overlap`` sentences with the previous one."""
    groups: list[list[Sentence]] = []
    i = 0
    while i < len(sentences):
        group = [sentences[i]]
        j = i + 1
        while j < len(sentences) and sentences[j].end - group[0].start <= max_chars:
            group.append(sentences[j])
            j += 1
        groups.append(group)
        if j >= len(sentences):
            break
        i = max(j - overlap, i + 1)
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for index, group in enumerate(groups):
        start, end = group[0].start, group[-1].end
        text = article.text[start:end]
        base = _hash(article.article_id, article.title, text)
        n = seen.get(base, 0)
        seen[base] = n + 1
        chunks.append(Chunk(chunk_id=base if n == 0 else f"{base}-{n}", article_id=article.article_id,
                            index=index, text=text, start=start, end=end, sentences=tuple(group),
                            title=article.title, publisher=article.publisher, date=article.date,
                            title_derived=article.title_derived))
    return chunks


def chunk_vectors(chunks: list[Chunk], sentences: list[Sentence], sentence_vecs: np.ndarray,
                  title_vec: np.ndarray | None = None, weight: float | None = None,
                  by_length: bool | None = None) -> np.ndarray:
    """Each chunk's vector from its sentences' vectors, so every sentence is embedded once: the
    normalised mean of the sentences' unit vectors (``by_length``: weighted by their length in
    characters, as a long sentence carries more of the text) plus ``weight`` times the title's, which
    gives a chunk its article's context. Both default to the fitted ``chunk_model()``."""
    fitted_weight, fitted_length = chunk_model()
    weight = fitted_weight if weight is None else weight
    by_length = fitted_length if by_length is None else by_length
    row = {(s.start, s.end): i for i, s in enumerate(sentences)}
    out = np.zeros((len(chunks), sentence_vecs.shape[1]), dtype=np.float32)
    for n, c in enumerate(chunks):
        share = np.array([len(s.text) if by_length else 1.0 for s in c.sentences], dtype=np.float32)
        v = (share / share.sum()) @ sentence_vecs[[row[(s.start, s.end)] for s in c.sentences]]
        if title_vec is not None and weight:
            v = v + weight * title_vec
        out[n] = v / (np.linalg.norm(v) or 1.0)
    return out


def embedding_text(chunk: Chunk) -> str:
    """What the embedder sees for a chunk (RAG_CHUNK_VECTORS=embedded): the article title, then the chunk."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text
