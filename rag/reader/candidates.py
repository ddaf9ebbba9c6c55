"""Candidate answer sentences from the retrieved passages, and their features.

Every feature is a property of the question, the sentence and its passage that any news question
has (similarity, coverage of the question's terms weighted by rarity, its names and numbers, whether
the sentence holds an answer of the asked kind that the question does not already state, where the
passage ranked, where the sentence sits in its article); none names a person, firm or event.
``FEATURES`` is the order the fitted ranker (``rag/reader/ranker_model.json``) expects.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..korean import analyze
from .question import Question
from .spans import Span, spans_of
from ..types import Hit

FEATURES = (
    "sim", "sim_gap", "sim_best", "cov", "cov_passage", "names_cov", "has_names", "numbers_cov", "has_numbers",
    "kind_known", "kind_span", "kind_span_missing", "any_number", "passage_rank", "passage_score", "dense_hit",
    "keyword_hit", "lead", "position", "title_cov", "log_len", "quote", "english", "en_sim", "en_cov",
    "en_kind_span", "sentence_rank_in_passage", "money_in_sentence",
)
# also computed, for the confidence model only (in the ranker they measured worse on dev):
# "rarest_in_sentence", "rarest_in_passage"
_QUOTES = "\"“”‘’'「」"


@dataclass
class Candidate:
    """One sentence of a retrieved passage, with its features and (once ranked) its score."""

    hit_rank: int
    hit: Hit
    start: int
    end: int
    text: str
    features: dict = field(default_factory=dict)
    spans: tuple[Span, ...] = ()  # the spans of the asked kind it holds (not stated in the question)
    score: float = 0.0  # the ranker's probability that it answers the question


def _norm(text: str) -> str:
    return re.sub(r"[\s,]+", "", unicodedata.normalize("NFKC", text)).casefold()


def _forms(text: str) -> set[str]:
    return {m.form.lower() for m in analyze(text)}


def _has(term_forms: frozenset[str], forms: set[str], low: str) -> bool:
    """A term is in a text as one of its morphemes, or (two characters or more) inside a word."""
    return any(f in forms or (len(f) > 1 and f in low) for f in term_forms)


def build_candidates(q: Question, q_vec: np.ndarray, hits: list[Hit], sentence_vecs: dict,
                     idf: Callable[[str], float], term_forms: dict[str, frozenset[str]] | None = None
                     ) -> tuple[list[Candidate], np.ndarray]:
    """Every sentence of ``hits`` (each once, though chunks overlap) and its feature row.

    ``idf(term)``: the term's rarity in the store; ``term_forms``: for an English question, the
    Korean forms each English word stands for (``rag.bridge``); a term not listed matches itself."""
    term_forms = term_forms or {}
    forms_of = {t: term_forms.get(t, frozenset()) | {t.lower()} for t in q.terms}
    # a term weighs by its rarity in the store; a predicate half as much (answers paraphrase verbs)
    weights = {t: _term_weight(t, forms_of[t], idf) * (0.5 if t in q.verbs else 1.0) for t in q.terms}
    total = sum(weights.values())
    rarest = max(weights, key=weights.get) if weights else None  # the question's most specific term
    names = {n: forms_of.get(n.lower(), forms_of.get(n, frozenset({n.lower()}))) | {n.lower()} for n in q.names}
    q_norm = _norm(q.text)
    english = q.language == "en"
    top_score = max((h.score for h in hits), default=1.0) or 1.0
    seen: set[tuple[str, int]] = set()
    cands: list[Candidate] = []
    for rank, hit in enumerate(hits):
        chunk = hit.chunk
        context = f"{chunk.title} {chunk.text}"
        ctx_low, ctx_forms = context.lower(), _forms(context)
        title_low, title_forms = chunk.title.lower(), _forms(chunk.title)
        for si, s in enumerate(chunk.sentences):
            key = (chunk.article_id, s.start)
            if key in seen or key not in sentence_vecs:
                continue
            seen.add(key)
            low, forms = s.text.lower(), _forms(s.text)
            matched = [t for t in q.terms if _has(forms_of[t], forms, low)]
            in_ctx = [t for t in q.terms if _has(forms_of[t], ctx_forms, ctx_low)]
            in_title = [t for t in q.terms if _has(forms_of[t], title_forms, title_low)]
            named = [n for n, fs in names.items() if _has(fs, forms, low)]
            nums = [n for n in q.numbers if re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", s.text.replace(",", ""))]
            spans = tuple(sp for sp in spans_of(s.text, q.kind, q.counter) if _norm(sp.text) not in q_norm) if q.kind else ()
            sim = float(sentence_vecs[key] @ q_vec)
            f = {
                "sim": sim, "cov": sum(weights[t] for t in matched) / total if total else 0.0,
                "cov_passage": sum(weights[t] for t in in_ctx) / total if total else 0.0,
                "names_cov": len(named) / len(names) if names else 0.0, "has_names": float(bool(names)),
                "numbers_cov": len(nums) / len(q.numbers) if q.numbers else 0.0, "has_numbers": float(bool(q.numbers)),
                "kind_known": float(q.kind is not None), "kind_span": float(bool(spans)),
                "kind_span_missing": float(q.kind is not None and not spans),
                "any_number": float(bool(re.search(r"\d", s.text))),
                "money_in_sentence": float(q.kind == "number" and bool(spans_of(s.text, "money"))),
                "passage_rank": 1.0 / (1 + rank), "passage_score": hit.score / top_score,
                "dense_hit": float(hit.dense_rank is not None), "keyword_hit": float(hit.keyword_rank is not None),
                "lead": float(s.start == 0), "position": math.log1p(s.start / 100),
                "title_cov": sum(weights[t] for t in in_title) / total if total else 0.0,
                "log_len": math.log1p(len(s.text)), "quote": float(any(c in s.text for c in _QUOTES)),
                "english": float(english), "sentence_rank_in_passage": 1.0 / (1 + si),
                "rarest_in_sentence": float(rarest in matched), "rarest_in_passage": float(rarest in in_ctx),
            }
            cands.append(Candidate(rank, hit, s.start, s.end, s.text, f, spans))
    if cands:
        sims = np.array([c.features["sim"] for c in cands])
        best = sims.max()
        for c in cands:
            f = c.features
            f["sim_gap"] = f["sim"] - best
            f["sim_best"] = float(f["sim"] == best)
            f["en_sim"] = f["english"] * f["sim"]
            f["en_cov"] = f["english"] * f["cov"]
            f["en_kind_span"] = f["english"] * f["kind_span"]
    X = np.array([[c.features[n] for n in FEATURES] for c in cands], dtype=np.float64).reshape(len(cands), len(FEATURES))
    return cands, X


def _term_weight(term: str, forms: frozenset[str], idf: Callable[[str], float]) -> float:
    """A term weighs by its rarity in the store (its rarest form, for an English word)."""
    values = [idf(f) for f in forms if f]
    return max(values) if values else 1.0
