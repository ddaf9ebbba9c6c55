"""ask() end to end on the ingested seeds with the real embedder, store and Kiwi."""

from __future__ import annotations

import json

import pytest

from rag.qa import ask, ask_stream, clean_question, standalone_question
from rag.cli import main
from rag.errors import QuestionError
from rag.settings import Settings
from rag.types import Answer
from rag.verify import citations_are_valid

pytestmark = pytest.mark.slow


def _quote_in_article(settings, c):
    from rag.embed import get_embedder
    from rag.store import get_store

    chunk = get_store(settings, get_embedder(settings)).get_chunks([c.chunk_id])[c.chunk_id]
    return chunk.text[c.start - chunk.start : c.end - chunk.start] == c.quote


@pytest.mark.parametrize("question, language", [("SK하이닉스가 지난해 4분기에 기록한 영업이익은 얼마인가?", "ko"),
                                                ("Which UAE AI company did Altman talk to about funding chip production?", "en")])
def test_an_answer_cites_exact_sentences_of_the_retrieved_passages(seeded_settings, question, language):
    """The plumbing of every answer (which sentence is right is the eval floors' business)."""
    a = ask(question, settings=seeded_settings)
    assert a.language == language and 0.0 <= a.confidence <= 1.0
    if a.abstained:
        assert not a.citations and a.text in ("제공된 기사에서 답을 찾을 수 없습니다.", "I couldn't find this in the indexed articles.")
        return
    assert citations_are_valid(a.text, a.citations) and a.text.rstrip().endswith("[1]")
    assert a.text.startswith("According to the articles") == (language == "en")
    retrieved_ids = {h.chunk.chunk_id for h in a.retrieved}
    arts = _store_articles(seeded_settings)
    for c in a.citations:
        assert c.chunk_id in retrieved_ids  # never a citation outside the retrieved passages
        assert _quote_in_article(seeded_settings, c)
        assert (c.publisher, c.date) == (arts[c.article_id].publisher, arts[c.article_id].date)


def _store_articles(settings):
    from rag.embed import get_embedder
    from rag.store import get_store

    return get_store(settings, get_embedder(settings)).articles()


def test_who_question_without_any_such_person_abstains(seeded_settings):
    a = ask("Who won the 2024 Korean professional baseball championship?", settings=seeded_settings)
    assert a.abstained and a.text == "I couldn't find this in the indexed articles."


def test_filters_narrow_both_signals(seeded_settings):
    a = ask("올트먼과 최태원 회장의 만남", settings=seeded_settings, filters={"publisher": "서울경제"})
    assert a.retrieved and all(h.chunk.publisher == "서울경제" for h in a.retrieved)
    b = ask("올트먼과 최태원 회장의 만남", settings=seeded_settings, filters={"since": "2024-03-01"})
    assert b.retrieved and all(h.chunk.date and h.chunk.date >= "2024-03-01" for h in b.retrieved)
    none = ask("올트먼", settings=seeded_settings, filters={"since": "2030-01-01"})
    assert none.abstained and not none.retrieved


def test_followup_carries_the_previous_question_over(seeded_settings):
    history = [("최태원 회장과 올트먼이 회동한 호텔은 어디인가?", "더플라자호텔 [1]")]
    standalone = standalone_question("그럼 SK 쪽 참석자는?", history, seeded_settings)
    assert "최태원" in standalone and "SK" in standalone  # the previous turn's names, not its ask
    a = ask("그럼 회동은 얼마 동안 진행됐나?", history=history, settings=seeded_settings)
    assert a.standalone_question != a.question and "최태원" in a.standalone_question


@pytest.mark.parametrize("bad,msg", [("", "empty"), ("   \n\t ", "empty"), ("가" * 20000, "limit"),
                                     ("🙂🙂🙂", "no words"), ("\x00\x01\x02", "empty")])
def test_bad_questions_get_a_clear_error(bad, msg):
    with pytest.raises(QuestionError, match=msg):
        clean_question(bad, Settings().max_question_chars)


def test_control_characters_are_removed():
    assert clean_question("평택\x00 공장은\x1b?", 100) == "평택 공장은 ?"


def test_stream_yields_text_then_the_answer(seeded_settings):
    parts = list(ask_stream("빌더 랩 워크숍은 어디에서 열렸나?", settings=seeded_settings))
    assert isinstance(parts[-1], Answer)
    assert "".join(parts[:-1]).strip() == parts[-1].text.strip()


