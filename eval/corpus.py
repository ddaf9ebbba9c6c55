"""The development corpus: annotated page sources -> pages, labels and gold, and their validation.

A corpus folder holds ``pages/`` (the raw pages, what a user would ingest), ``labels.jsonl`` (for
every page: split, section, layouts, the true title/publisher/reporter/date and every block of the
page with its role) and ``gold.jsonl`` (questions). ``rag eval --corpus DIR`` reads any folder of
that shape; only ``pages/`` is required.

Our own corpus is written as annotated sources in ``eval/corpus/src/``, so that a page and its
labels can never disagree:

* ``NAME.txt``: first line ``#meta {json}``, then one page line per source line, each prefixed with
  its role (``T|`` title, ``D|`` deck, ``B|`` byline, ``A|`` article, ``C|`` caption, ``F|``
  furniture); an empty source line is an empty page line. A part of a line with another role is
  marked inline, ``{F|누리통신 제공}`` (a photo credit glued to the end of a caption): the page gets
  its text, the labels a block of its own.
* ``NAME.html``: first line ``<!--meta {json}-->``; every element that holds visible text, or an
  ancestor of it, carries ``data-l="T|D|B|A|C|F"`` (the innermost one counts). The attribute and the
  meta line are removed from the built page.
* ``gold_*.jsonl``: questions; the build checks them against the labels and adds each one's split.

``python -m eval.corpus build [DIR]`` writes ``pages/``, ``labels.jsonl`` and ``gold.jsonl``;
``python -m eval.corpus check [DIR]`` validates without writing and prints counts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

from rag.errors import RagError

ROOT = Path(__file__).resolve().parent / "corpus"
# deck: the newsroom's own subheadline under (or, on a headline-less page, instead of) the headline;
# article-side metadata like the title, never furniture and never evidence
ROLES = {"T": "title", "D": "deck", "B": "byline", "A": "article", "C": "caption", "F": "furniture"}
# Closed classes of the corpus schema (what the report breaks results down by).
SECTIONS = ("politics", "economy", "real_estate", "society", "science", "health", "education", "baseball",
            "football", "entertainment", "weather", "international", "tech")
LAYOUTS = ("portal", "tv", "wire_ticker", "newspaper_footer", "blog_repost", "photo_story", "html_nav",
           "embedded_story", "widgets", "cp949", "no_date", "widget_date", "portal_ui", "photo_credit",
           "stored_copy", "no_headline", "hard_sentences")
QTYPES = ("who", "what", "when", "where", "how_many", "how_much", "why", "which", "by_how_much", "first_last", "how")
UNANSWERABLE = ("not_stated", "furniture", "outside", "adversarial")
# how an adversarial unanswerable is built from a sentence of its page: the question looks answerable
# and the page holds a plausible wrong span (``plausible``), but what it asks is not what the page says
ADVERSARIAL = ("entity_swap", "relation_reversed", "attribute_missing", "false_premise")
META_KEYS = ("split", "section", "layouts", "publisher", "reporter", "date")


def norm(text: str) -> str:
    """NFKC, casefold, and no whitespace or commas: the form every substring test uses."""
    return re.sub(r"[\s,]+", "", unicodedata.normalize("NFKC", text)).casefold()


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# ---- sources -> page + labels ----------------------------------------------------------------
def _parse_meta(line: str, pattern: str, name: str) -> dict:
    m = re.fullmatch(pattern, line.strip())
    if not m:
        raise RagError(f"{name}: the first line must be the meta line ({pattern})")
    try:
        meta = json.loads(m.group(1))
    except ValueError as e:
        raise RagError(f"{name}: meta is not JSON ({e})") from None
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise RagError(f"{name}: meta lacks {', '.join(missing)}")
    if meta["split"] not in ("dev", "test"):
        raise RagError(f"{name}: split {meta['split']!r} is not dev or test")
    if meta["section"] not in SECTIONS:
        raise RagError(f"{name}: section {meta['section']!r} is not one of {', '.join(SECTIONS)}")
    bad = [x for x in meta["layouts"] if x not in LAYOUTS]
    if bad or not meta["layouts"]:
        raise RagError(f"{name}: layouts {bad or '[]'} not in {', '.join(LAYOUTS)}")
    if meta["date"] is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", meta["date"]):
        raise RagError(f"{name}: date {meta['date']!r} is not YYYY-MM-DD or null")
    meta.setdefault("encoding", "utf-8")
    if meta["encoding"] not in ("utf-8", "cp949"):
        raise RagError(f"{name}: encoding {meta['encoding']!r} is not utf-8 or cp949")
    return meta


_INLINE = re.compile(r"\{([TDBACF])\|([^{}]*)\}")


def _line_parts(role: str, text: str, where: str) -> tuple[str, list[tuple[str, str]]]:
    """One source line's page text and its (role, text) parts: the line's role, split by inline
    ``{X|...}`` spans of another role."""
    parts, pos = [], 0
    for m in _INLINE.finditer(text):
        parts += [(role, text[pos:m.start()]), (m.group(1), m.group(2))]
        pos = m.end()
    parts.append((role, text[pos:]))
    page = "".join(t for _, t in parts)
    if re.search(r"\{[TDBACF]\|", page):  # an unclosed or nested span would leak its marker into the page
        raise RagError(f"{where}: an inline span is {{X|text}}, X one of {' '.join(ROLES)}, with no braces inside")
    return page, [(r, t) for r, t in parts if t.strip()]


def build_text_page(source: str, name: str) -> tuple[str, dict, list[dict]]:
    """An annotated .txt source -> (page text, meta, blocks)."""
    lines = source.split("\n")
    meta = _parse_meta(lines[0], r"#meta\s+(\{.*\})", name)
    out, blocks = [], []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            out.append("")
            continue
        m = re.match(r"([TDBACF])\|(.*)$", line)
        if not m:
            raise RagError(f"{name}:{n}: a line must start with T| D| B| A| C| or F| (got {line[:30]!r})")
        page, parts = _line_parts(m.group(1), m.group(2), f"{name}:{n}")
        out.append(page)
        blocks += [{"role": ROLES[r], "text": _collapse(t)} for r, t in parts]
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n", meta, blocks


_INLINE_TAGS = {"a", "span", "b", "strong", "em", "i", "u", "small", "sub", "sup", "time", "br", "img", "mark", "abbr",
                "cite", "q", "s", "code", "font", "label", "wbr"}


def build_html_page(source: str, name: str) -> tuple[str, dict, list[dict]]:
    """An annotated .html source -> (page html, meta, blocks); a block is the text of one block-level
    element (p, li, h2, td, div...) that shares one label."""
    import lxml.html

    first, _, rest = source.partition("\n")
    meta = _parse_meta(first, r"<!--meta\s+(\{.*\})\s*-->", name)
    root = lxml.html.document_fromstring(rest)
    pieces: list[tuple[object, object, str]] = []  # (block element, labelled element, text) in document order

    def nearest(el, test):
        while el is not None and not test(el):
            el = el.getparent()
        return el

    def add(el, text):
        owner = nearest(el, lambda e: e.get("data-l") is not None)
        block = nearest(el, lambda e: e.tag not in _INLINE_TAGS)
        pieces.append((block, owner, text))

    def visit(el):
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in ("script", "style", "head", "noscript", "template") or not tag:
            return
        if el.get("data-l") is not None and el.get("data-l") not in ROLES:
            raise RagError(f"{name}: data-l={el.get('data-l')!r} is not one of {', '.join(ROLES)}")
        if el.text:
            add(el, el.text)
        for child in el:
            visit(child)
            if child.tail:
                add(el, child.tail)

    visit(root)
    out_blocks, last = [], None
    for block, owner, text in pieces:
        if not text.strip():
            if out_blocks and (block, owner) == last:
                out_blocks[-1]["text"] += " "
            continue
        if owner is None:
            raise RagError(f"{name}: visible text with no data-l label: {_collapse(text)[:40]!r}")
        if (block, owner) != last:
            out_blocks.append({"role": ROLES[owner.get("data-l")], "text": ""})
            last = (block, owner)
        out_blocks[-1]["text"] += text
    for b in out_blocks:
        b["text"] = _collapse(b["text"])
    page = re.sub(r'\s+data-l="[TDBACF]"', "", rest)
    if "data-l" in page:
        raise RagError(f"{name}: a data-l attribute is not of the form data-l=\"X\"")
    return page, meta, [b for b in out_blocks if b["text"]]


def build_page(path: Path) -> tuple[str, dict]:
    """One source file -> (page content, labels record)."""
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        page, meta, blocks = build_text_page(source, path.name)
    elif path.suffix == ".html":
        page, meta, blocks = build_html_page(source, path.name)
    else:
        raise RagError(f"{path.name}: sources are .txt or .html")
    roles = Counter(b["role"] for b in blocks)
    if roles["title"] + roles["deck"] < 1 or roles["article"] < 3:
        raise RagError(f"{path.name}: needs a title or deck block and at least 3 article blocks (has {dict(roles)})")
    # the true title: the meta's, else the headline, else (a page with no headline) its first deck
    heads = [b["text"] for b in blocks if b["role"] == "title"] or [b["text"] for b in blocks if b["role"] == "deck"]
    title = meta.get("title") or heads[0]
    if meta["encoding"] == "cp949":
        try:
            page.encode("cp949")
        except UnicodeEncodeError as e:
            raise RagError(f"{path.name}: not encodable in CP949: {page[e.start:e.end]!r}") from None
    record = {"page": path.name, "id": path.stem, "split": meta["split"], "section": meta["section"],
              "layouts": meta["layouts"], "format": path.suffix[1:], "encoding": meta["encoding"], "title": title,
              "publisher": meta["publisher"], "reporter": meta["reporter"], "date": meta["date"], "blocks": blocks}
    return page, record


# ---- gold ------------------------------------------------------------------------------------
def is_korean(text: str) -> bool:
    return bool(re.search(r"[\uac00-\ud7a3]", text))


def check_gold(items: list[dict], labels: dict[str, dict]) -> list[str]:
    """Every way a gold item can be wrong against the labels; fills in each item's split."""
    errors, ids = [], set()
    for it in items:
        qid = it.get("id", "?")
        for k in ("id", "question", "answers", "sources", "evidence", "qtype"):
            if k not in it:
                errors.append(f"{qid}: missing {k}")
        if errors and errors[-1].startswith(f"{qid}: missing"):
            continue
        if qid in ids:
            errors.append(f"{qid}: duplicate id")
        ids.add(qid)
        un = it.get("unanswerable")
        if un not in (None, *UNANSWERABLE):
            errors.append(f"{qid}: unanswerable {un!r} not in {UNANSWERABLE}")
        if it["qtype"] not in QTYPES:
            errors.append(f"{qid}: qtype {it['qtype']!r} not in {QTYPES}")
        if un == "adversarial" and (it.get("adversarial") not in ADVERSARIAL or not it.get("plausible")):
            errors.append(f"{qid}: an adversarial question names how it was built (adversarial: one of {ADVERSARIAL}) "
                          "and the plausible wrong span its page holds (plausible)")
            continue
        it["answerable"] = un is None
        it["lang"] = "ko" if is_korean(it["question"]) else "en"
        missing = [s for s in it["sources"] if s not in labels]
        if missing:
            errors.append(f"{qid}: unknown sources {missing}")
            continue
        splits = {labels[s]["split"] for s in it["sources"]}
        if un == "outside":
            if it["sources"] or it.get("split") not in ("dev", "test"):
                errors.append(f"{qid}: an outside question has no sources and an explicit split")
            continue
        if len(splits) != 1:
            errors.append(f"{qid}: sources in different splits {sorted(splits)}")
            continue
        it["split"] = splits.pop()
        roles = ("article", "caption") if un in (None, "adversarial") else ("furniture",)
        texts = [norm(b["text"]) for s in it["sources"] for b in labels[s]["blocks"] if b["role"] in roles]
        if un == "not_stated":
            if it["evidence"]:
                errors.append(f"{qid}: a not_stated question has no evidence")
            continue
        if not it["evidence"]:
            errors.append(f"{qid}: no evidence")
        for ev in it["evidence"]:
            if not any(norm(ev) in t for t in texts):
                errors.append(f"{qid}: evidence not in a {'/'.join(roles)} block of its sources: {ev[:40]!r}")
        if un == "adversarial":
            if it["answers"]:
                errors.append(f"{qid}: an adversarial question has no answers")
            if not any(norm(it["plausible"]) in norm(ev) for ev in it["evidence"]):
                errors.append(f"{qid}: its plausible wrong span is not in its evidence")
        if un is None:
            if not it["answers"] or not any(norm(a) in norm(ev) for a in it["answers"] for ev in it["evidence"]):
                errors.append(f"{qid}: no answer alias occurs in the evidence")
            for part in it.get("answer_parts") or []:
                if not any(norm(a) in norm(ev) for a in part for ev in it["evidence"]):
                    errors.append(f"{qid}: no alias of answer part {part} occurs in the evidence")
            if len(it["sources"]) > 1:
                for s in it["sources"]:
                    own = [norm(b["text"]) for b in labels[s]["blocks"] if b["role"] in roles]
                    if not any(norm(ev) in t for ev in it["evidence"] for t in own):
                        errors.append(f"{qid}: no evidence from source {s}")
    return errors


