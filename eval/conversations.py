"""Multi-turn conversations: does a follow-up use the conversation, and does a complete new question
stay as it is? Each conversation's first turn is asked alone, the second with the first as history,
and the second is also asked alone (the ablation: what the conversation adds or spoils).

    python -m eval.conversations [--file eval/corpus/conversations.jsonl] [--split dev] [--store DIR]

A line: {"id", "split", "second_turn": "followup" | "new", "turns": [turn, turn]}, each turn with
"question", "answers", "sources", "evidence" as in gold.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load(path: Path, split: str | None) -> list[dict]:
    convs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [c for c in convs if split is None or c.get("split") == split]


def correct(answer, turn: dict) -> bool:
    from eval.runner import norm

    return not answer.abstained and any(norm(a) in norm(answer.text) for a in turn["answers"])


def run(convs: list[dict], settings) -> dict:
    from rag.qa import ask

    rows = []
    for c in convs:
        first, second = c["turns"]
        a1 = ask(first["question"], settings=settings)
        with_history = ask(second["question"], history=[(first["question"], a1.text)], settings=settings)
        alone = ask(second["question"], settings=settings)
        rows.append({"id": c["id"], "kind": c["second_turn"], "rewritten": with_history.standalone_question,
                     "with_history": correct(with_history, second), "alone": correct(alone, second)})
    out = {}
    for kind in ("followup", "new"):
        sel = [r for r in rows if r["kind"] == kind]
        if sel:
            out[kind] = {"n": len(sel), "with_history": round(sum(r["with_history"] for r in sel) / len(sel), 4),
                         "alone": round(sum(r["alone"] for r in sel) / len(sel), 4),
                         "rewritten": sum(r["rewritten"] != c_q for r, c_q in
                                          zip(sel, [c["turns"][1]["question"] for c in convs if c["second_turn"] == kind]))}
    out["rows"] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    from eval.runner import Corpus, _ingest
    from rag.errors import RagError
    from rag.settings import Settings

    p = argparse.ArgumentParser(prog="python -m eval.conversations", description=__doc__.split("\n")[0])
    p.add_argument("--file", type=Path, default=ROOT / "eval" / "corpus" / "conversations.jsonl")
    p.add_argument("--corpus", type=Path, default=ROOT / "eval" / "corpus")
    p.add_argument("--split", default="dev")
    p.add_argument("--store", type=Path, help="a store of the split's pages (default: built in a temporary folder)")
    a = p.parse_args(argv)
    try:
        settings = Settings.from_env()
        convs = load(a.file, a.split)
        with tempfile.TemporaryDirectory(prefix="rag-conv-") as tmp:
            store = a.store or Path(tmp) / "store"
            settings = replace(settings, store_dir=store, chroma_url=None)
            if not (store / "chroma.sqlite3").exists():
                _ingest(Corpus.resolve(a.corpus).page_files(a.split), settings, True)
            report = run(convs, settings)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for kind in ("followup", "new"):
        if kind in report:
            r = report[kind]
            print(f"{kind:8s} n={r['n']:2d}  right with the conversation {r['with_history']:.2f}  "
                  f"asked alone {r['alone']:.2f}  questions rewritten {r['rewritten']}/{r['n']}")
    for r in report["rows"]:
        print(f"  {r['id']} {r['kind']:8s} history {'ok ' if r['with_history'] else 'bad'} alone "
              f"{'ok ' if r['alone'] else 'bad'} -> {r['rewritten']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
