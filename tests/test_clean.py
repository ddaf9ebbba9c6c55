"""Cleaning: pages written for these tests (never the seeds or the eval corpus) lose their furniture
and keep their sentences; the fitted model, its audit, and the fitting script itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ingest.blocks import html_page, text_page
from ingest.clean import MODEL_PATH, clean_html, clean_text, cleaner_model
from ingest.features import NEIGHBOUR, PASS1
from ingest.read import decode
from rag.errors import DocumentError

from .conftest import DATA

PORTAL = """언론사 이미지
가람타임스
구독
구독자 12,408
가람시, 폐교 부지에 청소년 도서관 짓는다…2028년 개관
입력 2025.09.03. 오후 2:10  수정 2025.09.03. 오후 4:45
도혜린 기자
  • 기사 읽어주기
  • 글씨 크기 조절
  • 공유
댓글 14
가람시는 지난해 문을 닫은 북산초등학교 부지에 연면적 4,200㎡ 규모의 청소년 도서관을 짓는다고 3일 밝혔다. 총사업비는 186억 원이며 2028년 3월 개관이 목표다.
도서관에는 열람실과 함께 음악 연습실 6곳, 메이커 공방, 진로 상담실이 들어선다. 시는 다음 달 설계 공모를 시작한다.
남궁찬 가람시 교육청소년과장은 "학교가 떠난 자리를 다시 아이들의 공간으로 돌려주겠다"고 말했다.
시는 주민 설명회를 오는 17일 북산동 행정복지센터에서 연다. 설명회에서는 도서관 이름 공모 방법도 안내한다.
도혜린 기자 hyerin@garamtimes.example
Copyright ⓒ 가람타임스. All rights reserved. 무단 전재 및 재배포 금지.
이 기사를 추천합니다
좋아요 8  훈훈해요 3  후속기사 원해요 11
가람타임스 주요 뉴스
  • 가람천 산책로 야간 조명 설치…연말까지 4.2㎞
  • 시외버스터미널 이전 부지 확정
