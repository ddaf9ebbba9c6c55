"""Ingest, store, retrieval and ask() end to end with the fake embedder (tests/fakes.py) on pages
written for these tests: the plumbing, fast (real Kiwi, real Chroma, real cleaning model)."""

from __future__ import annotations

import logging

import numpy as np
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
    # the features path answers: the span reader's chooser and confidence were fitted on real e5
    # similarities, which the fake embedder's vectors are not (tests/test_qa.py runs the reader)
    settings = Settings(store_dir=tmp_path / "store", embedder=fake_embedder_setting(), reader="features")
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
    texts = [r.text for r in store.all_records() if r.article_id == "ferry"]
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


def test_folder_ingest_takes_pages_only_and_never_follows_links_out(fast, tmp_path):
    pages, s = fast
    outside = tmp_path / "secret.txt"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\n관리자 비밀번호는 1234이다.\n", encoding="utf-8")
    (pages / "passwd").write_text("no extension: not a page\n", encoding="utf-8")
    (pages / "notes.md").write_text("# markdown\n", encoding="utf-8")
    (pages / "link.txt").symlink_to(outside)
    report = ingest_paths([pages], s)
    by_path = {r.path.rsplit("/", 1)[-1]: r for r in report.files}
    assert by_path["link.txt"].status == "skipped" and "not followed" in by_path["link.txt"].message
    assert by_path["passwd"].status == "skipped" and by_path["notes.md"].status == "skipped"
    assert report.count("new") == 2 and report.to_dict()["skipped"] == 3 and not report.failed
    everything = " ".join(r.text for r in get_store(s, get_embedder(s)).all_records())
    assert "root:x" not in everything and "비밀번호" not in everything


def test_a_chunk_missing_a_sentence_vector_is_found_and_repaired(fast):
    from ingest.doctor import check_store
    from rag.records import decode_vectors, encode_vectors

    pages, s = fast
    ingest_paths([pages], s)
    store = get_store(s, get_embedder(s))
    assert check_store(s).ok and check_store(s).sentences == len(store.sentences_of(["library", "ferry"]))
    store._open()
    got = store._chunks.get(where={"article_id": "ferry"}, include=["metadatas"])
    meta = got["metadatas"][0]
    short = encode_vectors(decode_vectors(meta["svec"], store.dim)[:-1])  # one sentence's vector lost
    store._chunks.update(ids=got["ids"][:1], metadatas=[{**meta, "svec": short}])
    report = check_store(s)
    assert not report.ok
    assert any("ferry" in p and "do not hold one vector per sentence" in p for p in report.problems), report.problems
    assert not store.article_state("ferry").complete and store.article_state("library").complete
    # the next ingest of the unchanged file writes the article again, whole
    again = ingest_paths([pages], s)
    assert {r.article_id: r.status for r in again.files} == {"ferry": "changed", "library": "unchanged"}
    assert check_store(s).ok


def test_sentence_vectors_are_those_of_the_sentences(fast):
    pages, s = fast
    ingest_paths([pages], s)
    emb = get_embedder(s)
    store = get_store(s, emb)
    chunks = list(store.get_chunks([r.record_id for r in store.all_records()]).values())
    got = store.sentence_vectors_for(chunks)
    sentences = [(c.article_id, sent) for c in chunks for sent in c.sentences]
    assert set(got) == {(aid, sent.start) for aid, sent in sentences}
    want = emb.embed_passages([sent.text for _, sent in sentences])
    for (aid, sent), w in zip(sentences, want):
        np.testing.assert_allclose(got[(aid, sent.start)], w, atol=2e-3)  # stored as float16