def test_cli_ask_json_and_bad_question(seeded_settings, capsys):
    rc = main(["ask", "스타게이트 프로젝트의 자금 조달 규모는 최대 얼마인가?", "--json", "--store", str(seeded_settings.store_dir)])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert {"question", "text", "language", "abstained", "citations", "retrieved", "timings_ms"} <= set(d)
    assert {"n", "article_id", "title", "publisher", "date", "quote", "start", "end"} <= set(d["citations"][0])
    assert {"article_id", "chunk_id", "text", "score"} <= set(d["retrieved"][0])
    assert "400억 달러" in d["text"]
    rc = main(["ask", "   ", "--store", str(seeded_settings.store_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "empty" in err


def test_public_api_is_the_function():
    import subprocess
    import sys

    code = "from rag import ask, ask_stream; import inspect; assert inspect.isfunction(ask) and inspect.isfunction(ask_stream)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_ranker_of_ones_own_answers_instead_of_the_shipped_one(seeded_settings, tmp_path):
    """RAG_RANKER_MODEL: a refit written elsewhere is used (here one that never trusts an answer), and a
    file that is no ranker is a clear error, not a crash."""
    from dataclasses import replace

    from rag.errors import RagError
    from rag.qa import warm_up
    from rag.reader.ranker import MODEL_PATH

    question = "SK하이닉스가 지난해 4분기에 기록한 영업이익은 얼마인가?"
    seeded_settings = replace(seeded_settings, reader="features")  # the ranker's own confidence decides there
    shipped = ask(question, settings=seeded_settings)
    model = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    model["threshold"] = 1.0
    own = tmp_path / "my_ranker.json"
    own.write_text(json.dumps(model), encoding="utf-8")
    mine = ask(question, settings=replace(seeded_settings, ranker_model=own))
    assert mine.abstained and not mine.citations
    assert mine.confidence == pytest.approx(shipped.confidence)  # the same model, only its threshold moved
    assert Settings.from_env({"RAG_RANKER_MODEL": str(own)}).ranker_model == own
    bad = tmp_path / "bad.json"
    bad.write_text('{"threshold": 0.5}', encoding="utf-8")
    with pytest.raises(RagError, match="not a ranker model"):
        ask(question, settings=replace(seeded_settings, ranker_model=bad))
    # a file not yet written is no error in the settings (python -m eval.fit ranker --out writes it under
    # them), but asking, or warming up, with it is
    missing = Settings.from_env({"RAG_RANKER_MODEL": str(tmp_path / "missing.json")}).ranker_model
    for call in (lambda s: ask(question, settings=s), warm_up):
        with pytest.raises(RagError, match="no ranker model at .*missing.json.*RAG_RANKER_MODEL"):
            call(replace(seeded_settings, ranker_model=missing))
    # a ranker fitted on features another version computed is refused by name, not scored with the wrong columns
    model["ranker"]["features"] = [*model["ranker"]["features"][:-1], "retired_feature"]
    old = tmp_path / "old_ranker.json"
    old.write_text(json.dumps(model), encoding="utf-8")
    with pytest.raises(RagError, match=r"ranker model was fitted on other features.*unknown \['retired_feature'\]"):
        ask(question, settings=replace(seeded_settings, ranker_model=old))


def test_a_reader_of_ones_own_and_the_features_path(seeded_settings, tmp_path):
    """RAG_READER_MODEL: a reader written elsewhere answers with the chooser and confidence model beside
    it (here one that never trusts an answer); a missing or foreign file is a clear error;
    RAG_READER=features answers without the span reader."""
    import shutil
    from dataclasses import replace

    from rag.errors import RagError
    from rag.qa import warm_up
    from rag.reader.choose import answer_model_path
    from rag.reader.spanmodel import MODEL_PATH

    question = "SK하이닉스가 지난해 4분기에 기록한 영업이익은 얼마인가?"
    shipped = ask(question, settings=seeded_settings)
    assert not shipped.abstained and shipped.short_answer and shipped.short_answer in shipped.citations[0].quote
    own = tmp_path / "mine.safetensors"
    shutil.copy(MODEL_PATH, own)
    model = json.loads(answer_model_path(MODEL_PATH).read_text(encoding="utf-8"))
    answer_model_path(own).write_text(json.dumps({**model, "threshold": 1.0}), encoding="utf-8")
    mine = ask(question, settings=replace(seeded_settings, reader_model=own))
    assert mine.abstained and mine.confidence == pytest.approx(shipped.confidence)
    features = ask(question, settings=replace(seeded_settings, reader="features"))
    assert features.citations and abs(features.confidence - shipped.confidence) > 1e-6  # the ranker's confidence model
    answer_model_path(own).unlink()
    with pytest.raises(RagError, match="RAG_READER_MODEL=.*mine.safetensors.*mine.answer.json"):
        warm_up(replace(seeded_settings, reader_model=own))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    answer_model_path(bad).write_text(json.dumps(model), encoding="utf-8")
    with pytest.raises(RagError, match="not a reader model"):
        ask(question, settings=replace(seeded_settings, reader_model=bad))
