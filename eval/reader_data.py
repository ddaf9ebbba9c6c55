"""The reader's news data: each gold question of a corpus split asked of a store of the split's pages,
with the windows the assistant reads for it (``rag.reader.windows``) and where the gold answer is in
them. What the news stage of the reader fit learns from, and what the window chooser and the
confidence model are fitted on (``eval.fit_reader``).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from eval.fit_reader import Example

TRAIN_WINDOWS = 4  # windows per question read in fitting (the answering default is fitted, at most this)
NEGATIVES_PER_QUESTION = 2  # no-answer windows of a question kept for training the reader


@dataclass
class Row:
    """One gold question: its item, the question read, its ranked candidates and windows, and per window
    the gold answer's [start, end) in the window's text (None: not there) and whether the window holds
    a sentence with the gold evidence."""

    item: dict
    group: str  # the page it is about (cross-validation groups by page)
    question: object
    ranked: list
    windows: list
    answers: list  # per window: (start, end) or None
    evidence: list  # per window: set of sentence starts (article offsets) holding gold evidence
    ambiguous: list = field(default_factory=list)  # per window: an answer alias outside the evidence


def _norm(text: str) -> str:
    from eval.runner import norm

    return norm(text)


def label_window(item: dict, window) -> tuple[tuple[int, int] | None, set[int], bool]:
    """Where the gold answer is in ``window``: the first occurrence of its longest alias that sits in a
    sentence holding gold evidence; the starts of those sentences; and whether an alias occurs outside
    them (the window then teaches neither an answer nor no answer)."""
    if not item["answerable"]:
        return None, set(), False
    ev = [_norm(e) for e in item["evidence"]]
    good = {s.start for s in window.sentences if any(e and e in _norm(s.text) for e in ev)}
    aliases = sorted({a for a in item["answers"] if a.strip()}, key=len, reverse=True)
    found = None
    outside = False
    for a in aliases:
        for m in re.finditer(re.escape(a), window.text):
            at = window.start + m.start()
            if window.sentence_at(at).start in good:
                if found is None:
                    found = (m.start(), m.end())
            else:
                outside = True
        if found is not None:
            break
    return found, good, outside and found is None


def half_of(group: str) -> int:
    """Which half of the cross-fit a page belongs to (stable across runs)."""
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest(), 16) % 2


def reader_rows(corpus, split: str | None, store: Path | None = None, n_windows: int = TRAIN_WINDOWS,
                log=print) -> list[Row]:
    """Every gold question of ``split`` asked of a store of its pages (``store``: reuse one)."""
    from eval.runner import _ingest, load_gold
    from rag.qa import _prepare, extractive_candidates, warm_up
    from rag.reader.ranker import model_path, ranker_model
    from rag.reader.windows import reading_windows
    from rag.settings import Settings

    items = load_gold(corpus.gold, corpus.pages, split)
    settings = Settings.from_env()
    tmp = None
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-reader-")
        store = Path(tmp.name) / "store"
    settings = replace(settings, store_dir=Path(store), chroma_url=None, abstain_threshold=0.0)
    _ingest(corpus.page_files(split), settings, True)
    warm_up(settings, wait=True, check_models=False)  # the reader being fitted is not the shipped one
    model = ranker_model(model_path(settings))
    rows = []
    for item in items:
        p = _prepare(item["question"], None, settings, settings.k, None)
        q, cands, X = extractive_candidates(p)
        ranked = model.rank(cands, X)
        windows = reading_windows(ranked, n_windows)
        labels = [label_window(item, w) for w in windows]
        group = item["sources"][0] if item["sources"] else f"outside-{item['id']}"
        rows.append(Row(item, group, q, ranked, windows, [x[0] for x in labels], [x[1] for x in labels],
                        [x[2] for x in labels]))
    if tmp is not None:
        tmp.cleanup()
    found = sum(any(a is not None for a in r.answers) for r in rows if r.item["answerable"])
    log(f"news rows: {len(rows)} questions, {sum(r.item['answerable'] for r in rows)} answerable, the answer in a "
        f"window for {found}")
    return rows


def news_examples_from(rows: list[Row], negatives: int = NEGATIVES_PER_QUESTION) -> list[Example]:
    """Training reads: every window holding the answer, and up to ``negatives`` windows per question
    that hold none (every window of an unanswerable question is one)."""
    out = []
    for r in rows:
        neg = 0
        for w, ans, amb in zip(r.windows, r.answers, r.ambiguous):
            if ans is not None:
                out.append(Example(r.item["question"], w.text, ans, "news"))
            elif not amb and neg < negatives:
                out.append(Example(r.item["question"], w.text, None, "news"))
                neg += 1
    return out


def news_examples(corpus, split: str | None, store: Path | None = None, log=print) -> list[Example]:
    return news_examples_from(reader_rows(corpus, split, store, log=log))
