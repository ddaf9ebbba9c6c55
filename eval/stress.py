"""How the work per file grows with one huge paragraph: cleaning and sentence splitting time for
single-paragraph pages of increasing size, and the refusal of a page over RAG_MAX_PAGE_CHARS.

    python -m eval.stress [--sizes 20000,100000,200000,700000]

Kiwi's splitter costs more than linearly in its input; pages are cut into paragraphs of at most
``ingest.blocks.MAX_BLOCK_CHARS`` first, so the time should grow about linearly.
"""

from __future__ import annotations

import argparse
import time

def paragraph(n: int) -> str:
    """One paragraph of ``n`` characters with no line break (distinct sentences, so none is a repeat)."""
    parts, size, i = [], 0, 0
    while size < n:
        s = f"가람시는 {i}번째 폐교 부지에 청소년 도서관을 짓는다고 밝혔다. 총사업비는 {186 + i}억 원이다. "
        parts.append(s)
        size += len(s)
        i += 1
    return "".join(parts)[:n]


def main(argv: list[str] | None = None) -> int:
    from ingest.chunk import article_sentences
    from ingest.pipeline import clean_bytes
    from rag.errors import DocumentError
    from rag.korean import get_kiwi
    from rag.settings import Settings

    p = argparse.ArgumentParser(prog="python -m eval.stress", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="20000,100000,200000,700000")
    a = p.parse_args(argv)
    get_kiwi()
    limit = Settings().max_page_chars
    for n in (int(x) for x in a.sizes.split(",")):
        text = "가람일보\n" + paragraph(n) + "\n"
        t0 = time.perf_counter()
        try:
            article = clean_bytes(text.encode("utf-8"), "huge", None, max_chars=limit).article
            t1 = time.perf_counter()
            sentences = article_sentences(article)
            t2 = time.perf_counter()
            print(f"{n:>9,} chars: clean {t1 - t0:6.2f} s, sentence split {t2 - t1:6.2f} s "
                  f"({len(sentences):,} sentences)", flush=True)
        except DocumentError as e:
            print(f"{n:>9,} chars: refused in {time.perf_counter() - t0:.2f} s: {e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
