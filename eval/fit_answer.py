"""Fit the window chooser, the confidence model, its threshold and how many windows to read
(``rag/reader/reader_model.answer.json``) from the span reader's reads of a corpus split's questions.

Called by ``python -m eval.fit reader`` with reads made by readers that did not train on the question's
page (cross-fitted), so the confidence it learns is the one the reader earns on pages it never saw.
Every figure is out of fold (pages grouped): regularisation, the number of windows and the threshold
are chosen on those figures, never on the test split.
"""

from __future__ import annotations

import copy

import numpy as np


def _labels(row, reads) -> np.ndarray:
    """Per read: its span's sentence holds the gold evidence (never, for an unanswerable question)."""
    return np.array([int(row.item["answerable"] and r.candidate.start in row.evidence[r.window.rank])
                     for r in reads], dtype=int)


def _first(reads, n: int) -> list:
    """The reads of the first ``n`` windows, copied (the chooser writes its probabilities into them)."""
    return [copy.copy(r) for r in reads if r.window.rank < n]


def fit_answer_model(rows, reads: list[list], folds: int = 5, log=print) -> tuple[dict, dict]:
    """(model dict, report): for each number of windows the out-of-fold overall accuracy, and the models
    refitted on every question for the best (ties: fewer windows, faster)."""
    from eval.fit import C_GRID, best_threshold, confidence_oof
    from eval.reader_data import TRAIN_WINDOWS
    from rag.linear import LinearModel
    from rag.reader.choose import CONFIDENCE_FEATURES, WINDOW_FEATURES, confidence_row, window_features

    pages = {g: i for i, g in enumerate(sorted({r.group for r in rows}))}
    fold = np.array([pages[r.group] for r in rows]) % folds
    answerable = np.array([r.item["answerable"] for r in rows])
    report: dict = {"questions": len(rows), "by_windows": {}}
    best = None
    for n in range(1, TRAIN_WINDOWS + 1):
        per = [_first(rs, n) for rs in reads]
        X = [window_features(rs, row.question) for rs, row in zip(per, rows)]
        y = [_labels(row, rs) for row, rs in zip(rows, per)]

        def chooser_oof(c: float) -> list[np.ndarray]:
            out = [np.zeros(len(v)) for v in y]
            for f in range(folds):
                tr = [i for i in range(len(rows)) if fold[i] != f and answerable[i] and len(y[i])]
                Xt, yt = np.vstack([X[i] for i in tr]), np.concatenate([y[i] for i in tr])
                if len(set(yt)) < 2:
                    continue
                m = LinearModel.fit(Xt, yt, WINDOW_FEATURES, C=c, class_weight="balanced")
                for i in range(len(rows)):
                    if fold[i] == f and len(y[i]):
                        out[i] = m.predict_proba(X[i])[:, 1]
            return out

        def top1(probs) -> float:
            hits = [y[i][int(np.argmax(p))] for i, p in enumerate(probs) if answerable[i] and y[i].any()]
            return float(np.mean(hits)) if hits else 0.0

        runs = {c: chooser_oof(c) for c in C_GRID}
        chooser_C = max(C_GRID, key=lambda c: top1(runs[c]))
        probs = runs[chooser_C]
        Q, yq = [], []
        for i, (rs, p) in enumerate(zip(per, probs)):
            for r, v in zip(rs, p):
                r.prob = float(v)
            if rs:
                chosen = max(rs, key=lambda r: r.prob)
                Q.append(confidence_row(chosen, rs, rows[i].ranked)[0])
                yq.append(int(answerable[i] and bool(y[i][rs.index(chosen)])))
            else:
                Q.append(np.zeros(len(CONFIDENCE_FEATURES)))
                yq.append(0)
        Q, yq = np.array(Q), np.array(yq)
        conf_C, oof_conf = confidence_oof(Q, yq, fold, CONFIDENCE_FEATURES, folds)
        threshold, overall = best_threshold(oof_conf, yq, answerable)
        answered = oof_conf >= threshold
        stats = {"chooser_C": chooser_C, "chooser_top1": round(top1(probs), 4), "confidence_C": conf_C,
                 "threshold": threshold, "cv_overall": round(overall, 4),
                 "cv_answer_right": round(float((answered & (yq == 1))[answerable].mean()), 4),
                 "cv_false_abstain": round(float((~answered)[answerable].mean()), 4),
                 "cv_abstain_recall": round(float((~answered)[~answerable].mean()), 4) if (~answerable).any() else None}
        report["by_windows"][n] = stats
        log(f"{n} window(s): {stats}")
        if best is None or overall > best[0] + 1e-9:
            best = (overall, n, X, y, Q, yq, stats)
    _, n, X, y, Q, yq, stats = best
    tr = [i for i in range(len(rows)) if answerable[i] and len(y[i])]
    chooser = LinearModel.fit(np.vstack([X[i] for i in tr]), np.concatenate([y[i] for i in tr]), WINDOW_FEATURES,
                              C=stats["chooser_C"], class_weight="balanced")
    confidence = LinearModel.fit(Q, yq, CONFIDENCE_FEATURES, C=stats["confidence_C"])
    report["windows"] = n
    report.update({k: v for k, v in stats.items() if k.startswith("cv_")})
    return {"version": 1, "windows": n, "threshold": stats["threshold"], "chooser": chooser.to_dict(),
            "confidence": confidence.to_dict()}, report