"""

TV = """MBN 아님, 우리방송 뉴스
누리방송 뉴스9 | 평일 밤 9시
[앵커]
바다 위 풍력단지 공사가 한창인 서해 앞바다에 오늘 첫 발전기가 세워졌습니다.
지현우 기자가 다녀왔습니다.
[기자]
항구에서 배로 40분을 달려 도착한 공사 현장.
높이 150m짜리 발전기 기둥이 바다 한가운데 우뚝 서 있습니다.
사업자인 서해바람에너지는 이곳에 발전기 32기를 세워 내년 말까지 모두 가동할 계획입니다.
완공되면 해마다 가정 28만 가구가 쓸 전기를 만들게 됩니다.
[인터뷰: 염태호 / 서해바람에너지 현장소장]
"파도가 높은 겨울이 오기 전에 기초 공사를 마치는 게 목표입니다."
누리방송 뉴스 지현우입니다.
■ 제보하기 ▷ 전화 02-0000-1234 ▷ 이메일 jebo@nuri.example
Copyright ⓒ 누리방송. All rights reserved.
"""

WIDGET_DATE = """2025년 11월 28일 (금)
서울 3℃ 맑음  미세먼지 보통
코스피 2,611.40 ▲12.33
별빛 과수원, 사과 수확 체험 주말 연장
별빛일보 | 승인 2025.10.19 09:00
경북 청솔군의 별빛 과수원이 사과 수확 체험을 이달 말까지 주말마다 연장 운영한다고 19일 밝혔다.
체험은 오전 10시와 오후 2시 두 차례 열리며, 한 번에 30명까지 참가할 수 있다. 참가비는 1인당 1만5천 원이다.
과수원 측은 "올해는 일조량이 많아 당도가 예년보다 높다"며 "가족 단위 방문객이 특히 많다"고 설명했다.
청솔군은 체험객에게 지역 농산물 할인권을 나눠준다.
오늘의 운세
쥐띠 : 오래 미뤄둔 일을 시작하기 좋은 날.
소띠 : 주변의 조언에 귀를 기울이면 길하다.
ⓒ 별빛일보
"""

NO_DATE = """블로그 홈 | 이웃추가
[퍼온글] 섬마을 보건지소에 원격진료 장비 들어간다
출처 : 파도일보
도서 지역 보건지소 12곳에 원격진료 장비가 올해 안에 설치된다.
장비는 혈압과 심전도를 재서 육지의 거점 병원으로 보내고, 의사가 화면으로 진찰하는 방식이다.
보건 당국은 설치비로 9억 원을 쓰고, 간호사 24명에게 사용 교육을 한다고 밝혔다.
주민 한 명은 "배를 타고 병원 가는 일이 줄어들 것 같다"고 말했다.
#원격진료 #섬마을 #보건지소
공감 5 · 댓글 2
"""


@pytest.fixture(scope="module")
def embed():
    from rag.embed import get_embedder
    from rag.settings import Settings

    return get_embedder(Settings()).embed_passages


def _kept(result) -> str:
    return result.article.text


def test_portal_page_keeps_the_story_and_reads_its_byline(embed):
    r = clean_text(PORTAL, "portal", embed=embed)
    a = r.article
    assert a.title == "가람시, 폐교 부지에 청소년 도서관 짓는다…2028년 개관"
    assert a.date == "2025-09-03" and a.publisher == "가람타임스" and a.reporter == "도혜린"
    for sentence in ("총사업비는 186억 원이며 2028년 3월 개관이 목표다.", "시는 다음 달 설계 공모를 시작한다.",
                     "남궁찬 가람시 교육청소년과장은", "설명회에서는 도서관 이름 공모 방법도 안내한다."):
        assert sentence in a.text
    for junk in ("구독자", "기사 읽어주기", "댓글 14", "Copyright", "훈훈해요", "산책로 야간 조명", "hyerin@"):
        assert junk not in a.text, junk
    assert a.title not in a.text  # the headline is metadata, not a body line


def test_tv_transcript_keeps_the_spoken_report_not_the_programme(embed):
    a = clean_text(TV, "tv", embed=embed).article
    assert "발전기 32기를 세워 내년 말까지" in a.text and "28만 가구" in a.text
    assert "파도가 높은 겨울이 오기 전에" in a.text  # the interviewee's words are the story's
    for junk in ("평일 밤 9시", "[앵커]", "제보하기", "Copyright"):
        assert junk not in a.text, junk


def test_the_date_comes_from_the_byline_never_a_widget(embed):
    a = clean_text(WIDGET_DATE, "widget", embed=embed).article
    assert a.date == "2025-10-19"  # not the header's 2025-11-28
    assert "참가비는 1인당 1만5천 원이다." in a.text
    for junk in ("코스피", "미세먼지", "쥐띠", "오늘의 운세"):
        assert junk not in a.text, junk


def test_a_page_that_states_no_date_gets_none(embed):
    a = clean_text(NO_DATE, "nodate", embed=embed).article
    assert a.date is None
    assert a.publisher == "파도일보"  # the repost names its source
    assert "설치비로 9억 원" in a.text and "#원격진료" not in a.text and "공감 5" not in a.text


def test_second_byline_starts_another_story(embed):
    page = PORTAL.replace("이 기사를 추천합니다", "관련기사\n가람천 정비 끝\n[가람타임스=오세진 기자] 가람천 정비 공사가 끝나 산책로가 다시 열렸다고 시가 밝혔다.")
    page = page.replace("가람시는 지난해 문을", "[가람타임스=도혜린 기자] 가람시는 지난해 문을")
    r = clean_text(page, "two", embed=embed)
    assert "산책로가 다시 열렸다" not in r.article.text
    assert r.article.text.startswith("가람시는 지난해")  # the byline prefix is metadata
    assert r.article.reporter == "도혜린"
    # whatever the model thinks of a teaser, a second byline among the kept blocks is another story's
    from ingest.clean import _second_bylines

    blocks = text_page(page).blocks
    second = _second_bylines(text_page(page), np.ones(len(blocks), dtype=bool))
    assert [b.text[:12] for b, s in zip(blocks, second) if s] == ["[가람타임스=오세진 기"]


def test_every_block_is_audited_with_its_score_and_features(embed):
    r = clean_text(PORTAL, "portal", embed=embed)
    assert len(r.blocks) == len(text_page(PORTAL).blocks)
    names = set(PASS1 + NEIGHBOUR)
    for b in r.blocks:
        assert b.reason.startswith(("kept", "dropped")) and 0.0 <= b.score <= 1.0
        assert b.why and all(name in names for name, _ in b.why)
    kept = [b for b in r.blocks if b.kept]
    assert min(b.score for b in kept if b.reason == "kept: article") >= cleaner_model().keep_threshold
    assert json.dumps(r.to_dict(), ensure_ascii=False)  # the --json view


def test_html_page_uses_markup_and_metadata(embed):
    html = (DATA / "market_page.html").read_text(encoding="utf-8")
    a = clean_html(html, "market", embed=embed).article
    assert a.title == "한국은행, 기준금리 3.5% 동결…물가 경계 유지"
    assert a.publisher == "가상경제신문" and a.date == "2023-08-24"
    assert "연 3.5%로 동결했다" in a.text
    for junk in ("로그인", "alert", "많이 본 뉴스", "프로야구", "Copyright", "℃"):
        assert junk not in a.text, junk


def test_html_blocks_carry_their_markup():
    page = html_page("<html><body><nav><a href='/'>홈</a> <a href='/x'>경제</a></nav><article class='article_body'>"
                     "<h1>제목이 여기에</h1><p>첫 문단이다. <b>굵게</b> 쓴 말이 있다.</p><p>둘째 문단<br>줄을 바꾼 셋째</p>"
                     "</article><footer>주소 : 어딘가 1</footer></body></html>")
    texts = [b.text for b in page.blocks]
    assert texts == ["홈 경제", "제목이 여기에", "첫 문단이다. 굵게 쓴 말이 있다.", "둘째 문단", "줄을 바꾼 셋째", "주소 : 어딘가 1"]
    nav, title, para = page.blocks[0].html, page.blocks[1].html, page.blocks[2].html
    assert nav.in_chrome and nav.link_share == 1.0 and title.heading == 1 and para.article_class and not para.in_chrome


def test_nothing_but_furniture_is_an_error(embed):
    with pytest.raises(DocumentError, match="no article text"):
        clean_text("페이스북\n카카오톡\n링크복사\nCopyright ⓒ 어느신문 All rights reserved.\n", "x", embed=embed)
    with pytest.raises(DocumentError, match="no text"):
        clean_text("\n \n", "x")


def test_shipped_model_matches_the_features():
    m = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert tuple(m["pass1"]["features"]) == PASS1 and tuple(m["pass2"]["features"]) == PASS1 + NEIGHBOUR
    assert tuple(m["keep"]["features"]) == PASS1 + NEIGHBOUR and 0.0 < m["keep_threshold"] < 1.0
    assert set(m["pass2"]["classes"]) == {"article", "caption", "title", "byline", "furniture"}
    assert "dev split" in m["fitted_on"]


def test_fitting_script_refits_from_a_labelled_corpus(tmp_path):
    """`python -m eval.fit cleaner` on a corpus of pages written here: it writes a model that loads
    and cleans (a user refitting on their own labelled pages does exactly this)."""
    from eval.corpus import build
    from eval.fit import main
    from ingest.clean import CleanerModel

    src = tmp_path / "src"
    src.mkdir()
    meta = {"section": "society", "layouts": ["portal"], "publisher": "가람타임스", "reporter": "도혜린", "date": "2025-09-03"}
    pages = [PORTAL, PORTAL.replace("가람시", "나래시").replace("186억", "201억"),
             PORTAL.replace("가람시", "다온시").replace("4,200㎡", "3,900㎡")]
    for n, page in enumerate(pages):
        lines = []
        for line in page.splitlines():
            role = "F"
            if line.startswith(("가람시,", "나래시,", "다온시,")):
                role = "T"
            elif line.startswith(("입력", "도혜린 기자")) and "@" not in line:
                role = "B"
            elif line.endswith(("밝혔다.", "목표다.", "시작한다.", "말했다.", "안내한다.", "연다.")):
                role = "A"
            lines.append(f"{role}|{line}")
            if role == "T" and n == 0:  # a deck line: the fit reads it as the title class
                lines.append("D|음악 연습실·메이커 공방 갖춰…다음 달 설계 공모")
        (src / f"p{n}.txt").write_text("#meta " + json.dumps({**meta, "split": "dev"}, ensure_ascii=False) + "\n"
                                       + "\n".join(lines), encoding="utf-8")
    (src / "gold_t.jsonl").write_text("", encoding="utf-8")
    build(tmp_path)
    out = tmp_path / "model.json"
    assert main(["cleaner", "--corpus", str(tmp_path), "--out", str(out), "--no-embed", "--C", "1"]) == 0
    model = CleanerModel.from_dict(json.loads(out.read_text(encoding="utf-8")))
    probs, X = model.classify(text_page(PORTAL))
    assert probs.shape == (len(text_page(PORTAL).blocks), 5) and np.allclose(probs.sum(axis=1), 1.0)


@pytest.mark.parametrize("encoding", ["cp949", "euc-kr", "utf-8-sig", "utf-16"])
def test_decode_korean_encodings(encoding):
    text = "한국어 기사 본문입니다.\r\n둘째 줄입니다."
    assert decode(text.encode(encoding)) == "한국어 기사 본문입니다.\n둘째 줄입니다."


def test_decode_rejects_binary():
    with pytest.raises(DocumentError, match="binary"):
        decode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_decode_utf16_without_a_byte_order_mark(encoding):
    text = "한국어 기사 본문입니다.\nEnglish too."
    assert decode(text.encode(encoding), "x") == text  # not "binary (NUL bytes)"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_decode_utf16_whose_syllables_put_nul_bytes_on_both_sides(encoding):
    # 가 (U+AC00), 대, 관 and 글 have a NUL low byte, the spaces and ASCII a NUL high byte
    text = "가람대학교 관현악단 글짓기 대회가 열린다.\n대관 신청은 가을까지 받는다. Garam 2025.\n" * 40
    data = text.encode(encoding)
    assert data[0::2].count(0) and data[1::2].count(0)  # NUL bytes on both sides of the pairs
    assert decode(data, "x") == text


def test_a_nul_anywhere_is_refused_as_binary():
    text = "가람시는 도서관을 짓는다고 밝혔다.\n" * 600  # more than 8 KiB before the NUL
    assert len(text.encode("utf-8")) > 8192
    for data in ((text + "\x00끝").encode("utf-8"), ("\ufeff" + text + "\x00끝").encode("utf-16-le"),
                 (text + "\x00끝").encode("utf-16-be")):
        with pytest.raises(DocumentError, match="binary"):
            decode(data, "x")


def test_a_page_nested_25000_divs_deep_keeps_its_article(embed):
    page = (DATA / "market_page.html").read_text(encoding="utf-8")
    head, rest = page.split("<body>")
    body, _ = rest.split("</body>")
    plain = clean_html(page, "market", embed=embed).article
    for opening in ("<div>", '<div class="wrap">\n'):
        deep = clean_html(f"{head}<body>{opening * 25000}{body}{'</div>' * 25000}</body></html>", "market",
                          embed=embed).article
        assert (deep.title, deep.text, deep.date) == (plain.title, plain.text, plain.date)


def test_text_nested_deeper_than_the_parser_goes_is_all_read():
    sentences = [f"가람시 {i}번째 문단이다." for i in range(3000)]
    page = html_page("<html><body>" + "".join(f"<div>{s}" for s in sentences) + "</div>" * 3000 + "</body></html>")
    text = "\n".join(b.text for b in page.blocks)
    assert all(s in text for s in sentences)
    assert text.index(sentences[0]) < text.index(sentences[1500]) < text.index(sentences[-1])  # in order


def test_size_limit_is_said_in_the_unit_it_is_set_in(tmp_path):
    from ingest.read import read_bytes

    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (10 * 1024 * 1024 + 1))
    with pytest.raises(DocumentError, match=r"over the limit of 10 MiB \(RAG_MAX_FILE_BYTES\)"):
        read_bytes(big, 10 * 1024 * 1024)


@pytest.mark.parametrize("line, credit", [
    ("시민들이 새로 문을 연 도서관을 둘러보고 있다. /사진=가람일보 DB", "/사진=가람일보 DB"),
    ("선수들이 우승 트로피를 들어 보이고 있다. (사진=가람FC 제공)", "(사진=가람FC 제공)"),
    ("위원장이 의사봉을 두드리고 있다. 2026.2.11 [가람통신 사진부]", "2026.2.11 [가람통신 사진부]"),
    ("발사체가 하늘로 날아오르고 있다. 가람우주연구원 제공", "가람우주연구원 제공"),
    ("현장 관계자들이 피해를 살피고 있다. /나래일보 도윤재 기자", "/나래일보 도윤재 기자"),
])
def test_a_credit_glued_to_its_caption_is_a_block_of_its_own(line, credit):
    from ingest.blocks import split_credit

    assert split_credit(line) == [line[: -len(credit)].rstrip(), credit]
    assert [b.text for b in text_page(line).blocks] == [line[: -len(credit)].rstrip(), credit]


@pytest.mark.parametrize("line", [
    "시는 다음 달 설계 공모를 시작한다. 이어 주민 설명회를 연다.",
    "그는 \"좋다\"고 말했다. 시는 자료를 제공",
    "회의를 열었다. 관계자는 A/B 시험을 했다",
    "그는 이렇게 말했다. (서울=가람통신)",
    "짧다. /사진=DB",
])
def test_a_sentence_is_not_taken_for_a_credit(line):
    from ingest.blocks import split_credit

    assert split_credit(line) == [line]
