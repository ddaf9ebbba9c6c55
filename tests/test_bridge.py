"""The English-to-Korean term bridge (rag.bridge): word mapping, romanized names, BM25 over bridged nouns."""

from __future__ import annotations

import pytest

from rag.bridge import (TERM_VERSION, _name_matches, bridge_terms, bridge_vocab, english_words, romanize,
                        word_encoders)


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
        assert bool(store.missing_terms(["주가", "공장"], enc.key)) is (enc.key == "embedder")
        near = store.nearest_terms(enc.encode_words(["hotel"]), 5, enc.key)[0]
        assert len(near) == 5 and all(isinstance(f, str) and -1.0 <= cos <= 1.0001 for f, cos, _ in near)
    assert TERM_VERSION in store.terms.name("use")


@pytest.mark.slow
def test_store_search_finds_translations_the_passages_do_not_hold(seeded_settings, embedder):
    from rag.store import get_store

    store = get_store(seeded_settings, embedder)
    slots = bridge_terms([("hotel", False), ("memory", False)], {}, embedder, store)
    assert "호텔" in slots[0].forms or "더플라자호텔" in slots[0].forms
    assert "메모리" in slots[1].forms or "고대역폭메모리" in slots[1].forms


# ---- answer kinds ------------------------------------------------------------------------------
def test_ratio_test_accepts_a_best_form_far_ahead_of_the_next():
    from rag.bridge import _accepted

    assert _accepted([(0.71, "네트웍스"), (0.42, "연합")], 1.0, "use") == {"네트웍스"}
    assert _accepted([(0.61, "박용"), (0.43, "과학")], 1.0, "use") == set()  # not far enough ahead
    assert _accepted([(0.55, "양산"), (0.20, "퓨리오사")], 1.0, "use") == set()  # too weak a match
    assert _accepted([(0.87, "네트웍스"), (0.50, "나이스")], 0.95, "embedder") == set()  # e5: no margin rule
    assert _accepted([(1.3, "회의"), (1.0, "미팅")], 0.7, "use") == {"회의", "미팅"}


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
    # half of the bridged forms are words of the Korean index (here "공장"; "더플라자호텔" is one noun to Kiwi)
    assert r.keyword_weight("factory", ["공장", "없는말"]) == pytest.approx(BRIDGED_KEYWORD_WEIGHT * 0.5)
    assert r.keyword_weight("hotel") == 0.0  # the English word itself is not in the Korean index
