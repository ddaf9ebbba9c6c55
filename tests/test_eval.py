"""The eval suite: the gold file is valid, the metrics are computed as defined, and the default
pipeline stays above the checked-in floors (the real pipeline: cleaning, Kiwi, e5, Chroma, BM25)."""

from __future__ import annotations

import json

import pytest

from eval.runner import Outcome, evaluate, load_gold, score
from rag.errors import RagError
from rag.settings import Settings

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
    # no short answer given: the whole answer text is scored; an abstention scores 0
    assert r["short_em"] == 0.0 and 0.0 < r["short_f1"] < 0.5
    assert r["by_unanswerable"] == {"other": {"n": 1, "abstain_recall": 0.0}}


def test_short_answers_score_exact_match_and_f1_and_unanswerables_by_kind():
    items = [
        {"id": "1", "question": "예산은?", "answers": ["48억 원"], "sources": ["A"], "evidence": ["48억 원"], "answerable": True},
        {"id": "2", "question": "노선은?", "answers": ["올빼미 순환선"], "sources": ["A"], "evidence": ["올빼미"], "answerable": True},
        {"id": "3", "question": "B시 노선은?", "answers": [], "sources": ["A"], "evidence": ["12개"], "answerable": False,
         "unanswerable": "adversarial", "adversarial": "entity_swap"},
        {"id": "4", "question": "직원 수는?", "answers": [], "sources": ["A"], "evidence": [], "answerable": False,
         "unanswerable": "not_stated"},
    ]
    outcomes = [
        Outcome("**48억 원** — 예산은 48억 원이다. [1]", False, ("A",), ("x",), ("예산은 48억 원이다.",), 5, short="48억 원"),
        Outcome("**올빼미** — 올빼미 순환선이다. [1]", False, ("A",), ("x",), ("올빼미 순환선이다.",), 5, short="올빼미"),
        Outcome("**12개** — … [1]", False, ("A",), ("x",), ("12개 노선",), 5, short="12개"),
        Outcome("not found", True, ("A",), ("x",), (), 5),
    ]
    r = score(items, outcomes)
    assert r["short_em"] == 0.5 and r["short_f1"] == round((1.0 + 2 * 1 * (3 / 6) / (1 + 3 / 6)) / 2, 4)
    assert r["by_unanswerable"]["adversarial"] == {"n": 1, "abstain_recall": 0.0}
    assert r["by_unanswerable"]["adversarial:entity_swap"]["n"] == 1
    assert r["by_unanswerable"]["not_stated"] == {"n": 1, "abstain_recall": 1.0}


@pytest.mark.slow
def test_squad_files_are_asked_open_domain_and_given_their_paragraph():
    """rag eval --squad on a small SQuAD-style file written for this test: every paragraph becomes a
    page of a scratch store; given-context reads each question against its own paragraph only."""
    from eval.squad import evaluate_squad

    path = ROOT / "tests" / "data" / "squad_small.json"
    settings = Settings()
    opened = evaluate_squad(path, settings=settings)
    given = evaluate_squad(path, settings=settings, given_context=True)
    for r in (opened, given):
        assert r["squad"]["questions"] == 8 and r["squad"]["impossible"] == 1 and r["n"] == 8
        assert r["by_unanswerable"]["impossible"]["n"] == 1
        assert 0.0 <= r["short_em"] <= r["short_f1"] <= 1.0
    assert opened["hit_at_5"] == 1.0  # three pages: the right one is always retrieved
    assert given["hit_at_1"] == 1.0 and given["pipeline"] == "default+given-context"
    naive = evaluate_squad(path, settings=settings, pipeline="naive")
    assert naive["n"] == 8 and naive["abstain_recall"] == 0.0  # the plain pipeline never abstains
    with pytest.raises(RagError, match="fold"):
        evaluate_squad(path, settings=settings, fold="9/2")


def _below_floors(report: dict, floors: dict) -> list[str]:
    problems = []
    for scope in ("all", "ko", "en"):
        metrics = report if scope == "all" else report["by_lang"][scope]
        for name, floor in floors[scope].items():
            if metrics[name] < floor:
                problems.append(f"{scope} {name} {metrics[name]} < {floor}")
    for name, ceiling in floors["ceilings"].items():
        if report[name] > ceiling:
            problems.append(f"{name} {report[name]} > {ceiling}")
    for name, bound in floors.get("cleaning", {}).items():
        value = report["cleaning"][name.split("_", 1)[1]]
        if (name.startswith("max_") and value > bound) or (name.startswith("min_") and value < bound):
            problems.append(f"cleaning {name.split('_', 1)[1]} {value} beyond {bound}")
    return problems


