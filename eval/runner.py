"""Score the whole pipeline against gold Q&A pairs: retrieval, answers, citations, abstention."""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from rag.errors import RagError
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_KEYS = ("id", "question", "answers", "sources", "evidence", "answerable")
METRICS = ("hit_at_1", "hit_at_5", "evidence_at_5", "mrr_at_10", "answer_accuracy", "citation_precision",
           "abstain_recall", "false_abstain", "overall_accuracy", "boilerplate_leak")


def norm(text: str) -> str:
    """NFKC, casefold, and no whitespace or commas: the form every substring test uses."""
    return re.sub(r"[\s,]+", "", unicodedata.normalize("NFKC", text)).casefold()


def load_gold(path: Path, seeds: Path | None = None) -> list[dict]:
    """Read and validate a gold file: ids unique, sources exist, evidence occurs in its source page."""
    items, errors, ids = [], [], set()
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as e:
            errors.append(f"line {n}: not JSON ({e})")
            continue
        missing = [k for k in REQUIRED_KEYS if k not in item]
        if missing:
            errors.append(f"line {n}: missing {', '.join(missing)}")
            continue
        if item["id"] in ids:
            errors.append(f"line {n}: duplicate id {item['id']}")
        ids.add(item["id"])
        if seeds is not None:
            pages = {}
            for s in item["sources"]:
                p = seeds / f"{s}.txt"
                if not p.exists():
                    errors.append(f"{item['id']}: source {s} not found in {seeds}")
                else:
                    pages[s] = p.read_text(encoding="utf-8")
            for ev in item["evidence"]:
                if pages and not any(ev in page for page in pages.values()):
                    errors.append(f"{item['id']}: evidence not in its sources: {ev[:40]}")
        items.append(item)
    if errors:
        raise RagError(f"{path}: invalid gold file:\n  " + "\n  ".join(errors))
    return items


def is_korean(text: str) -> bool:
    return bool(re.search(r"[\uac00-\ud7a3]", text))


@dataclass(frozen=True)
class Outcome:
    """What a pipeline produced for one question, in the terms the metrics need."""

    text: str
    abstained: bool
    retrieved_articles: tuple[str, ...]
    retrieved_texts: tuple[str, ...]
    quotes: tuple[str, ...]
    latency_ms: float
    confidence: float = 1.0
    abstain_text: str = ""

    def at_threshold(self, threshold: float) -> "Outcome":
        """This (threshold-0) outcome as ``ask()`` returns it with another abstention threshold."""
        if self.abstained or self.confidence >= threshold:
            return self
        return replace(self, text=self.abstain_text, abstained=True, quotes=())


def score(items: list[dict], outcomes: list[Outcome]) -> dict:
    per = [_score_item(i, o) for i, o in zip(items, outcomes)]
    report = _aggregate(per)
    report["by_lang"] = {lang: _aggregate([p for p in per if p["lang"] == lang]) for lang in ("ko", "en")}
    report["failures"] = [{"id": p["id"], "failed": p["failed"], "answer": p["answer"][:160]} for p in per if p["failed"]]
    return report


def _score_item(item: dict, o: Outcome) -> dict:
    sources = set(item["sources"])
    ev = [norm(e) for e in item["evidence"]]
    aliases = [norm(a) for a in item["answers"]]
    p = {"id": item["id"], "lang": "ko" if is_korean(item["question"]) else "en", "answerable": item["answerable"],
         "kind": item.get("kind"), "latency": o.latency_ms, "abstained": o.abstained, "answer": o.text, "failed": []}
    if item["answerable"]:
        ranks = [i for i, a in enumerate(o.retrieved_articles[:10]) if a in sources]
        p["hit1"] = bool(o.retrieved_articles[:1]) and o.retrieved_articles[0] in sources
        p["hit5"] = any(a in sources for a in o.retrieved_articles[:5])
        p["ev5"] = any(any(e in norm(t) for e in ev) for t in o.retrieved_texts[:5])
        p["rr"] = 1.0 / (ranks[0] + 1) if ranks else 0.0
        p["correct"] = not o.abstained and any(a in norm(o.text) for a in aliases)
        if not o.abstained:
            p["cit"] = [any(e in norm(q) for e in ev) for q in o.quotes]
        for name, ok in (("hit@5", p["hit5"]), ("answer", p["correct"]), ("false_abstain", not o.abstained)):
            if not ok:
                p["failed"].append(name)
        if p.get("cit") is not None and not all(p["cit"]):
            p["failed"].append("citation")
    else:
        p["correct"] = o.abstained
        if not o.abstained:
            p["failed"].append("should_abstain")
        if item.get("kind") == "boilerplate":
            p["leak"] = any(any(e in norm(t) for e in ev) for t in o.retrieved_texts)
            if p["leak"]:
                p["failed"].append("boilerplate_leak")
    return p


