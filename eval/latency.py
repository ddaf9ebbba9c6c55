"""Tail latency of ``ask()``: p50/p95/p99/max over the gold questions, optionally with a busy process
taking one core (what a 2-core laptop running anything else looks like).

    python -m eval.latency [--store DIR] [--rounds 3] [--contend]
    OMP_WAIT_POLICY=ACTIVE python -m eval.latency --contend     # libgomp's default waiting, for comparison

Without ``--store`` the seeds are ingested into a temporary store first. Each question's memoised
query vector is dropped before it is asked, so every ask() embeds its question.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _busy(stop) -> None:  # pragma: no cover - runs in a child process
    while not stop.is_set():
        sum(range(10_000))


def measure(settings, rounds: int) -> dict:
    from rag.embed import get_embedder
    from rag.qa import ask, warm_up

    qs = [json.loads(line)["question"] for line in (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
          if line.strip()]
    warm_up(settings, wait=True)
    ask(qs[0], settings=settings)
    embedder = get_embedder(settings)
    total, parts = [], {}
    for _ in range(rounds):
        for q in qs:
            embedder._query_cache.pop(q, None)
            t = time.perf_counter()
            a = ask(q, settings=settings)
            total.append((time.perf_counter() - t) * 1000)
            for k, v in a.timings_ms.items():
                parts.setdefault(k, []).append(v)

    def stats(v):
        return {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
                "p99": float(np.percentile(v, 99)), "max": float(max(v))}

    return {"ask": stats(total), **{k: stats(v) for k, v in parts.items() if k != "total"}, "n": len(total),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", help="an ingested store (default: the seeds in a temporary store)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--contend", action="store_true", help="keep one core busy with another process meanwhile")
    args = ap.parse_args(argv)
    from rag.settings import Settings

    with tempfile.TemporaryDirectory(prefix="rag-latency-") as tmp:
        settings = Settings.from_env()
        if args.store:
            settings = settings.with_(store_dir=args.store)
        else:
            from ingest.pipeline import ingest_paths

            settings = replace(settings, store_dir=Path(tmp) / "store", chroma_url=None)
            ingest_paths([ROOT / "seeds"], settings)
        stop, hog = None, None
        if args.contend:
            ctx = mp.get_context("spawn")
            stop = ctx.Event()
            hog = ctx.Process(target=_busy, args=(stop,), daemon=True)
            hog.start()
        try:
            result = measure(settings, args.rounds)
        finally:
            if hog is not None:
                stop.set()
                hog.join(timeout=10)
    result["contended"] = args.contend
    a = result["ask"]
    print(f"ask() over {result['n']} questions{' with one core busy' if args.contend else ''} "
          f"(OMP_WAIT_POLICY={result['omp_wait_policy']}): p50 {a['p50']:.0f} ms, p95 {a['p95']:.0f} ms, "
          f"p99 {a['p99']:.0f} ms, max {a['max']:.0f} ms; p95/p50 {a['p95'] / a['p50']:.2f}")
    for k in ("embed_query", "bridge", "retrieve", "answer"):
        if k in result:
            print(f"  {k}: p50 {result[k]['p50']:.1f} ms, p95 {result[k]['p95']:.1f} ms, max {result[k]['max']:.1f} ms")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
