"""The closed classes in rag/lexicon.py, on text written for these tests (outside every eval set)."""

from __future__ import annotations

import re

from rag.lexicon import (ARTICLE_CLASS_WORDS, DATE_PATTERN, EDITED_WORDS, JOURNALIST_TITLES, LAYOUT_CLASS_WORDS,
                         PUBLISHED_WORDS, iso_date)


def test_byline_words_tell_publication_from_edit_times():
    line = "기사입력 2025-04-02 08:10 | 최종수정 2025-04-03 19:55"
    first = min(line.find(w) for w in PUBLISHED_WORDS if w in line)
    assert line[first:].startswith("기사입력")
    assert any(w in line for w in EDITED_WORDS)
    assert not any(w in "출고 2025-04-02" for w in PUBLISHED_WORDS)  # not a word the list claims


def test_journalist_titles_follow_names():
    pattern = re.compile(r"([가-힣]{2,4}) ?(?:" + "|".join(JOURNALIST_TITLES) + ")")
    assert pattern.search("세종=오가람 특파원").group(1) == "오가람"
    assert pattern.search("노을빛 기상캐스터").group(1) == "노을빛"


def test_layout_and_article_class_words_are_disjoint_and_lowercase():
    assert not LAYOUT_CLASS_WORDS & ARTICLE_CLASS_WORDS
    assert all(w == w.lower() for w in LAYOUT_CLASS_WORDS | ARTICLE_CLASS_WORDS)


def test_dates_are_read_and_checked():
    m = DATE_PATTERN.search("등록 2025년 7월 9일 오후")
    assert iso_date(*m.groups()) == "2025-07-09"
    assert iso_date("2025", "13", "1") is None and iso_date("1890", "1", "1") is None
