"""Kiwi, loaded lazily once: sentence splitting and content morphemes for Korean (and English) text."""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

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

                kiwi = Kiwi()
                kiwi.tokenize("워밍업 문장입니다.")  # the model loads on first use: pay it here
                _kiwi = kiwi
    return _kiwi


def has_hangul(text: str) -> bool:
    return bool(_HANGUL.search(text))


def normalize(text: str) -> str:
    """NFKC and unify the whitespace Kiwi and the user may disagree on."""
    return unicodedata.normalize("NFKC", text)


def split_sentences(text: str, offset: int = 0) -> list[Sentence]:
    """Sentences of ``text`` with offsets (plus ``offset``) into the text they came from."""
    if not text.strip():
        return []
    kiwi = get_kiwi()
    out = []
    with _lock:
        sents = kiwi.split_into_sents(text)
    for s in sents:
        start, end = s.start, s.end
        # Kiwi's offsets are into the string given; trim surrounding whitespace.
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append(Sentence(start + offset, end + offset, text[start:end]))
    return out


@dataclass(frozen=True)
class Morph:
    form: str
    tag: str


def analyze(text: str) -> list[Morph]:
    """Kiwi morphemes of ``text`` (forms normalised, English lowercased)."""
    return list(_analyze_cached(text))


@lru_cache(maxsize=8192)
def _analyze_cached(text: str) -> tuple[Morph, ...]:
    kiwi = get_kiwi()
    with _lock:
        tokens = kiwi.tokenize(normalize(text))
    return tuple(Morph(t.form.lower() if t.tag == "SL" else t.form, t.tag) for t in tokens)


def content_morphemes(text: str) -> list[str]:
    """Content morphemes for keyword search: particles, endings and stop words dropped."""
    return [m.form for m in analyze(text) if m.tag in CONTENT_TAGS and m.form not in _STOP]


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
