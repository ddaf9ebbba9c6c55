"""Score the whole pipeline against gold Q&A pairs: retrieval, answers, citations, abstention."""

from __future__ import annotations

import re
import statistics
import tempfile
import time
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from rag.errors import RagError
from rag.reader.short import char_f1, exact_match
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("hit_at_1", "hit_at_5", "evidence_at_5", "mrr_at_10", "answer_accuracy", "short_em", "short_f1",
           "citation_precision",
           "abstain_recall", "false_abstain", "overall_accuracy", "boilerplate_leak")
PAGE_SUFFIXES = (".txt", ".html", ".htm")


def norm(text: str) -> str:
    """NFKC, casefold, and no whitespace or commas: the form every substring test uses."""
    return re.sub(r"[\s,]+", "", unicodedata.normalize("NFKC", text)).casefold()


@dataclass(frozen=True)
class Corpus:
    """What ``rag eval`` runs on: a folder of pages, a gold file and (optionally) cleaning labels."""

    pages: Path
    gold: Path
    labels: Path | None = None

    @classmethod
    def resolve(cls, folder: Path | None = None, gold: Path | None = None, labels: Path | None = None) -> "Corpus":
        """``folder`` holds the pages, or a ``pages/`` folder beside ``gold.jsonl`` and ``labels.jsonl``
        (the defaults for ``gold`` and ``labels``). No folder: the seeds and ``eval/gold.jsonl``."""
        if folder is None:
            return cls(ROOT / "seeds", Path(gold) if gold else ROOT / "eval" / "gold.jsonl", Path(labels) if labels else None)
        folder = Path(folder)
        if not folder.is_dir():
            raise RagError(f"--corpus {folder}: not a folder of pages")
        pages = folder / "pages" if (folder / "pages").is_dir() else folder
        gold = Path(gold) if gold else folder / "gold.jsonl"
        if not gold.is_file():
            raise RagError(f"{gold}: no gold file; pass --gold FILE (JSONL of questions)")
        if labels is None and (folder / "labels.jsonl").is_file():
            labels = folder / "labels.jsonl"
        return cls(pages, gold, Path(labels) if labels else None)

    def page_files(self, split: str | None = None) -> list[Path]:
        """The pages to ingest: all of them, or those the labels put in ``split``."""
        files = sorted(p for p in self.pages.iterdir() if p.is_file() and p.suffix.lower() in PAGE_SUFFIXES)
        if not files:
            raise RagError(f"{self.pages}: no .txt or .html pages")
        if split is None:
            return files
        if self.labels is None:
            raise RagError(f"--split {split} needs a labels file saying which pages are in which split (--labels)")
        labels = self.load_labels()
        chosen = [p for p in files if labels.get(p.stem, {}).get("split") == split]
        if not chosen:  # nothing to ingest: the run would only report zeros
            have = sorted({labels[p.stem]["split"] for p in files if labels.get(p.stem, {}).get("split")})
            raise RagError(f"--split {split}: no page in {self.pages} is in that split by {self.labels} "
                           f"(its pages' splits: {', '.join(have) or 'none'})")
        return chosen

    def load_labels(self) -> dict[str, dict]:
        from eval.corpus import load_labels

        return load_labels(self.labels) if self.labels else {}


def page_text(path: Path) -> str:
    """A page's visible text (decoded; HTML without its tags), for checking gold evidence."""
    from ingest.read import decode, is_html

    text = decode(path.read_bytes(), str(path))
    if is_html(path.name, text):
        import lxml.html

        root = lxml.html.document_fromstring(text)
        for bad in root.xpath("//script|//style|//head"):
            bad.drop_tree()
        text = root.text_content()
    return text


