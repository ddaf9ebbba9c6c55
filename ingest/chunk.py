"""Sentence-aware chunking with Kiwi: whole sentences up to a character budget, with overlap."""

from __future__ import annotations

import re

from rag.korean import content_morphemes, content_of, split_analyzed
from rag.records import content_id
from rag.types import Article, Chunk, Sentence

_PARAGRAPH = re.compile(r"[^\n]+(?:\n(?!\n)[^\n]+)*")


def article_sentences(article: Article) -> list[Sentence]:
    """Every sentence of the cleaned text, paragraph by paragraph, with offsets into ``article.text``."""
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


_hash = content_id  # ids are content hashes (the store reads sentences back by the same id)


def sentence_ids(article: Article, sentences: list[Sentence]) -> list[str]:
    """Deterministic ids: an unchanged sentence keeps its id (and its stored vector)."""
    seen: dict[str, int] = {}
    ids = []
    for s in sentences:
        base = _hash(article.article_id, s.text)
        n = seen.get(base, 0)
        seen[base] = n + 1
        ids.append(base if n == 0 else f"{base}-{n}")
    return ids


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
                            title=article.title, publisher=article.publisher, date=article.date))
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """What the embedder sees for a chunk: the article title as context, then the chunk."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text