def test_a_store_with_a_sentence_collection_is_migrated_without_embedding_again(fast):
    """A schema-1 store (every sentence a record of ``<name>__sentences``) opened by this version:
    the vectors move into the chunk records, the collection goes, answers still cite."""
    import json

    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from rag.records import content_id
    from rag.store import forget_store

    pages, s = fast
    ingest_paths([pages], s)
    emb = get_embedder(s)
    store = get_store(s, emb)
    before = {(x.article_id, x.start): x.vector for x in store.sentences_of(["library", "ferry"])}
    # a question the features path answers over the fake embedder's vectors (the headline, which it
    # once answered another question with, is metadata now, not a line of the body)
    answer_before = ask("가람시 도서관의 총사업비는 얼마인가?", settings=s)
    # turn it back into schema 1: sentence records of their own, no vectors in the chunks
    client = chromadb.PersistentClient(path=str(s.store_dir), settings=ChromaSettings(anonymized_telemetry=False))
    chunks = client.get_collection(s.collection, embedding_function=None)
    got = chunks.get(include=["metadatas", "documents"])
    old = client.create_collection(f"{s.collection}__sentences", embedding_function=None)
    ids, vecs, docs, metas = {}, [], [], []
    for i, m, d in zip(got["ids"], got["metadatas"], got["documents"]):
        start = int(m["start"])
        for a, b in json.loads(m["sentences"]):
            sid = content_id(m["article_id"], d[a - start : b - start])
            if sid not in ids:
                ids[sid] = len(ids)
                vecs.append(before[(m["article_id"], a)])
                docs.append(d[a - start : b - start])
                metas.append({"article_id": m["article_id"], "start": a, "end": b, "raw_hash": m["raw_hash"]})
    old.add(ids=list(ids), embeddings=np.asarray(vecs), documents=docs, metadatas=metas)
    chunks.update(ids=got["ids"], metadatas=[{k: v for k, v in m.items() if k != "svec"} for m in got["metadatas"]])
    chunks.modify(metadata={**chunks.metadata, "schema": 1})
    del client, chunks, old
    forget_store(s)

    class Refusing(type(emb)):
        def _encode(self, texts, is_query):
            assert is_query, "migration must not embed passages"
            return super()._encode(texts, is_query)

    from rag.embed import register_embedder

    s2 = s.with_(embedder=register_embedder("fake", Refusing()))
    store = get_store(s2, get_embedder(s2))
    after = {(x.article_id, x.start): x.vector for x in store.sentences_of(["library", "ferry"])}
    assert after.keys() == before.keys()
    for k, v in before.items():
        np.testing.assert_allclose(after[k], v, atol=2e-3)
    names = {c.name for c in store._client.list_collections()}
    assert f"{s.collection}__sentences" not in names
    assert ingest_paths([pages], s2).count("unchanged") == 2  # complete: nothing to embed again
    answer = ask("가람시 도서관의 총사업비는 얼마인가?", settings=s2)
    assert answer.text == answer_before.text and answer.citations and citations_are_valid(answer.text, answer.citations)