def load_gold(path: Path, pages: Path | None = None, split: str | None = None) -> list[dict]:
    """Read and validate a gold file before any work: every line a question (``eval.schema.GoldItem``:
    the right keys and types), ids unique, sources exist, evidence occurs in its source page. With
    ``split``, only the items of that split (each item then needs a ``split``). Every problem is
    listed with its line."""
    from eval.schema import GoldItem, problems_error, read_records

    records, errors = read_records(path, GoldItem, "gold")
    items, ids = [], {}
    files = {p.stem: p for p in pages.iterdir() if p.suffix.lower() in PAGE_SUFFIXES} if pages is not None else {}
    texts: dict[str, str] = {}
    for n, record in records:
        item = record.model_dump(exclude_unset=True)
        where = f"line {n} ({item['id']})"
        if item["id"] in ids:
            errors.append(f"{where}: duplicate id {item['id']} (also on line {ids[item['id']]})")
        ids.setdefault(item["id"], n)
        if split is not None and item.get("split") is None:
            errors.append(f"{where}: no split (dev or test) to filter on")
        if pages is not None:
            found = {}
            for s in item["sources"]:
                if s not in files:
                    errors.append(f"{where}: source {s} not found in {pages}")
                else:
                    if s not in texts:
                        texts[s] = norm(page_text(files[s]))
                    found[s] = texts[s]
            for ev in item["evidence"]:
                if found and not any(norm(ev) in page for page in found.values()):
                    errors.append(f"{where}: evidence not in its sources: {ev[:40]}")
        items.append(item)
    if errors:
        raise problems_error(path, "gold", errors)
    return [i for i in items if split is None or i.get("split") == split]


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
    short: str | None = None  # the short answer (the span that answers), when the pipeline gives one

    def at_threshold(self, threshold: float) -> "Outcome":
        """This (threshold-0) outcome as ``ask()`` returns it with another abstention threshold."""
        if self.abstained or self.confidence >= threshold:
            return self
        return replace(self, text=self.abstain_text, abstained=True, quotes=(), short=None)


def score(items: list[dict], outcomes: list[Outcome], sections: dict[str, str] | None = None) -> dict:
    """Metrics over all items, by language, by question kind (``qtype``) and by section (of the
    item's first source page, from ``sections``), and the failing items with what was quoted."""
    per = [_score_item(i, o) for i, o in zip(items, outcomes)]
    for p, item in zip(per, items):
        p["section"] = (sections or {}).get(item["sources"][0], "other") if item["sources"] else "outside"
    report = _aggregate(per)
    report["by_lang"] = {lang: _aggregate([p for p in per if p["lang"] == lang]) for lang in ("ko", "en")}
    # abstain recall by kind of unanswerable question (adversarial ones also by how they were built)
    groups: dict[str, list[dict]] = {}
    for p in per:
        if "unanswerable" in p:
            kind = p["unanswerable"]
            groups.setdefault(kind.split(":")[0], []).append(p)
            if ":" in kind:
                groups.setdefault(kind, []).append(p)
    report["by_unanswerable"] = {k: {"n": len(g), "abstain_recall": _mean(p["abstained"] for p in g)}
                                 for k, g in sorted(groups.items())}
    for key, field_ in (("by_qtype", "qtype"), ("by_section", "section")):
        groups = sorted({p[field_] for p in per if p.get(field_)})
        if groups and (key == "by_qtype" or sections):
            report[key] = {g: _aggregate([p for p in per if p.get(field_) == g]) for g in groups}
    report["failures"] = [
        {"id": p["id"], "failed": p["failed"], "answer": p["answer"][:160], "question": item["question"],
         "lang": p["lang"], "qtype": p.get("qtype"), "section": p["section"], "sources": item["sources"],
         "evidence": item["evidence"], "quotes": list(o.quotes), "retrieved": list(o.retrieved_articles[:5]),
         "confidence": round(o.confidence, 4)}
        for p, item, o in zip(per, items, outcomes) if p["failed"]]
    return report


