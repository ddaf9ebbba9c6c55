"""Citation verification: every ``[n]`` must name a given passage, and every answer sentence must be
supported by a sentence of the passage it cites (embedding similarity and Kiwi morpheme overlap).
Unsupported sentences are dropped; an answer with none left becomes an abstention upstream."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .korean import content_morphemes, split_sentences
from .types import Citation, Hit

_MARKER = re.compile(r"\[(\d{1,2})\]")
# Thresholds for an answer sentence to count as supported by a passage sentence
# (e5 cosine of the two sentences, or a high share of shared content morphemes).
SUPPORT_SIM = 0.86
SUPPORT_OVERLAP = 0.5


@dataclass(frozen=True)
class Verified:
    text: str
    citations: tuple[Citation, ...]
    dropped: tuple[str, ...]


def _overlap(a: str, b: str) -> float:
    """Share of the claim's content morphemes found in the passage sentence; a claim of fewer than
    two content morphemes ("HACKED") cannot be supported by overlap alone."""
    ta = set(content_morphemes(a))
    if len(ta) < 2:
        return 0.0
    return len(ta & set(content_morphemes(b))) / len(ta)


def verify_generated(answer: str, hits: list[Hit], embedder) -> Verified:
    """Check an LLM answer against the passages it was given; renumber the surviving citations."""
    sentences = [s.text for s in split_sentences(answer)] or [answer.strip()]
    passage_sents = {i: hit.chunk.sentences for i, hit in enumerate(hits, 1)}
    claims = [(_MARKER.sub("", s).strip(), [int(n) for n in _MARKER.findall(s)]) for s in sentences]
    to_embed = [c for c, _ in claims if c]
    vecs = dict(zip(to_embed, embedder.embed_passages(to_embed))) if to_embed else {}
    kept_text, citations, dropped = [], [], []
    number_of: dict[tuple[str, int], int] = {}
    for claim, markers in claims:
        valid = [n for n in dict.fromkeys(markers) if n in passage_sents]
        if not claim or not valid:
            if claim:
                dropped.append(claim)
            continue
        supported_by = []
        for n in valid:
            best = _best_support(claim, vecs[claim], passage_sents[n], embedder)
            if best is not None:
                supported_by.append((n, best))
        if not supported_by:
            dropped.append(claim)
            continue
        marks = []
        for n, sent in supported_by:
            key = (hits[n - 1].chunk.chunk_id, sent.start)
            if key not in number_of:
                number_of[key] = len(citations) + 1
                chunk = hits[n - 1].chunk
                citations.append(Citation(n=number_of[key], article_id=chunk.article_id, chunk_id=chunk.chunk_id,
                                          title=chunk.title, publisher=chunk.publisher, date=chunk.date,
                                          quote=sent.text, start=sent.start, end=sent.end, passage=chunk.text,
                                          passage_start=chunk.start))
            marks.append(f"[{number_of[key]}]")
        kept_text.append(f"{claim} {''.join(marks)}")
    return Verified(" ".join(kept_text), tuple(citations), tuple(dropped))


def _best_support(claim: str, claim_vec: np.ndarray, sentences, embedder):
    if not sentences:
        return None
    svecs = embedder.embed_passages([s.text for s in sentences])
    sims = svecs @ claim_vec
    i = int(np.argmax(sims))
    best, best_overlap = None, 0.0
    for s in sentences:
        ov = _overlap(claim, s.text)
        if ov > best_overlap:
            best, best_overlap = s, ov
    if sims[i] >= SUPPORT_SIM:
        return sentences[i]
    if best_overlap >= SUPPORT_OVERLAP:
        return best
    return None


def citations_are_valid(text: str, citations: tuple[Citation, ...]) -> bool:
    """Every marker in ``text`` names a citation, and every citation is used."""
    used = {int(n) for n in _MARKER.findall(text)}
    return used == {c.n for c in citations}
