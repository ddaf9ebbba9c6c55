"""Score cleaning against a corpus's labels: furniture kept, article sentences lost, metadata right.

A labelled block is compared with the cleaned article by its letters and digits only (NFKC,
casefolded, no spaces or punctuation), so bullets, line breaks and HTML's merged lines do not matter:
a furniture block is *kept* when it is a whole line of the cleaned text, or (10 characters or more)
occurs inside it, or still follows the block before it (a credit glued to its caption, "… 있다.
누리통신 제공", is one block of the page); an article sentence is *lost* when it no longer occurs in
the cleaned text.
Furniture that repeats article text (a headline echoed in a list) cannot be told apart and is not
counted.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from rag.settings import Settings

MIN_INSIDE = 10  # a shorter furniture block ("구독", "댓글 3") counts only as a whole line
MIN_SENTENCE = 4


def key(text: str) -> str:
    """Letters and digits only, NFKC and casefolded."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text)).casefold()


def score_page(record: dict, article_text: str, meta: dict) -> dict:
    """One page: which furniture blocks were kept, which article sentences lost, metadata checks."""
    from rag.korean import split_sentences

    whole = key(article_text)
    lines = {key(line) for line in article_text.split("\n") if key(line)}
    article_keys = [key(b["text"]) for b in record["blocks"] if b["role"] in ("article", "caption", "title", "deck")]
    kept, furniture, before = [], 0, ""
    for b in record["blocks"]:
        k, prev = key(b["text"]), before
        before = k or before
        if b["role"] != "furniture" or not k or any(k == a or (len(k) >= MIN_INSIDE and k in a) for a in article_keys):
            continue
        furniture += 1
        if k in lines or (len(k) >= MIN_INSIDE and k in whole) or (prev and prev + k in whole):
            kept.append(b["text"])
    lost, sentences = [], 0
    for b in record["blocks"]:
        if b["role"] != "article":
            continue
        for s in split_sentences(b["text"]):
            k = key(s.text)
            if len(k) < MIN_SENTENCE:
                continue
            sentences += 1
            if k not in whole:
                lost.append(s.text)
    return {
        "page": record["id"], "furniture": furniture, "furniture_kept": kept, "sentences": sentences,
        "sentences_lost": lost,
        "title_ok": key(meta.get("title") or "") == key(record.get("title") or ""),
        "publisher_ok": _same_outlet(meta.get("publisher"), record.get("publisher")),
        "date_ok": (meta.get("date") or None) == (record.get("date") or None),
        "got": {k: meta.get(k) for k in ("title", "publisher", "date")},
        "want": {k: record.get(k) for k in ("title", "publisher", "date")},
    }


def _same_outlet(got: str | None, want: str | None) -> bool:
    """The same outlet, allowing the page's own variants ("KNS" and "KNS 뉴스")."""
    g, w = key(got or ""), key(want or "")
    return g == w or (len(g) >= 2 and len(w) >= 2 and (g in w or w in g))


def summarize(pages: list[dict]) -> dict:
    furniture = sum(p["furniture"] for p in pages)
    sentences = sum(p["sentences"] for p in pages)
    n = len(pages) or 1
    return {
        "pages": len(pages),
        "furniture_blocks": furniture,
        "furniture_kept": sum(len(p["furniture_kept"]) for p in pages),
        "furniture_kept_rate": round(sum(len(p["furniture_kept"]) for p in pages) / furniture, 4) if furniture else None,
        "article_sentences": sentences,
        "sentences_lost": sum(len(p["sentences_lost"]) for p in pages),
        "sentence_loss_rate": round(sum(len(p["sentences_lost"]) for p in pages) / sentences, 4) if sentences else None,
        "title_accuracy": round(sum(p["title_ok"] for p in pages) / n, 4),
        "publisher_accuracy": round(sum(p["publisher_ok"] for p in pages) / n, 4),
        "date_accuracy": round(sum(p["date_ok"] for p in pages) / n, 4),
        "per_page": pages,
    }


def score_pages(files: list[Path], labels: dict[str, dict], settings: Settings) -> dict:
    """Clean every labelled page as ingest does (with the embedder) and score it."""
    from ingest.pipeline import clean_file
    from rag.embed import get_embedder
    from rag.errors import RagError

    embedder = get_embedder(settings)
    pages = []
    for f in files:
        record = labels[f.stem]
        try:
            a = clean_file(f, settings, embedder).article
            text, meta = a.text, {"title": a.title, "publisher": a.publisher, "date": a.date}
        except RagError:  # nothing left after cleaning: every article sentence is lost
            text, meta = "", {}
        pages.append(score_page(record, text, meta))
    return summarize(pages)


def format_cleaning(c: dict) -> str:
    """One paragraph for the console."""
    return (f"cleaning ({c['pages']} pages): furniture kept {c['furniture_kept']}/{c['furniture_blocks']} "
            f"({(c['furniture_kept_rate'] or 0):.1%}); article sentences lost {c['sentences_lost']}/{c['article_sentences']} "
            f"({(c['sentence_loss_rate'] or 0):.1%}); title {c['title_accuracy']:.0%}, publisher "
            f"{c['publisher_accuracy']:.0%}, date {c['date_accuracy']:.0%} right")
