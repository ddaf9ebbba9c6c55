"""The English-to-Korean term bridge, answer kinds and evidence choice (rag.bridge, rag.answer)."""

from __future__ import annotations

import pytest

from rag import answer as ex
from rag.bridge import (TERM_VERSION, _name_matches, bridge_terms, bridge_vocab, english_words, romanize,
                        Slot, word_encoders)


# ---- question words ---------------------------------------------------------------------------
def test_english_words_drop_function_words_and_mark_names():
    words = english_words("Which Korean ministry co-hosted the matching day with OpenAI?")
    assert ("ministry", False) in words and ("hosted", False) in words  # "co-" is dropped
    assert ("OpenAI", True) in words
    assert not any(w.lower() in {"which", "the", "with", "korean", "co"} for w, _ in words)


def test_hyphenated_names_stay_whole_and_acronyms_are_names():
    words = dict(english_words("At which hotel did Chey Tae-won meet US officials?"))
    assert words["Tae-won"] is True and "won" not in words
    assert words["US"] is True and words["hotel"] is False


# ---- names by sound ---------------------------------------------------------------------------
@pytest.mark.parametrize("word,korean", [("Pyeongtaek", "평택"), ("Tae-won", "최태원"), ("Sapeon", "사피온")])
def test_romanized_names_match(word, korean):
    assert _name_matches(word, romanize(korean))


@pytest.mark.parametrize("word,korean", [("Samsung", "평택"), ("Broadcom", "대만"), ("Sam", "삼성")])
def test_unrelated_or_short_names_do_not_match(word, korean):
    assert not _name_matches(word, romanize(korean))


# ---- words by meaning (real encoders, no store: the in-memory path) ---------------------------
@pytest.mark.slow
def test_bridge_translates_common_words_and_known_names(embedder):
    vocab = bridge_vocab(["올트먼은 서울 중구 더플라자호텔에서 최태원 회장을 만났다.",
                          "삼성전자 평택 공장과 대만 TSMC, 고대역폭메모리 시장 점유율이 화제였다."])
    slots = {s.word: s.forms for s in bridge_terms(english_words(
        "Which hotel, plant and memory market did Altman discuss with Samsung in Pyeongtaek and Taiwan?"),
        vocab, embedder)}
    assert "호텔" in slots["hotel"] or "더플라자호텔" in slots["hotel"]
    assert "공장" in slots["plant"]
    assert "올트먼" in slots["Altman"] and slots["Samsung"] & {"삼성", "삼성전자"}
    assert "평택" in slots["Pyeongtaek"] and "대만" in slots["Taiwan"]
    # a word with no counterpart in these passages maps to nothing rather than to noise
    assert not bridge_terms(english_words("What about baseball?"), vocab, embedder)[0].forms


@pytest.mark.slow
def test_ingest_stores_terms_for_both_encoders(seeded_settings, embedder):
    from rag.store import get_store

    store = get_store(seeded_settings, embedder)
    for enc in word_encoders(embedder):
        assert store.has_terms(enc.key)
        assert not store.missing_terms(["평택", "올트먼"], enc.key)  # proper nouns: both encoders
        # common nouns: USE only (e5 is kept to names, which it knows and USE does not)
        assert bool(store.missing_terms(["호텔", "공장"], enc.key)) is (enc.key == "embedder")
        near = store.nearest_terms(enc.encode_words(["hotel"]), 5, enc.key)[0]
        assert len(near) == 5 and all(isinstance(f, str) and -1.0 <= cos <= 1.0001 for f, cos, _ in near)
    assert TERM_VERSION in store._terms_name("use")


@pytest.mark.slow
def test_store_search_finds_translations_the_passages_do_not_hold(seeded_settings, embedder):
    from rag.store import get_store

    store = get_store(seeded_settings, embedder)
    slots = bridge_terms([("hotel", False), ("memory", False)], {}, embedder, store)
    assert "호텔" in slots[0].forms or "더플라자호텔" in slots[0].forms
    assert "메모리" in slots[1].forms or "고대역폭메모리" in slots[1].forms


