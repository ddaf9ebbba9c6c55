"""SQuAD-style reading sets (SQuAD 1.1/2.0, KorQuAD, KLUE-MRC, a user's own): read, check, split.

A file is ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers":
[{"text", "answer_start"}], "is_impossible"?}]}]}]}``. Every answer must sit at its offset in its
context; a question with ``is_impossible`` true has no answers (SQuAD 2.0's ``plausible_answers`` are
kept as the plausible wrong span).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError

MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class SquadItem:
    """One question with its paragraph."""

    qid: str
    title: str  # the article the paragraph belongs to (what cross-validation groups by)
    context_id: str  # the paragraph's id within the file ("<article index>-<paragraph index>")
    context: str
    question: str
    answers: tuple[str, ...]
    starts: tuple[int, ...]
    impossible: bool = False
    plausible: tuple[str, ...] = ()


def load_squad(path: Path) -> list[SquadItem]:
    """Every question of a SQuAD-style file, checked; a clear error naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise RagError(f"{path}: no such file (a SQuAD-style JSON file)")
    if path.stat().st_size > MAX_BYTES:
        raise RagError(f"{path}: larger than {MAX_BYTES // 2**20} MiB")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise RagError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except ValueError as e:
        raise RagError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise RagError(f"{path}: not SQuAD-style JSON (expected an object with a 'data' list of articles)")
    items, errors, seen = [], [], set()
    for ai, art in enumerate(doc["data"]):
        if not isinstance(art, dict) or not isinstance(art.get("paragraphs"), list):
            errors.append(f"data[{ai}]: an article needs a 'paragraphs' list")
            continue
        title = str(art.get("title") or f"article-{ai}")
        for pi, par in enumerate(art["paragraphs"]):
            where = f"data[{ai}].paragraphs[{pi}]"
            if not isinstance(par, dict) or not isinstance(par.get("context"), str) or not isinstance(par.get("qas"), list):
                errors.append(f"{where}: a paragraph needs a 'context' string and a 'qas' list")
                continue
            ctx = par["context"]
            for qi, qa in enumerate(par["qas"]):
                item = _item(qa, title, f"{ai}-{pi}", ctx, f"{where}.qas[{qi}]", errors)
                if item is None:
                    continue
                if item.qid in seen:
                    errors.append(f"{where}.qas[{qi}]: duplicate id {item.qid!r}")
                    continue
                seen.add(item.qid)
                items.append(item)
            if len(errors) > 20:
                break
    if errors:
        raise RagError(f"{path}: invalid SQuAD file:\n  " + "\n  ".join(errors[:20]))
    if not items:
        raise RagError(f"{path}: no questions")
    return items


def _item(qa, title: str, context_id: str, ctx: str, where: str, errors: list[str]) -> SquadItem | None:
    if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or not qa["question"].strip():
        errors.append(f"{where}: a question needs a non-empty 'question' string")
        return None
    qid = qa.get("id")
    if not isinstance(qid, (str, int)) or isinstance(qid, bool):
        errors.append(f"{where}: 'id' must be a string")
        return None
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        errors.append(f"{where}: 'is_impossible' must be true or false")
        return None
    answers = qa.get("answers", [])
    if not isinstance(answers, list):
        errors.append(f"{where}: 'answers' must be a list")
        return None
    texts, starts = [], []
    for a in answers:
        if not isinstance(a, dict) or not isinstance(a.get("text"), str) or not isinstance(a.get("answer_start"), int):
            errors.append(f"{where}: an answer needs 'text' and an integer 'answer_start'")
            return None
        s, t = a["answer_start"], a["text"]
        if ctx[s:s + len(t)] != t:
            errors.append(f"{where}: answer {t[:30]!r} is not at offset {s} of its context")
            return None
        texts.append(t)
        starts.append(s)
    if not impossible and not texts:
        errors.append(f"{where}: an answerable question has no answers (set is_impossible for one that has none)")
        return None
    if impossible and texts:
        errors.append(f"{where}: an impossible question lists answers")
        return None
    plausible = tuple(a["text"] for a in qa.get("plausible_answers") or [] if isinstance(a, dict) and isinstance(a.get("text"), str))
    return SquadItem(str(qid), title, context_id, ctx, qa["question"].strip(), tuple(texts), tuple(starts), impossible, plausible)