def _score_item(item: dict, o: Outcome) -> dict:
    sources = set(item["sources"])
    ev = [norm(e) for e in item["evidence"]]
    aliases = [norm(a) for a in item["answers"]]
    p = {"id": item["id"], "lang": "ko" if is_korean(item["question"]) else "en", "answerable": item["answerable"],
         "kind": item.get("kind"), "qtype": item.get("qtype"), "latency": o.latency_ms, "abstained": o.abstained, "answer": o.text, "failed": []}
    if item["answerable"]:
        ranks = [i for i, a in enumerate(o.retrieved_articles[:10]) if a in sources]
        p["hit1"] = bool(o.retrieved_articles[:1]) and o.retrieved_articles[0] in sources
        p["hit5"] = any(a in sources for a in o.retrieved_articles[:5])
        p["ev5"] = any(any(e in norm(t) for e in ev) for t in o.retrieved_texts[:5])
        p["rr"] = 1.0 / (ranks[0] + 1) if ranks else 0.0
        # an item with answer_parts (two facts, often from two articles) needs every part
        parts = [[norm(a) for a in part] for part in item.get("answer_parts") or []] or [aliases]
        p["correct"] = not o.abstained and all(any(a in norm(o.text) for a in part) for part in parts)
        # the short answer against the aliases, as KorQuAD and SQuAD score a span (an abstention scores 0;
        # a pipeline with no short answer is scored on its whole answer text)
        short = "" if o.abstained else (o.short if o.short is not None else o.text)
        p["em"] = exact_match(short, item["answers"])
        p["f1"] = char_f1(short, item["answers"])
        if not o.abstained:
            p["cit"] = [any(e in norm(q) for e in ev) for q in o.quotes]
        for name, ok in (("hit@5", p["hit5"]), ("answer", p["correct"]), ("false_abstain", not o.abstained)):
            if not ok:
                p["failed"].append(name)
        if p.get("cit") is not None and not all(p["cit"]):
            p["failed"].append("citation")
    else:
        p["correct"] = o.abstained
        p["unanswerable"] = item.get("unanswerable") or "other"
        if item.get("adversarial"):
            p["unanswerable"] += f":{item['adversarial']}"
        if not o.abstained:
            p["failed"].append("should_abstain")
        if item.get("kind") == "boilerplate" or item.get("unanswerable") == "furniture":
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
        "answer_accuracy": _mean(p["correct"] for p in ans), "short_em": _mean(p["em"] for p in ans),
        "short_f1": _mean(p["f1"] for p in ans), "citation_precision": _mean(cits),
        "abstain_recall": _mean(p["abstained"] for p in unans), "false_abstain": _mean(p["abstained"] for p in ans),
        "overall_accuracy": _mean(p["correct"] for p in per),
        "boilerplate_leak": _mean(p["leak"] for p in unans if "leak" in p),
        "latency_p50_ms": round(statistics.median(lat), 1) if lat else None,
        "latency_p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None,
    }


# ---- pipelines ------------------------------------------------------------------------------
def run_ours(items: list[dict], settings: Settings, *, k: int, use_keyword: bool = True,
             given: list[list[str]] | None = None) -> list[Outcome]:
    """Run ``ask()`` on every item. It runs with threshold 0 and the configured threshold is applied
    afterwards exactly as ``ask()`` applies it, so one run also gives the accuracy/threshold curve.
    ``given``: per item, the articles to read instead of retrieving (``rag.qa.ask_articles``)."""
    from rag.qa import ask, ask_articles, warm_up
    from rag.reader.text import ABSTAIN_TEXT

    settings = replace(settings, abstain_threshold=0.0)
    warm_up(settings, wait=True)  # latencies are of answering, not of loading models
    out = []
    for item in items:
        t0 = time.perf_counter()
        # answers come from the configured number of passages (RAG_K, 10 by default), as ask()'s do;
        # k is only the cutoff of the retrieval metrics
        if given is not None:
            a = ask_articles(item["question"], given[len(out)], settings=settings)
        else:
            a = ask(item["question"], k=max(k, settings.k), settings=settings, use_keyword=use_keyword)
        ms = (time.perf_counter() - t0) * 1000
        o = Outcome(a.text, a.abstained, tuple(h.chunk.article_id for h in a.retrieved),
                    tuple(h.chunk.text for h in a.retrieved[:k]), tuple(c.quote for c in a.citations), ms,
                    a.confidence, ABSTAIN_TEXT[a.language], a.short_answer)
        out.append(o)
    return out


