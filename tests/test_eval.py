"""The eval suite: the gold file is valid, the metrics are computed as defined, and the default
pipeline stays above the checked-in floors (the real pipeline: cleaning, Kiwi, e5, Chroma, BM25)."""

from __future__ import annotations

import json

import pytest

from eval.runner import Outcome, evaluate, load_gold, score
from rag.errors import RagError

from .conftest import ROOT, SEEDS

GOLD = ROOT / "eval" / "gold.jsonl"


def test_gold_file_is_valid_and_balanced():
    items = load_gold(GOLD, SEEDS)  # raises if an evidence string is not in its source page
    assert len(items) >= 60
    english = [i for i in items if not any("\uac00" <= ch <= "\ud7a3" for ch in i["question"])]
    assert len(english) / len(items) >= 0.4
    assert sum(not i["answerable"] for i in items) >= 10
    assert any(i.get("kind") == "boilerplate" for i in items)
    assert any(len(i["sources"]) > 1 and i["answerable"] for i in items)


@pytest.mark.parametrize("name", ["holdout.jsonl", "holdout2.jsonl"])
def test_held_out_sets_are_valid(name):
    items = load_gold(ROOT / "eval" / name, SEEDS)  # written after the rules they check; see README
    assert items and any(not i["answerable"] for i in items) and any(i["answerable"] for i in items)


def test_validator_rejects_bad_items(tmp_path):
    bad = tmp_path / "g.jsonl"
    bad.write_text(json.dumps({"id": "a", "question": "q", "answers": [], "sources": ["000_a566e6770392c4fe"],
                               "evidence": ["이 문장은 기사에 없다"], "answerable": True}) + "\n"
                   + json.dumps({"id": "a", "question": "q", "answers": [], "sources": ["nope"], "evidence": [],
                                 "answerable": False}) + "\n", encoding="utf-8")
    with pytest.raises(RagError) as e:
        load_gold(bad, SEEDS)
    msg = str(e.value)
    assert "evidence not in its sources" in msg and "duplicate id" in msg and "nope not found" in msg


def test_metrics_follow_their_definitions():
    items = [
        {"id": "1", "question": "평택 공장?", "answers": ["평택"], "sources": ["A"], "evidence": ["평택 공장을 찾아"], "answerable": True},
        {"id": "2", "question": "Which hotel?", "answers": ["Plaza"], "sources": ["B"], "evidence": ["더플라자호텔"], "answerable": True},
        {"id": "3", "question": "No answer?", "answers": [], "sources": ["A"], "evidence": ["출판기념회"], "answerable": False, "kind": "boilerplate"},
    ]
    outcomes = [
        Outcome("삼성전자 평택 공장 [1]", False, ("A", "B"), ("삼성 평택 공장을 찾아 갔다",), ("평택 공장을 찾아 갔다",), 10),
        Outcome("I couldn't find this", True, ("C", "B"), ("x", "서울 더플라자 호텔"), (), 20),
        Outcome("the answer", False, ("A",), ("출판 기념회 소식",), ("q",), 30),
    ]
    r = score(items, outcomes)
    assert r["n"] == 3
    assert r["hit_at_1"] == 0.5 and r["hit_at_5"] == 1.0 and r["mrr_at_10"] == 0.75
    assert r["evidence_at_5"] == 1.0  # whitespace is ignored in substring tests
    assert r["answer_accuracy"] == 0.5 and r["false_abstain"] == 0.5
    assert r["citation_precision"] == 1.0
    assert r["abstain_recall"] == 0.0 and r["boilerplate_leak"] == 1.0
    assert r["overall_accuracy"] == round(1 / 3, 4)
    assert r["by_lang"]["ko"]["n"] == 1 and r["by_lang"]["en"]["n"] == 2
    assert {f["id"] for f in r["failures"]} == {"2", "3"}


@pytest.mark.slow
def test_default_pipeline_stays_above_floors(seeded_settings):
    floors = json.loads((ROOT / "eval" / "floors.json").read_text())
    report = evaluate(GOLD, settings=seeded_settings, store=seeded_settings.store_dir)
    assert set(report) >= {"n", "hit_at_1", "hit_at_5", "evidence_at_5", "mrr_at_10", "answer_accuracy",
                           "citation_precision", "abstain_recall", "false_abstain", "overall_accuracy",
                           "boilerplate_leak", "latency_p50_ms", "latency_p95_ms", "by_lang", "failures"}
    problems = []
    for scope in ("all", "ko", "en"):
        metrics = report if scope == "all" else report["by_lang"][scope]
        for name, floor in floors[scope].items():
            if metrics[name] < floor:
                problems.append(f"{scope} {name} {metrics[name]} < {floor}")
    for name, ceiling in floors["ceilings"].items():
        if report[name] > ceiling:
            problems.append(f"{name} {report[name]} > {ceiling}")
    assert not problems, problems


def test_html_report_escapes_and_charts():
    from eval.runner import html_report

    r = {"pipeline": "<script>x</script>", "n": 1, "by_lang": {"ko": {}, "en": {}}, "threshold": 0.35,
         "threshold_curve": [{"threshold": t / 20, "overall_accuracy": 0.5, "answer_accuracy": 0.4,
                              "abstain_recall": 0.6} for t in range(20)]}
    for m in ("hit_at_1", "hit_at_5", "evidence_at_5", "mrr_at_10", "answer_accuracy", "citation_precision",
              "abstain_recall", "false_abstain", "overall_accuracy", "boilerplate_leak"):
        r[m] = 0.5
    page = html_report([r])
    assert "<svg" in page and "<polyline" in page and "<rect" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page


@pytest.mark.slow
def test_cli_eval_writes_exactly_the_report_keys(seeded_settings, tmp_path, capsys):
    from rag.cli import main

    out = tmp_path / "r.json"
    html = tmp_path / "r.html"
    rc = main(["eval", "--gold", str(GOLD), "--store", str(seeded_settings.store_dir), "--out", str(out), "--html", str(html)])
    assert rc == 0
    assert list(json.loads(out.read_text())) == ["n", "hit_at_1", "hit_at_5", "evidence_at_5", "mrr_at_10",
                                                 "answer_accuracy", "citation_precision", "abstain_recall",
                                                 "false_abstain", "overall_accuracy", "boilerplate_leak",
                                                 "latency_p50_ms", "latency_p95_ms", "by_lang", "failures"]
    assert "<svg" in html.read_text()
    assert "ans_acc" in capsys.readouterr().out
