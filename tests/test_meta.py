"""Title and date as learned choices (ingest.meta): the date expressions a page may hold, the byline's
date over a saved copy's note or a widget, no date where the page states none, a deck line (never a
caption or the lede) for a page without a headline, derived titles cut between words, the audit in
``rag clean``, the model file's validation and the fitting script. Every page here is written for
these tests (never the seeds or the eval corpus)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ingest.clean import clean_text
from ingest.meta import (DATE_FEATURES, META_MODEL_PATH, TITLE_FEATURES, MetaModel, cut_at_word, derived_title,
                         find_dates, meta_model)
from rag.errors import ModelFileError

STORY = """다온시는 지난해 문을 닫은 서산초등학교 부지에 연면적 4,100㎡ 규모의 청소년 도서관을 짓는다고 7일 밝혔다. 총사업비는 172억 원이며 2028년 3월 개관이 목표다.
도서관에는 열람실과 함께 음악 연습실 5곳, 메이커 공방, 진로 상담실이 들어선다. 시는 다음 달 설계 공모를 시작한다.
윤가람 다온시 교육청소년과장은 "학교가 떠난 자리를 다시 아이들의 공간으로 돌려주겠다"고 말했다.
시는 주민 설명회를 오는 21일 서산동 행정복지센터에서 연다. 설명회에서는 도서관 이름 공모 방법도 안내한다.
"""

# a saved copy's note and a date widget above the headline, and dated teasers below the story: the
# byline's 입력 date is the article's (its 수정 date is a later edit)
PREFIXED = """[이 문서는 2026.01.09 21:40에 저장된 사본입니다]
2026년 1월 12일 월요일 | 로그인 | 회원가입 | 구독신청
홈 > 사회 > 교육
오늘의 날씨 2026.01.12 (월) 맑음 -3℃
다온시, 폐교 부지에 청소년 도서관 짓는다…2028년 개관
반나래 기자 | 입력 2026.01.07 14:05 | 수정 2026.01.08 09:10
""" + STORY + """반나래 기자 narae@daontimes.example
Copyright ⓒ 다온타임스. All rights reserved. 무단 전재 및 재배포 금지.
많이 본 뉴스
다온천 산책로 야간 조명 설치…연말까지 4.2㎞ (2026.01.05)
시외버스터미널 이전 부지 확정 (2026.01.03)
"""

UNDATED = """홈 > 사회 > 교육
다온시, 폐교 부지에 청소년 도서관 짓는다…2028년 개관
반나래 기자
""" + STORY + "Copyright ⓒ 다온타임스. All rights reserved. 무단 전재 및 재배포 금지.\n"

# no headline: two deck lines, then a photo, its caption and its credit, then the story
HEADLESS = """다온경제
경제  |  산업  |  에너지  |  부동산
다온항 앞바다 해상풍력 첫 삽…2030년까지 1.2GW 발전단지 짓는다
주민 참여형 이익공유제 처음 도입…"어민 반대 넘으려 지분 나눈다"
관계자들이 다온항 앞바다에 세워질 해상풍력 발전기 모형을 살펴보고 있다.
사진=다온경제 DB
반나래 기자
다온시와 한울에너지는 다온항 앞바다에 1.2기가와트(GW) 규모의 해상풍력단지를 짓는 공사를 시작했다고 밝혔다. 사업비는 5조 4,000억 원이다.
발전기 80기가 들어서며 첫 전력 생산은 2028년 말로 잡혀 있다. 시는 인근 어민과 주민이 지분을 나눠 갖는 이익공유제를 처음 도입한다.
한울에너지 관계자는 "바람이 센 겨울에 발전량이 가장 많을 것"이라고 말했다.
ⓒ 다온경제 무단전재 및 재배포 금지
"""

# nothing that could be a title: only menu lines before the story
BARE = """메뉴 건너뛰기
로그인 | 회원가입
다온시와 한울에너지는 다온항 앞바다에 1.2기가와트(GW) 규모의 해상풍력단지를 짓는 공사를 시작했으며, 사업비는 5조 4,000억 원이다.
발전기 80기가 들어서며 첫 전력 생산은 2028년 말로 잡혀 있다. 시는 인근 어민과 주민이 지분을 나눠 갖는 이익공유제를 처음 도입한다.
한울에너지 관계자는 "바람이 센 겨울에 발전량이 가장 많을 것"이라고 말했다.
ⓒ 다온경제 무단전재 및 재배포 금지
"""


@pytest.mark.parametrize("text, date, weekday, time", [
    ("입력 2026.03.02 14:05", "2026-03-02", False, True),
    ("기사입력 2026-03-02 오후 2:05", "2026-03-02", False, True),
    ("등록일 : 2026/3/2", "2026-03-02", False, False),
    ("2026년 3월 2일(월) 14:20", "2026-03-02", True, True),
    ("승인 2026. 3. 2. PM 2:05", "2026-03-02", False, True),
    ("2026.03.02 (월) 09:12", "2026-03-02", True, True),
    ("게재 26.03.02 08:00", "2026-03-02", False, True),
    ("23년 6월 9일 서울에서", "2023-06-09", False, False),
    ("Posted March 2, 2026 2:05 PM", "2026-03-02", False, True),
    ("Updated 2 Mar 2026", "2026-03-02", False, False),
])
def test_date_expressions_are_read_in_every_format(text, date, weekday, time):
    (found,) = find_dates(text)
    start, end, iso, form, has_weekday, has_time, _ = found
    assert (iso, has_weekday, has_time) == (date, weekday, time)
    assert text[start:end].strip()[0].isdigit() or text[start:end][0].isalpha()


@pytest.mark.parametrize("text", ["버전 1.2.3 출시", "지난 15일 열린 회의", "2026.13.45", "전화 02-1234-5678", "3.5%"])
def test_what_is_not_a_calendar_date_is_not_read_as_one(text):
    assert find_dates(text) == []


def test_the_bylines_published_date_beats_a_saved_copy_a_widget_and_an_edit():
    r = clean_text(PREFIXED, "prefixed")
    assert r.article.date == "2026-01-07"
    assert r.date.chosen is not None and r.date.chosen.block == 5
    assert r.date.runner_up is not None and r.date.runner_up.value != "2026-01-07"
    assert r.article.title == "다온시, 폐교 부지에 청소년 도서관 짓는다…2028년 개관"


def test_a_page_that_states_no_date_gets_none():
    r = clean_text(UNDATED, "undated")
    assert r.article.date is None and r.date.value is None and r.date.chosen is None


def test_a_page_without_a_headline_is_titled_by_its_deck_not_its_caption():
    r = clean_text(HEADLESS, "headless")
    assert r.article.title == "다온항 앞바다 해상풍력 첫 삽…2030년까지 1.2GW 발전단지 짓는다"
    assert not r.article.title_derived
    assert "살펴보고 있다" not in r.article.title


def test_a_page_with_nothing_like_a_title_gets_one_from_the_ledes_first_clause():
    r = clean_text(BARE, "bare")
    a = r.article
    assert a.title_derived and r.title.derived and r.title.chosen is None
    assert a.title.endswith("…") and len(a.title) <= 61
    lede_words = BARE.splitlines()[2].replace(",", "").split()
    assert all(w in lede_words for w in a.title.rstrip("…").split())  # whole words of the lede only


def test_derived_titles_are_never_cut_inside_a_word():
    lede = ("가나다라마바사 아자차카타파하 가나다라마바사 아자차카타파하 가나다라마바사 아자차카타파하 "
            "가나다라마바사 아자차카타파하 가나다라마바사 아자차카타파하 가나다라마바사 있다.")
    title = derived_title(lede)
    assert title.endswith("…") and len(title) <= 61
    assert all(w in lede.split() for w in title.rstrip("…").split())
    assert derived_title("짧은 문장이다.") == "짧은 문장이다"
    # a connective ending stays with its word: "회동하고…", never "회동하"
    assert derived_title("최태원 회장이 4일 올트먼 최고경영자와 40분간 회동하고 반도체 협력을 논의했다.") == \
        "최태원 회장이 4일 올트먼 최고경영자와 40분간 회동하고…"
    assert cut_at_word("공백없는아주긴제목" * 10, 20).endswith("…") is False  # one long word stays whole


def test_the_derived_flag_travels_to_chunks_and_records():
    from ingest.chunk import article_sentences, chunk_article
    from rag.records import chunk_from_record, chunk_metadata

    a = clean_text(BARE, "bare").article
    chunks = chunk_article(a, article_sentences(a), 400, 0)
    assert chunks and all(c.title_derived for c in chunks)
    c = chunks[0]
    meta = chunk_metadata(c, {"article_id": a.article_id}, len(chunks), len(c.sentences), [],
                          np.zeros((len(c.sentences), 4), dtype=np.float32))
    assert chunk_from_record(c.chunk_id, c.text, meta).title_derived


def test_rag_clean_shows_each_choice_with_its_runner_up(tmp_path, capsys, monkeypatch):
    from rag.cli import main
    from rag.embed import register_embedder

    from .fakes import HashEmbedder

    monkeypatch.setenv("RAG_EMBEDDER", register_embedder("meta-clean", HashEmbedder()))
    page = tmp_path / "prefixed.txt"
    page.write_text(PREFIXED, encoding="utf-8")
    assert main(["clean", str(page)]) == 0
    out = capsys.readouterr().out
    assert "date:      2026-01-07" in out
    assert out.count("chosen") == 2 and out.count("runner-up") == 2
    assert "block 5: 2026-01-07" in out  # the byline's date, with the features that decided it
    assert main(["clean", "--json", str(page)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["date"]["chosen"]["value"] == "2026-01-07" and d["date"]["runner_up"]["why"]
    assert d["title"]["derived"] is False and d["article"]["title_derived"] is False


def _shipped() -> dict:
    return json.loads(META_MODEL_PATH.read_text(encoding="utf-8"))


def test_the_shipped_model_is_fitted_on_the_features_this_version_computes():
    m = _shipped()
    assert tuple(m["title"]["features"]) == TITLE_FEATURES and tuple(m["date"]["features"]) == DATE_FEATURES
    assert 0.0 < m["title_threshold"] < 1.0 and 0.0 < m["date_threshold"] < 1.0
    assert isinstance(meta_model(), MetaModel)


@pytest.mark.parametrize("spoil, says", [
    (lambda m: m["date"]["features"].reverse(), "other features"),
    (lambda m: m["title"].update(classes=["no", "yes"]), "not 0 and 1"),
    (lambda m: m.update(date_threshold=1.5), "date_threshold"),
    (lambda m: m["title"]["coef"][0].pop(), "coef row 0"),
    (lambda m: m.pop("title"), "title"),
])
def test_a_bad_model_file_is_one_error_naming_it(tmp_path, spoil, says):
    m = _shipped()
    spoil(m)
    path = tmp_path / "meta_model.json"
    path.write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(ModelFileError, match=says) as e:
        meta_model(path)
    assert str(path) in str(e.value) and "python -m eval.fit meta" in str(e.value)


def test_the_fitting_script_refits_from_a_labelled_corpus(tmp_path):
    """`python -m eval.fit meta` on a corpus of pages written here: it writes a model that loads and
    chooses (a user refitting on their own labelled pages does exactly this)."""
    from eval.corpus import build
    from eval.fit import main

    src = tmp_path / "src"
    src.mkdir()
    pages = [(PREFIXED, "2026-01-07"), (UNDATED, None),
             (PREFIXED.replace("다온시", "나래시").replace("2026.01.07", "2026.02.03"), "2026-02-03"),
             (UNDATED.replace("다온시", "가람시"), None)]
    for n, (page, date) in enumerate(pages):
        meta = {"split": "dev", "section": "society", "layouts": ["portal"], "publisher": "다온타임스",
                "reporter": "반나래", "date": date}
        lines = []
        for line in page.splitlines():
            role = "F"
            if "폐교 부지에" in line and "…" in line:
                role = "T"
            elif line.startswith("반나래 기자") and "@" not in line:
                role = "B"
            elif line.endswith(("목표다.", "시작한다.", "말했다.", "안내한다.")):
                role = "A"
            lines.append(f"{role}|{line}")
        (src / f"p{n}.txt").write_text("#meta " + json.dumps(meta, ensure_ascii=False) + "\n" + "\n".join(lines),
                                       encoding="utf-8")
    (src / "gold_t.jsonl").write_text("", encoding="utf-8")
    build(tmp_path)
    out = tmp_path / "meta.json"
    assert main(["meta", "--corpus", str(tmp_path), "--out", str(out), "--no-embed", "--C", "1"]) == 0
    model = meta_model(out)
    r = clean_text(PREFIXED, "prefixed", metadata=model)
    assert r.article.date == "2026-01-07" and r.title.chosen is not None