# ---- answer kinds ------------------------------------------------------------------------------
@pytest.mark.parametrize("question,kind", [
    ("SK하이닉스 주가는 얼마에 장을 마감했나?", "money"),
    ("What was Samsung Electronics' closing share price that day?", "money"),
    ("What is Nvidia's share of the global AI chip market?", "percent"),
    ("How long did the meeting last?", "duration"),
    ("올트먼은 원래 한국에 몇 시간만 머무를 계획이었나?", "duration"),
    ("오픈AI의 직원 수는 몇 명인가?", "count:명"),
    ("몇 개월 만의 방한인가?", "duration"),
    ("Which UAE AI company did Altman talk to about funding chip production?", None),
    ("How much funding could the Stargate project raise at most?", "money"),
    ("Who is the SK hynix president that met Altman?", "person"),
    ("Which SK Networks president did Altman meet?", "person"),
    ("SK하이닉스 사장은?", "person"),  # a question ending on a title asks who holds it
    ("매칭 데이는 어느 정부 부처의 프로그램인가?", "ministry"),
    ("Which Korean ministry co-hosted the event?", "ministry"),
])
def test_asked_kind(question, kind):
    assert ex.asked_type(question) == kind


@pytest.mark.parametrize("text,kind,holds", [
    ("SK하이닉스는 0.92% 오른 14만2600원에 거래를 마쳤다.", "money", True),
    ("SK하이닉스는 52주 신고가를 기록했다.", "money", False),
    ("점유율은 80~90% 수준이다.", "percent", True),
    ("그는 10여 분 간 질의 응답을 했다.", "duration", True),
    ("K-스타트업 10곳을 최종 선발한다.", "count:곳", True),
    ("개발자 100명을 대상으로 열렸다.", "count:명", True),
    ("지난해 6월 이후 7개월 만이다.", "count:개", False),
    ("명품 매장이 문을 열었다.", "count:명", False),
    ("오픈AI와 중소벤처기업부가 공동 개최한 행사", "ministry", True),
    ("미국 정부 차원에서 추진하는 프로젝트", "ministry", False),
    ("최시영 파운드리사업부장이 참석했다.", "ministry", False),  # a company's division, not a ministry
    ("삼성전자 평택 반도체 공장을 찾았다.", "place", True),
    ("최태원 회장이 4일 올트먼 CEO와 회동했다.", "place", False),  # names alone are no place
])
def test_holds_kind(text, kind, holds):
    assert ex.holds_type(text, kind) is holds


def test_who_needs_a_new_name_before_a_title():
    text = "회동에는 유영상 SK텔레콤 대표이사 사장과 곽노정 SK하이닉스 대표이사 사장이 동석했다."
    assert ex.named_persons(text) >= {"유영상", "곽노정"}
    assert ex.holds_type(text, "person", frozenset({"최태원"}))
    # the only named person is the one the question is about: not an answer to "who"
    assert not ex.holds_type("올트먼 CEO는 최태원 SK그룹 회장과도 직접 만났다.", "person",
                             frozenset({"최태원", "올트먼"}))
    assert not ex.named_persons("김주선 SK하이닉스 AI인프라 사장") - {"김주선"}  # "인프라" is no name
    # a surname-initial word is a name only where Kiwi reads it as one before a title
    assert ex.named_persons("올트먼이 이번주 최태원 SK그룹 회장과 만난다.") == {"최태원"}
    # a two-syllable name Kiwi splits in the sentence ("이" + "영")
    assert "이영" in ex.named_persons("올트먼 CEO(오른쪽)와 이영 중소벤처기업부 장관이 대담을 하고 있다.")


@pytest.mark.parametrize("question,titles,org", [
    ("평택 회동에 참석한 삼성전자 파운드리사업부장은 누구인가?", {"사업부장"}, {"파운드리"}),
    ("최태원 회장 회동에 동석한 SK하이닉스 사장은?", {"사장"}, {"sk하이닉스"}),
    ("SK의 사장은 누구?", {"사장"}, {"sk"}),
    ("리벨리온 CEO는 누구인가?", {"ceo", "최고경영자", "대표", "대표이사"}, {"리벨리온"}),
    # a title that belongs to someone the question names is not the post asked about
    ("최태원 회장은 누구를 만났나?", None, None),
    ("최태원 회장과 만난 사람은 누구인가?", None, None),
    ("Who did SK chairman Chey Tae-won meet?", None, None),
    ("Who is the chief executive of Rebellions?", {"ceo", "최고경영자", "대표", "대표이사"}, set()),
])
def test_asked_role(question, titles, org):
    role = ex.asked_role(question, ex.question_terms(question))
    if titles is None:
        assert role is None
    else:
        assert role.titles == titles and role.org == org


