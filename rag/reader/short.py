"""The short answer: the reader's span made a phrase a person would write, and how short answers are
scored (exact match and character F1, as KorQuAD and SQuAD score them).

XLM-R's pieces often fuse a Korean particle or copula into the answer's last token ("스를", "점을"),
so a span read off token boundaries carries it. Kiwi tells a particle (J*), an ending (E*) or the
copula (VCP) attached to the span's last word, and those are trimmed; what a word is made of is
Kiwi's closed class of tags, not a list of our own.
"""

from __future__ import annotations

import re
import unicodedata

_TRIM_TAGS = ("J", "E", "VCP", "SF", "SP", "SE")  # particles, endings, the copula, sentence punctuation
_OPEN, _CLOSE = "([{<\"'“‘「『《〈", ")]}>\"'”’」』》〉"


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` of ``text`` without the particles, endings and punctuation fused to its last
    word, surrounding spaces, or an unmatched bracket or quote at either end. The words are read in
    their sentence (alone, "텔만" reads as 텔 + the particle 만)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return start, end
    if re.search(r"[\uac00-\ud7a3]", text[start:end]):
        end = _without_particles(text, start, end)
    return start, _strip_unmatched(text, start, end)


def _without_particles(text: str, start: int, end: int) -> int:
    from ..korean import get_kiwi

    # the sentence around the span is context enough; a long text is not analysed whole
    lo = max(0, max(text.rfind(c, 0, start) for c in ".?!\n") + 1, start - 200)
    hi = min(len(text), end + 40)
    word_start = max(start, text.rfind(" ", start, end) + 1)
    tokens = [t for t in get_kiwi().tokenize(text[lo:hi]) if word_start <= lo + t.start < end]
    tail = []
    for t in reversed(tokens):  # the particles, copula, endings and punctuation closing the last word
        if not t.tag.startswith(_TRIM_TAGS) or lo + t.start <= word_start:
            break
        tail.insert(0, t)
    # an ending goes only with the copula before it ("…이다", "…였다"): a verb's own ending stays
    while tail and tail[0].tag.startswith("E"):
        tail.pop(0)
    if not tail:
        return end
    cut = lo + tail[0].start
    # a one-word span with a one-syllable stem is more often a name Kiwi split ("텔만" -> 텔 + 만) than a
    # word with a particle ("3만 원이었다" is not one word)
    if word_start == start and cut - word_start < 2 and not all(t.tag.startswith("S") for t in tail):
        return end
    return cut


def _strip_unmatched(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in ",.·:;!?":
        end -= 1
    span = text[start:end]
    for o, c in zip(_OPEN, _CLOSE):
        if span.endswith(o) or (span.endswith(c) and span.count(o) < span.count(c) and o != c):
            end -= 1
            span = text[start:end]
    return end


def normalize_answer(text: str) -> str:
    """NFKC, casefold, no whitespace or punctuation: the form exact match and F1 compare."""
    t = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in t if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def exact_match(prediction: str, golds: list[str]) -> float:
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds)) if golds else 0.0


def char_f1(prediction: str, golds: list[str]) -> float:
    """The best character-overlap F1 against any gold answer (KorQuAD's measure: Korean words carry
    particles, so characters, not words, are what overlap)."""
    from collections import Counter

    p = normalize_answer(prediction)
    best = 0.0
    for g in golds:
        g = normalize_answer(g)
        if not p or not g:
            best = max(best, float(p == g))
            continue
        common = sum((Counter(p) & Counter(g)).values())
        if common:
            prec, rec = common / len(p), common / len(g)
            best = max(best, 2 * prec * rec / (prec + rec))
    return best
