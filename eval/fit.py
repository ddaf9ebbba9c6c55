"""Fit the shipped models on a labelled corpus's dev split (or your own corpus):

    python -m eval.fit cleaner [--corpus eval/corpus] [--split dev]   # -> ingest/cleaner_model.json
    python -m eval.fit ranker [--corpus eval/corpus] [--split dev]    # -> rag/reader/ranker_model.json
    python -m eval.fit chunkvec [--corpus eval/corpus] [--split dev]  # -> ingest/chunk_model.json
    python -m eval.fit meta [--corpus eval/corpus] [--split dev]      # -> ingest/meta_model.json (title, date)
    python -m eval.fit reader --squad FILE [--corpus eval/corpus]     # -> rag/reader/reader_model.safetensors

Every weight and threshold the models use comes from here; run it again on your own labelled pages
(same ``labels.jsonl`` format, see eval/corpus/README.md) to refit them. The fits use the settings the
assistant runs with (``RAG_EMBEDDER``, ``RAG_CHUNK_VECTORS``, ``RAG_CHUNK_CHARS``, ...), so a ranker is
fitted on the features it will see. ``--cv`` also prints a
page-grouped cross-validation of the fit, so a change can be judged without touching the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from rag.errors import RagError

ROOT = Path(__file__).resolve().parent.parent
CLEANER_OUT = ROOT / "ingest" / "cleaner_model.json"
RANKER_OUT = ROOT / "rag" / "ranker_model.json"
CHUNK_OUT = ROOT / "ingest" / "chunk_model.json"
META_OUT = ROOT / "ingest" / "meta_model.json"


# ---- cleaner ---------------------------------------------------------------------------------
def align_roles(blocks, label_blocks: list[dict]) -> list[str | None]:
    """The labelled role of each page block, by finding its letters in the labelled blocks' letters
    in page order (a block the labels split or merged takes the role of most of its characters)."""
    from eval.cleaning import key

    roles_by_char: list[str] = []
    parts = []
    for lb in label_blocks:
        k = key(lb["text"])
        parts.append(k)
        roles_by_char.extend([lb["role"]] * len(k))
    text = "".join(parts)
    out, pos = [], 0
    for b in blocks:
        k = key(b.text)
        j = text.find(k, pos) if k else -1
        if j < 0 and k:
            j = text.find(k)
        if j < 0:
            out.append(None)
            continue
        out.append(Counter(roles_by_char[j:j + len(k)]).most_common(1)[0][0])
        if j >= pos:
            pos = j + len(k)
    return out


def cleaner_data(corpus, split: str | None):
    """(page ids, per-page blocks, pass-1 features, analyses, roles) for every labelled page."""
    from ingest.clean import read_page
    from ingest.features import pass1_features

    labels = corpus.load_labels()
    pages = []
    for f in corpus.page_files(split):
        if f.stem not in labels:
            continue
        page = read_page(f.read_bytes(), f.name)
        X, analyses = pass1_features(page)
        # a deck is a subheadline: the cleaner's title class (it keeps those between headline and story)
        roles = [{"deck": "title"}.get(r, r) for r in align_roles(page.blocks, labels[f.stem]["blocks"])]
        pages.append((f.stem, page, X, analyses, roles, len(pages)))
    if not pages:
        raise RagError(f"no labelled pages in {corpus.pages}" + (f" for split {split}" if split else ""))
    return pages


class CachedEmbed:
    """The passage embedder with an on-disk memo (``--vector-cache``), so refitting does not embed the
    same sentences again."""

    def __init__(self, path: Path | None):
        from rag.embed import get_embedder, vector_space
        from rag.settings import Settings

        self.embedder = get_embedder(Settings.from_env())
        self.path = path
        self.memo: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            data = np.load(path, allow_pickle=False)
            made_by = str(data["embedder"]) if "embedder" in data.files else None
            if vector_space(made_by or "") != vector_space(self.embedder.name):  # another model's: start afresh, overwrite on save
                print(f"{path}: made by {made_by or 'an unnamed embedder'}, not {self.embedder.name}; not used",
                      file=sys.stderr)
            else:
                self.memo = dict(zip(data["texts"].tolist(), data["vectors"]))

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            for t, v in zip(missing, self.embedder.embed_passages(missing)):
                self.memo[t] = v
        return np.stack([self.memo[t] for t in texts])

    def save(self) -> None:
        if self.path is not None and self.memo:
            texts = list(self.memo)
            np.savez(self.path, texts=np.array(texts), vectors=np.stack([self.memo[t] for t in texts]),
                     embedder=np.array(self.embedder.name))


def out_of_fold(X: np.ndarray, y: np.ndarray, groups: np.ndarray, features, classes, C: float,
                folds: int = 5) -> np.ndarray:
    """Probabilities of ``classes`` for every row from a model that did not see the row's group
    (page-grouped cross-validation): what the model will say of pages it was not fitted on."""
    from rag.linear import LinearModel

    mask = y != ""
    out = np.zeros((len(y), len(classes)))
    for f in range(folds):
        test = groups % folds == f
        tr = ~test & mask
        if not test.any() or len(set(y[tr])) < 2:
            continue
        m = LinearModel.fit(X[tr], y[tr], features, C=C, class_weight="balanced")
        probs = m.predict_proba(X[test])  # columns in the order of m.classes, binary models too
        for k, c in enumerate(classes):
            if c in m.classes:
                out[test, k] = probs[:, m.classes.index(c)]
    return out


def _best_threshold(p_keep: np.ndarray, good: np.ndarray, bad: np.ndarray, weight: np.ndarray) -> float:
    """The cut above which a block is kept that loses the smallest share of good characters plus the
    smallest share of bad blocks kept (both measured out of fold)."""
    return _threshold_and_cost(p_keep, good, bad, weight)[0]


def _threshold_and_cost(p_keep, good, bad, weight) -> tuple[float, float]:
    best = (float("inf"), 0.5)
    for t in np.linspace(0.05, 0.95, 91):
        lost = weight[good & (p_keep < t)].sum() / max(1.0, weight[good].sum())
        leak = (bad & (p_keep >= t)).sum() / max(1, bad.sum())
        if lost + leak < best[0]:
            best = (lost + leak, round(float(t), 3))
    return best[1], best[0]


C_GRID = (0.1, 0.3, 1.0, 3.0)  # regularisation strengths tried; the one with the lowest out-of-fold cost wins
CHOICE_C_GRID = (0.1, 0.3, 1.0)  # for the title and date choosers (few rows per page, few pages: a C of 3 or
# more fitted dev a page better and headlines of pages written for the tests worse)
# their features' spreads are floored: a rare feature (a dated sentence in the story) must not weigh
# like a common one on the page where it occurs
CHOICE_MIN_SCALE = 0.1


def fit_cleaner(corpus, split: str | None = "dev", C: float | None = None, cv: bool = False,
                embed=None) -> tuple[dict, dict]:
    """Two linear models fitted in turn: pass 1 (each block alone) and pass 2 (plus the neighbours'
    pass-1 probabilities, predicted out of fold as they will be on unseen pages, and the block's shared
    vocabulary and embedding similarity with the article's core). ``C=None`` picks the regularisation
    from ``C_GRID`` by out-of-fold cost."""
    pages = cleaner_data(corpus, split)
    fits = {c: _fit_passes(pages, c, embed) for c in ((C,) if C else C_GRID)}
    C, (m1, m2, threshold, cost, final, y, lengths) = min(fits.items(), key=lambda kv: kv[1][3])
    mask = y != ""
    article, furniture = y == "article", y == "furniture"
    report = {"pages": len(pages), "blocks": int(mask.sum()), "roles": dict(Counter(y[mask])), "C": C,
              "cv_cost_by_C": {c: round(f[3], 4) for c, f in fits.items()}, "keep_threshold": threshold}
    if cv:  # out of fold: what the fitted cut does on pages the model did not see
        report["cv_article_chars_lost"] = round(float(lengths[article & ~final].sum() / lengths[article].sum()), 4)
        report["cv_furniture_blocks_kept"] = round(float((furniture & final).sum() / furniture.sum()), 4)
    labels = corpus.load_labels()
    m2, mk = m2
    model = {"version": 1, "fitted_on": f"{corpus.labels} ({split or 'all'} split, {len(pages)} pages), C={C}",
             "keep_threshold": threshold, "pass1": m1.to_dict(), "pass2": m2.to_dict(), "keep": mk.to_dict()}
    model["publisher_order"], report["publisher_sources"] = _publisher_order(pages, labels, model, embed)
    return model, report


def _fit_passes(pages, C: float, embed):
    from ingest.clean import ROLES
    from ingest.features import NEIGHBOUR, PASS1, block_vectors, neighbour_features
    from rag.linear import LinearModel

    folds = min(5, len(pages))
    X1 = np.vstack([p[2] for p in pages])
    y = np.array([r or "" for p in pages for r in p[4]])
    mask = y != ""
    groups = np.array([p[5] for p in pages for _ in p[4]])
    m1 = LinearModel.fit(X1[mask], y[mask], PASS1, C=C, class_weight="balanced")
    assert set(m1.classes) <= set(ROLES)
    oof1 = out_of_fold(X1, y, groups, PASS1, ROLES, C, folds)
    X2, start = [], 0
    for p in pages:
        pr = oof1[start:start + len(p[4])]
        keep = pr[:, 0] + pr[:, 1]
        vectors = block_vectors(p[1], keep, embed) if embed is not None else None
        X2.append(np.hstack([p[2], neighbour_features(keep, pr[:, 2], p[3], vectors)]))
        start += len(p[4])
    X2 = np.vstack(X2)
    names2 = PASS1 + NEIGHBOUR
    m2 = LinearModel.fit(X2[mask], y[mask], names2, C=C, class_weight="balanced")
    # the keep decision is its own binary model: in the multinomial one, the title and byline classes
    # take probability from long paragraphs that are plainly not furniture. Title blocks (the headline,
    # and decks that restate the story) are left out: a deck is the newsroom's own summary and may be
    # kept; the headline itself is taken out as metadata.
    yk = np.where(mask & (y != "title"), np.where(np.isin(y, ("article", "caption")), "keep", "drop"), "")
    mk = LinearModel.fit(X2[yk != ""], yk[yk != ""], names2, C=C, class_weight="balanced")
    keep2 = out_of_fold(X2, yk, groups, names2, ("keep",), C, folds)[:, 0]
    lengths = np.array([len(b.text) for p in pages for b in p[1].blocks], dtype=float)
    threshold, cost = _threshold_and_cost(keep2, y == "article", y == "furniture", lengths)
    return m1, (m2, mk), threshold, cost, keep2 >= threshold, y, lengths


def _publisher_order(pages, labels: dict, model: dict, embed) -> tuple[list[str], dict]:
    """Which places on a page to trust for the outlet's name, most precise first (measured on these pages
    with the model just fitted)."""
    from eval.cleaning import _same_outlet
    from ingest.clean import PUBLISHER_SOURCES, CleanerModel, publisher_candidates

    cm = CleanerModel.from_dict({**model, "publisher_order": list(PUBLISHER_SOURCES)})
    hits: Counter = Counter()
    seen: Counter = Counter()
    for pid, page, *_ in pages:
        want = labels[pid].get("publisher")
        probs, _ = cm.classify(page, embed)
        for source, name in publisher_candidates(page, probs).items():
            seen[source] += 1
            hits[source] += _same_outlet(name, want)
    # precision with one pseudo-miss, so a source seen once does not outrank a reliable one
    score = {s: hits[s] / (seen[s] + 1) for s in PUBLISHER_SOURCES}
    order = sorted(PUBLISHER_SOURCES, key=lambda s: -score[s])
    return order, {s: f"{hits[s]}/{seen[s]}" for s in order}


# ---- title and date --------------------------------------------------------------------------
def meta_data(corpus, split: str | None, embed=None) -> list[dict]:
    """Every labelled page cleaned as ingest cleans it, with its title candidates (features, and whether
    each is the labelled title) and what the date features need."""
    from eval.cleaning import key
    from ingest.clean import classify_page, cleaner_model, read_page
    from ingest.meta import date_mentions, first_body_block, title_candidates, title_features

    labels = corpus.load_labels()
    model = cleaner_model()
    rows = []
    for f in corpus.page_files(split):
        if f.stem not in labels:
            continue
        label = labels[f.stem]
        page = read_page(f.read_bytes(), f.name)
        if not page.blocks:
            continue
        probs, X, _, kept, _, _ = classify_page(page, model, embed)
        first_body = first_body_block(probs, X, kept)
        cands = title_candidates(page, probs, first_body)
        want = key(label.get("title") or "")
        mentions = date_mentions(page)
        roles = align_roles(page.blocks, label["blocks"])
        date_ok = np.array([m.date == (label.get("date") or None) for m in mentions], dtype=int)
        # a date of the right day counts as the article's where the byline (or the page's metadata)
        # states it; the same day in a widget or a caption, or after an edit word (수정: the same day
        # as the publication, here), is left out of the fit, as neither
        rows.append({
            "page": f.stem, "doc": page, "probs": probs, "X": X, "kept": kept, "first_body": first_body,
            "title_cands": cands, "title_F": title_features(page, cands, probs, X, kept, first_body),
            "title_y": np.array([bool(want) and key(page.blocks[i].text) == want for i in cands], dtype=int),
            "mentions": mentions, "date": label.get("date") or None, "date_ok": date_ok,
            "date_y": np.array([(1 if (m.block < 0 or roles[m.block] == "byline") and m.cue != "edited" else -1) if ok else 0
                                for m, ok in zip(mentions, date_ok)], dtype=int),
        })
        rows[-1]["title_ok"] = rows[-1]["title_y"]
    if not rows:
        raise RagError(f"no labelled pages in {corpus.pages}" + (f" for split {split}" if split else ""))
    return rows


def _choice_oof(rows, F_key: str, y_key: str, features, C: float, folds: int) -> list[np.ndarray]:
    """Each page's candidate scores from a model fitted on the other folds' pages."""
    from rag.linear import LinearModel

    out = [np.zeros(len(r[y_key])) for r in rows]
    for f in range(folds):
        train = [r for i, r in enumerate(rows) if i % folds != f and len(r[y_key])]
        if not train:
            continue
        X, y = _train_rows(train, F_key, y_key)
        if len(set(y.tolist())) < 2:
            continue
        m = LinearModel.fit(X, y, features, C=C, class_weight="balanced", min_scale=CHOICE_MIN_SCALE)
        for i, r in enumerate(rows):
            if i % folds == f and len(r[y_key]):
                out[i] = m.predict_proba(r[F_key])[:, list(m.classes).index("1")]
    return out


def _train_rows(rows, F_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """The candidates' features and labels, without those labelled -1 (left out of the fit)."""
    X = np.vstack([r[F_key] for r in rows])
    y = np.concatenate([r[y_key] for r in rows])
    return X[y >= 0], y[y >= 0].astype(str)


