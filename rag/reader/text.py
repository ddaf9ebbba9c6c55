"""The extractive answer's text: the asked-for span first, then the quoted sentence with its
citation marker ("**9만319명** — … [1]"); for an English question, numbers, money, percentages,
dates and durations also in English and names romanized, with the Korean sentence as evidence."""

from __future__ import annotations

import re

from .candidates import Candidate
from .question import Question
from .spans import Span
from ..types import Citation

ABSTAIN_TEXT = {"ko": "제공된 기사에서 답을 찾을 수 없습니다.", "en": "I couldn't find this in the indexed articles."}
EN_LEAD = "According to the articles (quoted in Korean):"

# English words for Korean counters and units (closed classes; see rag.lexicon).
_EN_UNITS = {
    "명": "people", "곳": "places", "개": "", "건": "cases", "대": "units", "채": "buildings", "가구": "households",
    "세대": "households", "척": "vessels", "마리": "animals", "권": "volumes", "편": "works", "회": "times", "차례": "times",
    "번": "times", "개국": "countries", "종": "kinds", "표": "votes", "석": "seats", "골": "goals", "승": "wins", "패": "losses",
    "경기": "games", "타점": "RBIs", "홈런": "home runs", "안타": "hits", "점": "points", "세": "years old", "층": "floors",
    "개교": "schools", "개사": "companies", "팀": "teams", "원": "won", "달러": "dollars", "엔": "yen", "위안": "yuan",
    "유로": "euros", "파운드": "pounds", "%": "percent", "％": "percent", "퍼센트": "percent", "%p": "percentage points",
    "%포인트": "percentage points", "포인트": "points", "배": "times", "초": "seconds", "분": "minutes", "시간": "hours",
    "일": "days", "주": "weeks", "주일": "weeks", "개월": "months", "달": "months", "년": "years", "mm": "mm", "㎜": "mm",
    "m": "m", "km": "km", "㎞": "km", "㎡": "square meters", "㏊": "hectares", "t": "tonnes", "톤": "tonnes", "kg": "kg",
    "℃": "°C", "도": "degrees",
}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_BIG = {"만": 10_000, "억": 100_000_000, "조": 1_000_000_000_000}
_SMALL = {"천": 1000, "백": 100}


def korean_number(text: str) -> float | None:
    """'8조4천억' -> 8.4e12, '4만 4,200' -> 44200, '282억' -> 2.82e10, '6.4' -> 6.4."""
    t = text.replace(",", "").replace(" ", "")
    if not re.fullmatch(r"[\d.]+(?:[조억만천백]\d*(?:\.\d+)?)*[조억만천백]?", t):
        return None
    total, part = 0.0, 0.0
    for num, unit in re.findall(r"([\d.]*)([조억만천백]?)", t):
        if not num and not unit:
            continue
        value = float(num) if num else 1.0
        if unit in _SMALL:
            part += value * _SMALL[unit]
        elif unit in _BIG:
            total += (part + (value if num else 0.0) or value) * _BIG[unit]
            part = 0.0
        else:
            part += value
    return total + part


def _english_number(x: float) -> str:
    for size, word in ((1e12, "trillion"), (1e9, "billion"), (1e6, "million")):
        if x >= size:
            return f"{x / size:.3g} {word}".replace(".0 ", " ")
    return f"{x:,.0f}" if x == int(x) else f"{x:g}"


def english_rendering(span: Span) -> str | None:
    """An English form of a typed span, or None when there is nothing to add."""
    t = span.text
    if span.kind == "person":
        return _romanize_name(t)
    if span.kind == "date":
        m = re.search(r"(?:(\d{4})\s?년\s?)?(\d{1,2})\s?월\s?(?:(\d{1,2})\s?일)?", t)
        if m and 1 <= int(m.group(2)) <= 12:
            parts = [_MONTHS[int(m.group(2)) - 1]] + ([str(int(m.group(3)))] if m.group(3) else [])
            return " ".join(parts) + (f", {m.group(1)}" if m.group(1) else "")
        m = re.search(r"(오전|오후|새벽|밤|저녁|아침)?\s?(\d{1,2})\s?시(?:\s?(\d{1,2})\s?분)?", t)
        if m:
            hour, minute = int(m.group(2)), int(m.group(3) or 0)
            ampm = "a.m." if m.group(1) in ("오전", "새벽", "아침") else "p.m." if m.group(1) else ""
            return f"{hour}:{minute:02d} {ampm}".strip()
        m = re.search(r"(\d{1,2})\s?일", t)
        return f"day {int(m.group(1))} of the month" if m else None
    m = re.match(r"([\d.,]+(?:\s?[조억만천백]\s?[\d.,]*)*)\s?(?:여|가량|남짓)?\s?(.*)$", t)
    if not m:
        return None
    value = korean_number(m.group(1))
    if value is None:
        return None
    unit = m.group(2).strip()
    unit = re.sub(r"(간|동안|만에|째|께)$", "", unit)
    word = _EN_UNITS.get(unit, "")
    return f"{_english_number(value)} {word}".strip() if word or value >= 10_000 else None


def _romanize_name(name: str) -> str | None:
    """A Korean name in Revised Romanization, family name first ("Jeong Ha-yun")."""
    if not re.fullmatch(r"[가-힣]{2,4}", name):
        return None
    from koroman import romanize

    family, given = name[0], name[1:]
    g = "-".join(romanize(ch).lower() for ch in given)
    return f"{romanize(family).capitalize()} {g.capitalize()}"


def lead_span(c: Candidate) -> Span | None:
    """The span to put first: the first of the asked kind the sentence holds."""
    return c.spans[0] if c.spans else None


def extractive_text(chosen: list[Candidate], q: Question, span: Span | None = None) -> str:
    """"**span** — sentence [1]": the short answer (the reader's span, or on the features path the
    sentence's first span of the asked kind) before the quoted sentence; English questions get English
    renderings of numbers, money, dates and names, and a lead saying the quote is Korean."""
    body = " ".join(f"{c.text} [{i}]" for i, c in enumerate(chosen, 1))
    if span is not None and span.kind != "reason":
        head = span.text
        if q.language == "en":
            en = english_rendering(span)
            head = f"{span.text} ({en})" if en else head
        body = f"**{head}** — {body}"
    return f"{EN_LEAD} {body}" if q.language == "en" else body


def citations_for(chosen: list[Candidate]) -> list[Citation]:
    return [Citation(n=i, article_id=c.hit.chunk.article_id, chunk_id=c.hit.chunk.chunk_id, title=c.hit.chunk.title,
                     publisher=c.hit.chunk.publisher, date=c.hit.chunk.date, quote=c.text, start=c.start,
                     end=c.end, passage=c.hit.chunk.text, passage_start=c.hit.chunk.start,
                     title_derived=c.hit.chunk.title_derived)
            for i, c in enumerate(chosen, 1)]