@pytest.mark.slow
def test_default_pipeline_stays_above_floors(seeded_settings):
    floors = json.loads((ROOT / "eval" / "floors.json").read_text())
    report = evaluate(GOLD, settings=seeded_settings, store=seeded_settings.store_dir)
    assert set(report) >= {"n", "hit_at_1", "hit_at_5", "evidence_at_5", "mrr_at_10", "answer_accuracy",
                           "citation_precision", "abstain_recall", "false_abstain", "overall_accuracy",
                           "boilerplate_leak", "latency_p50_ms", "latency_p95_ms", "by_lang", "failures"}
    problems = _below_floors(report, floors)
    assert not problems, problems


@pytest.mark.slow
def test_dev_split_of_the_corpus_stays_above_floors(tmp_path):
    """The development corpus's dev split (never the test split) guards against regressions."""
    from eval.runner import Corpus

    floors = json.loads((ROOT / "eval" / "floors_dev.json").read_text())
    report = evaluate(settings=Settings(store_dir=tmp_path / "store"), corpus=Corpus.resolve(ROOT / "eval" / "corpus"),
                      split="dev")
    assert report["n"] >= 250 and report["split"] == "dev" and report["cleaning"]["pages"] >= 40
    assert {"by_qtype", "by_section"} <= set(report)
    problems = _below_floors(report, floors)
    assert not problems, problems


def test_answer_parts_need_every_part_and_reports_break_down_by_kind_and_section():
    items = [
        {"id": "1", "question": "두 회사는?", "answers": ["가온", "나래"], "answer_parts": [["가온"], ["나래", "Narae"]],
         "sources": ["A", "B"], "evidence": ["가온과 계약", "나래와 협약"], "answerable": True, "qtype": "which"},
        {"id": "2", "question": "Which two firms?", "answers": ["가온", "나래"], "answer_parts": [["가온"], ["나래", "Narae"]],
         "sources": ["A", "B"], "evidence": ["가온과 계약", "나래와 협약"], "answerable": True, "qtype": "which"},
        {"id": "3", "question": "언제?", "answers": [], "sources": [], "evidence": [], "answerable": False, "qtype": "when",
         "unanswerable": "outside"},
    ]
    outcomes = [Outcome("가온과 계약했다 [1] 나래와 협약했다 [2]", False, ("A", "B"), ("가온과 계약했다",),
                        ("가온과 계약했다", "나래와 협약했다"), 5),
                Outcome("가온과 계약했다 [1]", False, ("A",), ("가온과 계약했다",), ("가온과 계약했다",), 5),
                Outcome("없음", True, (), (), (), 5)]
    r = score(items, outcomes, sections={"A": "tech", "B": "tech"})
    assert r["answer_accuracy"] == 0.5  # the second names one of the two firms only
    assert r["by_qtype"]["which"]["n"] == 2 and r["by_qtype"]["when"]["abstain_recall"] == 1.0
    assert r["by_section"]["tech"]["answer_accuracy"] == 0.5 and r["by_section"]["outside"]["n"] == 1
    failing = {f["id"]: f for f in r["failures"]}
    assert set(failing) == {"2"} and failing["2"]["quotes"] == ["가온과 계약했다"]
    assert failing["2"]["evidence"] == ["가온과 계약", "나래와 협약"]


def test_corpus_folders_resolve_and_split(tmp_path):
    from eval.runner import Corpus

    (tmp_path / "pages").mkdir()
    for name, split in (("p1", "dev"), ("p2", "test")):
        (tmp_path / "pages" / f"{name}.txt").write_text(f"{name} 기사 본문이다.\n", encoding="utf-8")
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(
        {"id": n, "question": "무엇?", "answers": [n], "sources": [n], "evidence": [f"{n} 기사"], "answerable": True,
         "split": s}) + "\n" for n, s in (("p1", "dev"), ("p2", "test"))), encoding="utf-8")
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps({"id": n, "split": s, "blocks": []}) + "\n"
                                                   for n, s in (("p1", "dev"), ("p2", "test"))), encoding="utf-8")
    c = Corpus.resolve(tmp_path)
    assert c.pages == tmp_path / "pages" and c.labels == tmp_path / "labels.jsonl"
    assert [p.stem for p in c.page_files("test")] == ["p2"] and len(c.page_files()) == 2
    assert [i["id"] for i in load_gold(c.gold, c.pages, "dev")] == ["p1"]
    with pytest.raises(RagError, match="no gold file"):
        Corpus.resolve(tmp_path / "pages")
    with pytest.raises(RagError, match="needs a labels file"):
        Corpus(tmp_path / "pages", c.gold).page_files("dev")