def naive_documents(files: list[Path]) -> list:
    """What a plain LangChain pipeline would load: each raw page decoded, HTML reduced to its text
    (as ``BSHTMLLoader`` does), split by the recursive character splitter."""
    import trafilatura
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from ingest.read import decode, is_html

    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    docs = []
    for p in files:
        text = decode(p.read_bytes(), str(p))
        if is_html(p.name, text):
            text = trafilatura.html2txt(text) or ""
        docs.extend(splitter.split_documents([Document(text, metadata={"article_id": p.stem})]))
    return docs


def run_naive(items: list[dict], files: list[Path], settings: Settings, *, k: int) -> list[Outcome]:
    """A plain LangChain pipeline: raw pages, recursive character splitter, dense top-k with the
    same embedder, the top passage's most similar sentence as the answer, never abstains."""
    import numpy as np
    from langchain_core.vectorstores import InMemoryVectorStore

    from rag.embed import get_embedder
    from rag.korean import split_sentences

    embedder = get_embedder(settings)
    store = InMemoryVectorStore(embedder)
    store.add_documents(naive_documents(files))
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


def evaluate(gold: Path | None = None, *, settings: Settings, k: int = 5, store: Path | None = None,
             pipeline: str = "default", clean: bool = True, bm25: bool = True, verify: bool = True,
             corpus: Corpus | None = None, split: str | None = None, score_cleaning: bool = True) -> dict:
    """Run one pipeline over a corpus's gold questions and return the report (``rag eval`` prints and
    saves it). ``split`` keeps only that split's pages and questions. With cleaning labels, the
    report also scores cleaning (furniture kept, article sentences lost, title/publisher/date)."""
    corpus = corpus or Corpus.resolve(gold=gold)
    if gold is not None:
        corpus = replace(corpus, gold=Path(gold))
    files = corpus.page_files(split)  # first: a split without labels fails here, in one line
    items = load_gold(corpus.gold, corpus.pages, split)
    if not items:
        raise RagError(f"{corpus.gold}: no questions" + (f" in split {split!r}" if split else ""))
    labels = corpus.load_labels()
    sections = {pid: rec.get("section", "other") for pid, rec in labels.items()}
    cleaning = None
    if pipeline == "naive":
        outcomes = run_naive(items, files, settings, k=k)
    else:
        with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
            if store is None:
                settings = replace(settings, store_dir=Path(tmp) / "store", chroma_url=None)
                _ingest(files, settings, clean)
            else:
                settings = replace(settings, store_dir=Path(store))
            raw = run_ours(items, settings, k=k, use_keyword=bm25)
        if not verify:
            threshold = 0.0
        elif settings.abstain_threshold is not None:
            threshold = settings.abstain_threshold
        else:
            from rag.reader import fitted_threshold

            threshold = fitted_threshold(settings)
        outcomes = [o.at_threshold(threshold) for o in raw]
        curve = []
        for t in range(20):
            at_t = score(items, [o.at_threshold(t / 20) for o in raw])
            curve.append({"threshold": t / 20, **{m: at_t[m] for m in ("overall_accuracy", "answer_accuracy", "abstain_recall")}})
        if labels and clean and score_cleaning:
            from eval.cleaning import score_pages

            cleaning = score_pages([f for f in files if f.stem in labels], labels, settings)
    report = score(items, outcomes, sections if labels else None)
    if pipeline != "naive":
        report["threshold"] = threshold
        report["threshold_curve"] = curve
    if cleaning is not None:
        report["cleaning"] = cleaning
    report["corpus"] = str(corpus.pages)
    report["split"] = split or "all"
    report["pipeline"] = pipeline + ("" if clean else "+no-clean") + ("" if bm25 else "+no-bm25") + ("" if verify else "+no-verify")
    return report