def _choice_accuracy(rows, y_key: str, scores: list[np.ndarray], t: float) -> float:
    """Share of pages chosen right: the best candidate when it clears ``t`` and is right, or no choice
    where no candidate is right."""
    right = 0
    for r, s in zip(rows, scores):
        y = r[y_key]
        if len(s) and s.max() >= t:
            right += int(y[int(np.argmax(s))] == 1)
        else:
            right += int(not y.any())
    return right / max(1, len(rows))


def _fit_choice(rows, F_key: str, y_key: str, ok_key: str, features, C: float | None, folds: int):
    """The C (from ``C_GRID``) and abstention threshold with the best out-of-fold page accuracy (the
    middle of the best run of thresholds), the final model on every page, and the out-of-fold scores."""
    from rag.linear import LinearModel

    grid = np.round(np.linspace(0.02, 0.98, 49), 3)
    best = None
    for c in ((C,) if C else CHOICE_C_GRID):
        scores = _choice_oof(rows, F_key, y_key, features, c, folds)
        accs = np.array([_choice_accuracy(rows, ok_key, scores, t) for t in grid])
        top = np.flatnonzero(accs >= accs.max() - 1e-9)
        run = top[: 1 + next((k for k in range(len(top) - 1) if top[k + 1] != top[k] + 1), len(top) - 1)]
        t = float(grid[run[len(run) // 2]])
        # ties: the stronger regularisation (the grid runs from it), whose scores stretch least
        rank = (float(accs.max()), len(run))
        if best is None or rank[0] > best[0][0]:
            best = (rank, c, t, scores)
    (acc, _), c, t, scores = best
    X, y = _train_rows([r for r in rows if len(r[y_key])], F_key, y_key)
    model = LinearModel.fit(X, y, features, C=c, class_weight="balanced", min_scale=CHOICE_MIN_SCALE)
    return model, c, t, acc, scores


def fit_meta(rows, C: float | None = None) -> tuple[dict, dict]:
    """The title chooser, then the date chooser on where the (out-of-fold) chosen title sits, each
    with its abstention threshold; the report holds page-grouped cross-validated accuracies."""
    from ingest.meta import DATE_FEATURES, TITLE_FEATURES, date_features

    folds = min(5, len(rows))
    title_m, title_C, title_t, title_acc, title_oof = _fit_choice(rows, "title_F", "title_y", "title_ok", TITLE_FEATURES, C, folds)
    for r, s in zip(rows, title_oof):
        best = int(np.argmax(s)) if len(s) and s.max() >= title_t else None
        r["title_i"] = r["title_cands"][best] if best is not None else None
        r["date_F"] = date_features(r["doc"], r["mentions"], r["probs"], r["X"], r["kept"], r["title_i"],
                                    r["first_body"])
    date_m, date_C, date_t, date_acc, date_oof = _fit_choice(rows, "date_F", "date_y", "date_ok", DATE_FEATURES, C, folds)
    dated = [i for i, r in enumerate(rows) if r["date"]]
    undated = [i for i, r in enumerate(rows) if not r["date"]]
    picked = [bool(len(s)) and s.max() >= date_t for s in date_oof]
    right = [picked[i] and rows[i]["date_ok"][int(np.argmax(date_oof[i]))] == 1 for i in range(len(rows))]
    report = {
        "pages": len(rows), "title_C": title_C, "title_threshold": title_t, "cv_title_right": round(title_acc, 4),
        "title_in_candidates": sum(int(r["title_y"].any()) for r in rows),
        "date_C": date_C, "date_threshold": date_t, "cv_date_right": round(date_acc, 4),
        "cv_dated_pages_right": f"{sum(right[i] for i in dated)}/{len(dated)}",
        "cv_undated_pages_given_a_date": f"{sum(picked[i] for i in undated)}/{len(undated)}",
        "cv_title_wrong": [r["page"] for r, s in zip(rows, title_oof)
                           if not (len(s) and s.max() >= title_t and r["title_y"][int(np.argmax(s))])],
        "cv_date_wrong": [rows[i]["page"] for i in range(len(rows)) if not (right[i] or (not picked[i] and not rows[i]["date"]))],
    }
    model = {"version": 1, "fitted_on": f"{len(rows)} pages", "title_threshold": title_t, "date_threshold": date_t,
             "title": title_m.to_dict(), "date": date_m.to_dict()}
    return model, report


# ---- ranker ----------------------------------------------------------------------------------
def ranker_data(corpus, split: str | None, store: Path | None, k: int):
    """Every gold question of the split asked of a store of the split's pages: its candidates'
    feature rows and labels (the sentence holds a gold evidence string)."""
    import tempfile
    from dataclasses import replace

    from eval.runner import _ingest, load_gold, norm
    from rag.qa import _prepare, extractive_candidates, warm_up
    from rag.settings import Settings

    items = load_gold(corpus.gold, corpus.pages, split)
    tmp = None
    settings = Settings.from_env()  # the embedder, chunking and chunk vectors the assistant runs with
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-fit-")
        store = Path(tmp.name) / "store"
    settings = replace(settings, store_dir=Path(store), chroma_url=None, abstain_threshold=0.0)
    # always: ingest is incremental, and a reused --store built with other settings is brought in line
    _ingest(corpus.page_files(split), settings, True)
    warm_up(settings, wait=True, check_models=False)  # the ranker being fitted may not match the shipped one yet
    labels = corpus.load_labels()
    rows = []
    for item in items:
        p = _prepare(item["question"], None, settings, max(k, settings.k), None)
        q, cands, X = extractive_candidates(p)
        ev = [norm(e) for e in item["evidence"]] if item["answerable"] else []
        y = np.array([any(e in norm(c.text) for e in ev) for c in cands], dtype=int)
        page = item["sources"][0] if item["sources"] else f"outside-{item['id']}"
        rows.append({"item": item, "cands": cands, "X": X, "y": y, "group": page,
                     "section": labels.get(page, {}).get("section", "outside")})
    if tmp is not None:
        tmp.cleanup()
    return rows


def _group_ids(rows) -> np.ndarray:
    pages = sorted({r["group"] for r in rows})
    index = {g: i for i, g in enumerate(pages)}
    return np.array([index[r["group"]] for r in rows])


def fit_ranker(rows, C: float | None = None, folds: int = 5) -> tuple[dict, dict]:
    """The ranker (sentence answers the question) on every candidate of the answerable questions, its
    regularisation chosen by page-grouped cross-validation of top-1 accuracy; then the confidence
    model on out-of-fold rankings (top answer right, or the question unanswerable -> wrong), and the
    abstention threshold with the best overall accuracy out of fold."""
    from rag.reader.candidates import FEATURES
    from rag.linear import LinearModel
    from rag.reader.ranker import CONFIDENCE_FEATURES, confidence_features

    gid = _group_ids(rows)
    fold_of = gid % folds
    answerable = np.array([r["item"]["answerable"] for r in rows])
    reachable = np.array([r["y"].any() for r in rows])  # an answer sentence was retrieved at all

    def oof_scores(c: float) -> list[np.ndarray]:
        out = [np.zeros(len(r["y"])) for r in rows]
        for f in range(folds):
            train = [r for r, fo, a in zip(rows, fold_of, answerable) if fo != f and a and len(r["y"])]
            X = np.vstack([r["X"] for r in train])
            y = np.concatenate([r["y"] for r in train])
            m = LinearModel.fit(X, y, FEATURES, C=c, class_weight="balanced")
            for i, r in enumerate(rows):
                if fold_of[i] == f and len(r["y"]):
                    out[i] = m.predict_proba(r["X"])[:, 1]
        return out

    def top1(scores) -> float:
        hits = [r["y"][int(np.argmax(s))] for r, s, ok in zip(rows, scores, reachable) if ok]
        return float(np.mean(hits)) if hits else 0.0

    grid = (C,) if C else C_GRID
    results = {c: oof_scores(c) for c in grid}
    C = max(grid, key=lambda c: top1(results[c]))
    scores = results[C]
    train = [r for r in rows if r["item"]["answerable"] and len(r["y"])]
    ranker = LinearModel.fit(np.vstack([r["X"] for r in train]), np.concatenate([r["y"] for r in train]), FEATURES,
                             C=C, class_weight="balanced")
    # question-level rows from the out-of-fold rankings
    Q, yq = [], []
    for r, s in zip(rows, scores):
        order = np.argsort(-s)
        ranked = []
        for j in order:
            c = r["cands"][j]
            c.score = float(s[j])
            ranked.append(c)
        Q.append(confidence_features(ranked)[0])
        yq.append(int(r["item"]["answerable"] and len(r["y"]) > 0 and bool(r["y"][order[0]])))
    Q, yq = np.array(Q), np.array(yq)

    conf_C, oof_conf = confidence_oof(Q, yq, fold_of, CONFIDENCE_FEATURES, folds)
    conf_model = LinearModel.fit(Q, yq, CONFIDENCE_FEATURES, C=conf_C)
    threshold, overall = best_threshold(oof_conf, yq, answerable)
    answered = oof_conf >= threshold
    report = {
        "questions": len(rows), "answerable": int(answerable.sum()), "retrieved_an_answer": int(reachable.sum()),
        "C": C, "cv_top1_by_C": {c: round(top1(v), 4) for c, v in results.items()}, "confidence_C": conf_C,
        "threshold": threshold, "cv_overall": round(overall, 4),
        "cv_answer_right": round(float((answered & (yq == 1))[answerable].mean()), 4),
        "cv_false_abstain": round(float((~answered)[answerable].mean()), 4),
        "cv_abstain_recall": round(float((~answered)[~answerable].mean()), 4) if (~answerable).any() else None,
    }
    model = {"version": 1, "fitted_on": f"{len(rows)} questions", "threshold": threshold,
             "ranker": ranker.to_dict(), "confidence": conf_model.to_dict()}
    return model, report


def confidence_oof(Q: np.ndarray, yq: np.ndarray, fold: np.ndarray, features, folds: int) -> tuple[float, np.ndarray]:
    """A calibration model's regularisation (the best out-of-fold log loss: calibration, not ranking)
    and its out-of-fold probabilities that the answer is right."""
    from rag.linear import LinearModel

    def run(c: float) -> np.ndarray:
        out = np.zeros(len(yq))
        for f in range(folds):
            test = fold == f
            if test.any() and len(set(yq[~test])) == 2:
                out[test] = LinearModel.fit(Q[~test], yq[~test], features, C=c).predict_proba(Q[test])[:, 1]
        return out

    def log_loss(p: np.ndarray) -> float:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return float(-np.mean(yq * np.log(p) + (1 - yq) * np.log(1 - p)))

    runs = {c: run(c) for c in C_GRID}
    c = min(C_GRID, key=lambda c: log_loss(runs[c]))
    return c, runs[c]


def best_threshold(conf: np.ndarray, yq: np.ndarray, answerable: np.ndarray) -> tuple[float, float]:
    """(threshold, overall accuracy): the abstention threshold with the best overall accuracy (right
    answers, and abstentions on unanswerable questions)."""
    best = (-1.0, 0.5)
    for t in np.linspace(0.02, 0.98, 49):
        answered = conf >= t
        correct = np.where(answerable, answered & (yq == 1), ~answered)
        if correct.mean() > best[0]:
            best = (float(correct.mean()), round(float(t), 3))
    return best[1], best[0]


TITLE_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)  # title weights tried for chunk vectors derived from sentences
SENTENCE_WEIGHTS = ("equal", "length")  # how a chunk's sentences count in its vector


def chunkvec_data(corpus, split: str | None, embed: "CachedEmbed"):
    """The split's pages cleaned and chunked as ingest does, with their sentence and title vectors,
    and its answerable gold questions' query vectors and evidence."""
    from eval.runner import load_gold, norm
    from ingest.chunk import article_sentences, chunk_article
    from ingest.pipeline import article_id_for, clean_bytes
    from rag.settings import Settings

    class _Passages:  # cleaning's similarity feature, through the same memo
        embed_passages = staticmethod(embed)

    settings = Settings.from_env()
    chunks, sent_rows, titles = [], [], []
    for f in corpus.page_files(split):
        article = clean_bytes(f.read_bytes(), article_id_for(f), _Passages(), source_path=str(f)).article
        sentences = article_sentences(article)
        if not sentences:
            continue
        vecs = embed([s.text for s in sentences])
        title = embed([article.title])[0] if article.title else None
        row = {(s.start, s.end): i for i, s in enumerate(sentences)}
        for c in chunk_article(article, sentences, min(settings.chunk_chars, embed.embedder.max_chars),
                               settings.chunk_overlap):
            chunks.append(c)
            sent_rows.append(vecs[[row[(s.start, s.end)] for s in c.sentences]])
            titles.append(title)
    items = [i for i in load_gold(corpus.gold, corpus.pages, split) if i["answerable"]]
    queries = embed.embedder.embed_queries([i["question"] for i in items])
    evidence = [[norm(e) for e in i["evidence"]] for i in items]
    has_ev = np.array([[any(e in norm(c.text) for e in ev) for c in chunks] for ev in evidence])
    in_source = np.array([[c.article_id in i["sources"] for c in chunks] for i in items])
    return chunks, sent_rows, titles, queries, has_ev, in_source, items


def dense_metrics(chunk_vecs: np.ndarray, queries: np.ndarray, has_ev: np.ndarray, in_source: np.ndarray) -> dict:
    """Dense retrieval alone over the chunk vectors: article hit@5, evidence@5 and evidence MRR@10."""
    order = np.argsort(-(queries @ chunk_vecs.T), axis=1)[:, :10]
    ev = np.take_along_axis(has_ev, order, axis=1)
    src = np.take_along_axis(in_source, order, axis=1)
    first = np.where(ev.any(axis=1), ev.argmax(axis=1), -1)
    rr = np.where(first >= 0, 1.0 / np.maximum(first + 1, 1), 0.0)
    return {"hit_at_5": round(float(src[:, :5].any(axis=1).mean()), 4),
            "evidence_at_5": round(float(ev[:, :5].any(axis=1).mean()), 4),
            "evidence_mrr_at_10": round(float(rr.mean()), 4)}


def fit_chunkvec(corpus, split: str | None, embed: "CachedEmbed", compare_embedded: bool = False) -> tuple[dict, dict]:
    """The title weight and sentence weighting of chunk vectors derived from sentence vectors with the
    best evidence MRR@10 of dense retrieval on the split's answerable questions (ties: the simpler)."""
    from ingest.chunk import chunk_vectors

    chunks, sent_rows, titles, queries, has_ev, in_source, items = chunkvec_data(corpus, split, embed)
    if not items:
        raise RagError("no answerable gold questions to fit the chunk vectors on")
    report: dict = {"questions": len(items), "chunks": len(chunks), "grid": {}}
    options = [(sw, w) for sw in SENTENCE_WEIGHTS for w in TITLE_GRID]
    for sw, w in options:
        vecs = np.vstack([chunk_vectors([c], list(c.sentences), rows, t, w, sw == "length")
                          for c, rows, t in zip(chunks, sent_rows, titles)])
        report["grid"][f"{sw} title={w}"] = dense_metrics(vecs, queries, has_ev, in_source)
    best_sw, best = max(options, key=lambda o: (report["grid"][f"{o[0]} title={o[1]}"]["evidence_mrr_at_10"],
                                                 -SENTENCE_WEIGHTS.index(o[0]), -o[1]))
    if compare_embedded:  # what ingest did before: the title and the chunk text embedded as one passage
        vecs = embed([f"{c.title}\n{c.text}" if c.title else c.text for c in chunks])
        report["chunk_text_embedded"] = dense_metrics(vecs, queries, has_ev, in_source)
    report["chosen"] = f"{best_sw} title={best}"
    return {"title_weight": best, "sentence_weights": best_sw, "fitted_on": f"{corpus.gold.name} split={split or 'all'}",
            **report["grid"][report["chosen"]]}, report


def main(argv: list[str] | None = None) -> int:
    from eval.runner import Corpus

    p = argparse.ArgumentParser(prog="python -m eval.fit", description=__doc__.split("\n")[0])
    p.add_argument("model", choices=("cleaner", "ranker", "chunkvec", "meta", "reader"))
    p.add_argument("--corpus", default=str(ROOT / "eval" / "corpus"), help="a labelled corpus folder")
    p.add_argument("--split", default="dev", help="fit on this split (dev); 'all' for every page")
    p.add_argument("--out", help="where to write the model (default: the shipped model's path); answer with a ranker "
                                 "written elsewhere by setting RAG_RANKER_MODEL to its path")
    p.add_argument("--C", type=float, help=f"inverse regularisation strength (default: the best of {C_GRID} by cross-validation)")
    p.add_argument("--cv", action="store_true", help="also report page-grouped cross-validation")
    p.add_argument("--vector-cache", type=Path, help="cleaner, chunkvec: an .npz file memoising sentence vectors between fits")
    p.add_argument("--compare-embedded", action="store_true",
                   help="chunkvec: also report chunk texts embedded whole (embeds every chunk)")
    p.add_argument("--store", type=Path, help="ranker: a store of the split's pages to reuse (the pages are ingested there first: only "
                        "those new or changed, or stored with other settings, are embedded)")
    p.add_argument("--k", type=int, default=10, help="ranker: passages retrieved per question")
    p.add_argument("--no-embed", action="store_true", help="fit without the embedding-similarity feature")
    r = p.add_argument_group("reader (see eval/fit_reader.py)")
    r.add_argument("--squad", help="a SQuAD-style JSON file to learn reading from (KorQuAD: ../shared/data/korquad/...)")
    r.add_argument("--no-corpus", action="store_true", help="skip the news stage (--corpus questions)")
    r.add_argument("--held-out", type=int, default=0, help="the fold of --squad articles never trained on (default 0)")
    r.add_argument("--folds", type=int, default=8, help="folds the --squad articles are split into (default 8)")
    r.add_argument("--epochs", type=float, default=2.0, help="passes over the reading windows (default 2)")
    r.add_argument("--news-epochs", type=float, default=3.0, help="passes over the news windows (default 3)")
    r.add_argument("--lr", type=float, default=1e-4, help="encoder learning rate (default 1e-4; the head's is 10x)")
    r.add_argument("--batch", type=int, default=16, help="windows per step (default 16)")
    r.add_argument("--train", default="all", help="what is trained: 'all' layers (default) or 'top:N'")
    r.add_argument("--seed", type=int, default=13)
    r.add_argument("--limit", type=int, help="train on the first N --squad questions only (a quick check)")
    r.add_argument("--eval-limit", type=int, help="measure on N held-out questions only")
    r.add_argument("--start-from", help="a reader file to continue from (e.g. after the reading stage)")
    r.add_argument("--max-minutes", type=float, help="stop the reading stage after this long")
    r.add_argument("--no-cross-fit", action="store_true",
                   help="fit the chooser and confidence on reads of questions the reader was trained on (faster, "
                        "overconfident)")
    a = p.parse_args(argv)
    if a.model == "reader":
        from eval.fit_reader import main_reader

        return main_reader(a)
    try:
        corpus = Corpus.resolve(Path(a.corpus))
        split = None if a.split == "all" else a.split
        if a.model == "ranker":
            model, report = fit_ranker(ranker_data(corpus, split, a.store, a.k), a.C)
            out = Path(a.out) if a.out else RANKER_OUT
        elif a.model == "meta":
            embed = None if a.no_embed else CachedEmbed(a.vector_cache)
            model, report = fit_meta(meta_data(corpus, split, embed), a.C)
            if embed is not None:
                embed.save()
            out = Path(a.out) if a.out else META_OUT
        elif a.model == "chunkvec":
            embed = CachedEmbed(a.vector_cache)
            model, report = fit_chunkvec(corpus, split, embed, a.compare_embedded)
            embed.save()
            out = Path(a.out) if a.out else CHUNK_OUT
        else:
            embed = None if a.no_embed else CachedEmbed(a.vector_cache)
            model, report = fit_cleaner(corpus, split, a.C, a.cv, embed)
            if embed is not None:
                embed.save()
            out = Path(a.out) if a.out else CLEANER_OUT
        out.write_text(json.dumps(model, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, ensure_ascii=False, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