def test_cleaning_score_counts_kept_furniture_and_lost_sentences():
    from eval.cleaning import score_page, summarize

    record = {"id": "p", "title": "빵집 폐업 늘어", "publisher": "가온일보", "date": "2026-02-03", "blocks": [
        {"role": "furniture", "text": "구독"}, {"role": "furniture", "text": "▶ 청소년보호책임자 : 마루한 (02-000-0000)"},
        {"role": "title", "text": "빵집 폐업 늘어"},
        {"role": "article", "text": "올해 빵집 360곳이 폐업했다. 재료값이 올랐기 때문이다."},
        {"role": "article", "text": "협회는 지원책을 요구했다."}]}
    cleaned = "올해 빵집 360곳이 폐업했다. 재료값이 올랐기 때문이다.\n청소년보호책임자: 마루한 (02-000-0000)\n구독자 수가 늘었다"
    page = score_page(record, cleaned, {"title": "빵집 폐업 늘어", "publisher": None, "date": "2026-02-03"})
    assert page["furniture"] == 2 and page["furniture_kept"] == ["▶ 청소년보호책임자 : 마루한 (02-000-0000)"]  # "구독" is no line of its own
    assert page["sentences"] == 3 and page["sentences_lost"] == ["협회는 지원책을 요구했다."]
    assert page["title_ok"] and not page["publisher_ok"] and page["date_ok"]
    s = summarize([page])
    assert s["furniture_kept_rate"] == 0.5 and s["sentence_loss_rate"] == round(1 / 3, 4)


def test_a_credit_glued_to_its_caption_is_kept_while_it_still_follows_it():
    from eval.cleaning import score_page

    record = {"id": "p", "title": "빵집", "blocks": [
        {"role": "article", "text": "올해 빵집 360곳이 폐업했다."}, {"role": "caption", "text": "빵을 고르는 손님들."},
        {"role": "furniture", "text": "/가온일보"}, {"role": "article", "text": "협회는 지원책을 요구했다."}]}
    glued = "올해 빵집 360곳이 폐업했다.\n빵을 고르는 손님들. /가온일보\n협회는 지원책을 요구했다."
    assert score_page(record, glued, {})["furniture_kept"] == ["/가온일보"]
    assert score_page(record, glued.replace(" /가온일보", ""), {})["furniture_kept"] == []


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
                                                 "answer_accuracy", "short_em", "short_f1", "citation_precision",
                                                 "abstain_recall", "false_abstain", "overall_accuracy",
                                                 "boilerplate_leak", "latency_p50_ms", "latency_p95_ms", "split",
                                                 "by_lang", "by_unanswerable", "failures"]
    assert "<svg" in html.read_text()
    assert "ans_acc" in capsys.readouterr().out


GOOD_ITEM = {"id": "q1", "question": "올트먼이 찾은 공장은 어디인가?", "answers": ["평택"], "sources": ["000_a566e6770392c4fe"],
             "evidence": ["삼성전자 평택 반도체 공장을 찾아"], "answerable": True}