def fold_of(title: str, folds: int = 5) -> int:
    """An article's cross-validation fold, from its title (stable across runs and machines)."""
    return int(hashlib.sha256(title.encode("utf-8")).hexdigest(), 16) % folds


def split_by_article(items: list[SquadItem], held_out: int = 0, folds: int = 5) -> tuple[list[SquadItem], list[SquadItem]]:
    """(training items, held-out items): the held-out fold's articles are never trained on."""
    train = [i for i in items if fold_of(i.title, folds) != held_out]
    test = [i for i in items if fold_of(i.title, folds) == held_out]
    return train, test


# ---- evaluating the assistant on a SQuAD-style set ----------------------------------------------
def page_name(item: SquadItem) -> str:
    """The page a paragraph becomes (its file stem, which is its article id in the store)."""
    return f"p{item.context_id}"


def write_corpus(items: list[SquadItem], folder: Path):
    """Each paragraph as a text page (its article's title, then the paragraph) and the questions as a
    gold file in the corpus's format: an answer is right when the quoted sentence holds it."""
    from eval.runner import Corpus

    pages = folder / "pages"
    pages.mkdir(parents=True, exist_ok=True)
    done = set()
    lines = []
    for it in items:
        name = page_name(it)
        if name not in done:
            (pages / f"{name}.txt").write_text(f"{it.title}\n\n{it.context}\n", encoding="utf-8")
            done.add(name)
        lines.append(json.dumps({
            "id": it.qid, "question": it.question, "answers": list(dict.fromkeys(it.answers)),
            "sources": [] if it.impossible else [name], "evidence": list(dict.fromkeys(it.answers)),
            "answerable": not it.impossible, "unanswerable": "impossible" if it.impossible else None,
        }, ensure_ascii=False))
    (folder / "gold.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Corpus(pages, folder / "gold.jsonl")


def select(items: list[SquadItem], fold: str | None, limit: int | None) -> list[SquadItem]:
    """``fold`` "K/N": only the articles of fold K of N (as ``python -m eval.fit reader`` holds one out);
    ``limit``: the first questions only."""
    if fold:
        try:
            k, n = (int(x) for x in fold.split("/"))
            if not 0 <= k < n:
                raise ValueError
        except ValueError:
            raise RagError(f"--squad-fold {fold!r}: expected K/N with 0 <= K < N, e.g. 0/8") from None
        items = [i for i in items if fold_of(i.title, n) == k]
    return items[:limit] if limit else items


def evaluate_squad(path: Path, *, settings, pipeline: str = "default", given_context: bool = False,
                   fold: str | None = None, limit: int | None = None, k: int = 5) -> dict:
    """Every question of a SQuAD-style file asked of a scratch store holding all its paragraphs
    (open-domain), or read against its own paragraph only (``given_context``: reading alone)."""
    import tempfile
    from dataclasses import replace

    from eval.runner import _ingest, evaluate, load_gold, run_ours, score

    items = select(load_squad(path), fold, limit)
    if not items:
        raise RagError(f"{path}: no questions in --squad-fold {fold}")
    with tempfile.TemporaryDirectory(prefix="rag-squad-") as tmp:
        corpus = write_corpus(items, Path(tmp))
        if not given_context:
            report = evaluate(settings=settings, k=k, corpus=corpus, pipeline=pipeline, score_cleaning=False)
        else:
            if pipeline == "naive":
                raise RagError("--given-context reads with our pipeline only (the plain one has no reader)")
            settings = replace(settings, store_dir=Path(tmp) / "store", chroma_url=None)
            _ingest(corpus.page_files(), settings, True)
            gold = load_gold(corpus.gold, corpus.pages)
            outcomes = run_ours(gold, settings, k=k, given=[[page_name(i)] for i in items])
            from rag.reader import fitted_threshold

            threshold = settings.abstain_threshold if settings.abstain_threshold is not None else fitted_threshold(settings)
            report = score(gold, [o.at_threshold(threshold) for o in outcomes])
            report["threshold"] = threshold
            report["pipeline"] = "default+given-context"
    report["squad"] = {"file": str(path), "questions": len(items), "articles": len({i.title for i in items}),
                       "paragraphs": len({i.context_id for i in items}), "fold": fold,
                       "impossible": sum(i.impossible for i in items), "given_context": given_context}
    return report
