"""Typed spans in a Korean sentence: counts, money, percentages, durations, dates and times, other
numbers, person names, places, organisations and stated reasons, read from Kiwi's tags and the
closed classes in ``rag.lexicon`` (counters, units, currencies, titles, name endings)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..korean import analyze
from ..lexicon import (COUNTERS, CURRENCIES, DATE_WORDS, DURATION_UNITS, ORG_SUFFIXES, PLACE_SUFFIXES, REASON_WORDS,
                      TITLES, UNITS)

KINDS = ("count", "money", "percent", "duration", "date", "number", "person", "place", "org", "reason")
# (a proper noun that is neither a person nor clearly a place or an organisation is a "name" span,
# which answers a place or an organisation question)

_NUM = r"(?:\d[\d,]*(?:\.\d+)?(?:\s?[만억조천]\s?(?:\d[\d,]*(?:\.\d+)?)?)*|[한두세네다섯여섯일곱여덟아홉열스무수십백천만]+)"


def _alt(words) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


_MONEY = re.compile(rf"(?:{_NUM})\s?(?:여|가량|남짓)?\s?(?:{_alt(CURRENCIES)})(?!장|칙|인|료|래|전|작|자|리|활|고|룸|형|두)|"
                    r"[$₩€£¥]\s?\d[\d,.]*\s?(?:billion|million|억|만|조)?")
_PERCENT = re.compile(rf"(?:{_NUM})\s?(?:%p|%포인트|%|％|퍼센트|포인트|bp)")
_DURATION = re.compile(rf"(?:{_NUM})\s?(?:여)?\s?(?:{_alt(DURATION_UNITS)})\s?(?:간|동안|만에|째|여간)|"
                       r"(?:\d[\d,.]*|[한두세네]|[일이삼사오육칠팔구십]+)\s?(?:시간|개월|분(?!기|야|석|류|양|할|담|량|의)|초(?!등|반|과|기|선|안|청))|"
                       r"반나절|하루|이틀|사흘|나흘")
_DATE = re.compile(r"\d{4}\s?년(?:\s?\d{1,2}\s?월)?(?:\s?\d{1,2}\s?일)?|\d{1,2}\s?월\s?\d{1,2}\s?일|\d{1,2}\s?월(?:\s?(?:초|중순|말|하순|상순))?|"
                   r"(?<![\d.])\d{1,2}\s?일(?!자|간|째|대|부|반|정|치|본|제|원|선|상)|\d{4}[.-]\d{1,2}[.-]\d{1,2}|"
                   rf"(?:{_alt(('오전', '오후', '새벽', '밤', '저녁', '아침', '낮'))})\s?\d{{1,2}}\s?시(?:\s?\d{{1,2}}\s?분)?(?:께|쯤|경)?|"
                   rf"\d{{1,2}}\s?시\s?\d{{1,2}}\s?분|(?:{_alt(DATE_WORDS)})")
_COUNT = re.compile(rf"(?:{_NUM})\s?(?:여|여개|가량|남짓|만)?\s?({_alt(COUNTERS)})")
_NUMBER = re.compile(rf"(?:{_NUM})\s?(?:{_alt(UNITS)})?")
_TITLE = re.compile(rf"(?:{_alt(TITLES)})")
_ROLE_THEN_NAME = re.compile(rf"(?:{_alt(TITLES + ('선발', '주장', '마무리', '대타', '신인'))})\s+([가-힣]{{2,4}}?)(?=[은는이가의을를과와도,\s]|$)")
_NAME_THEN_TITLE = re.compile(rf"(?<![가-힣])([가-힣]{{2,4}})\s+(?:[가-힣A-Za-z0-9·]+\s+){{0,2}}?[가-힣A-Za-z0-9·]*?"
                              rf"(?:{_alt(TITLES)})(?:은|는|이|가|의|과|와|도|을|를|에게|께서|으로|로)?(?![가-힣])")


@dataclass(frozen=True)
class Span:
    kind: str
    text: str
    start: int
    end: int
    counter: str = ""  # for counts: what is counted ("명")


@lru_cache(maxsize=4096)
def find_spans(text: str) -> tuple[Span, ...]:
    """Every typed span in ``text`` (a span may have several kinds: "3시간" is a duration, and its
    number is not reported again as a bare number)."""
    out: list[Span] = []
    taken: list[tuple[int, int]] = []

    def add(kind, m, counter=""):
        s, e = m.start(), m.end()
        t = text[s:e].strip()
        if t:
            out.append(Span(kind, t, s, e, counter))
            taken.append((s, e))

    def free(m) -> bool:
        return not any(s <= m.start() < e or m.start() <= s < m.end() for s, e in taken)

    for m in _MONEY.finditer(text):
        add("money", m)
    for m in _PERCENT.finditer(text):
        add("percent", m)
    for m in _DATE.finditer(text):
        if free(m):
            add("date", m)
    for m in _DURATION.finditer(text):
        if free(m):
            add("duration", m)
    for m in _COUNT.finditer(text):
        if free(m) and not (m.group(1) in ("분", "초", "일") and text[m.end():m.end() + 1] in "기야석류등반"):
            add("count", m, m.group(1))
    for m in _NUMBER.finditer(text):
        if m.group(0).strip() and re.search(r"\d", m.group(0)) and not any(s <= m.start() < e for s, e in taken):
            add("number", m)
    out.extend(_named(text))
    if any(w in text for w in REASON_WORDS):
        w = next(w for w in REASON_WORDS if w in text)
        i = text.index(w)
        out.append(Span("reason", w, i, i + len(w)))
    return tuple(out)


def _named(text: str) -> list[Span]:
    """Names from Kiwi's proper nouns: a person when a job title follows within three words, a place
    or an organisation by the ending of the name."""
    out = []
    morphs = analyze(text)
    forms = [m.form for m in morphs]
    for i, m in enumerate(morphs):
        if m.tag not in ("NNP", "SL", "NNG") or len(m.form) < 2:
            continue
        start = text.find(m.form)
        if start < 0:
            continue
        nxt = " ".join(forms[i + 1:i + 5])
        if m.tag == "NNP" and re.fullmatch(r"[가-힣]{2,4}", m.form) and re.match(r"(?:\S+\s){0,3}?" + _TITLE.pattern, nxt):
            out.append(Span("person", m.form, start, start + len(m.form)))
        elif m.tag == "NNP" and m.form.endswith(PLACE_SUFFIXES):
            out.append(Span("place", m.form, start, start + len(m.form)))
        elif m.tag in ("NNP", "NNG") and m.form.endswith(ORG_SUFFIXES) and len(m.form) >= 3:
            out.append(Span("org", m.form, start, start + len(m.form)))
        elif m.tag == "NNP":  # a name that does not say what it names: a place or an organisation
            out.append(Span("place" if _place_context(text, start + len(m.form)) else "name", m.form, start,
                            start + len(m.form)))
    # a name Kiwi splits ("남궁찬" -> 남궁 + 찬) still reads as one when a title follows the word
    people = {sp.text for sp in out if sp.kind == "person"}
    proper = {m.form for m in morphs if m.tag == "NNP"}
    # ... and a role before a name ("수비수 문태경", "선발 강민섭의")
    for m in _ROLE_THEN_NAME.finditer(text):
        name = m.group(1)
        if name not in people and name in proper:
            out = [sp for sp in out if sp.text != name]
            out.append(Span("person", name, m.start(1), m.end(1)))
            people.add(name)
    for m in _NAME_THEN_TITLE.finditer(text):
        name = m.group(1)
        if name not in people and (name in proper or any(x.tag == "NNP" for x in analyze(name))):
            out = [sp for sp in out if sp.text != name]
            out.append(Span("person", name, m.start(1), m.end(1)))
            people.add(name)
    return out


def _place_context(text: str, end: int) -> bool:
    """A name followed by 에서/에/으로 ("평택에서") reads as a place."""
    return bool(re.match(r"\s?(?:에서|에|으로|로|까지|부터)(?![가-힣])", text[end:end + 4]))


def spans_of(text: str, kind: str, counter: str = "") -> list[Span]:
    """The spans of ``kind`` (a count of ``counter`` when given; money and percentages also count as
    numbers, a count also as a number)."""
    spans = find_spans(text)
    if kind == "number":
        return [s for s in spans if s.kind in ("number", "count", "money", "percent")]
    if kind in ("place", "org"):
        return [s for s in spans if s.kind in (kind, "name")]
    out = [s for s in spans if s.kind == kind]
    if kind == "count" and counter:
        out = [s for s in out if s.counter == counter] or [s for s in spans if s.kind == "duration" and counter in s.text]
    return out