def _mean(values) -> float | None:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 4) if values else None


def _aggregate(per: list[dict]) -> dict:
    ans = [p for p in per if p["answerable"]]
    unans = [p for p in per if not p["answerable"]]
    answered = [p for p in ans if not p["abstained"]]
    cits = [c for p in answered for c in p.get("cit", [])]
    lat = sorted(p["latency"] for p in per)
    return {
        "n": len(per),
        "hit_at_1": _mean(p["hit1"] for p in ans), "hit_at_5": _mean(p["hit5"] for p in ans),
        "evidence_at_5": _mean(p["ev5"] for p in ans), "mrr_at_10": _mean(p["rr"] for p in ans),
        "answer_accuracy": _mean(p["correct"] for p in ans), "citation_precision": _mean(cits),
        "abstain_recall": _mean(p["abstained"] for p in unans), "false_abstain": _mean(p["abstained"] for p in ans),
        "overall_accuracy": _mean(p["correct"] for p in per),
        "boilerplate_leak": _mean(p["leak"] for p in unans if "leak" in p),
        "latency_p50_ms": round(statistics.median(lat), 1) if lat else None,
        "latency_p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None,
    }


# ---- pipelines ------------------------------------------------------------------------------
def run_ours(items: list[dict], settings: Settings, *, k: int, use_keyword: bool = True) -> list[Outcome]:
    """Run ``ask()`` on every item. It runs with threshold 0 and the configured threshold is applied
    afterwards exactly as ``ask()`` applies it, so one run also gives the accuracy/threshold curve."""
    from rag.answer import ABSTAIN_TEXT
    from rag.qa import ask, warm_up

    settings = replace(settings, abstain_threshold=0.0)
    warm_up(settings, wait=True)  # latencies are of answering, not of loading models
    out = []
    for item in items:
        t0 = time.perf_counter()
        # answers come from the configured number of passages (RAG_K, 10 by default), as ask()'s do;
        # k is only the cutoff of the retrieval metrics
        a = ask(item["question"], k=max(k, settings.k), settings=settings, use_keyword=use_keyword)
        ms = (time.perf_counter() - t0) * 1000
        o = Outcome(a.text, a.abstained, tuple(h.chunk.article_id for h in a.retrieved),
                    tuple(h.chunk.text for h in a.retrieved[:k]), tuple(c.quote for c in a.citations), ms,
                    a.confidence, ABSTAIN_TEXT[a.language])
        out.append(o)
    return out


def run_naive(items: list[dict], seeds: Path, settings: Settings, *, k: int) -> list[Outcome]:
    """A plain LangChain pipeline: raw pages, recursive character splitter, dense top-k with the
    same embedder, the top passage's most similar sentence as the answer, never abstains."""
    import numpy as np
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.embed import get_embedder
    from rag.korean import split_sentences

    embedder = get_embedder(settings)
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    docs = []
    for p in sorted(seeds.glob("*")):
        if p.is_file():
            docs.extend(splitter.split_documents([Document(p.read_text(encoding="utf-8"), metadata={"article_id": p.stem})]))
    store = InMemoryVectorStore(embedder)
    store.add_documents(docs)
    out = []
    for item in items:
        t0 = time.perf_counter()
        found = store.similarity_search(item["question"], k=max(k, 10))
        top = found[0].page_content if found else ""
        sents = [s.text for s in split_sentences(top)] or [top]
        q = embedder.embed_queries([item["question"]])[0]
        best = sents[int(np.argmax(embedder.embed_passages(sents) @ q))] if top else ""
        ms = (time.perf_counter() - t0) * 1000
        out.append(Outcome(best, False, tuple(d.metadata["article_id"] for d in found),
                           tuple(d.page_content for d in found[:k]), (best,) if best else (), ms))
    return out


def evaluate(gold: Path, *, settings: Settings, k: int = 5, store: Path | None = None, pipeline: str = "default",
             clean: bool = True, bm25: bool = True, verify: bool = True, seeds: Path = ROOT / "seeds") -> dict:
    """Run one pipeline over a gold file and return the report (``rag eval`` prints and saves it)."""
    items = load_gold(gold, seeds)
    if pipeline == "naive":
        outcomes = run_naive(items, seeds, settings, k=k)
    else:
        with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
            if store is None:
                settings = replace(settings, store_dir=Path(tmp) / "store", chroma_url=None)
                _ingest(seeds, settings, clean)
            else:
                settings = replace(settings, store_dir=Path(store))
            raw = run_ours(items, settings, k=k, use_keyword=bm25)
        threshold = settings.abstain_threshold if verify else 0.0
        outcomes = [o.at_threshold(threshold) for o in raw]
        curve = []
        for t in range(20):
            at_t = score(items, [o.at_threshold(t / 20) for o in raw])
            curve.append({"threshold": t / 20, **{m: at_t[m] for m in ("overall_accuracy", "answer_accuracy", "abstain_recall")}})
    report = score(items, outcomes)
    if pipeline != "naive":
        report["threshold"] = threshold
        report["threshold_curve"] = curve
    report["pipeline"] = pipeline + ("" if clean else "+no-clean") + ("" if bm25 else "+no-bm25") + ("" if verify else "+no-verify")
    return report


