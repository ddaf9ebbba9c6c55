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
# An answer sentence is supported by a passage sentence when it shares at least half of its content
# morphemes with it and is semantically close (e5 cosine >= SUPPORT_SIM), or is a near-paraphrase
# (cosine >= PARAPHRASE_SIM); and every number it states appears in that sentence.
SUPPORT_SIM = 0.80
PARAPHRASE_SIM = 0.93
SUPPORT_OVERLAP = 0.5
_NUMBER = re.compile(r"\d[\d,.]*")


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
    claims = [(re.sub(r"\s+([.!?。])", r"\1", _MARKER.sub("", s)).strip(), [int(n) for n in _MARKER.findall(s)])
              for s in sentences]
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
                                          passage_start=chunk.start, title_derived=chunk.title_derived))
            marks.append(f"[{number_of[key]}]")
        kept_text.append(f"{claim} {''.join(marks)}")
    return Verified(" ".join(kept_text), tuple(citations), tuple(dropped))


def _best_support(claim: str, claim_vec: np.ndarray, sentences, embedder):
    """The passage sentence that supports ``claim``, or None."""
    if not sentences:
        return None
    sims = embedder.embed_passages([s.text for s in sentences]) @ claim_vec
    numbers = {n.rstrip(".,") for n in _NUMBER.findall(claim)}
    best, best_key = None, (-1.0, -1.0)
    for s, sim in zip(sentences, sims):
        if not numbers <= {n.rstrip(".,") for n in _NUMBER.findall(s.text)}:
            continue
        ov = _overlap(claim, s.text)
        if (ov >= SUPPORT_OVERLAP and sim >= SUPPORT_SIM) or sim >= PARAPHRASE_SIM:
            if (ov, sim) > best_key:
                best, best_key = s, (ov, float(sim))
    return best


def citations_are_valid(text: str, citations: tuple[Citation, ...]) -> bool:
    """Every marker in ``text`` names a citation, and every citation is used."""
    used = {int(n) for n in _MARKER.findall(text)}
    return used == {c.n for c in citations}
