"""The span reader's parts, on short texts written for these tests: short answers and their scoring,
reading windows, span decoding, the reading examples a fit learns from, and SQuAD-style files. The
fitted reader itself is covered by the eval floors and by tests/test_qa.py."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from rag.errors import RagError
from rag.reader.short import char_f1, exact_match, normalize_answer, trim_span
from rag.reader.spanmodel import Feature, best_spans, encode_pairs
from rag.reader.windows import reading_windows
from rag.types import Chunk, Hit


@pytest.mark.parametrize("text, span, want", [
    ("누리전자를 비롯한 업체들이 참여했다.", "누리전자를", "누리전자"),  # an object particle fused to the name
    ("사업비는 3만 원이었다.", "3만 원이었다", "3만 원"),  # the copula and its endings
    ("행사는 가람시청에서 열렸다.", "가람시청에서", "가람시청"),
    ("그는 “봄날의 약속”이라고 불렀다.", "“봄날의 약속”이라고", "“봄날의 약속”"),
    ("무대에 오른 텔만은 웃었다.", "텔만은", "텔만"),  # a name ending in a syllable that can be a particle
    ("조사는 이틀 동안 이어졌다.", "이틀", "이틀"),  # nothing to trim
    ("The plant opened in 2024.", "2024.", "2024"),
])
def test_trim_span_keeps_the_phrase_and_drops_what_is_fused_to_it(text, span, want):
    s = text.index(span)
    a, b = trim_span(text, s, s + len(span))
    assert text[a:b] == want


def test_exact_match_and_char_f1_compare_normalised_text():
    assert normalize_answer(" 1,250억 원. ") == "1250억원"
    assert exact_match("1,250억 원", ["1250억원", "125 billion won"]) == 1.0
    assert exact_match("1,250억", ["1250억원"]) == 0.0
    assert char_f1("1,250억", ["1250억원"]) == pytest.approx(2 * 1.0 * (5 / 6) / (1 + 5 / 6))  # 5 of 6 characters
    assert char_f1("", ["가람"]) == 0.0 and exact_match("가람", []) == 0.0


def _hit(text: str, article: str = "a1") -> Hit:
    from rag.korean import split_sentences

    sents = tuple(split_sentences(text))
    return Hit(Chunk(f"{article}-c", article, 0, text, 0, len(text), sents, "제목"), 1.0, 0, None)


class _Cand:
    def __init__(self, hit, sentence, score):
        self.hit, self.start, self.end, self.text, self.score = hit, sentence.start, sentence.end, sentence.text, score


def test_windows_hold_each_ranked_sentence_with_its_neighbours_once():
    hit = _hit("첫째 문장이다. 둘째 문장이다. 셋째 문장이다. 넷째 문장이다. 다섯째 문장이다.")
    s = hit.chunk.sentences
    ranked = [_Cand(hit, s[2], 0.9), _Cand(hit, s[3], 0.8), _Cand(hit, s[0], 0.5)]
    ws = reading_windows(ranked, 3)
    assert [w.text for w in ws] == ["둘째 문장이다. 셋째 문장이다. 넷째 문장이다.", "첫째 문장이다. 둘째 문장이다."]
    assert ws[0].anchor is ranked[0] and ws[1].anchor is ranked[2]  # the second sentence was already in view
    assert ws[0].sentence_at(s[3].start + 2) == s[3]
    assert hit.chunk.text[ws[0].start:ws[0].end] == ws[0].text
    assert len(reading_windows(ranked, 1)) == 1


def test_a_long_window_drops_its_neighbours_first():
    long = "가" * 400
    hit = _hit(f"{long}다. 핵심 문장이다. {long}다.")
    ws = reading_windows([_Cand(hit, hit.chunk.sentences[1], 0.9)], 1, max_chars=300)
    assert ws[0].text == "핵심 문장이다."


def test_best_span_decoding_respects_order_length_and_the_no_answer_score():
    f = Feature(0, (0, 5, 2, 2, 7, 8, 9, 2), 4, ((0, 2), (3, 5), (6, 9)))
    start = np.full((1, 8), -5.0)
    end = np.full((1, 8), -5.0)
    start[0, 5], end[0, 4] = 4.0, 6.0  # the best end comes before the best start: not a span
    end[0, 6] = 3.0
    start[0, 0] = end[0, 0] = 1.0
    (best,) = best_spans(start, end, [f], 1)
    assert (best.start, best.end) == (3, 9) and best.score == 7.0 and best.null == 2.0 and best.margin == 5.0


def test_a_long_text_is_read_in_overlapping_pieces_that_cover_it():
    text = " ".join(f"문장{i}" for i in range(400))
    feats = encode_pairs("질문은?", [text], max_len=64, stride=32)
    assert len(feats) > 3 and all(len(f.input_ids) <= 64 for f in feats)
    starts = [f.offsets[0][0] for f in feats]
    assert starts == sorted(starts) and feats[-1].offsets[-1][1] == len(text)
    for a, b in zip(feats, feats[1:]):  # consecutive pieces overlap
        assert b.offsets[0][0] < a.offsets[-1][1]


def test_entity_swap_makes_the_particle_agree():
    from eval.fit_reader import _josa

    assert _josa("이 발표했다", "누리") == "가 발표했다"
    assert _josa("를 만났다", "가람시청") == "을 만났다"
    assert _josa("의 대표", "누리") == "의 대표"


def _squad(tmp_path, data) -> "Path":
    p = tmp_path / "set.json"
    p.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return p


def test_squad_files_are_read_and_split_by_article(tmp_path):
    from eval.squad import load_squad, split_by_article

    ctx = "가람시는 올해 도서관 세 곳을 새로 연다. 예산은 120억 원이다."
    data = {"data": [{"title": f"문서{k}", "paragraphs": [{"context": ctx, "qas": [
        {"id": f"q{k}", "question": "예산은 얼마인가?", "answers": [{"text": "120억 원", "answer_start": ctx.index("120억")}]},
        {"id": f"u{k}", "question": "관장은 누구인가?", "answers": [], "is_impossible": True}]}]} for k in range(6)]}
    items = load_squad(_squad(tmp_path, data))
    assert len(items) == 12 and items[1].impossible and items[0].answers == ("120억 원",)
    train, held = split_by_article(items, 0, 3)
    assert not {i.title for i in train} & {i.title for i in held} and len(train) + len(held) == 12


@pytest.mark.parametrize("data, message", [
    ([1, 2], "'data' list"),
    ({"data": [{"paragraphs": [{"context": "가나다", "qas": [{"id": "a", "question": "무엇?",
                                                            "answers": [{"text": "나다", "answer_start": 0}]}]}]}]}, "not at offset"),
    ({"data": [{"paragraphs": [{"context": "가나다", "qas": [{"id": "a", "question": "무엇?", "answers": []}]}]}]},
     "has no answers"),
    ({"data": [{"paragraphs": [{"context": "가나다", "qas": [{"id": ["a"], "question": "무엇?", "answers": []}]}]}]},
     "'id'"),
])
def test_bad_squad_files_are_named_errors(tmp_path, data, message):
    from eval.squad import load_squad

    with pytest.raises(RagError, match=message):
        load_squad(_squad(tmp_path, data))


def test_reading_examples_hold_the_answer_at_its_offset():
    from eval.fit_reader import label_features, squad_examples
    from eval.squad import SquadItem

    ctx = "가람시는 올해 도서관을 연다. 도서관에는 연습실 여섯 곳이 들어선다. 개관식은 5월 2일이다. 시장은 축사를 한다."
    a = "5월 2일"
    items = [SquadItem(f"q{i}", "가람시", "0-0", ctx, "개관식은 언제인가?", (a,), (ctx.index(a),)) for i in range(20)]
    examples = squad_examples(items, random.Random(3), neg_same=1.0, neg_other=0.0, neg_swap=0.0)
    pos = [e for e in examples if e.answer]
    neg = [e for e in examples if e.answer is None]
    assert len(pos) == 20 and neg and all(a not in e.text for e in neg)
    assert all(e.text[e.answer[0]:e.answer[1]] == a for e in pos)
    labs = label_features(pos, 128)
    assert len(labs) == len(pos)
    for ex, lab in zip(pos, labs):
        f = lab.feature
        first, last = f.offsets[lab.start - f.context_start], f.offsets[lab.end - f.context_start]
        assert ex.text[first[0]:last[1]].startswith("5월") and lab.end >= lab.start > 0
