"""Fit the neural span reader (``rag/reader/reader_model.safetensors``):

    python -m eval.fit reader --squad ../shared/data/korquad/KorQuAD_v1.0_train_part.json [--corpus eval/corpus]

Two stages, both on the CPU (a GPU when torch sees one):

1. **Reading** (``--squad``): SQuAD-style questions, split by article; one fold (``--held-out``) is
   never trained on and measures the fit (exact match and character F1, given the paragraph). Each
   question is read in windows of one to five whole sentences around its answer, as the assistant
   reads a retrieved passage, and in windows of its paragraph (or of another paragraph of its article)
   that do not hold it, which teach the no-answer score.
2. **News** (``--corpus``): the corpus split's gold questions asked of a store of its pages; the
   windows the assistant reads for each (``rag.reader.windows``) labelled with the gold answer, those
   of unanswerable questions (not stated, adversarial, outside) as no-answer. Reading questions are
   mixed in so the first stage is not forgotten.

Writes the trained parameters in fp16 and prints what it measured.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import RagError

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Example:
    """One read to learn from: a question, a window, and the answer's [start, end) in it (or none)."""

    question: str
    text: str
    answer: tuple[int, int] | None
    source: str  # "squad" or "news"


# ---- reading examples from SQuAD-style data -------------------------------------------------------
def _sentences(context: str) -> list[tuple[int, int]]:
    from rag.korean import split_sentences

    return [(s.start, s.end) for s in split_sentences(context)] or [(0, len(context))]


def entity_swaps(items, rng: random.Random) -> dict[str, str]:
    """For questions naming a proper noun that their paragraph holds, the question with that name
    replaced by a name from another article that the paragraph does not hold: the passage no longer
    answers it (an adversarial unanswerable of the entity-swap kind, made from real questions)."""
    from rag.korean import analyze

    names_of = {it.qid: [m.form for m in analyze(it.question) if m.tag == "NNP" and len(m.form) >= 2
                         and m.form in it.question and m.form in it.context] for it in items}
    pool: dict[str, set[str]] = {}
    for it in items:
        pool.setdefault(it.title, set()).update(names_of[it.qid])
    titles = sorted(pool)
    out = {}
    for it in items:
        if not names_of[it.qid] or len(titles) < 2:
            continue
        name = rng.choice(names_of[it.qid])
        others = sorted(n for t in rng.sample(titles, min(5, len(titles))) if t != it.title for n in pool[t]
                        if n not in it.context and n not in it.question)
        if others:
            at = it.question.index(name)
            new = rng.choice(others)
            rest = _josa(it.question[at + len(name):], new)
            out[it.qid] = it.question[:at] + new + rest
    return out


_JOSA = (("이", "가"), ("은", "는"), ("을", "를"), ("과", "와"))  # (after a final consonant, after a vowel)


def _josa(rest: str, word: str) -> str:
    """``rest`` with its leading particle agreeing with ``word``'s last syllable (이/가, 은/는, 을/를, 과/와)."""
    last = word[-1:]
    if not rest or not ("가" <= last <= "힣"):
        return rest
    consonant = (ord(last) - 0xAC00) % 28 != 0
    for after_c, after_v in _JOSA:
        if rest[0] in (after_c, after_v) and (len(rest) == 1 or not ("가" <= rest[1] <= "힣")):
            return (after_c if consonant else after_v) + rest[1:]
    return rest