# ---- corpus folders --------------------------------------------------------------------------
def build(root: Path = ROOT, *, write: bool = True, only: str = "") -> dict:
    """Build (or only check) pages, labels and gold from ``root/src``; returns counts. ``only``: check
    just the sources whose names start with it (and ``gold_<only>*.jsonl``)."""
    src = root / "src"
    if only and write:
        raise RagError("--only is for check; build reads every source")
    pages, records = {}, {}
    errors = []
    for path in sorted(src.glob(f"{only}*")):
        if path.suffix not in (".txt", ".html"):
            continue
        try:
            page, rec = build_page(path)
        except RagError as e:
            errors.append(str(e))
            continue
        pages[path.name] = (page, rec["encoding"])
        records[rec["id"]] = rec
    items = []
    for path in sorted(src.glob(f"gold_{only}*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except ValueError as e:
                    errors.append(f"{path.name}:{n}: not JSON ({e})")
    errors += check_gold(items, records)
    if errors:
        raise RagError(f"{len(errors)} problem(s) in {src}:\n  " + "\n  ".join(errors))
    if write:
        out = root / "pages"
        out.mkdir(exist_ok=True)
        for old in out.glob("*"):
            if old.name not in pages:
                old.unlink()
        for name, (page, enc) in pages.items():
            (out / name).write_bytes(page.encode(enc))
        (root / "labels.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values()),
                                           encoding="utf-8")
        keys = ("id", "split", "lang", "question", "answers", "sources", "evidence", "answerable", "unanswerable",
                "qtype", "kind", "answer_parts", "adversarial", "plausible")
        (root / "gold.jsonl").write_text("".join(
            json.dumps({k: it.get(k) for k in keys if k not in ("answer_parts", "adversarial", "plausible") or it.get(k)}, ensure_ascii=False) + "\n" for it in sorted(items, key=lambda i: i["id"])),
            encoding="utf-8")
    return summarize(list(records.values()), items)


def summarize(records: list[dict], items: list[dict]) -> dict:
    layouts = Counter(x for r in records for x in r["layouts"])
    layouts.update(r["format"] for r in records if r["format"] == "html")
    return {
        "pages": len(records), "pages_by_split": dict(Counter(r["split"] for r in records)),
        "sections": dict(Counter(r["section"] for r in records)), "layouts": dict(layouts),
        "questions": len(items), "questions_by_split": dict(Counter(i.get("split") for i in items)),
        "english": sum(i.get("lang") == "en" for i in items),
        "unanswerable": dict(Counter(i.get("unanswerable") for i in items if i.get("unanswerable"))),
        "two_article": sum(len(i["sources"]) > 1 for i in items),
        "qtypes": dict(Counter(i["qtype"] for i in items)),
    }


def load_labels(path: Path) -> dict[str, dict]:
    """labels.jsonl -> {page id: record}, every record validated first (``eval.schema.LabelRecord``):
    a bad line is named before any ingest starts, not found when cleaning is scored after it."""
    from eval.schema import LabelRecord, problems_error, read_records

    records, errors = read_records(path, LabelRecord, "labels")
    out: dict[str, dict] = {}
    lines: dict[str, int] = {}
    for n, rec in records:
        if rec.id in lines:
            errors.append(f"line {n} ({rec.id}): duplicate id (also on line {lines[rec.id]})")
            continue
        lines[rec.id] = n
        out[rec.id] = rec.model_dump(exclude_unset=True)
    if errors:
        raise problems_error(path, "labels", errors)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.corpus", description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("build", "check"))
    p.add_argument("root", nargs="?", type=Path, default=ROOT)
    p.add_argument("--only", default="", help="check only sources whose names start with this prefix")
    a = p.parse_args(argv)
    try:
        counts = build(a.root, write=a.command == "build", only=a.only)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(counts, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