@pytest.mark.parametrize("line, message", [
    ("5", "line 2: a gold record is a JSON object, not 5"),
    ("null", "line 2: a gold record is a JSON object, not null"),
    ({**GOOD_ITEM, "id": ["a"]}, r"line 2: id: Input should be a valid string \(got \['a'\]\)"),
    ({**GOOD_ITEM, "sources": [["p1"]]}, r"line 2 \(q1\): sources\.0: Input should be a valid string"),
    ({**GOOD_ITEM, "evidence": [5]}, r"line 2 \(q1\): evidence\.0: Input should be a valid string \(got 5\)"),
    ({**GOOD_ITEM, "sources": "p1"}, r"sources: Input should be a valid list \(got 'p1'\)"),  # was split into 'p', '1'
    ({**GOOD_ITEM, "answers": "평택"}, r"answers: Input should be a valid list"),  # was scored character by character
    ({**GOOD_ITEM, "answers": [" "]}, "an empty answer or evidence string would match any text"),
    ({**GOOD_ITEM, "answerable": "yes"}, "answerable: Input should be a valid boolean"),
    ({**GOOD_ITEM, "unanswerable": "outside"}, "answerable is true but unanswerable is 'outside'"),
    ({**GOOD_ITEM, "unanswerable": "unclear", "answerable": False}, "unanswerable: Input should be 'not_stated'"),
    ({**GOOD_ITEM, "answer_part": [["평택"]]}, r"answer_part: Extra inputs are not permitted.*keys are id, question"),
    ({k: v for k, v in GOOD_ITEM.items() if k != "evidence"}, r"line 2 \(q1\): evidence: Field required"),
], ids=['5', 'null', 'id a list', 'sources nested', 'evidence a number', 'sources a string', 'answers a string', 'a blank answer', 'answerable a string', 'answerable and unanswerable', 'unknown unanswerable kind', 'unknown key', 'no evidence'])
def test_a_gold_line_that_is_no_question_is_named_with_its_line(tmp_path, line, message):
    """Each of these was a traceback (or, for a string of sources or answers, scored letter by letter)."""
    gold = tmp_path / "g.jsonl"
    other = json.dumps(line, ensure_ascii=False) if isinstance(line, dict) else line
    gold.write_text(json.dumps({**GOOD_ITEM, "id": "q0"}, ensure_ascii=False) + "\n" + other + "\n", encoding="utf-8")
    with pytest.raises(RagError, match=message) as err:
        load_gold(gold, SEEDS)
    assert str(err.value).startswith(f"{gold}: invalid gold file:")


def test_a_gold_file_that_is_not_utf8_names_the_line(tmp_path):
    gold = tmp_path / "g.jsonl"
    gold.write_bytes((json.dumps(GOOD_ITEM) + "\n").encode() + json.dumps({**GOOD_ITEM, "id": "q2"}).encode("utf-16"))
    with pytest.raises(RagError, match=r"line 2 is not UTF-8 \(byte 0xff\); a gold file is UTF-8 JSON lines"):
        load_gold(gold, SEEDS)


def _eval_corpus(tmp_path, labels: list) -> "Path":
    (tmp_path / "pages").mkdir()
    for name in ("p1", "p2"):
        (tmp_path / "pages" / f"{name}.txt").write_text(f"{name} 기사 본문이다. 가온시는 도서관을 짓는다.\n", encoding="utf-8")
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(
        {"id": n, "question": "무엇?", "answers": ["도서관"], "sources": [n], "evidence": [f"{n} 기사"], "answerable": True,
         "split": "dev"}) + "\n" for n in ("p1", "p2")), encoding="utf-8")
    (tmp_path / "labels.jsonl").write_text("".join(line + "\n" for line in labels), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("labels, args, message", [
    (['{"split": "dev", "blocks": []}'], [], r"labels.jsonl: invalid labels file:\n  line 1: id: Field required"),
    (['{"id": "p1", "split": "dev", "blocks": "zzz"}'], [], r"line 1 \(p1\): blocks: Input should be a valid list"),
    (['{"id": "p1", "split": "test", "blocks": []}', '{"id": "p2", "split": "test", "blocks": []}'], ["--split", "dev"],
     r"--split dev: no page in .* is in that split by .*labels.jsonl \(its pages' splits: test\)"),
], ids=["no id", "blocks a string", "a split with no page"])
def test_rag_eval_refuses_bad_labels_before_any_ingest(tmp_path, monkeypatch, capsys, labels, args, message):
    """A labels record without an id, or with blocks that are no list, failed only after the whole
    ingest (when cleaning was scored); a --split with no page ran on nothing and reported zeros."""
    import re

    from rag.cli import main
    from rag.embed import get_embedder

    from .fakes import fake_embedder_setting

    corpus = _eval_corpus(tmp_path, labels)
    monkeypatch.setenv("RAG_EMBEDDER", fake_embedder_setting())
    rc = main(["eval", "--corpus", str(corpus), *args])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(message, err), err
    assert get_embedder(Settings.from_env()).encoded == 0  # nothing was embedded: no ingest ran