def test_english_role_takes_the_nearest_bridged_organisation():
    q = "Which SK Networks president did Altman meet?"
    # "Networks" found no Korean form, so the organisation checked is SK
    qt = ex.question_terms(q).with_slots([Slot("Networks", 2.0, frozenset()), Slot("president", 1.0, frozenset({"회장"}))])
    role = ex.asked_role(q, qt)
    assert "사장" in role.titles and "회장" not in role.titles  # the glossary, not the bridge's 회장
    assert "sk" in role.org
    text = "올트먼 CEO가 최성환 SK네트웍스 사장을 단독으로 만났고, 최태원 SK그룹 회장과도 만났다."
    assert ex.holds_role(text, role, frozenset({"올트먼"}))
    assert not ex.holds_role("올트먼 CEO는 최태원 SK그룹 회장과도 직접 만났다.", role, frozenset({"올트먼"}))
    q = "Who else from SK joined the meeting?"
    role = ex.asked_role(q, ex.question_terms(q))
    assert role.titles == frozenset() and role.org == {"sk"}
    assert ex.holds_role("회동에는 유영상 SK텔레콤 대표이사 사장이 동석했다.", role, frozenset())
    assert not ex.holds_role("올트먼 CEO는 이재용 삼성전자 회장과 만남을 조율 중이다.", role, frozenset({"올트먼"}))


def test_ratio_test_accepts_a_best_form_far_ahead_of_the_next():
    from rag.bridge import _accepted

    assert _accepted([(0.71, "네트웍스"), (0.42, "연합")], 1.0, "use") == {"네트웍스"}
    assert _accepted([(0.61, "박용"), (0.43, "과학")], 1.0, "use") == set()  # not far enough ahead
    assert _accepted([(0.55, "양산"), (0.20, "퓨리오사")], 1.0, "use") == set()  # too weak a match
    assert _accepted([(0.87, "네트웍스"), (0.50, "나이스")], 0.95, "embedder") == set()  # e5: no margin rule
    assert _accepted([(1.3, "회의"), (1.0, "미팅")], 0.7, "use") == {"회의", "미팅"}


def test_english_ordinal_matches_the_korean_day():
    assert "4" in ex.question_terms("Where did they meet on the 4th?").required


# ---- evidence choice ---------------------------------------------------------------------------
def _cand(article, score, matched, conf=0.6):
    from rag.types import Chunk, Hit

    chunk = Chunk(chunk_id=f"{article}-0", article_id=article, index=0, text="t", start=0, end=1, sentences=(),
                  title="", publisher="", date=None)
    return ex.Candidate(0, Hit(chunk, 1.0), 0, 1, "t", 0.8, score=score, confidence=conf,
                        matched=frozenset(matched))


def test_one_quote_by_default_and_a_second_only_when_it_adds_a_question_term():
    best = _cand("a", 1.0, {"올트먼", "호텔"})
    same = _cand("b", 0.995, {"올트먼"})
    adds = _cand("c", 0.99, {"올트먼", "회동"})
    assert ex.choose_evidence([best, same, adds]) == [best]
    assert ex.choose_evidence([best, same], 2) == [best]
    assert ex.choose_evidence([best, same, adds], 2) == [best, adds]
    assert ex.choose_evidence([best, _cand("a", 0.999, {"회동"})], 2) == [best]  # same article
    assert ex.choose_evidence([best, _cand("c", 0.95, {"회동"})], 2) == [best]  # not nearly tied


@pytest.mark.slow
def test_english_questions_search_bm25_with_their_bridged_nouns(seeded_settings):
    from rag.qa import ask
    from rag.retrieve import BRIDGED_KEYWORD_WEIGHT, HybridRetriever
    from rag.embed import get_embedder
    from rag.store import get_store

    a = ask("At which hotel did Chey Tae-won and Sam Altman meet?", settings=seeded_settings)
    assert "bridge" in a.timings_ms
    assert any(h.keyword_rank is not None for h in a.retrieved)  # BM25 took part
    assert any("더플라자호텔" in h.chunk.text for h in a.retrieved[:3])
    embedder = get_embedder(seeded_settings)
    r = HybridRetriever(store=get_store(seeded_settings, embedder), embedder=embedder)
    assert r.keyword_weight("hotel", ["호텔", "없는말"]) == pytest.approx(BRIDGED_KEYWORD_WEIGHT * 0.5)
    assert r.keyword_weight("hotel") == 0.0  # the English word itself is not in the Korean index
