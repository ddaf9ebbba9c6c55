"""Which window's span answers, and whether to answer at all (``reader_model.answer.json``, beside the
reader's weights; fitted by ``python -m eval.fit reader`` on the dev split, out of fold).

Each read window gives the span reader's best span and its scores; the **chooser** (a logistic
regression over the reader's scores, the feature ranker's view of the span's sentence, and whether the
span is of the asked kind) gives each a probability of being the answer, and the best is taken. The
**confidence model** turns the chosen span's features and the question's into a calibrated
probability that the answer is right; below the fitted threshold the assistant says the articles do
not hold the answer. An adversarial question (another entity, a reversed relation, an attribute the
text never gives) shows as a weak reader margin, a span sentence that misses the question's names or
terms, or a span that is not of the asked kind.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pydantic import Field

from ..errors import ModelFileError
from ..linear import LinearModel, LinearSpec, ModelSpec, Probability, check_features, read_model



def answer_model_path(reader_path: Path) -> Path:
    """Where a reader's chooser and confidence model are: beside it, ``<name>.answer.json``."""
    return Path(reader_path).with_suffix(".answer.json")


WINDOW_FEATURES = ("margin", "span_score", "null", "margin_gap", "anchor_logit", "sentence_logit", "in_anchor",
                   "window_rank", "kind_known", "kind_agrees", "span_in_question", "log_span_chars", "english",
                   "sentence_cov", "sentence_names_cov", "sentence_cov_passage")
CONFIDENCE_FEATURES = ("chosen_logit", "chosen_margin", "second_gap", "margin", "kind_known", "kind_agrees",
                       "english", "sentence_cov", "sentence_names_cov", "has_names", "sentence_cov_passage",
                       "ranker_top_logit", "sentence_logit")


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass
class Read:
    """One window read: the window, the reader's best span in it (article offsets, trimmed), the span's
    sentence as a ranked candidate, and its feature row."""

    window: object
    start: int
    end: int
    text: str  # the short answer
    candidate: object  # the Candidate of the sentence holding the span
    features: dict
    typed: object = None  # the typed span (rag.reader.spans.Span) it coincides with, for its English form
    prob: float = 0.0  # the chooser's probability that this span answers


def window_features(reads: list[Read], question) -> np.ndarray:
    """Fill each read's ``margin_gap`` (to the best margin) and return the rows."""
    if not reads:
        return np.zeros((0, len(WINDOW_FEATURES)))
    best = max(r.features["margin"] for r in reads)
    for r in reads:
        r.features["margin_gap"] = r.features["margin"] - best
    return np.array([[r.features[n] for n in WINDOW_FEATURES] for r in reads], dtype=np.float64)


def confidence_row(chosen: Read, reads: list[Read], ranked: list) -> np.ndarray:
    others = sorted((r.prob for r in reads if r is not chosen), reverse=True)
    f = chosen.features
    row = {"chosen_logit": logit(chosen.prob), "chosen_margin": f["margin"],
           "second_gap": logit(chosen.prob) - (logit(others[0]) if others else -10.0),
           "margin": f["margin"], "kind_known": f["kind_known"], "kind_agrees": f["kind_agrees"],
           "english": f["english"], "sentence_cov": f["sentence_cov"], "sentence_names_cov": f["sentence_names_cov"],
           "has_names": chosen.candidate.features.get("has_names", 0.0),
           "sentence_cov_passage": f["sentence_cov_passage"],
           "ranker_top_logit": logit(ranked[0].score) if ranked else -10.0, "sentence_logit": f["sentence_logit"]}
    return np.array([[row[n] for n in CONFIDENCE_FEATURES]], dtype=np.float64)


class AnswerSpec(ModelSpec):
    """What ``python -m eval.fit reader`` writes beside the reader's weights."""

    chooser: LinearSpec
    confidence: LinearSpec
    threshold: Probability
    windows: int = Field(ge=1, le=16)


@dataclass(frozen=True)
class AnswerModel:
    chooser: LinearModel
    confidence: LinearModel
    threshold: float  # abstain below this confidence
    windows: int  # windows read per question

    @classmethod
    def from_dict(cls, d: dict) -> "AnswerModel":
        """The model in an answer-model file; a ValidationError or ValueError when it is not one this
        version can use."""
        spec = AnswerSpec.model_validate(d)
        check_features("chooser", spec.chooser.features, WINDOW_FEATURES)
        check_features("confidence", spec.confidence.features, CONFIDENCE_FEATURES)
        return cls(spec.chooser.model(), spec.confidence.model(), spec.threshold, spec.windows)

    def choose(self, reads: list[Read], question) -> Read | None:
        if not reads:
            return None
        probs = self.chooser.predict_proba(window_features(reads, question))[:, 1]
        for r, p in zip(reads, probs):
            r.prob = float(p)
        return max(reads, key=lambda r: r.prob)

    def confidence_of(self, chosen: Read | None, reads: list[Read], ranked: list) -> float:
        if chosen is None:
            return 0.0
        return float(self.confidence.predict_proba(confidence_row(chosen, reads, ranked))[0, 1])


_models: dict[tuple[Path, int], AnswerModel] = {}
_lock = threading.Lock()


def answer_model(path: Path) -> AnswerModel:
    """The fitted model at ``path``; a clear error when it is missing or is not one."""
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise ModelFileError(f"no answer model at {path} (write one with python -m eval.fit reader)") from None
    with _lock:
        if (path, stamp) not in _models:
            _models[(path, stamp)] = read_model(path, AnswerModel.from_dict,
                                                "answer model",
                                                "python -m eval.fit reader")
        return _models[(path, stamp)]
