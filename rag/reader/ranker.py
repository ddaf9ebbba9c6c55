"""The fitted answer ranker and abstention model (``rag/reader/ranker_model.json``, written by
``python -m eval.fit ranker`` from the dev split's gold questions).

``RAG_RANKER_MODEL`` points at a model fitted on one's own gold set instead
(``python -m eval.fit ranker --corpus MY_CORPUS --out my_ranker.json``), so a refit need not overwrite
the shipped one.

The ranker gives each candidate sentence a probability that it holds the answer. The confidence
model turns the best candidate's probability, its margin over the runner-up and what the question
asked into a calibrated probability that the answer is right; below the fitted threshold the
assistant says the articles do not hold the answer. ``Answer.confidence`` is that probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .candidates import FEATURES, Candidate
from ..errors import ModelFileError
from ..linear import LinearModel, LinearSpec, ModelSpec, Probability, check_features, read_model

MODEL_PATH = Path(__file__).with_name("ranker_model.json")
CONFIDENCE_FEATURES = ("top_logit", "margin", "top_kind_span", "kind_known", "top_cov", "top_cov_passage", "top_sim",
                       "english", "top_rarest_in_passage")


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def confidence_features(ranked: list[Candidate]) -> np.ndarray:
    """One row for a question from its ranked candidates (best first)."""
    if not ranked:
        return np.zeros((1, len(CONFIDENCE_FEATURES)))
    top = ranked[0]
    second = ranked[1] if len(ranked) > 1 else None
    f = top.features
    row = {
        "top_logit": _logit(top.score), "margin": _logit(top.score) - (_logit(second.score) if second else -10.0),
        "top_kind_span": f["kind_span"], "kind_known": f["kind_known"], "top_cov": f["cov"],
        "top_cov_passage": f["cov_passage"], "top_sim": f["sim"],
        "top_rarest_in_sentence": f["rarest_in_sentence"], "top_rarest_in_passage": f["rarest_in_passage"],
        "top_names_cov": f["names_cov"], "has_names": f["has_names"], "top_numbers_cov": f["numbers_cov"],
        "has_numbers": f["has_numbers"], "english": f["english"], "top_passage_rank": f["passage_rank"],
        "same_article_second": float(second is not None and second.hit.chunk.article_id == top.hit.chunk.article_id),
        "log_candidates": math.log1p(len(ranked)),
    }
    return np.array([[row[n] for n in CONFIDENCE_FEATURES]])


class RankerSpec(ModelSpec):
    """What ``python -m eval.fit ranker`` writes."""

    ranker: LinearSpec
    confidence: LinearSpec
    threshold: Probability


@dataclass(frozen=True)
class RankerModel:
    ranker: LinearModel
    confidence: LinearModel
    threshold: float  # abstain below this confidence (fitted on dev: best overall accuracy)

    @classmethod
    def from_dict(cls, d: dict) -> "RankerModel":
        """The model in a ranker file; a ValidationError or ValueError when it is not one this version
        can use (wrong types or shapes, or fitted on other features)."""
        spec = RankerSpec.model_validate(d)
        check_features("ranker", spec.ranker.features, FEATURES)
        check_features("confidence", spec.confidence.features, CONFIDENCE_FEATURES)
        return cls(spec.ranker.model(), spec.confidence.model(), spec.threshold)

    def rank(self, cands: list[Candidate], X: np.ndarray) -> list[Candidate]:
        """The candidates, best first, each with its probability of answering the question."""
        if not cands:
            return []
        probs = self.ranker.predict_proba(X)[:, 1]
        for c, p in zip(cands, probs):
            c.score = float(p)
        return sorted(cands, key=lambda c: -c.score)

    def confidence_of(self, ranked: list[Candidate]) -> float:
        if not ranked:
            return 0.0
        return float(self.confidence.predict_proba(confidence_features(ranked))[0, 1])


def model_path(settings) -> Path:
    """The ranker ``settings`` answer with: ``RAG_RANKER_MODEL``, else the shipped one."""
    return settings.ranker_model or MODEL_PATH


def ranker_model(path: Path = MODEL_PATH) -> RankerModel:
    """The model at ``path``; a clear error when it is missing, is no ranker model (checked whole when
    it is loaded: types, shapes, finite numbers, a threshold in [0, 1]), or was fitted on other
    features than this version computes (a file written by an older or newer version). A refit
    written over the same file is read again."""
    try:
        stamp = Path(path).stat().st_mtime_ns
    except OSError:
        raise ModelFileError(f"no ranker model at {path} (RAG_RANKER_MODEL; write one with "
                             "python -m eval.fit ranker --out FILE)") from None
    return _load(Path(path), stamp)


@lru_cache(maxsize=4)
def _load(path: Path, stamp: int) -> RankerModel:
    return read_model(path, RankerModel.from_dict, "ranker model",
                      "python -m eval.fit ranker --out FILE")
