"""Cleaning: seeds lose their boilerplate and keep their sentences; pages written for the tests too."""

from __future__ import annotations

import pytest

from ingest.clean import clean_html, clean_text
from ingest.read import decode
from rag.errors import DocumentError

from .conftest import DATA, SEEDS

pytestmark = pytest.mark.slow


def _clean(name, embedder):
    path = SEEDS / f"{name}.txt"
    return clean_text(path.read_text(encoding="utf-8"), name, embed=embedder.embed_passages)


# (seed, title start, publisher, date, sentences that must stay, strings that must go)
SEED_CASES = [
    ("000_a566e6770392c4fe", "삼성전자 평택 공장 둘러보고", "서울신문", "2024-01-26",
     ["오전 9시쯤 국내 첫 일정으로 삼성전자 평택 반도체 공장을 찾아", "다음 행선지로 TSMC가 있는 대만을 꼽고 있다"],
     ["송도호", "기사 읽어주기", "글씨 크기 조절", "투자성적", "Copyright", "광고삭제", "수익을 봤다"]),
    ("001_acf416a9aabe9968", "‘AI 반도체’ 꿈꾸는 샘 올트먼", "CEO스코어데일리", "2024-03-18",
     ["K-스타트업 10곳을 최종 선발하는 자리다", "가장 기대되는 것은 과학적 발견이다"],
     ["페이스북", "링크복사", "300자 이내", "댓글이 있습니다", "dongl@ceoscore.co.kr"]),
    ("002_e7dc05e2f6e8b941", "'오픈AI' 샘 올트먼, 이번 주 방한", "뉴스스페이스", None,
     ["0.92% 오른 14만2600원에 거래를 마쳤다", "7개월 만이다"],
     ["℃", "기상청", "머스크", "테슬라", "관련기사", "배너"]),
    ("003_a5253bb998f2131f", None, "서울경제", None,
     ["올트먼 CEO가 한국 반도체 기업과의 협업에 관해 공개적으로 언급한 것은 처음이다"],
     ["번호 제목 글쓴이 날짜", "랭크뉴스", "의대", "메뉴 건너뛰기"]),
    ("004_cf5fbeec96a7a50c", None, "서울경제", None,
     ["40분간 전격 회동하고", "최대 400억 달러(약 53조 원)에 달한다"],
     ["랭크뉴스", "번호 제목", "HID", "메뉴 건너뛰기"]),
]


@pytest.mark.parametrize("name,title,publisher,date,keep,gone", SEED_CASES, ids=[c[0][:3] for c in SEED_CASES])
def test_seed_cleaning(embedder, name, title, publisher, date, keep, gone):
    result = _clean(name, embedder)
    a = result.article
    for sentence in keep:
        assert sentence in a.text, f"lost article sentence: {sentence}"
    for junk in gone:
        assert junk not in a.text, f"boilerplate left in: {junk}"
    if title:
        assert a.title.startswith(title)
    assert a.publisher == publisher
    assert a.date == date
    assert a.title not in a.text  # the title is metadata, not a repeated body line


def test_no_line_kept_twice(embedder):
    for path in sorted(SEEDS.glob("*.txt")):
        result = clean_text(path.read_text(encoding="utf-8"), path.stem, embed=embedder.embed_passages)
        kept = [b.text for b in result.blocks if b.kept]
        assert len(kept) == len(set(kept)), path.name


def test_every_block_has_a_reason(embedder):
    result = _clean("000_a566e6770392c4fe", embedder)
    assert all(b.reason for b in result.blocks)
    reasons = {b.reason.split(" (")[0] for b in result.dropped}
    assert "dropped: copyright line" in reasons
    assert any("off-topic" in b.reason for b in result.dropped)


def test_page_written_for_tests(embedder):
    text = (DATA / "battery_page.txt").read_text(encoding="utf-8")
    result = clean_text(text, "battery", embed=embedder.embed_passages)
    a = result.article
    assert a.title == "LG에너지솔루션, 미국 애리조나에 배터리 공장 착공…7조2000억 투자"
    assert a.date == "2023-05-10"  # from the byline, not the page header's 2023.05.10 (수)
    assert a.publisher == "한국경제신문"
    assert a.reporter == "김민지"
    assert "연간 생산능력은 36기가와트시(GWh)에 이른다" in a.text
    assert "인플레이션감축법(IRA)" in a.text
    for junk in ("들불축제", "새별오름", "℃", "페이스북", "삼성SDI", "전기차를 살 계획", "무단 전재"):
        assert junk not in a.text, junk
    assert a.text.count("애리조나 공장 조감도") == 1  # a caption printed twice is kept once


def test_date_never_from_widget_or_listing():
    page = "2024.11.15 (금)\n맑음서울 14.0℃\n어느 기업의 새 발표 내용\n" \
           "회사는 15일 새 제품을 공개했다고 밝혔다. 제품은 내년 출시된다.\n" \
           "번호 제목 글쓴이 날짜\n12 다른 기사 제목입니다 랭크뉴스 2024.03.20\n"
    a = clean_text(page, "x").article
    assert a.date is None
    assert "다른 기사" not in a.text


def test_html_page(embedder):
    html = (DATA / "market_page.html").read_text(encoding="utf-8")
    a = clean_html(html, "market", embed=embedder.embed_passages).article
    assert a.title == "한국은행, 기준금리 3.5% 동결…물가 경계 유지"
    assert a.publisher == "가상경제신문"
    assert a.date == "2023-08-24"
    assert "연 3.5%로 동결했다" in a.text
    for junk in ("로그인", "alert", "많이 본 뉴스", "프로야구", "Copyright", "℃"):
        assert junk not in a.text, junk


def test_nothing_but_furniture_is_an_error():
    with pytest.raises(DocumentError, match="no article text"):
        clean_text("페이스북\n카카오톡\n링크복사\nCopyright ⓒ 어느신문 All rights reserved.\n", "x")


@pytest.mark.parametrize("encoding", ["cp949", "euc-kr", "utf-8-sig", "utf-16"])
def test_decode_korean_encodings(encoding):
    text = "한국어 기사 본문입니다.\r\n둘째 줄입니다."
    assert decode(text.encode(encoding)) == "한국어 기사 본문입니다.\n둘째 줄입니다."


def test_decode_rejects_binary():
    with pytest.raises(DocumentError, match="binary"):
        decode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