def _ingest(files: list[Path], settings: Settings, clean: bool) -> None:
    from ingest.pipeline import ingest_paths

    report = ingest_paths(files, settings, clean=clean)
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


def format_breakdown(reports: list[dict], key: str) -> str:
    """A small table: answer accuracy and overall accuracy of each pipeline per group (question kind
    or section), with the number of questions."""
    groups = sorted({g for r in reports for g in r.get(key, {})})
    if not groups:
        return ""
    head = [key.removeprefix("by_"), "n"] + [f"{r['pipeline']} {m}" for r in reports for m in ("ans_acc", "overall")]
    rows = []
    for g in groups:
        row = [g, str(reports[0].get(key, {}).get(g, {}).get("n", 0))]
        for r in reports:
            m = r.get(key, {}).get(g, {})
            row += ["-" if m.get(x) is None else f"{m[x]:.2f}" for x in ("answer_accuracy", "overall_accuracy")]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(head, widths)), "-+-".join("-" * w for w in widths)]
    return "\n".join(lines + [" | ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows])


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
    table = escape(format_table(reports) + "\n\n" + "\n\n".join(
        t for t in (format_breakdown(reports, "by_qtype"), format_breakdown(reports, "by_section")) if t))
    failing = []
    for r in reports:
        rows = "".join(
            f"<tr><td>{escape(f['id'])}</td><td>{escape('/'.join(f['failed']))}</td><td>{escape(f.get('question', ''))}</td>"
            f"<td>{escape(' | '.join(f.get('quotes') or []) or f['answer'])}</td><td>{escape(' | '.join(f.get('evidence') or []))}</td>"
            f"<td>{escape(', '.join(f.get('retrieved') or []))}</td></tr>"
            for f in r.get("failures", []))
        failing.append(f"<h3>{escape(r['pipeline'])}: {len(r.get('failures', []))} failing questions</h3>"
                       "<table border=1 cellpadding=3 style='border-collapse:collapse;font-size:13px'>"
                       "<tr><th>id</th><th>failed</th><th>question</th><th>quoted (or answer)</th><th>gold evidence</th>"
                       f"<th>retrieved articles</th></tr>{rows}</table>")
    cleaning = "".join(
        f"<h2>Cleaning ({escape(r['pipeline'])})</h2><pre>{escape(_cleaning_text(r['cleaning']))}</pre>"
        for r in reports if r.get("cleaning"))
    return f"""<!doctype html><html lang="en"><meta charset="utf-8"><title>rag eval</title>
<body style="font-family:sans-serif;max-width:960px;margin:auto">
<h1>Evaluation report</h1><p>{legend}</p>
<h2>Metrics per pipeline</h2><svg width="{w}" height="{h}" role="img">{''.join(bars)}</svg>
<h2>Accuracy against the abstention threshold</h2>
<p><span style="color:#2b6cb0">overall accuracy</span> · <span style="color:#38a169">answer accuracy</span> ·
<span style="color:#dd6b20">abstain recall</span>; dashed: the configured threshold. x from 0 to 1.</p>
<svg width="{w}" height="{h}" role="img">{''.join(lines)}</svg>
<h2>Table</h2><pre>{table}</pre>{cleaning}<h2>Failing questions</h2>{''.join(failing)}</body></html>"""


def _cleaning_text(c: dict) -> str:
    from eval.cleaning import format_cleaning

    lines = [format_cleaning(c), ""]
    for p in c["per_page"]:
        bad = [f"  kept furniture: {t[:80]}" for t in p["furniture_kept"]] + [f"  lost: {t[:80]}" for t in p["sentences_lost"]]
        bad += [f"  {k}: got {p['got'][k]!r}, want {p['want'][k]!r}" for k in ("title", "publisher", "date") if not p[f"{k}_ok"]]
        if bad:
            lines += [p["page"], *bad]
    return "\n".join(lines)
