"""Answering, in parts, on short texts written for these tests: what a question asks (rag.reader.question),
typed spans (rag.reader.spans), candidate features (rag.reader.candidates), the fitted ranker and abstention
(rag.reader.ranker) and the answer's text (rag.reader.text). The whole pipeline is covered by the eval floors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.reader.text import ABSTAIN_TEXT, english_rendering, extractive_text, korean_number, lead_span
from rag.reader.candidates import FEATURES, build_candidates
from rag.reader.question import analyze_question
from rag.reader.ranker import CONFIDENCE_FEATURES, MODEL_PATH, RankerModel, confidence_features
from rag.reader.spans import Span, find_spans, spans_of
from rag.types import Chunk, Hit


@pytest.mark.parametrize("question, kind, counter", [
    ("가람시 도서관에는 연습실이 몇 곳 들어서나?", "count", "곳"),
    ("설명회는 언제 열리나요?", "date", ""),
    ("총사업비는 얼마야?", "money", ""),
    ("공장의 연간 생산능력은 얼마인가?", "number", ""),  # "얼마" of anything; money needs a money word
    ("지원율은 몇 %였나?", "percent", ""),
    ("공사는 얼마 동안 이어졌나?", "duration", ""),
    ("도서관을 짓자고 제안한 사람은 누구인가?", "person", ""),
    ("새 도서관은 어디에 들어서나?", "place", ""),
    ("어느 회사가 공사를 맡았나?", "org", ""),
    ("시는 왜 폐교 부지를 골랐나?", "reason", ""),
    ("How many practice rooms will the library have?", "count", ""),
    ("When is the briefing for residents?", "date", ""),
    ("How much will the project cost?", "money", ""),
    ("How much did exports grow?", "number", ""),
    ("Which city official announced the plan and how much will it cost?", "person", ""),  # the first wh-phrase
    ("What share of the budget goes to books?", "percent", ""),
    ("How long will construction take?", "duration", ""),
    ("Why did the city choose the school site?", "reason", ""),
    ("Which construction company won the bid?", "org", ""),
    ("Tell me about the library.", None, ""),
])
def test_question_kinds(question, kind, counter):
    q = analyze_question(question)
    assert (q.kind, q.counter) == (kind, counter)
    assert q.language == ("en" if question[0].isascii() else "ko")


def test_question_terms_names_and_numbers():
    q = analyze_question("가람시는 2028년에 도서관을 몇 곳 여나?")
    assert "가람" in q.names and "도서관" in q.terms and "2028" in q.numbers and "몇" not in q.terms and "곳" not in q.terms
    e = analyze_question("How many rooms will Garam City's library have in 2028?")
    assert "rooms" in e.terms and "Garam" in e.names and "2028" in e.numbers and "how" not in e.terms


@pytest.mark.parametrize("text, kind, span", [
    ("참가비는 1인당 1만5천 원이다.", "money", "1만5천 원"),
    ("지원자가 12.5% 늘었다.", "percent", "12.5%"),
    ("불은 3시간 만에 꺼졌다.", "duration", "3시간 만에"),
    ("설명회는 오는 17일 열린다.", "date", "17일"),
    ("사고는 오후 2시 40분께 났다.", "date", "오후 2시 40분께"),
    ("주민 340여 명이 대피했다.", "count", "340여 명"),
    ("남궁찬 교육청소년과장은 이렇게 말했다.", "person", "남궁찬"),
])
def test_spans_of_each_kind(text, kind, span):
    assert span in [s.text for s in spans_of(text, kind)]


def test_count_spans_respect_the_counter_and_numbers_are_not_counted_twice():
    text = "연습실 6곳과 공방 2개가 생기고 예산은 186억 원이다."
    assert [s.text for s in spans_of(text, "count", "곳")] == ["6곳"]
    assert all(not (s.kind == "number" and s.text.startswith("186")) for s in find_spans(text))
    assert "1분기" not in [s.text for s in find_spans("1분기 매출이 늘었다.")]


def _hit(text: str, rank: int, article: str = "a1", title: str = "가람시 청소년 도서관") -> Hit:
    from rag.korean import split_sentences

    sents = tuple(split_sentences(text))
    chunk = Chunk(f"{article}-c", article, 0, text, 0, len(text), sents, title)
    return Hit(chunk, 1.0 / (1 + rank), dense_rank=rank, keyword_rank=None)


def test_candidate_features_follow_their_definitions():
    hits = [_hit("가람시는 도서관을 짓는다. 연습실은 6곳이 들어선다.", 0), _hit("다른 시는 공원을 만든다.", 1, "a2", "다른 소식")]
    q = analyze_question("가람시 도서관에는 연습실이 몇 곳 들어서나?")
    svecs = {(h.chunk.article_id, s.start): np.eye(4)[i] for i, h in enumerate(hits) for s in h.chunk.sentences}
    q_vec = np.eye(4)[0]
    cands, X = build_candidates(q, q_vec, hits, svecs, idf=lambda t: 2.0 if t == "연습실" else 1.0)
    assert X.shape == (3, len(FEATURES)) and len(cands) == 3
    by_text = {c.text: c for c in cands}
    room = by_text["연습실은 6곳이 들어선다."].features
    assert room["kind_span"] == 1.0 and room["kind_span_missing"] == 0.0
    assert by_text["연습실은 6곳이 들어선다."].spans[0].text == "6곳"
    assert by_text["가람시는 도서관을 짓는다."].features["kind_span"] == 0.0
    assert room["passage_rank"] == 1.0 and by_text["다른 시는 공원을 만든다."].features["passage_rank"] == 0.5
    assert room["cov"] > by_text["다른 시는 공원을 만든다."].features["cov"]  # 연습실 weighs double
    assert by_text["가람시는 도서관을 짓는다."].features["lead"] == 1.0 and room["lead"] == 0.0
    assert X[:, FEATURES.index("sim_best")].sum() >= 1


def test_shipped_ranker_matches_the_features_and_is_calibrated():
    d = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    model = RankerModel.from_dict(d)
    assert model.ranker.features == FEATURES and model.confidence.features == CONFIDENCE_FEATURES
    assert 0.0 < model.threshold < 1.0
    hits = [_hit("가람시는 도서관을 짓는다. 연습실은 6곳이 들어선다.", 0)]
    q = analyze_question("가람시 도서관에는 연습실이 몇 곳 들어서나?")
    svecs = {(h.chunk.article_id, s.start): np.full(4, 0.5) for h in hits for s in h.chunk.sentences}
    cands, X = build_candidates(q, np.full(4, 0.5), hits, svecs, idf=lambda t: 1.0)
    ranked = model.rank(cands, X)
    assert ranked[0].text == "연습실은 6곳이 들어선다."  # the sentence that holds the asked count
    assert all(a.score >= b.score for a, b in zip(ranked, ranked[1:]))
    assert 0.0 <= model.confidence_of(ranked) <= 1.0 and confidence_features(ranked).shape == (1, len(CONFIDENCE_FEATURES))
    assert model.confidence_of([]) == 0.0


@pytest.mark.parametrize("text, value", [("8조4천억", 8.4e12), ("4만 4,200", 44200), ("282억", 2.82e10), ("6.4", 6.4),
                                         ("1만5천", 15000), ("abc", None)])
def test_korean_numbers(text, value):
    assert korean_number(text) == value


@pytest.mark.parametrize("span, english", [
    (Span("duration", "40분간", 0, 5), "40 minutes"), (Span("count", "340여 명", 0, 6), "340 people"),
    (Span("money", "282억 달러", 0, 7), "28.2 billion dollars"), (Span("percent", "6.4%", 0, 4), "6.4 percent"),
    (Span("date", "3월 14일", 0, 6), "March 14"), (Span("date", "오후 3시 20분께", 0, 9), "3:20 p.m."),
    (Span("person", "정하윤", 0, 3), "Jeong Ha-yun"),
])
def test_english_renderings(span, english):
    assert english_rendering(span) == english


def test_answer_text_leads_with_the_span():
    from rag.reader.candidates import Candidate

    hit = _hit("불은 40분간 탔다.", 0)
    c = Candidate(0, hit, 0, 10, "불은 40분간 탔다.", spans=(Span("duration", "40분간", 3, 8),))
    ko = extractive_text([c], analyze_question("불은 얼마 동안 탔나?"), lead_span(c))
    assert ko == "**40분간** — 불은 40분간 탔다. [1]"
    en = extractive_text([c], analyze_question("How long did the fire burn?"), lead_span(c))
    assert en.endswith("**40분간 (40 minutes)** — 불은 40분간 탔다. [1]") and en.startswith("According to")
    plain = Candidate(0, hit, 0, 10, "불은 40분간 탔다.")
    assert extractive_text([plain], analyze_question("불은 어땠나?")) == "불은 40분간 탔다. [1]"
    assert ABSTAIN_TEXT["en"] and ABSTAIN_TEXT["ko"]


@pytest.mark.parametrize("question, followup", [
    ("그럼 SK는?", True), ("무역수지는?", True), ("그 사람은 언제 취임했어?", True), ("And the trade balance?", True),
    ("What did he say about the budget?", True), ("What about Busan?", True),
    ("가람시 도서관의 총사업비는 얼마인가?", False), ("수정안 반대 토론에서 비판한 의원은?", False),  # ends on 은/는 yet complete
    ("How many households will the complex have once it is rebuilt?", False),
])
def test_which_questions_are_followups(question, followup):
    from rag.followup import is_followup

    assert is_followup(question) is followup


@pytest.mark.parametrize("question, followup", [
    # short, yet saying what they ask about: a topic with a predicate, a question word with a name
    ("도혜린은 언제 취임했나?", False), ("해솔군은 여객선을 몇 번 늘리나?", False), ("What is Moonbridge?", False),
    ("When did Dohyerin take office?", False), ("Who is Namgung Chan?", False),
    # fragments: nothing named, or nothing asked
    ("언제 취임했나?", True), ("누가 반대했어?", True), ("얼마나 걸렸어?", True), ("How much?", True), ("Who won?", True),
    ("The ferry fare?", True), ("What was the budget?", True),
])
def test_short_questions_that_name_their_topic_are_complete(question, followup):
    from rag.followup import is_followup

    assert is_followup(question) is followup


def test_a_short_complete_question_after_another_topic_is_left_as_it_is():
    from rag.followup import carry_over

    meeting = [("도혜린 의원과 남궁찬 과장은 3월 4일 어디에서 만났나?", "**가람시청** — 두 사람은 가람시청에서 만났다. [1]"),
               ("Where did Dohyerin and Namgung Chan meet on March 4?", "**Garam City Hall** — ... [1]")]
    for question in ("해솔군은 언제 여객선을 늘렸나?", "What is Moonbridge?", "남궁찬은 언제 취임했나?"):
        assert carry_over(question, meeting[:1]) == question and carry_over(question, meeting[1:]) == question
    assert carry_over("언제 취임했나?", meeting[:1]) != "언제 취임했나?"  # a fragment still borrows the context


def test_a_followup_borrows_context_not_the_ask_and_a_complete_question_stays():
    from rag.followup import carry_over

    history = [("가람시 4월 시의회에서 예산안을 낸 의원은 누구야?", "**도혜린** — 도혜린 의원이 예산안을 냈다. [1]")]
    assert carry_over("그럼 5월에는?", history) == "그럼 5월에는? (가람)"  # the month is replaced, not carried
    assert carry_over("그 사람은 어느 정당이야?", history).startswith("그 사람은 어느 정당이야? (도혜린")
    complete = "나래군 여객선 정원은 몇 명인가?"
    assert carry_over(complete, history) == complete
    en = carry_over("And what about May?", [("Who proposed the Garam budget in April?", "x [1]")])
    assert "Garam" in en and "April" not in en and "proposed" not in en  # May replaces April
