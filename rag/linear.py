"""A fitted linear model as a small JSON file: standardised features in, class probabilities out.

Fitted by scikit-learn's ``LogisticRegression`` in the fitting scripts (``python -m eval.fit``), but
applied here with numpy alone, so answering and ingest need no scikit-learn and the shipped model is
a readable, versioned file. ``contributions`` says which features decided (for the audit views).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RagError


@dataclass(frozen=True)
class LinearModel:
    features: tuple[str, ...]
    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (classes, features); one row for a binary model (the positive class)
    intercept: np.ndarray

    def _z(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise RagError(f"model expects {len(self.features)} features, got shape {X.shape}")
        return (X - self.mean) / self.scale

    def decision(self, X: np.ndarray) -> np.ndarray:
        return self._z(X) @ self.coef.T + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) probabilities; for a binary model the columns are (negative, positive)."""
        d = self.decision(X)
        if d.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-d[:, 0]))
            return np.stack([1 - p, p], axis=1)
        d = d - d.max(axis=1, keepdims=True)
        e = np.exp(d)
        return e / e.sum(axis=1, keepdims=True)

    def contributions(self, x: np.ndarray, cls: int = -1) -> dict[str, float]:
        """Each feature's push towards class ``cls`` (the positive class of a binary model) for one row."""
        z = self._z(np.asarray(x, dtype=np.float64)[None, :])[0]
        row = self.coef[0] if self.coef.shape[0] == 1 else self.coef[cls]
        return {f: float(v) for f, v in zip(self.features, z * row)}

    def to_dict(self) -> dict:
        return {"features": list(self.features), "classes": list(self.classes), "mean": self.mean.round(8).tolist(),
                "scale": self.scale.round(8).tolist(), "coef": self.coef.round(8).tolist(),
                "intercept": self.intercept.round(8).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "LinearModel":
        return cls(tuple(d["features"]), tuple(d["classes"]), np.asarray(d["mean"]), np.asarray(d["scale"]),
                   np.asarray(d["coef"]), np.asarray(d["intercept"]))

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, features: tuple[str, ...], *, C: float = 1.0,
            class_weight: str | None = None, sample_weight: np.ndarray | None = None) -> "LinearModel":
        """Standardise, then scikit-learn's logistic regression (multinomial when there are more
        than two classes). Only the fitting scripts call this."""
        from sklearn.linear_model import LogisticRegression

        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        lr = LogisticRegression(C=C, max_iter=5000, class_weight=class_weight)
        lr.fit((X - mean) / scale, y, sample_weight=sample_weight)
        return cls(tuple(features), tuple(str(c) for c in lr.classes_), mean, scale, lr.coef_, lr.intercept_)


def load_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RagError(f"{path}: cannot read the fitted model ({e}); refit it with python -m eval.fit") from None
