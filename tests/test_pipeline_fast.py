"""Ingest, store, retrieval and ask() end to end with the fake embedder (tests/fakes.py) on pages
written for these tests: the plumbing, fast (real Kiwi, real Chroma, real cleaning model)."""

from __future__ import annotations

import pytest

from ingest.pipeline import ingest_paths
from rag.embed import get_embedder
from rag.qa import ask
from rag.retrieve import HybridRetriever
from rag.settings import Settings
from rag.store import get_store
from rag.verify import citations_are_valid

from .fakes import fake_embedder_setting

PAGES = {
    "library.txt": """가람타임스
구독
가람시, 폐교 부지에 청소년 도서관 짓는다
도혜린 기자
입력 2025.09.03. 오후 2:10
가람시는 지난해 문을 닫은 북산초등학교 부지에 청소년 도서관을 짓는다고 3일 밝혔다. 총사업비는 186억 원이다.
도서관에는 음악 연습실 6곳과 메이커 공방이 들어선다. 시는 다음 달 설계 공모를 시작한다.
남궁찬 가람시 교육청소년과장은 "학교가 떠난 자리를 아이들에게 돌려주겠다"고 말했다.
Copyright ⓒ 가람타임스. All rights reserved.
""",
    "ferry.txt": """파도일보
섬마을 여객선 하루 네 차례로 늘린다
오가람 기자
입력 2025.10.11 09:00
해솔군은 본섬과 바위섬을 잇는 여객선 운항을 하루 두 차례에서 네 차례로 늘린다고 11일 밝혔다.
새 배는 정원 120명으로, 운항 시간은 편도 40분이다. 군은 선착장 대합실도 새로 짓는다.
주민 대표 한바다 씨는 "병원 가는 길이 훨씬 편해질 것"이라고 말했다.
ⓒ 파도일보 무단전재 및 재배포 금지
""",
}


@pytest.fixture()
def fast(tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    for name, text in PAGES.items():
        (pages / name).write_text(text, encoding="utf-8")
    settings = Settings(store_dir=tmp_path / "store", embedder=fake_embedder_setting())
    return pages, settings


def test_ingest_is_idempotent_and_a_change_replaces_the_article(fast):
    pages, s = fast
    first = ingest_paths([pages], s)
    assert first.count("new") == 2 and not first.failed and first.chunks_written > 0
    store = get_store(s, get_embedder(s))
    arts = store.articles()
    assert arts["library"].publisher == "가람타임스" and arts["ferry"].date == "2025-10-11"
    second = ingest_paths([pages], s)
    assert second.count("unchanged") == 2 and second.chunks_written == 0
    (pages / "ferry.txt").write_text(PAGES["ferry.txt"].replace("정원 120명", "정원 150명"), encoding="utf-8")
    third = ingest_paths([pages], s)
    assert third.count("changed") == 1 and third.count("unchanged") == 1
    texts = [r.text for r in store.all_records("chunks") if r.article_id == "ferry"]
    assert any("150명" in t for t in texts) and not any("120명" in t for t in texts)


def test_hybrid_retrieval_and_filters(fast):
    pages, s = fast
    ingest_paths([pages], s)
    embedder = get_embedder(s)
    r = HybridRetriever(store=get_store(s, embedder), embedder=embedder, k=5)
    hits = r.search("여객선 운항 횟수", 5)
    assert hits and hits[0].chunk.article_id == "ferry"
    assert all(h.chunk.publisher == "가람타임스" for h in r.search("여객선", 5, {"publisher": "가람타임스"}))
    assert not r.search("여객선", 5, {"since": "2030-01-01"})
    docs = r.invoke("청소년 도서관")  # a LangChain retriever: Documents with our metadata
    assert docs[0].metadata["article_id"] == "library" and "start" in docs[0].metadata


def test_ask_cites_exact_sentences_or_abstains(fast):
    pages, s = fast
    ingest_paths([pages], s)
    for q in ("새 여객선의 정원은 몇 명인가?", "How long is the ferry trip?", "가람시 도서관의 총사업비는 얼마인가?"):
        a = ask(q, settings=s)
        assert 0.0 <= a.confidence <= 1.0 and a.retrieved
        if not a.abstained:
            assert citations_are_valid(a.text, a.citations)
            assert all(c.quote in c.passage for c in a.citations)