def test_an_unusable_store_folder_is_named_in_one_line(tmp_path, capsys):
    from rag.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    rc = main(["ingest", str(tmp_path), "--store", str(blocker / "store")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "RAG_STORE=" in err[0] and "cannot create or write" in err[0]


def test_a_file_with_a_stored_name_from_elsewhere_does_not_replace_it(fast, tmp_path):
    pages, s = fast
    ingest_paths([pages], s)
    other = tmp_path / "other"
    other.mkdir()
    (other / "ferry.txt").write_text("다른 출처의 다른 글이다. 여객선과는 관계가 없다고 밝혔다.\n" * 3, encoding="utf-8")
    report = ingest_paths([other / "ferry.txt"], s)
    assert report.failed and "already stored from" in report.files[0].message and "--replace" in report.files[0].message
    texts = [r.text for r in get_store(s, get_embedder(s)).all_records() if r.article_id == "ferry"]
    assert any("여객선 운항" in t for t in texts)  # the stored article is untouched
    replaced = ingest_paths([other / "ferry.txt"], s, replace=True)
    assert replaced.count("changed") == 1


def test_the_same_article_from_a_new_path_is_unchanged_and_followed_when_the_file_moved(fast, tmp_path):
    import shutil

    pages, s = fast
    ingest_paths([pages], s)
    store = get_store(s, get_embedder(s))

    def sources():
        return {a.article_id: a.source_path for a in store.articles().values()}

    before = sources()
    copy = tmp_path / "checkout-2" / "pages"  # the same pages in a second checkout
    shutil.copytree(pages, copy)
    report = ingest_paths([copy], s)
    assert report.count("unchanged") == 2 and not report.failed and report.chunks_written == 0
    assert sources() == before  # a copy: the stored articles keep their files
    shutil.rmtree(pages)  # the first checkout is gone: the store follows the files to the second
    report = ingest_paths([copy], s, prune=True)
    assert report.count("unchanged") == 2 and report.count("pruned") == 0 and not report.failed
    assert sources() == {aid: str(copy.resolve() / src.rsplit("/", 1)[-1]) for aid, src in before.items()}
    assert ask("해솔군은 여객선 운항을 하루 몇 차례로 늘리나?", settings=s).citations  # still answers from them
    assert ingest_paths([copy], s, prune=True).count("pruned") == 0


def test_term_collections_search_wide_and_an_older_store_is_widened_by_its_next_ingest(fast):
    from rag.bridge import word_encoders
    from rag.store import forget_store
    from rag.terms import EF_SEARCH

    pages, s = fast
    ingest_paths([pages], s)
    emb = get_embedder(s)
    keys = [enc.key for enc in word_encoders(emb)]
    terms = get_store(s, emb).terms
    assert [terms.search_ef(terms._col(k)) for k in keys] == [EF_SEARCH] * len(keys)
    for k in keys:  # as a store made before EF_SEARCH: Chroma's default breadth
        terms._col(k).modify(configuration={"hnsw": {"ef_search": 100}})
    forget_store(s)
    terms = get_store(s, emb).terms
    assert [terms.search_ef(terms._col(k)) for k in keys] == [100] * len(keys)
    (pages / "harbor.txt").write_text("해솔군 항구에 새 방파제가 들어선다.\n\n방파제 공사는 내년 봄 끝난다고 군은 밝혔다.\n",
                                      encoding="utf-8")
    assert ingest_paths([pages], s).count("new") == 1
    forget_store(s)
    terms = get_store(s, emb).terms
    assert [terms.search_ef(terms._col(k)) for k in keys] == [EF_SEARCH] * len(keys)


def test_an_upload_with_a_stored_name_becomes_a_new_article(fast, tmp_path):
    from ui.app import _fresh_upload_path

    pages, s = fast
    ingest_paths([pages], s)
    store = get_store(s, get_embedder(s))
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    assert _fresh_upload_path(uploads, "new-story.txt", store).name == "new-story.txt"
    first = _fresh_upload_path(uploads, "ferry.txt", store)
    assert first.name == "ferry-2.txt"  # "ferry" is a stored article: the upload does not replace it
    first.write_text("x", encoding="utf-8")
    assert _fresh_upload_path(uploads, "ferry.txt", store).name == "ferry-3.txt"


def test_the_same_page_uploaded_again_is_the_stored_article_and_messages_show_no_server_path(fast, tmp_path):
    from ui.app import add_uploads

    pages, s = fast
    ingest_paths([pages], s)  # "ferry" and "library" are stored
    picked = tmp_path / "picked"  # the user's files, as the browser sends them
    picked.mkdir()
    (picked / "harbor.txt").write_text(PAGES["ferry.txt"].replace("여객선", "화물선"), encoding="utf-8")
    (picked / "ferry.txt").write_text(PAGES["ferry.txt"], encoding="utf-8")
    (picked / "empty.txt").write_bytes(b"")
    first = add_uploads([(picked / "harbor.txt", "harbor.txt"), (picked / "empty.txt", "empty.txt")], s)
    assert ("harbor.txt", "new") in [(n, r) for n, r, _ in first]
    failed = next(d for n, r, d in first if n == "empty.txt")
    assert "empty" in failed and str(tmp_path) not in failed and "/" not in failed, failed
    for _ in range(3):  # again and again: the article it already is, never harbor-2, harbor-3...
        again = add_uploads([(picked / "harbor.txt", "harbor.txt")], s)
        assert [(n, r) for n, r, _ in again] == [("harbor.txt", "unchanged")] and "harbor" in again[0][2]
    same_as_stored = add_uploads([(picked / "ferry.txt", "ferry.txt")], s)  # a folder ingest's article
    assert [(n, r) for n, r, _ in same_as_stored] == [("ferry.txt", "unchanged")]
    (picked / "harbor.txt").write_text(PAGES["library.txt"], encoding="utf-8")  # same name, other content
    other = add_uploads([(picked / "harbor.txt", "harbor.txt")], s)
    assert ("harbor-2.txt", "new") in [(n, r) for n, r, _ in other]
    assert sorted(get_store(s, get_embedder(s)).articles()) == ["ferry", "harbor", "harbor-2", "library"]
    assert sorted(p.name for p in (s.store_dir / "uploads").iterdir()) == ["harbor-2.txt", "harbor.txt"]


def test_a_huge_paragraph_is_cut_before_kiwi_and_an_oversized_page_refused(fast, tmp_path):
    from ingest.blocks import MAX_BLOCK_CHARS, text_page

    paragraph = "".join(f"가람시는 {i}번째 도서관을 짓는다고 밝혔다. " for i in range(400))  # one line, ~10k chars
    page = text_page("가람일보\n" + paragraph + "\n")
    assert len(page.blocks) > 3 and max(len(b.text) for b in page.blocks) <= MAX_BLOCK_CHARS
    assert "".join(b.text for b in page.blocks[1:]).replace(" ", "") == paragraph.replace(" ", "")
    pages, s = fast
    big = tmp_path / "big.txt"
    big.write_text("가" * (s.max_page_chars + 1), encoding="utf-8")
    report = ingest_paths([big], s)
    assert report.failed and "RAG_MAX_PAGE_CHARS" in report.files[0].message


def test_derived_chunk_vectors_embed_each_sentence_once(fast):
    from ingest.chunk import chunk_vectors
    from rag.embed import register_embedder

    from .fakes import HashEmbedder

    pages, settings = fast
    seen: list[str] = []

    class Counting(HashEmbedder):
        def _encode(self, texts, is_query):
            seen.extend(texts)
            return super()._encode(texts, is_query)

    emb = Counting()
    settings = Settings(store_dir=settings.store_dir, embedder=register_embedder("counting", emb), chunk_chars=120,
                        chunk_vectors="derived")
    ingest_paths([pages], settings)
    store = get_store(settings, emb)
    sentences = {s.text for aid in ("library", "ferry") for s in store.sentences_of([aid])}
    chunks = store.get_chunks([r.record_id for r in store.all_records()])
    assert len(chunks) > 2 and any(len(c.sentences) > 1 for c in chunks.values())
    # no text was embedded twice, and no multi-sentence chunk text was embedded at all
    assert len(seen) == len(set(seen))
    assert not {c.text for c in chunks.values() if len(c.sentences) > 1} & set(seen)
    assert sentences <= set(seen)
    # a stored chunk vector is the one derived from its sentences' vectors and its title's
    c = next(c for c in chunks.values() if len(c.sentences) > 1)
    got = store._chunks.get(ids=[c.chunk_id], include=["embeddings"])["embeddings"][0]
    sent_vecs = emb.embed_passages([s.text for s in c.sentences])
    want = chunk_vectors([c], list(c.sentences), sent_vecs, emb.embed_passages([c.title])[0])
    np.testing.assert_allclose(got, want[0], atol=1e-6)


def test_embedded_chunk_vectors_are_the_default_and_embed_the_chunk_text(fast):
    from ingest.chunk import embedding_text
    from rag.embed import register_embedder

    from .fakes import HashEmbedder

    pages, settings = fast
    emb = HashEmbedder()
    settings = Settings(store_dir=settings.store_dir, embedder=register_embedder("plain", emb), chunk_chars=120)
    assert settings.chunk_vectors == "embedded"
    ingest_paths([pages], settings)
    store = get_store(settings, emb)
    chunks = store.get_chunks([r.record_id for r in store.all_records()])
    c = next(c for c in chunks.values() if len(c.sentences) > 1)
    got = store._chunks.get(ids=[c.chunk_id], include=["embeddings"])["embeddings"][0]
    np.testing.assert_allclose(got, emb.embed_passages([embedding_text(c)])[0], atol=1e-6)


def test_parallel_ingest_needs_a_server_and_a_shareable_embedder(fast):
    from ingest.parallel import ingest_parallel
    from rag.errors import ConfigError

    pages, settings = fast
    with pytest.raises(ConfigError, match="RAG_CHROMA_URL"):
        ingest_parallel([pages], Settings(store_dir=settings.store_dir), 2)
    with pytest.raises(ConfigError, match="registered in this process"):
        ingest_parallel([pages], Settings(store_dir=settings.store_dir, embedder=settings.embedder,
                                          chroma_url="http://127.0.0.1:9"), 2)
    with pytest.raises(ConfigError, match="from 1 to"):
        ingest_parallel([pages], settings, 0)
    assert ingest_parallel([pages], settings, 1).count("new") == 2  # one worker: the ordinary ingest


def test_rebuild_replaces_a_store_built_with_another_embedder_and_a_typo_deletes_nothing(fast, tmp_path, caplog):
    from rag.embed import register_embedder
    from rag.errors import DocumentError, EmbedderMismatchError

    from .fakes import HashEmbedder

    pages, s = fast
    first = ingest_paths([pages], s)
    held = get_store(s, get_embedder(s)).count()
    assert held == first.chunks_written > 0

    class Other(HashEmbedder):
        name = "fake-other-model"
        dim = 64

    s2 = s.with_(embedder=register_embedder("other", Other()))
    with pytest.raises(EmbedderMismatchError, match="--rebuild"):  # the way out is named
        ingest_paths([pages], s2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4")
    for bad in ([pages, tmp_path / "no-such-folder"], [tmp_path / "empty"], [tmp_path / "report.pdf"]):
        with pytest.raises(DocumentError, match="nothing was deleted"):
            ingest_paths(bad, s2, rebuild=True)
    assert get_store(s, get_embedder(s)).count() == held  # the old store is whole
    rebuilt = ingest_paths([pages], s2, rebuild=True)
    assert rebuilt.count("new") == 2 and not rebuilt.failed
    store2 = get_store(s2, get_embedder(s2))
    assert store2.count() == rebuilt.chunks_written and set(store2.articles()) == {"library", "ferry"}
    assert store2.keyword_index().coverage(["도서관"])  # the keyword index is of the new records
    a = ask("가람시 청소년 도서관의 총사업비는 얼마인가?", settings=s2)
    assert a.retrieved and a.retrieved[0].chunk.article_id == "library"
    with pytest.raises(EmbedderMismatchError):  # the store now belongs to the new embedder, also for the
        get_store(s, get_embedder(s)).count()  # store object this process held from before the rebuild
    fresh = s2.with_(store_dir=tmp_path / "fresh-store")
    with caplog.at_level(logging.WARNING):  # a rebuild of a store that holds nothing yet has nothing to delete
        assert ingest_paths([pages], fresh, rebuild=True).count("new") == 2
    assert not [r for r in caplog.records if "could not delete" in r.getMessage()]


def test_a_date_filter_leaves_undated_articles_out_and_says_how_many(fast):
    pages, s = fast
    (pages / "undated.txt").write_text(PAGES["ferry.txt"].replace("입력 2025.10.11 09:00\n", "")
                                       .replace("해솔군", "바람군"), encoding="utf-8")
    ingest_paths([pages], s)
    embedder = get_embedder(s)
    store = get_store(s, embedder)
    assert store.articles()["undated"].date is None and store.undated_articles() == 1
    assert store.undated_articles({"publisher": "가람타임스"}) == 0
    r = HybridRetriever(store=store, embedder=embedder, k=5)
    for filters in ({"until": "2030-01-01"}, {"since": "2000-01-01"}):  # no range holds an undated article
        assert r.search("여객선 운항", 5, filters) and all(h.chunk.date for h in r.search("여객선 운항", 5, filters))
    a = ask("여객선은 하루 몇 차례 운항하나?", settings=s, filters={"until": "2030-01-01"})
    assert a.undated_left_out == 1 and a.to_dict()["undated_left_out"] == 1
    assert ask("여객선은 하루 몇 차례 운항하나?", settings=s).undated_left_out is None