def _ingest(seeds: Path, settings: Settings, clean: bool) -> None:
    from ingest.pipeline import ingest_paths

    report = ingest_paths([seeds], settings, clean=clean)
    if report.failed:
        raise RagError("eval ingest failed: " + "; ".join(f.message for f in report.files if f.status == "failed"))


def format_table(reports: list[dict]) -> str:
    cols = ["pipeline", "lang"] + list(METRICS) + ["latency_p50_ms", "latency_p95_ms"]
    rows = []
    for r in reports:
        for lang, m in (("all", r), ("ko", r["by_lang"]["ko"]), ("en", r["by_lang"]["en"])):
            rows.append([r.get("pipeline", ""), lang] + ["-" if m.get(c) is None else f"{m[c]:.2f}" if isinstance(m[c], float) else str(m[c]) for c in cols[2:]])
    short = {"hit_at_1": "hit@1", "hit_at_5": "hit@5", "evidence_at_5": "ev@5", "mrr_at_10": "mrr@10",
             "answer_accuracy": "ans_acc", "citation_precision": "cit_prec", "abstain_recall": "abst_rec",
             "false_abstain": "false_abst", "overall_accuracy": "overall", "boilerplate_leak": "leak",
             "latency_p50_ms": "p50_ms", "latency_p95_ms": "p95_ms"}
    header = [short.get(c, c) for c in cols]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def html_report(reports: list[dict]) -> str:
    """A small self-contained HTML page: metrics per pipeline (bars) and accuracy against the
    abstention threshold (lines), as inline SVG; all text is escaped."""
    from html import escape

    colors = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"]
    metrics = [m for m in METRICS if m != "boilerplate_leak"] + ["boilerplate_leak"]
    w, h, pad = 900, 320, 40
    bw = (w - 2 * pad) / len(metrics) / (len(reports) + 1)
    bars = []
    for mi, m in enumerate(metrics):
        x0 = pad + mi * (len(reports) + 1) * bw
        bars.append(f'<text x="{x0 + bw:.0f}" y="{h - 5}" font-size="10" transform="rotate(-20 {x0 + bw:.0f} {h - 5})">{escape(m)}</text>')
        for ri, r in enumerate(reports):
            v = r.get(m) or 0.0
            bh = v * (h - 2 * pad)
            bars.append(f'<rect x="{x0 + ri * bw:.1f}" y="{h - pad - bh:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" '
                        f'fill="{colors[ri % 4]}"><title>{escape(r["pipeline"])} {escape(m)} {v:.2f}</title></rect>')
    legend = " ".join(f'<span style="color:{colors[i % 4]}">■ {escape(r["pipeline"])}</span>' for i, r in enumerate(reports))
    lines = []
    curve_r = next((r for r in reports if r.get("threshold_curve")), None)
    if curve_r:
        for key, col in (("overall_accuracy", "#2b6cb0"), ("answer_accuracy", "#38a169"), ("abstain_recall", "#dd6b20")):
            pts = " ".join(f'{pad + p["threshold"] * (w - 2 * pad):.1f},{h - pad - (p[key] or 0) * (h - 2 * pad):.1f}'
                           for p in curve_r["threshold_curve"])
            lines.append(f'<polyline fill="none" stroke="{col}" stroke-width="2" points="{pts}"><title>{key}</title></polyline>')
        tx = pad + curve_r["threshold"] * (w - 2 * pad)
        lines.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{pad}" y2="{h - pad}" stroke="#999" stroke-dasharray="4"/>')
    table = escape(format_table(reports))
    return f"""<!doctype html><html lang="en"><meta charset="utf-8"><title>rag eval</title>
<body style="font-family:sans-serif;max-width:960px;margin:auto">
<h1>Evaluation report</h1><p>{legend}</p>
<h2>Metrics per pipeline</h2><svg width="{w}" height="{h}" role="img">{''.join(bars)}</svg>
<h2>Accuracy against the abstention threshold</h2>
<p><span style="color:#2b6cb0">overall accuracy</span> · <span style="color:#38a169">answer accuracy</span> ·
<span style="color:#dd6b20">abstain recall</span>; dashed: the configured threshold. x from 0 to 1.</p>
<svg width="{w}" height="{h}" role="img">{''.join(lines)}</svg>
<h2>Table</h2><pre>{table}</pre></body></html>"""
