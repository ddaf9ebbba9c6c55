"""Reading windows: what the span reader reads for a question.

The feature ranker (``rag.reader.ranker``) orders every sentence of the retrieved passages; a window is
a ranked sentence with its neighbours in the passage, so that an answer one sentence away from the
question's words ("…로 통합한다. 밤 11시 이후 … 노선이라는 뜻이다.") or a reference to the sentence
before ("그중 누리로봇은 …") is in view. The best-ranked sentences each give a window, skipping a
sentence already inside a window taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..types import Hit, Sentence

MAX_CHARS = 700  # about 230 of the encoder's tokens of Korean news: what a read holds beside the question


@dataclass(frozen=True)
class Window:
    """Whole sentences of one retrieved passage, with offsets into the cleaned article text."""

    hit: Hit
    start: int
    end: int
    text: str
    sentences: tuple[Sentence, ...]
    anchor: object  # the ranked Candidate it was built around
    rank: int  # 0 for the window of the best-ranked sentence

    def sentence_at(self, offset: int) -> Sentence:
        """The window's sentence holding article offset ``offset`` (the last one starting before it)."""
        found = self.sentences[0]
        for s in self.sentences:
            if s.start <= offset:
                found = s
        return found


def reading_windows(ranked: list, n: int, neighbours: int = 1, max_chars: int = MAX_CHARS) -> list[Window]:
    """Up to ``n`` windows from the ranked candidates (best first): each candidate's sentence with up to
    ``neighbours`` sentences either side from its passage, the farther ones left out when the window
    would be longer than ``max_chars``."""
    out: list[Window] = []
    covered: set[tuple[str, int]] = set()
    for c in ranked:
        if len(out) >= n:
            break
        chunk = c.hit.chunk
        if (chunk.article_id, c.start) in covered:
            continue
        sents = chunk.sentences
        i = next((k for k, s in enumerate(sents) if s.start == c.start), None)
        if i is None:
            continue
        lo, hi = max(0, i - neighbours), min(len(sents) - 1, i + neighbours)
        while sents[hi].end - sents[lo].start > max_chars and (lo < i or hi > i):
            if i - lo >= hi - i and lo < i:  # drop the sentence before first: an answer follows its cue more often
                lo += 1
            else:
                hi -= 1
        picked = sents[lo:hi + 1]
        text = chunk.text[picked[0].start - chunk.start:picked[-1].end - chunk.start]
        out.append(Window(c.hit, picked[0].start, picked[-1].end, text, tuple(picked), c, len(out)))
        covered.update((chunk.article_id, s.start) for s in picked)
    return out
