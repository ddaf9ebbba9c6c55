"""The ``rag`` command: ingest, clean, ask, eval, ui. Errors become one line and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .errors import RagError
from .settings import Settings, mask_credentials

SAMPLE_QUESTION = "샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="DIR", help="store folder (default: $RAG_STORE, else the user data dir)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Korean news Q&A with checked citations, offline.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="clean, chunk, embed and store article pages (.txt/.html files or folders)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--prune", action="store_true", help="remove stored articles whose files are gone")
    p.add_argument("--replace", action="store_true",
                   help="let a file replace a stored article of the same name that came from another path")
    p.add_argument("--rebuild", action="store_true",
                   help="build a new store from these pages beside the old one (e.g. after changing embedder), and "
                        "replace the old one only when at least one page was ingested")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="split the files over N processes (needs a Chroma server: RAG_CHROMA_URL)")
    _common(p)

    p = sub.add_parser("clean", help="show what cleaning keeps and drops in a page, and why")
    p.add_argument("file", metavar="FILE")
    _common(p)

    p = sub.add_parser("ask", help="answer a question from the stored articles, with citations")
    p.add_argument("question")
    p.add_argument("--k", type=int, help="passages to retrieve (default $RAG_K or 10)")
    p.add_argument("--publisher", action="append", help="only this publisher (repeatable)")
    p.add_argument("--since", help="only articles dated on or after YYYY-MM-DD")
    p.add_argument("--until", help="only articles dated on or before YYYY-MM-DD")
    p.add_argument("--mode", choices=["auto", "extractive", "llm"], help="answer mode (default $RAG_ANSWER_MODE or auto)")
    _common(p)

    p = sub.add_parser("eval", help="score the pipeline against gold Q&A pairs on any folder of pages")
    p.add_argument("--corpus", metavar="DIR",
                   help="folder of pages, or a folder holding pages/, gold.jsonl and labels.jsonl (default: seeds/)")
    p.add_argument("--gold", help="gold file (JSONL; default: DIR/gold.jsonl, or eval/gold.jsonl for the seeds)")
    p.add_argument("--labels", help="cleaning labels (JSONL; default: DIR/labels.jsonl when present)")
    p.add_argument("--split", choices=["dev", "test"], help="only this split's pages and questions (needs labels)")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--pipeline", choices=["default", "naive", "both"], default="default",
                   help="ours, a plain LangChain pipeline, or both side by side")
    p.add_argument("--no-clean", action="store_true", help="ablation: ingest raw pages")
    p.add_argument("--no-bm25", action="store_true", help="ablation: dense retrieval only")
    p.add_argument("--no-verify", action="store_true", help="ablation: never abstain")
    p.add_argument("--out", metavar="FILE", help="write the JSON report here")
    p.add_argument("--html", metavar="FILE", help="write an HTML report with charts here")
    p.add_argument("--store", metavar="DIR", help="evaluate this store instead of a fresh one built from the corpus pages")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    p.add_argument("--squad", metavar="FILE",
                   help="a SQuAD-style JSON file (SQuAD 1.1/2.0, KorQuAD, KLUE-MRC, your own): its paragraphs become "
                        "pages of a scratch store and every question is asked against all of them")
    p.add_argument("--given-context", action="store_true",
                   help="with --squad: read each question against its own paragraph only (reading without retrieval)")
    p.add_argument("--squad-fold", metavar="K/N", help="with --squad: only the articles of fold K of N (as the reader fit "
                                                      "holds fold 0/8 of KorQuAD out)")
    p.add_argument("--limit", type=int, help="with --squad: the first N questions only")

    p = sub.add_parser("ui", help="serve the chat page (loopback by default)")
    p.add_argument("--port", type=int, default=7860, help="TCP port to serve on, 1 to 65535 (default 7860)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind; anything but loopback requires RAG_UI_USER and RAG_UI_PASSWORD")
    p.add_argument("--trusted-proxy", metavar="ADDRS",
                   help="comma-separated addresses or networks of reverse proxies in front of the page: their "
                        "X-Forwarded-For header names the client (the login back-off counts failures per client). "
                        "Default: none; the connecting address is the client")
    _common(p)

    p = sub.add_parser("doctor", help="check the store for inconsistencies (and --repair them); says when it is empty")
    p.add_argument("--repair", action="store_true", help="re-ingest or remove broken articles, delete orphans, rebuild the keyword index")
    _common(p)

    p = sub.add_parser("articles", help="list the stored articles")
    _common(p)

    p = sub.add_parser("bench", help="measure ingest and query cost at 1k/10k/100k chunks beside a plain LangChain pipeline",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="see rag bench --help")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # its own options (eval/bench.py)
        from eval.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command != "eval":
            settings = settings.with_(store_dir=getattr(args, "store", None))
        handler = globals()[f"_cmd_{args.command}"]
        return handler(args, settings)
    except RagError as e:
        print(f"rag {args.command}: {mask_credentials(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rag {args.command}: interrupted", file=sys.stderr)
        return 130


def _cmd_ingest(args, settings: Settings) -> int:
    from ingest.parallel import ingest_parallel

    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=0, unit="file", file=sys.stderr)

    def progress(path: str, n: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.set_postfix_str(os.path.basename(path)[:30])
            bar.update(1)

    report = ingest_parallel(args.paths, settings, args.workers, prune=args.prune, progress=progress,
                             replace=args.replace, rebuild=args.rebuild)
    if bar is not None:
        bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for f in report.files:
            if f.status == "failed":
                print(f"FAILED  {f.message}", file=sys.stderr)
            elif f.status == "skipped":
                print(f"skipped   {f.message}", file=sys.stderr)
            else:
                print(f"{f.status:9s} {f.article_id}  ({f.chunks} chunks)")
        d = report.to_dict()
        print(f"documents: {d['new']} new, {d['changed']} changed, {d['unchanged']} unchanged, "
              f"{d['failed']} failed, {d['pruned']} pruned, {d['skipped']} skipped; chunks written: {d['chunks_written']}; "
              f"{d['seconds']:.1f} s ({d['embed_seconds']:.1f} s embedding) -> "
              f"{mask_credentials(str(settings.chroma_url or settings.store_dir))}")
    return 1 if report.failed else 0


def _cmd_clean(args, settings: Settings) -> int:
    from pathlib import Path

    from ingest.pipeline import clean_file

    from .embed import get_embedder

    result = clean_file(Path(args.file), settings, get_embedder(settings))
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return 0
    a = result.article
    print(f"title:     {a.title}" + ("  (derived from the first sentence: no line of the page passed)" if a.title_derived else ""))
    _print_choice(result.title)
    print(f"publisher: {a.publisher or '-'}\nreporter:  {a.reporter or '-'}\ndate:      {a.date or '-'}"
          + ("" if a.date or result.date is None else "  (the page states no article date)"))
    _print_choice(result.date)
    kept = sum(b.kept for b in result.blocks)
    print(f"blocks:    {kept} kept, {len(result.blocks) - kept} dropped\n")
    print("block  p(article)  decision                 text  (the features that pushed hardest)")
    for b in result.blocks:
        mark = "KEEP" if b.kept else "DROP"
        text = b.text if len(b.text) <= 70 else b.text[:67] + "..."
        score = "  -  " if b.score is None else f"{b.score:.3f}"
        why = ", ".join(f"{name} {v:+.1f}" for name, v in b.why)
        print(f"{mark} {b.index:4d}  {score}  {b.reason[:24]:24s} {text}" + (f"  ({why})" if why else ""))
    return 0


def _print_choice(choice) -> None:
    """The score of a title or date choice, its runner-up, and the features that decided each."""
    if choice is None:
        return

    def line(c) -> str:
        where = f"block {c.block}" if c.block >= 0 else "page metadata"
        text = c.value if len(c.value) <= 60 else c.value[:57] + "..."
        why = ", ".join(f"{name} {v:+.1f}" for name, v in c.why)
        return f"{c.score:.3f} {where}: {text}  ({why})"

    if choice.chosen is not None:
        print(f"           chosen    {line(choice.chosen)}")
    label = "runner-up" if choice.chosen is not None else "best     "
    print(f"           {label} " + (line(choice.runner_up) if choice.runner_up else "none")
          + f"  [threshold {choice.threshold:.2f}]")


def _cmd_ui(args, settings: Settings) -> int:
    from ui.app import launch

    launch(settings, host=args.host, port=args.port, user=os.environ.get("RAG_UI_USER"),
           password=os.environ.get("RAG_UI_PASSWORD"), announce=lambda line: print(line, flush=True),
           proxies=args.trusted_proxy)
    return 0


def _cmd_doctor(args, settings: Settings) -> int:
    from ingest.doctor import check_store

    report = check_store(settings, repair=args.repair)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"{report.articles} articles, {report.chunks} chunks, {report.sentences} sentences in "
              f"{mask_credentials(str(settings.chroma_url or settings.store_dir))}")
        for p in report.problems:
            print(f"PROBLEM  {p}")
        for r in report.repairs:
            print(f"REPAIRED {r}")
        for n in report.notes:
            print(f"NOTE     {n}")
        verdict = "consistent" if report.ok else ("repaired" if report.repairs else "inconsistent: run rag doctor --repair")
        if report.empty and (report.ok or report.repairs):  # not an error (a new store), but never "healthy"
            verdict += ", but EMPTY: the store holds no article (add pages with rag ingest PATH)"
        print(verdict)
    return 0 if report.ok or report.repairs else 1


def _cmd_articles(args, settings: Settings) -> int:
    from .embed import get_embedder
    from .store import get_store

    arts = get_store(settings, get_embedder(settings)).articles()
    if args.json:
        print(json.dumps({aid: a.to_dict() for aid, a in arts.items()}, ensure_ascii=False, indent=2))
    else:
        for aid, a in sorted(arts.items()):
            print(f"{aid}  {a.date or '----------'}  {a.publisher or '-':12s}  {a.chunks:3d} chunks  {a.title}")
        print(f"{len(arts)} articles")
    return 0


def _cmd_eval(args, settings: Settings) -> int:
    from pathlib import Path

    from eval.cleaning import format_cleaning
    from eval.runner import Corpus, evaluate, format_breakdown, format_table, html_report

    pipelines = ["default", "naive"] if args.pipeline == "both" else [args.pipeline]
    if args.squad:
        from eval.squad import evaluate_squad

        if args.corpus or args.gold or args.split or args.store:
            raise RagError("--squad brings its own pages and questions: drop --corpus, --gold, --split and --store")
        reports = [evaluate_squad(Path(args.squad), settings=settings, pipeline=p, given_context=args.given_context,
                                  fold=args.squad_fold, limit=args.limit, k=args.k) for p in pipelines]
    else:
        if args.given_context or args.squad_fold or args.limit:
            raise RagError("--given-context, --squad-fold and --limit go with --squad FILE")
        corpus = Corpus.resolve(Path(args.corpus) if args.corpus else None, args.gold, args.labels)
        reports = [evaluate(settings=settings, k=args.k, store=Path(args.store) if args.store else None, corpus=corpus,
                            split=args.split, pipeline=p, clean=not args.no_clean, bm25=not args.no_bm25,
                            verify=not args.no_verify)
                   for p in pipelines]
    keys = ("n", "hit_at_1", "hit_at_5", "evidence_at_5", "mrr_at_10", "answer_accuracy", "short_em", "short_f1",
            "citation_precision", "abstain_recall", "false_abstain", "overall_accuracy", "boilerplate_leak",
            "latency_p50_ms", "latency_p95_ms", "split", "squad", "by_lang", "by_qtype", "by_section",
            "by_unanswerable", "cleaning", "failures")
    exact = [{k: r[k] for k in keys if k in r} for r in reports]
    payload = exact[0] if len(exact) == 1 else {r["pipeline"]: e for r, e in zip(reports, exact)}
    if args.out:
        # one file per pipeline, each with exactly the report's keys: FILE, then FILE.naive.json
        for i, (r, e) in enumerate(zip(reports, exact)):
            target = Path(args.out) if i == 0 else Path(f"{args.out}.{r['pipeline']}.json")
            target.write_text(json.dumps(e, ensure_ascii=False, indent=2), encoding="utf-8")
    if args.html:
        Path(args.html).write_text(html_report(reports), encoding="utf-8")
    if args.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print(format_table(reports))
        for key in ("by_qtype", "by_section"):
            table = format_breakdown(reports, key)
            if table:
                print("\n" + table)
        for r in reports:
            if r.get("by_unanswerable"):
                print(f"\n{r['pipeline']}: abstain recall by kind of unanswerable question\n" + "\n".join(
                    f"  {k:32s} n={v['n']:3d}  {v['abstain_recall']:.2f}" for k, v in r["by_unanswerable"].items()))
        for r in reports:
            if r.get("cleaning"):
                print("\n" + format_cleaning(r["cleaning"]))
        for r in reports:
            print(f"\n{r['pipeline']}: {len(r['failures'])} failing items: " + ", ".join(
                f"{f['id']}({'/'.join(f['failed'])})" for f in r["failures"]))
    return 0


def _cmd_ask(args, settings: Settings) -> int:
    from .qa import ask, clean_question, warm_up
    from .records import date_int

    settings = settings.with_({"k": "--k", "answer_mode": "--mode"}, k=args.k, answer_mode=args.mode)
    for flag, value in (("--since", args.since), ("--until", args.until)):
        if value is not None:
            date_int(value, flag)  # a bad date fails before any loading, naming its flag
    q = clean_question(args.question, settings.max_question_chars)  # a bad question fails before any loading
    from .reader.question import question_language

    warm_up(settings, english=question_language(q) == "en")
    filters = {"publisher": args.publisher, "since": args.since, "until": args.until}
    answer = ask(args.question, filters={k: v for k, v in filters.items() if v}, settings=settings)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(answer.text)
    print(f"\n(confidence {answer.confidence:.2f}{', not found' if answer.abstained else ''})")
    if answer.notice:
        print(f"\n({answer.notice})")
    if answer.undated_left_out:
        print(f"\n(the date filter left out {answer.undated_left_out} stored article(s) that state no date)")
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            meta = ", ".join(x for x in (c.publisher, c.date) if x)
            print(f"  [{c.n}] {c.title} ({meta}) — {c.article_id}\n      “{c.quote}”")
    elif answer.abstained and answer.retrieved:
        print("\nClosest passages:")
        for h in answer.retrieved[:3]:
            print(f"  - {h.chunk.title} ({h.chunk.article_id}): {h.chunk.text[:100]}…")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
