"""Fitted model files (rag/linear.py's ``read_model``): the ranker (``RAG_RANKER_MODEL``), the reader's
answer model and the cleaner are each checked whole when they are loaded, so a bad file is one error
naming it, never a traceback or an always-abstaining model at question time."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ingest.clean import MODEL_PATH as CLEANER_PATH
from ingest.clean import cleaner_model
from rag.errors import ModelFileError, RagError
from rag.linear import LinearModel
from rag.reader.choose import CONFIDENCE_FEATURES as ANSWER_CONFIDENCE
from rag.reader.choose import WINDOW_FEATURES, answer_model
from rag.reader.ranker import MODEL_PATH as RANKER_PATH
from rag.reader.ranker import ranker_model

from .conftest import ROOT


def _answer_model() -> dict:
    """An answer model as ``python -m eval.fit reader`` writes it (none is shipped yet)."""
    rng = np.random.default_rng(0)

    def linear(features):
        X = rng.normal(size=(40, len(features)))
        return LinearModel.fit(X, (X[:, 0] > 0).astype(int), features).to_dict()

    return {"version": 1, "windows": 3, "threshold": 0.4, "chooser": linear(WINDOW_FEATURES),
            "confidence": linear(ANSWER_CONFIDENCE)}


# each kind of model file: its loader, a good file's content, the key of its threshold and a linear part
KINDS = {
    "ranker": (ranker_model, lambda: json.loads(RANKER_PATH.read_text(encoding="utf-8")), "threshold", "ranker"),
    "answer": (answer_model, _answer_model, "threshold", "chooser"),
    "cleaner": (cleaner_model, lambda: json.loads(CLEANER_PATH.read_text(encoding="utf-8")), "keep_threshold", "keep"),
}


def _set(path):
    def change(d, value):
        *parents, last = path
        for key in parents:
            d = d[key]
        d[last] = value(d[last]) if callable(value) else value
    return change


# (what is wrong, how to make it so from a good model dict, what the error says)
BREAKAGES = [
    ("coef of the wrong shape", lambda d, t, p: _set([p, "coef", 0])(d, lambda row: row[:-2]),
     r"coef row 0 has \d+ entries, not one per feature"),
    ("strings for numbers", lambda d, t, p: _set([p, "mean"])(d, lambda m: [str(x) for x in m]),
     r"{p}\.mean\.0: Input should be a valid number \(got '"),
    ("an empty intercept", lambda d, t, p: _set([p, "intercept"])(d, []), r"intercept has 0 entries"),
    ("a NaN threshold", lambda d, t, p: _set([t])(d, float("nan")), r"{t}: Input should be a finite number"),
    ("a threshold above 1", lambda d, t, p: _set([t])(d, 1.5), r"{t}: Input should be less than or equal to 1"),
    ("a string threshold", lambda d, t, p: _set([t])(d, "0.3"), r"{t}: Input should be a valid number"),
    ("an all-zero scale", lambda d, t, p: _set([p, "scale"])(d, lambda s: [0.0] * len(s)),
     r"{p}\.scale\.0: Input should be greater than or equal to"),
    ("an infinite coefficient", lambda d, t, p: _set([p, "intercept", 0])(d, float("inf")),
     r"{p}\.intercept\.0: Input should be a finite number"),
    ("a feature list of another length", lambda d, t, p: _set([p, "features"])(d, lambda f: f[:-1]),
     r"mean has \d+ entries where \d+ features"),
    ("no threshold", lambda d, t, p: d.pop(t), r"{t}: Field required"),
]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("what, breaks, message", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_a_bad_model_file_is_refused_when_loaded_naming_the_file_and_the_fault(tmp_path, kind, what, breaks, message):
    load, good, threshold, part = KINDS[kind]
    d = copy.deepcopy(good())
    breaks(d, threshold, part)
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ModelFileError, match=message.format(t=threshold, p=part)) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: ") and f"{kind} model" in str(err.value)
    assert "python -m eval.fit" in str(err.value) and "\n" not in str(err.value)


BAD_FILES = [
    ("nested 100,000 deep", lambda: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("a pickle", lambda: b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.", "not UTF-8 JSON"),
    ("a JSON list", lambda: "[1, 2]", "a model file is a JSON object, not list"),
    ("not JSON", lambda: "threshold = 0.5", "not JSON"),
    ("too big", lambda: '{"pad": "' + "x" * (5 << 20) + '"}', r"is a JSON file of at most [\d,]+ bytes"),
]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("what, content, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_file_that_is_no_model_json_is_refused(tmp_path, kind, what, content, message):
    path = tmp_path / f"{kind}.json"
    data = content()
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(ModelFileError, match=message) as err:
        KINDS[kind][0](path)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    """Opening a FIFO for reading waits for a writer: the loader looked at what the path is first."""
    fifo = tmp_path / "ranker.fifo"
    os.mkfifo(fifo)
    code = ("import sys; from rag.reader.ranker import ranker_model\n"
            "try:\n    ranker_model(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.startswith(f"ModelFileError {fifo}: not a regular file"), out.stdout + out.stderr


@pytest.mark.parametrize("kind", list(KINDS))
def test_good_model_files_load_and_round_trip(tmp_path, kind):
    load, good, threshold, part = KINDS[kind]
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(good()), encoding="utf-8")
    model = load(path)
    linear = getattr(model, part)
    again = LinearModel.from_dict(linear.to_dict())
    assert again.features == linear.features and np.allclose(again.coef, linear.coef)
    assert 0.0 <= getattr(model, threshold) <= 1.0


def test_rag_ask_with_a_bad_ranker_model_fails_at_start_in_one_line(tmp_path, monkeypatch, capsys):
    """RAG_RANKER_MODEL with a NaN threshold used to load, and then every answer was 'not found'."""
    from rag.cli import main

    d = json.loads(RANKER_PATH.read_text(encoding="utf-8"))
    d["threshold"] = float("nan")
    bad = tmp_path / "my_ranker.json"
    bad.write_text(json.dumps(d), encoding="utf-8")
    monkeypatch.setenv("RAG_RANKER_MODEL", str(bad))
    rc = main(["ask", "삼성전자 공장은 어디에 있나?", "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert f"{bad}: not a ranker model (threshold: Input should be a finite number" in err
    assert issubclass(ModelFileError, RagError)
