"""Kiwi, loaded lazily once: sentence splitting and content morphemes for Korean (and English) text."""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import NamedTuple
from collections import OrderedDict

from .types import Sentence

_lock = threading.Lock()
_kiwi = None

# Content tags kept for keyword search: nouns, numerals, roots, verb/adjective stems,
# foreign words, hanja and numbers. Particles (J*), endings (E*), affixes and punctuation go.
CONTENT_TAGS = frozenset({"NNG", "NNP", "NR", "XR", "VV", "VA", "SL", "SH", "SN", "MAG"})
NOUN_TAGS = frozenset({"NNG", "NNP", "NR", "XR", "SL", "SH", "SN"})
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
# Very common words that carry no topic (kept out of keyword matching).
_STOP = frozenset({
    "것", "수", "등", "때", "중", "이", "그", "저", "더", "또", "및", "위", "통하", "대하", "관하", "하", "되",
    "있", "없", "않", "같", "말하", "밝히", "전하", "알리", "보", "오", "가", "년", "월", "일",
    "the", "a", "an", "of", "to", "in", "on", "for", "and", "or", "is", "are", "was", "were", "be",
    "did", "do", "does", "what", "which", "who", "whom", "when", "where", "why", "how", "with", "at",
    "by", "from", "that", "this", "it", "its", "as", "about", "into", "than", "has", "have", "had",
})


def get_kiwi():
    """The shared Kiwi analyzer (created on first use; Kiwi is ~0.5 GB, so one per process)."""
    global _kiwi
    if _kiwi is None:
        with _lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                # The multi-word and typo dictionaries cost 2.5 s of start-up and changed no eval
                # result (measured with ``rag eval``); edited news text needs neither.
                # num_workers=-1: a thread per core for batches (``parse_many``); a single text
                # is still analysed on the calling thread.
                kiwi = Kiwi(num_workers=-1, load_multi_dict=False, load_typo_dict=False)
                kiwi.tokenize("워밍업 문장입니다.")  # the model loads on first use: pay it here
                _kiwi = kiwi
    return _kiwi


def has_hangul(text: str) -> bool:
    return bool(_HANGUL.search(text))


def normalize(text: str) -> str:
    """NFKC and unify the whitespace Kiwi and the user may disagree on."""
    return unicodedata.normalize("NFKC", text)


class Morph(NamedTuple):
    """One morpheme: its form and Kiwi tag (a named tuple: ingest makes millions of them)."""

    form: str
    tag: str


def split_sentences(text: str, offset: int = 0) -> list[Sentence]:
    """Sentences of ``text`` with offsets (plus ``offset``) into the text they came from."""
    return [sent for sent, _ in split_analyzed(text, offset)]


def split_analyzed(text: str, offset: int = 0) -> list[tuple[Sentence, tuple["Morph", ...]]]:
    """Sentences of ``text`` with their morphemes, from one Kiwi pass (cached by text, so cleaning,
    sentence splitting and keyword indexing of the same paragraph analyse it once)."""
    if not text.strip():
        return []
    parsed = _parse(text)  # cached: keyword indexing re-reads the sentences the split produced
    out = []
    for start, end, morphs in parsed:
        # Kiwi's offsets are into the string given; trim surrounding whitespace.
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((Sentence(start + offset, end + offset, text[start:end]), morphs))
    return out


def analyze(text: str) -> list[Morph]:
    """Kiwi morphemes of ``text`` (forms normalised, English lowercased)."""
    return [m for _, _, morphs in _parse(normalize(text)) for m in morphs]


# Kiwi's analyses by text, most recent last: an article's paragraphs are analysed once for cleaning,
# splitting and indexing. A memo of our own, not functools.lru_cache, because ``parse_many`` fills it
# with a whole page's blocks from one multi-threaded Kiwi call.
_MEMO_SIZE = 8192
_memo: OrderedDict[str, tuple] = OrderedDict()
_memo_lock = threading.Lock()


def _parse(text: str) -> tuple[tuple[int, int, tuple[Morph, ...]], ...]:
    with _memo_lock:
        hit = _memo.get(text)
        if hit is not None:
            _memo.move_to_end(text)
            return hit
    kiwi = get_kiwi()
    with _lock:
        parsed = _convert(kiwi.split_into_sents(text, return_tokens=True))
    _remember(text, parsed)
    return parsed


def parse_many(texts) -> None:
    """Analyse those of ``texts`` not analysed yet in one Kiwi call, which spreads them over Kiwi's
    threads (one per core): ingest hands it a page's blocks before cleaning reads them one by one."""
    with _memo_lock:
        todo = [t for t in dict.fromkeys(texts) if t.strip() and t not in _memo]
    if len(todo) < 2:
        return
    kiwi = get_kiwi()
    with _lock:
        results = [_convert(sents) for sents in kiwi.split_into_sents(todo, return_tokens=True)]
    for text, parsed in zip(todo, results):
        _remember(text, parsed)


def _convert(sents) -> tuple[tuple[int, int, tuple[Morph, ...]], ...]:
    return tuple((s.start, s.end, tuple(Morph(t.form.lower() if t.tag == "SL" else t.form, t.tag) for t in s.tokens or ()))
                 for s in sents)


def _remember(text: str, parsed: tuple) -> None:
    with _memo_lock:
        _memo[text] = parsed
        _memo.move_to_end(text)
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)


def content_of(morphs) -> list[str]:
    """Content morphemes among already analysed ``morphs``."""
    return [m.form for m in morphs if m.tag in CONTENT_TAGS and m.form not in _STOP]


def content_morphemes(text: str) -> list[str]:
    """Content morphemes for keyword search: particles, endings and stop words dropped."""
    return content_of(analyze(text))


def key_terms(text: str) -> list[str]:
    """Noun-like content terms (what a question is about), deduplicated in order."""
    seen: dict[str, None] = {}
    for m in analyze(text):
        if m.tag in NOUN_TAGS and m.form not in _STOP:
            seen.setdefault(m.form, None)
    return list(seen)


def proper_and_numbers(text: str) -> tuple[list[str], list[str]]:
    """Proper nouns (incl. foreign words) and numbers Kiwi finds in ``text``."""
    names, numbers = [], []
    for m in analyze(text):
        if m.tag in ("NNP", "SL", "SH") and m.form not in _STOP:
            names.append(m.form)
        elif m.tag in ("SN", "NR"):
            numbers.append(m.form)
    return names, numbers