def squad_examples(items, rng: random.Random, token_budget: int = 200, neg_same: float = 0.5,
                   neg_other: float = 0.25, neg_swap: float = 0.25) -> list[Example]:
    """Windows of whole sentences: one holding each question's answer (one to two sentences either
    side of it, at random, within ``token_budget`` tokens), and at the given rates one from the same
    paragraph and one from another paragraph of the same article that do not hold it, and the answer's
    window asked with another article's name in place of the question's (``entity_swaps``)."""
    from rag.encoder import tokenizer

    tok = tokenizer()
    sents: dict[str, list[tuple[int, int]]] = {}
    lengths: dict[tuple[str, int], int] = {}
    by_title: dict[str, list[str]] = {}
    contexts: dict[str, str] = {}
    for it in items:
        if it.context_id not in sents:
            sents[it.context_id] = _sentences(it.context)
            contexts[it.context_id] = it.context
            by_title.setdefault(it.title, []).append(it.context_id)
            for k, (s, e) in enumerate(sents[it.context_id]):
                lengths[(it.context_id, k)] = len(tok.encode(it.context[s:e]).ids)

    def window(cid: str, lo: int, hi: int) -> tuple[int, int, int, int]:
        """Grow [lo, hi] (sentence indices) no further than the budget; -> (lo, hi, char start, end)."""
        ss = sents[cid]
        while hi > lo and sum(lengths[(cid, k)] for k in range(lo, hi + 1)) > token_budget:
            hi -= 1
        return lo, hi, ss[lo][0], ss[hi][1]

    swaps = entity_swaps(items, rng)
    out = []
    for it in items:
        ss = sents[it.context_id]
        ctx = it.context
        if it.impossible:
            k = rng.randrange(len(ss))
            _, _, s, e = window(it.context_id, max(0, k - rng.randint(0, 2)), min(len(ss) - 1, k + rng.randint(0, 2)))
            out.append(Example(it.question, ctx[s:e], None, "squad"))
            continue
        a0, a1 = it.starts[0], it.starts[0] + len(it.answers[0])
        first = next(k for k, (s, e) in enumerate(ss) if e > a0)
        last = next((k for k, (s, e) in enumerate(ss) if e >= a1), len(ss) - 1)
        lo = max(0, first - rng.randint(0, 2))
        hi = min(len(ss) - 1, last + rng.randint(0, 2))
        # shrink from the side away from the answer until it fits
        while (lo < first or hi > last) and sum(lengths[(it.context_id, k)] for k in range(lo, hi + 1)) > token_budget:
            if hi > last and (hi - last >= first - lo):
                hi -= 1
            else:
                lo += 1
        s, e = ss[lo][0], ss[hi][1]
        out.append(Example(it.question, ctx[s:e], (a0 - s, a1 - s), "squad"))
        if it.qid in swaps and rng.random() < neg_swap:
            out.append(Example(swaps[it.qid], ctx[s:e], None, "squad"))
        answers = [a for a in it.answers if a]
        if rng.random() < neg_same:
            free = [k for k in range(len(ss)) if k < first or k > last]
            if free:
                k = rng.choice(free)
                klo, khi = (k, min(k + rng.randint(0, 2), first - 1)) if k < first else (max(k - rng.randint(0, 2), last + 1), k)
                _, _, s, e = window(it.context_id, klo, khi)
                if not any(a in ctx[s:e] for a in answers):
                    out.append(Example(it.question, ctx[s:e], None, "squad"))
        others = [c for c in by_title[it.title] if c != it.context_id]
        if others and rng.random() < neg_other:
            cid = rng.choice(others)
            k = rng.randrange(len(sents[cid]))
            _, _, s, e = window(cid, k, min(len(sents[cid]) - 1, k + rng.randint(0, 2)))
            text = contexts[cid][s:e]
            if not any(a in text for a in answers):
                out.append(Example(it.question, text, None, "squad"))
    return out


# ---- features ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Labelled:
    feature: object  # rag.reader.spanmodel.Feature
    start: int  # token index in input_ids (0: no answer)
    end: int


def label_features(examples: list[Example], max_len: int) -> list[Labelled]:
    """Each example's token sequences, with the answer's first and last token (``<s>`` when the piece
    does not hold the whole answer)."""
    from rag.reader.spanmodel import encode_pairs

    out = []
    for ex in examples:
        for f in encode_pairs(ex.question, [ex.text], max_len):
            s_tok = e_tok = 0
            if ex.answer is not None:
                a0, a1 = ex.answer
                inside = [j for j, (s, e) in enumerate(f.offsets) if e > a0 and s < a1]
                if inside and f.offsets[inside[0]][0] <= a0 + 1 and f.offsets[inside[-1]][1] >= a1 - 1:
                    s_tok, e_tok = f.context_start + inside[0], f.context_start + inside[-1]
            out.append(Labelled(f, s_tok, e_tok))
    return out


