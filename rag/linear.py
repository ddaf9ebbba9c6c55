"""A fitted linear model as a small JSON file: standardised features in, class probabilities out.

Fitted by scikit-learn's ``LogisticRegression`` in the fitting scripts (``python -m eval.fit``), but
applied here with numpy alone, so answering and ingest need no scikit-learn and the shipped model is
a readable, versioned file. ``contributions`` says which features decided (for the audit views).

Every model file (the ranker, ``RAG_RANKER_MODEL``, the reader's answer model, the cleaner) is read by
``read_model``: a regular file under a size limit, JSON that parses (not too deeply nested), and each
linear part checked by ``LinearSpec`` (finite numbers, shapes that agree with its feature list,
positive scales), so a bad file is one error naming it when it is loaded, never a failure or an
always-abstaining model at question time.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from .errors import ModelFileError, RagError, validation_problems

MAX_MODEL_BYTES = 4 * 1024 * 1024  # fitted models are kilobytes; anything larger is not one
# a fitted model's numbers are small (standardised features); these bounds keep every product finite
MAX_MAGNITUDE = 1e9
MIN_SCALE = 1e-9  # what ``fit`` puts in place of a zero standard deviation is 1.0, never less than this

Number = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ModelSpec(BaseModel):
    """Base of a model file's schema: strict types (no string for a number), finite numbers, and
    unknown keys (``version``, ``fitted_on``) ignored."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)


class LinearSpec(ModelSpec):
    """One fitted linear model as ``LinearModel.to_dict`` writes it."""

    features: list[Name] = Field(min_length=1, max_length=10_000)
    classes: list[Name] = Field(min_length=2, max_length=100)
    mean: list[Number]
    scale: list[Annotated[float, Field(ge=MIN_SCALE, le=MAX_MAGNITUDE)]]
    coef: list[list[Number]]
    intercept: list[Number]

    @model_validator(mode="after")
    def _shapes(self) -> "LinearSpec":
        n, rows = len(self.features), 1 if len(self.classes) == 2 else len(self.classes)
        if len(set(self.features)) != n or len(set(self.classes)) != len(self.classes):
            raise ValueError("features and classes must each be distinct names")
        for name, got, want in (("mean", len(self.mean), n), ("scale", len(self.scale), n),
                                ("coef", len(self.coef), rows), ("intercept", len(self.intercept), rows)):
            if got != want:
                raise ValueError(f"{name} has {got} entries where {len(self.features)} features and "
                                 f"{len(self.classes)} classes need {want}")
        bad = [i for i, row in enumerate(self.coef) if len(row) != n]
        if bad:
            raise ValueError(f"coef row {bad[0]} has {len(self.coef[bad[0]])} entries, not one per feature ({n})")
        return self

    def model(self) -> "LinearModel":
        return LinearModel(tuple(self.features), tuple(self.classes), np.asarray(self.mean, dtype=np.float64),
                           np.asarray(self.scale, dtype=np.float64), np.asarray(self.coef, dtype=np.float64),
                           np.asarray(self.intercept, dtype=np.float64))


def check_features(part: str, have: tuple[str, ...], want: tuple[str, ...]) -> None:
    """ValueError unless a model part was fitted on exactly the features this version computes."""
    if tuple(have) != tuple(want):
        missing = [f for f in want if f not in have]
        extra = [f for f in have if f not in want]
        raise ValueError(f"its {part} model was fitted on other features than this version computes "
                         f"(missing {missing}, unknown {extra}, or another order)")


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
            p = 1.0 / (1.0 + np.exp(-np.clip(d[:, 0], -500, 500)))
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
        """The model ``to_dict`` wrote; a pydantic ``ValidationError`` when it is not one."""
        return LinearSpec.model_validate(d).model()

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, features: tuple[str, ...], *, C: float = 1.0,
            class_weight: str | None = None, sample_weight: np.ndarray | None = None,
            min_scale: float = 0.0) -> "LinearModel":
        """Standardise, then scikit-learn's logistic regression (multinomial when there are more
        than two classes). Only the fitting scripts call this. ``min_scale`` floors each feature's
        standard deviation: a feature (nearly) constant in training does not blow up on a page where
        it is not."""
        from sklearn.linear_model import LogisticRegression

        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-9] = 1.0
        scale = np.maximum(scale, min_scale)
        lr = LogisticRegression(C=C, max_iter=5000, class_weight=class_weight)
        lr.fit((X - mean) / scale, y, sample_weight=sample_weight)
        return cls(tuple(features), tuple(str(c) for c in lr.classes_), mean, scale, lr.coef_, lr.intercept_)


def load_json(path: Path, what: str = "fitted model", refit: str = "python -m eval.fit") -> dict:
    """A model file's JSON object. Only a regular file under ``MAX_MODEL_BYTES`` is read (a FIFO or a
    device would block or never end); JSON nested too deeply for the parser is refused, not a crash."""
    hint = f"; refit it with {refit}"
    try:
        # non-blocking: opening a FIFO for reading would otherwise wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the {what} ({e.strerror or e}){hint}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ModelFileError(f"{path}: not a regular file; a {what} is a JSON file{hint}")
        if st.st_size > MAX_MODEL_BYTES:
            raise ModelFileError(f"{path}: {st.st_size:,} bytes; a {what} is a JSON file of at most "
                                 f"{MAX_MODEL_BYTES:,} bytes{hint}")
        try:
            data = fh.read(MAX_MODEL_BYTES + 1)
        except OSError as e:
            raise ModelFileError(f"{path}: cannot read the {what} ({e.strerror or e}){hint}") from None
    if len(data) > MAX_MODEL_BYTES:
        raise ModelFileError(f"{path}: a {what} is a JSON file of at most {MAX_MODEL_BYTES:,} bytes{hint}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{path}: not a {what}: not UTF-8 JSON (byte {data[e.start]:#04x} at offset "
                             f"{e.start}; a pickle or other binary file is never loaded){hint}") from None
    try:
        d = json.loads(text)
    except RecursionError:  # hostile nesting: json gives up at the interpreter's recursion limit
        raise ModelFileError(f"{path}: not a {what}: JSON nested too deeply (a model file nests a few levels)"
                             f"{hint}") from None
    except ValueError as e:
        raise ModelFileError(f"{path}: not a {what}: not JSON ({e}){hint}") from None
    if not isinstance(d, dict):
        raise ModelFileError(f"{path}: not a {what}: a model file is a JSON object, not {type(d).__name__}{hint}")
    return d


T = TypeVar("T")


def read_model(path: Path, build: Callable[[dict], T], what: str, refit: str) -> T:
    """Read the model file at ``path`` and build it with ``build`` (a ``from_dict`` that validates with
    pydantic and raises ValueError for the rest). Every way the file can be wrong is one
    ``ModelFileError`` naming the file, what is wrong in it, and how to write a good one."""
    d = load_json(path, what, refit)
    try:
        return build(d)
    except ValidationError as e:
        raise ModelFileError(f"{path}: not a {what} ({validation_problems(e)}); refit it with {refit}") from None
    except ValueError as e:
        raise ModelFileError(f"{path}: {e}; refit it with {refit}") from None
