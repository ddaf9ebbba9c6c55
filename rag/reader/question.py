"""What a question asks: its language, the kind of answer it wants (a count of what, an amount, a
date, a person...), and the terms, names and numbers an answer should share with it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..korean import analyze, has_hangul
from ..lexicon import ASK_EN, ASK_KO, COUNTERS, QUESTION_WORDS_KO as _QWORDS

_ASK_KO = tuple((kind, re.compile(p)) for kind, p in ASK_KO)
_ASK_EN = tuple((kind, re.compile(p, re.I)) for kind, p in ASK_EN)
_EN_STOP = frozenset("""
a an the of to in on for and or is are was were be been being did do does what which who whom whose when where
why how many much with at by from that this it its as about into than has have had will would can could should
there their they them he she his her i you we our your not no yes so if then also after before during between
over under up down out off again per each other any some such only own same too very just most more less least
first last did say said tell told get got make made
""".split())
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z0-9]|[A-Za-z]|\d[\d,.]*")
_NUMBER = re.compile(r"\d[\d,.]*")


@dataclass(frozen=True)
class Question:
    text: str
    language: str  # "ko" or "en"
    kind: str | None  # see rag.reader.spans.KINDS; None when the question word does not say
    counter: str = ""  # a Korean count's counter ("몇 명" -> "명")
    terms: tuple[str, ...] = ()  # Korean content morphemes (a Korean question) or English content words
    verbs: tuple[str, ...] = ()  # the terms that are predicates (often paraphrased in the answer)
    names: tuple[str, ...] = ()  # proper nouns / capitalised words / acronyms
    numbers: tuple[str, ...] = ()
    english_words: tuple[tuple[str, bool], ...] = field(default=())  # for the term bridge


def question_language(text: str) -> str:
    return "ko" if has_hangul(text) else "en"


@lru_cache(maxsize=4096)
def analyze_question(text: str) -> Question:
    """Read a question: ``analyze_question("몇 명이 대피했나?").kind == "count"``."""
    language = question_language(text)
    kind, counter, asked = _asked_kind(text, language)
    numbers = tuple(dict.fromkeys(n.strip(",.") for n in _NUMBER.findall(text)))
    if language == "ko":
        terms, names, verbs = [], [], []
        morphs = analyze(text)
        for i, m in enumerate(morphs):
            if m.form in _QWORDS or (m.form in COUNTERS and m.tag == "NNB") or (counter and m.form == counter):
                continue
            if m.form in asked:  # a word of the question phrase itself ("얼마 동안", "몇 명")
                continue
            nxt = morphs[i + 1].tag if i + 1 < len(morphs) else ""
            if m.tag in ("VV", "VA") or (m.tag == "NNG" and nxt.startswith(("XSV", "XSA"))):  # "진행(되다)"
                verbs.append(m.form)
            if m.tag in ("NNP", "SL", "SH"):
                names.append(m.form)
                terms.append(m.form)
            elif m.tag in ("NNG", "XR", "NR", "SN") or (m.tag in ("VV", "VA") and len(m.form) > 1):
                terms.append(m.form)
        return Question(text, language, kind, counter, tuple(dict.fromkeys(terms)), tuple(dict.fromkeys(verbs)),
                        tuple(dict.fromkeys(names)), numbers)
    from ..bridge import english_words

    words = english_words(text)
    terms = [w.lower() for w, _ in words if w.lower() not in _EN_STOP and w.lower() not in asked]
    names = [w for w, is_name in words if is_name or w.isupper()]
    return Question(text, language, kind, counter, tuple(dict.fromkeys(terms)), (), tuple(dict.fromkeys(names)), numbers,
                    tuple(words))


def _asked_kind(text: str, language: str) -> tuple[str | None, str, frozenset[str]]:
    """The kind asked for, a Korean count's counter, and the words of the question phrase itself
    (which the answer will not repeat: "얼마 동안", "which official")."""
    patterns = _ASK_KO if language == "ko" else _ASK_EN
    if language == "en":
        # English puts the question's own wh-phrase first ("Which official promised ... how much"):
        # the earliest match decides, the list's order only breaks ties
        found = [(m.start(), i, kind, m) for i, (kind, pattern) in enumerate(patterns) if (m := pattern.search(text))]
        if not found:
            return None, "", frozenset()
        m = min(found, key=lambda f: f[:2])
        return m[2], "", frozenset(w.lower() for w in re.findall(r"[A-Za-z]+", m[3].group(0)) if w.lower() in _EN_STOP)
    for kind, pattern in patterns:
        m = pattern.search(text)
        if not m:
            continue
        asked = frozenset(x.form for x in analyze(m.group(0)))
        if kind == "count":
            after = re.sub(r"^몇\s*", "", m.group(0))
            counter = next((c for c in sorted(COUNTERS, key=len, reverse=True) if after.startswith(c)), "")
            if counter in ("시간", "분", "초", "개월", "년", "일", "주", "달"):
                return "duration", counter, frozenset({counter})
            return "count", counter, frozenset({counter}) if counter else frozenset()
        return kind, "", asked
    return None, "", frozenset()
