"""The store process of a large ingest (ingest.writer): the same store as writing inline, its errors
reported per file, a dead child a clear error, and the store never opened twice in one process."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ingest.pipeline import _ingest_one, ingest_paths
from ingest.writer import AUTO_MIN_FILES, StoreProcess, use_store_process
from rag.errors import StoreError
from rag.settings import Settings
from rag.store import forget_store, get_store
from rag.writer_lock import acquire_writer_lock

from .conftest import SEEDS


def _contents(settings: Settings, embedder) -> dict:
    col = get_store(settings, embedder).chunk_collection()
    got = col.get(include=["documents", "metadatas", "embeddings"])
    return {i: (d, m, np.round(np.asarray(e), 5).tolist())
            for i, d, m, e in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])}


def test_the_store_process_writes_what_inline_writing_does(tmp_path, embedder):
    inline = Settings(store_dir=tmp_path / "inline", ingest_writer="inline")
    child = Settings(store_dir=tmp_path / "child", ingest_writer="process")
    a = ingest_paths([SEEDS], inline)
    assert use_store_process(child, 5)
    b = ingest_paths([SEEDS], child)
    assert [(r.article_id, r.status, r.chunks) for r in a.files] == [(r.article_id, r.status, r.chunks) for r in b.files]
    assert b.chunks_written == a.chunks_written > 0 and b.count("new") == 5
    ours, theirs = _contents(inline, embedder), _contents(child, embedder)
    assert ours.keys() == theirs.keys()
    for cid in ours:  # the same text and metadata (a write's source path is each store's own)
        assert ours[cid][0] == theirs[cid][0] and ours[cid][2] == theirs[cid][2]
        assert ({k: v for k, v in ours[cid][1].items() if k != "source_path"}
                == {k: v for k, v in theirs[cid][1].items() if k != "source_path"})
    # this process has now opened the child's store: it writes inline from here on
    assert not use_store_process(child, 10_000)
    again = ingest_paths([SEEDS], child)
    assert again.count("unchanged") == 5 and again.chunks_written == 0
    forget_store(inline)
    forget_store(child)


def test_many_batches_through_the_store_process_match_inline_writing(tmp_path, embedder, monkeypatch):
    """Small batches, so several writes are confirmed one after another and the next files' states
    are asked for ahead: the store is the same as one written inline with the same batches."""
    import ingest.pipeline as pipeline

    monkeypatch.setattr(pipeline, "WRITE_BATCH_CHUNKS", 8)
    monkeypatch.setattr(pipeline, "STATE_BATCH", 2)
    inline = Settings(store_dir=tmp_path / "inline", ingest_writer="inline")
    child = Settings(store_dir=tmp_path / "child", ingest_writer="process")
    a, b = ingest_paths([SEEDS], inline), ingest_paths([SEEDS], child)
    assert b.chunks_written == a.chunks_written and b.count("new") == 5 and not b.failed
    assert _contents(inline, embedder).keys() == _contents(child, embedder).keys()
    forget_store(inline)
    forget_store(child)


def test_auto_hands_the_store_to_a_child_only_for_a_large_unopened_embedded_store(tmp_path):
    s = Settings(store_dir=tmp_path / "never-opened")
    assert s.ingest_writer == "auto"
    assert not use_store_process(s, AUTO_MIN_FILES - 1) and use_store_process(s, AUTO_MIN_FILES)
    assert not use_store_process(s.with_(ingest_writer="inline"), 10**6)
    assert not use_store_process(s.with_(chroma_url="http://127.0.0.1:9"), 10**6)
    acquire_writer_lock(s.store_dir)  # a process holding the lock (the UI) writes itself
    assert not use_store_process(s, 10**6)


def _prepared(settings: Settings, embedder):
    """An article of the seeds, read, cleaned, chunked and embedded, ready to write."""
    path = sorted(SEEDS.glob("*.txt"))[0]
    store = get_store(settings, embedder)
    result, records = _ingest_one(path, path.stem, settings, embedder, store, True, None, False, state=None)
    return records


def test_a_failed_write_in_the_child_is_reported_and_the_store_keeps_what_it_held(tmp_path, embedder):
    prep = Settings(store_dir=tmp_path / "prep", ingest_writer="inline")
    good = _prepared(prep, embedder)
    s = Settings(store_dir=tmp_path / "store")
    with StoreProcess(s, embedder.name, embedder.dim) as store:
        store.write_articles([good])
        assert store.wait() is None and store.count() == len(good.chunks)
        bad = dataclasses.replace(good, article_id="other", chunk_vecs=np.zeros((len(good.chunks), 3), np.float32))
        store.write_articles([bad])
        err = store.wait()
        assert isinstance(err, StoreError) and "dimension" in str(err).lower()
        assert store.count() == len(good.chunks)  # nothing of the bad batch, nothing lost
        assert store.wait() is None  # reported once
        assert set(store.articles()) == {good.article_id}
    forget_store(prep)


def test_after_a_failed_write_the_rest_of_the_batch_is_not_written(tmp_path, embedder):
    """A batch is written whole or reported failed whole: the term write fails, so the articles sent
    after it are skipped until the next wait(), as writing inline stops at the first error."""
    good = _prepared(Settings(store_dir=tmp_path / "prep", ingest_writer="inline"), embedder)
    s = Settings(store_dir=tmp_path / "store")
    with StoreProcess(s, embedder.name, embedder.dim) as store:
        store.write_terms(["하나", "둘"], np.ones((1, 4), np.float32), np.zeros(1, np.float32), "test-encoder")
        store.write_articles([good])
        assert isinstance(store.wait(), StoreError)
        assert store.count() == 0
        store.write_articles([good])  # the next batch is written again
        assert store.wait() is None and store.count() == len(good.chunks)


def test_a_call_that_cannot_be_sent_fails_alone(tmp_path, embedder):
    s = Settings(store_dir=tmp_path / "store")
    with StoreProcess(s, embedder.name, embedder.dim) as store:
        with pytest.raises(StoreError, match="could not be sent"):
            store.call("article_states", [lambda: None])
        assert store.count() == 0  # the replies still match their calls


def test_a_dead_store_process_is_a_clear_error_not_a_hang(tmp_path, embedder):
    s = Settings(store_dir=tmp_path / "store")
    store = StoreProcess(s, embedder.name, embedder.dim)
    assert store.count() == 0
    store._proc.kill()
    store._proc.join(10)
    with pytest.raises(StoreError, match="store process"):
        store.count()
    assert isinstance(store.wait(), StoreError)
    store.close()


def test_the_child_holds_the_writer_lock_until_it_stops(tmp_path, embedder):
    s = Settings(store_dir=tmp_path / "store")
    store = StoreProcess(s, embedder.name, embedder.dim)
    store.acquire_writer_lock()
    with pytest.raises(StoreError, match="being written by pid"):
        acquire_writer_lock(s.store_dir)
    store.close()
    lock = acquire_writer_lock(s.store_dir)  # released with the child
    assert lock is not None