def batches(items: list[Labelled], size: int, rng: random.Random) -> list[list[Labelled]]:
    """Batches of similar length (less padding), in random order."""
    order = sorted(range(len(items)), key=lambda i: (len(items[i].feature.input_ids), rng.random()))
    groups = [[items[i] for i in order[k:k + size]] for k in range(0, len(order), size)]
    rng.shuffle(groups)
    return groups


# ---- training ---------------------------------------------------------------------------------
def trainable(model, mode: str) -> list:
    """Mark what a fit trains: ``all`` (every layer; the word table stays frozen) or ``top:N`` (the
    top N layers); the span head always."""
    n_layers = model.encoder.num_hidden_layers
    if mode == "all":
        keep = lambda name: not name.startswith("encoder.embeddings.word_embeddings")  # noqa: E731
    elif mode.startswith("top:") and mode[4:].isdigit() and 0 < int(mode[4:]) <= n_layers:
        first = n_layers - int(mode[4:])
        keep = lambda name: name.startswith("head.") or (  # noqa: E731
            name.startswith("encoder.encoder.layer.") and int(name.split(".")[3]) >= first)
    elif mode.startswith("lora:") and mode[5:].isdigit():
        # a LoRA adapter on every linear layer, for comparison with training the layers themselves
        # (peft is not a dependency of the assistant: a chosen adapter would be merged into the file)
        from peft import LoraConfig, inject_adapter_in_model

        r = int(mode[5:])
        inject_adapter_in_model(LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05,
                                           target_modules=["query", "key", "value", "dense"]), model.encoder)
        keep = lambda name: "lora_" in name  # noqa: E731
    else:
        raise RagError(f"--train {mode!r}: expected 'all', 'top:N' (1..{n_layers}) or 'lora:R'")
    params = []
    for name, p in model.named_parameters():
        p.requires_grad = keep(name) or name.startswith("head.")
        if p.requires_grad:
            params.append((name, p))
    return params


def train(model, data: list[Labelled], *, epochs: float, lr: float, head_lr: float, batch: int, seed: int,
          mode: str, log=print, max_seconds: float | None = None) -> dict:
    """AdamW with linear warm-up (6%) and decay, cross-entropy on the start and end tokens."""
    import torch

    from rag.encoder import tokenizer
    from rag.reader.spanmodel import collate

    rng = random.Random(seed)
    torch.manual_seed(seed)
    named = trainable(model, mode)
    groups = [{"params": [p for n, p in named if not n.startswith("head.")], "lr": lr, "weight_decay": 0.01},
              {"params": [p for n, p in named if n.startswith("head.")], "lr": head_lr, "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]])
    per_epoch = math.ceil(len(data) / batch)
    total = max(1, int(per_epoch * epochs))
    warm = max(1, int(0.06 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    device = next(model.parameters()).device
    model.train()
    pad = tokenizer().pad
    step, t0, losses = 0, time.perf_counter(), []
    while step < total:
        for b in batches(data, batch, rng):
            if step >= total:
                break
            ids, mask = collate([x.feature for x in b], pad)
            ids, mask = ids.to(device), mask.to(device)
            ys = torch.tensor([x.start for x in b], device=device)
            ye = torch.tensor([x.end for x in b], device=device)
            start, end = model(ids, mask)
            neg = torch.finfo(start.dtype).min / 4
            start = start.masked_fill(mask == 0, neg)
            end = end.masked_fill(mask == 0, neg)
            loss = (torch.nn.functional.cross_entropy(start, ys) + torch.nn.functional.cross_entropy(end, ye)) / 2
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            if step % 20 == 0 or step == total:
                el = time.perf_counter() - t0
                log(f"step {step}/{total} loss {np.mean(losses[-20:]):.3f} {el / step:.2f} s/step, "
                    f"{el / 60:.1f} min, ~{(total - step) * el / step / 60:.0f} min left")
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                log(f"stopped at step {step}: --max-minutes reached")
                total = step
                break
    model.eval()
    return {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "examples": len(data),
            "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None}


# ---- measuring --------------------------------------------------------------------------------
def predict_given_context(model, items) -> list[dict]:
    """Each question read against its whole paragraph: the best span (particles trimmed), its score and
    the paragraph's no-answer score."""
    from rag.reader.short import trim_span
    from rag.reader.spanmodel import SpanReader

    reader = SpanReader(model)
    out = []
    for it in items:
        best = reader.read(it.question, [it.context])[0]
        if best is None:
            out.append({"id": it.qid, "text": "", "raw": "", "margin": -1e9})
            continue
        s, e = trim_span(it.context, best.start, best.end)
        out.append({"id": it.qid, "text": it.context[s:e], "raw": it.context[best.start:best.end],
                    "margin": best.margin})
    return out


def squad_scores(items, preds: list[dict]) -> dict:
    from rag.reader.short import char_f1, exact_match

    em = [exact_match(p["text"], list(i.answers)) for i, p in zip(items, preds) if not i.impossible]
    f1 = [char_f1(p["text"], list(i.answers)) for i, p in zip(items, preds) if not i.impossible]
    raw_em = [exact_match(p["raw"], list(i.answers)) for i, p in zip(items, preds) if not i.impossible]
    return {"questions": len(em), "exact_match": round(100 * float(np.mean(em)), 2) if em else None,
            "f1": round(100 * float(np.mean(f1)), 2) if f1 else None,
            "exact_match_untrimmed": round(100 * float(np.mean(raw_em)), 2) if raw_em else None}


# ---- entry ------------------------------------------------------------------------------------
def fit_reader(squad: Path | None, *, out: Path, corpus=None, split: str | None = "dev", held_out: int = 0,
               folds: int = 8, epochs: float = 2.0, news_epochs: float = 3.0, lr: float = 1e-4,
               head_lr: float = 1e-3, batch: int = 16, mode: str = "all", seed: int = 13,
               limit: int | None = None, eval_limit: int | None = None, start_from: Path | None = None,
               max_minutes: float | None = None, store: Path | None = None, cross_fit: bool = True,
               log=print) -> dict:
    """Fit (stage 1 on ``squad``, stage 2 on ``corpus``'s ``split``), write ``out``, return a report."""
    import torch

    from eval.squad import load_squad, split_by_article
    from rag.reader.choose import answer_model_path
    from rag.reader.spanmodel import SpanReader, build_span_model, save_reader

    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = random.Random(seed)
    report: dict = {"mode": mode, "seed": seed}
    if start_from is not None:
        model = SpanReader.load(start_from).model
        report["started_from"] = str(start_from)
    else:
        model = build_span_model()
    if torch.cuda.is_available():
        model = model.cuda()
    held, examples = [], []
    if squad is not None:
        items = load_squad(squad)
        train_items, held = split_by_article(items, held_out, folds)
        if limit:
            train_items = train_items[:limit]
        examples = squad_examples(train_items, rng)
        report["squad"] = {"file": str(squad), "train_questions": len(train_items), "held_out_fold": held_out,
                           "folds": folds, "held_out_questions": len(held)}
        if epochs > 0:  # 0: the reading questions only feed the news stage's replay and the held-out measure
            data = label_features(examples, 256)
            log(f"reading stage: {len(train_items)} questions of {len({i.title for i in train_items})} articles -> "
                f"{len(data)} windows ({sum(d.start > 0 for d in data)} holding the answer); "
                f"{len(held)} questions of {len({i.title for i in held})} articles held out")
            report["squad"]["train"] = train(model, data, epochs=epochs, lr=lr, head_lr=head_lr, batch=batch,
                                             seed=seed, mode=mode, log=log,
                                             max_seconds=max_minutes * 60 if max_minutes else None)
    if corpus is not None:
        report["news"] = news_stage(model, corpus, split, store=store, replay_pool=examples if squad else [],
                                    epochs=news_epochs, lr=lr / 2, head_lr=head_lr / 2, batch=batch, seed=seed + 1,
                                    mode=mode, cross_fit=cross_fit, answer_out=answer_model_path(out), log=log)
    if held:
        sample = held if not eval_limit else random.Random(seed).sample(held, min(eval_limit, len(held)))
        report["held_out_given_context"] = squad_scores(sample, predict_given_context(model, sample))
        log(f"held-out articles, given the paragraph: {report['held_out_given_context']}")
    model = model.cpu()
    meta = {"fitted_on": [s for s in (squad and f"{Path(squad).name} (fold {held_out} of {folds} held out)",
                                       corpus and f"{corpus.gold} split={split or 'all'}") if s],
            "mode": mode, "report": report}
    save_reader(model, out, meta)
    report["out"] = str(out)
    report["bytes"] = out.stat().st_size
    return report


def news_stage(model, corpus, split, *, store, replay_pool: list[Example], epochs: float, lr: float, head_lr: float,
               batch: int, seed: int, mode: str, cross_fit: bool, answer_out: Path, log=print) -> dict:
    """Fine-tune on the corpus split's news windows (with as many reading windows replayed), and fit the
    window chooser and the confidence model on reads that are out of sample: with ``cross_fit`` the
    split's pages are halved, a reader trained on each half reads the other half's questions, and the
    final reader is then trained on all of it."""
    from eval.fit_answer import fit_answer_model
    from eval.reader_data import TRAIN_WINDOWS, half_of, news_examples_from, reader_rows
    from rag.reader import neural_reads
    from rag.reader.spanmodel import SpanReader

    rng = random.Random(seed)
    rows = reader_rows(corpus, split, store, log=log)

    def fine_tune(part: list) -> dict:
        news = news_examples_from(part)
        replay = rng.sample(replay_pool, min(len(replay_pool), len(news)))
        log(f"news stage: {len(news)} windows from {len(part)} questions "
            f"({sum(e.answer is not None for e in news)} holding the answer) + {len(replay)} reading windows")
        return train(model, label_features(news + replay, 256), epochs=epochs, lr=lr, head_lr=head_lr, batch=batch,
                     seed=seed, mode=mode, log=log)

    def reads_of(indices: list[int]) -> dict:
        reader = SpanReader(model)
        return {i: neural_reads(rows[i].item["question"], rows[i].question, rows[i].ranked, TRAIN_WINDOWS, reader)
                for i in indices}

    report: dict = {"split": split or "all", "questions": len(rows)}
    base = {k: v.detach().clone() for k, v in model.state_dict().items() if "word_embeddings" not in k}
    reads: dict = {}
    if cross_fit:
        for h in (0, 1):
            model.load_state_dict(base, strict=False)
            report[f"cross_fit_{h}"] = fine_tune([r for r in rows if half_of(r.group) != h])
            reads.update(reads_of([i for i, r in enumerate(rows) if half_of(r.group) == h]))
        model.load_state_dict(base, strict=False)
    report["train"] = fine_tune(rows)
    if not cross_fit:  # in-sample reads: the confidence model will trust the reader too much
        reads = reads_of(list(range(len(rows))))
    answer, report["answer_model"] = fit_answer_model(rows, [reads[i] for i in range(len(rows))], log=log)
    answer["fitted_on"] = f"{corpus.gold} split={split or 'all'}" + (" (reads cross-fitted)" if cross_fit else "")
    answer_out.write_text(json.dumps(answer, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    report["answer_model_out"] = str(answer_out)
    return report


def main_reader(a) -> int:
    """``python -m eval.fit reader`` (arguments parsed by ``eval.fit``)."""
    from eval.runner import Corpus
    from rag.reader.spanmodel import MODEL_PATH

    try:
        corpus = Corpus.resolve(Path(a.corpus)) if a.corpus and not a.no_corpus else None
        if a.squad is None and corpus is None:
            raise RagError("nothing to fit on: give --squad FILE and/or --corpus DIR")
        report = fit_reader(Path(a.squad) if a.squad else None, out=Path(a.out) if a.out else MODEL_PATH,
                            corpus=corpus, split=None if a.split == "all" else a.split, held_out=a.held_out,
                            folds=a.folds, epochs=a.epochs, news_epochs=a.news_epochs, lr=a.lr, batch=a.batch,
                            mode=a.train, seed=a.seed, limit=a.limit, eval_limit=a.eval_limit,
                            start_from=Path(a.start_from) if a.start_from else None, max_minutes=a.max_minutes,
                            store=a.store, cross_fit=not a.no_cross_fit,
                            log=lambda m: print(m, file=sys.stderr, flush=True))
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return 0
