"""Extractive answering: pick the sentence(s) of the retrieved passages that answer the question,
and decide from the evidence itself whether they do (abstention).

A sentence is scored by its cross-lingual similarity to the question (e5 vectors stored at ingest),
how much of the question's key terms it covers (Kiwi morphemes, proper nouns weighted up), and
whether it holds the kind of thing asked for (a number, a date, a person, a place). Abstention looks
at the same evidence: a question whose names or asked-for kind are missing from the best sentence
is not answered, whatever the retrieval score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .korean import analyze, has_hangul
from .types import Citation, Hit

ABSTAIN_TEXT = {"ko": "제공된 기사에서 답을 찾을 수 없습니다.", "en": "I couldn't find this in the indexed articles."}
EN_LEAD = "According to the articles (quoted in Korean):"

_QWORDS = {"누구", "누가", "어디", "언제", "무엇", "무슨", "몇", "얼마", "어느", "어떤", "어떻", "왜", "뭐", "얼마나", "어떠",
           "what", "who", "whom", "when", "where", "which", "how", "why", "many", "much", "does", "did", "the",
           "according", "article", "articles", "기사", "따르", "말하", "무엇인가", "했나", "했", "하"}
_ASK_TYPES_KO = [("date", re.compile(r"언제|몇\s*년|몇\s*월|며칠|날짜|몇\s*시|무슨\s*요일|시기")),
                 ("number", re.compile(r"몇|얼마|규모|금액|액수|주가|비율|퍼센트|%|수치|가격")),
                 ("person", re.compile(r"누구|누가|누군|인물|어떤\s*사람")),
                 ("place", re.compile(r"어디|어느\s*(곳|도시|나라|지역)|장소|위치"))]
_ASK_TYPES_EN = [("date", re.compile(r"\bwhen\b|what (date|day|year|month|time)|which (date|day|year|month)", re.I)),
                 ("number", re.compile(r"how (many|much|long|big|large|high)|what (percentage|share|price|amount|number)", re.I)),
                 ("person", re.compile(r"\bwho(m|se)?\b|which (person|executive|ceo|official)", re.I)),
                 ("place", re.compile(r"\bwhere\b|which (city|country|place|hotel|region)|what (city|country|place)", re.I))]
_NUMBER_UNIT = re.compile(r"\d[\d,.]*\s*([가-힣A-Za-z%~]*)")
_DATE_IN_TEXT = re.compile(r"\d+\s*(일|월|년)|\d{4}[.-]\d{1,2}|오전|오후|전날|이날|어제|지난해|올해|작년|\d+\s*시")
_PLACE_HINT = re.compile(r"[가-힣A-Za-z]+(시|도|군|구|캠퍼스|공장|본사|호텔|센터|주|국)\b|에서")
_PERSON_HINT = re.compile(r"(회장|사장|대표|CEO|최고경영자|부회장|장관|총재|의원|창업자|기자|부문장|사업부장)")


def question_language(question: str) -> str:
    return "ko" if has_hangul(question) else "en"


def asked_type(question: str) -> str | None:
    table = _ASK_TYPES_KO if has_hangul(question) else _ASK_TYPES_EN
    for kind, pat in table:
        if pat.search(question):
            return kind
    return None


def holds_type(text: str, kind: str | None) -> bool:
    if kind is None:
        return True
    if kind == "number":
        # a quantity, not a day of the month: "36기가와트시", "0.92%", "14만2600원" but not "10일"
        units = [u for u in _NUMBER_UNIT.findall(text) if not u.startswith(("일", "월", "년"))]
        return bool(units) or any(m.tag == "NR" for m in analyze(text))
    if kind == "date":
        return bool(_DATE_IN_TEXT.search(text))
    if kind == "person":
        return bool(_PERSON_HINT.search(text)) or any(m.tag == "NNP" for m in analyze(text))
    if kind == "place":
        return bool(_PLACE_HINT.search(text)) or any(m.tag == "NNP" for m in analyze(text))
    return True


@dataclass(frozen=True)
class QuestionTerms:
    terms: dict[str, float]  # term -> weight (proper nouns, foreign words and numbers weigh more)
    required: tuple[str, ...]  # names and numbers the evidence must contain


def question_terms(question: str) -> QuestionTerms:
    terms: dict[str, float] = {}
    required: list[str] = []
    korean = has_hangul(question)
    if not korean:
        # English words cannot be matched against Korean text; only acronyms and numbers can
        # (HBM, TSMC, G42, 2024), so only they count as terms the evidence must hold.
        for tok in re.findall(r"\b[A-Z][A-Z0-9]+\b|\b[A-Z]*\d[\w.]*\b", question):
            terms[tok.lower()] = 2.0
            required.append(tok.lower())
        return QuestionTerms(terms, tuple(dict.fromkeys(required)))
    for m in analyze(question):
        form = m.form
        if form in _QWORDS or len(form) < 1:
            continue
        if m.tag in ("NNP", "SL", "SH", "SN"):
            terms[form] = 2.0
            required.append(form)
        elif m.tag in ("NNG", "XR", "NR") or (m.tag in ("VV", "VA") and len(form) > 1):
            terms.setdefault(form, 1.0)
    return QuestionTerms(terms, tuple(dict.fromkeys(required)))


def _contains(text_low: str, forms: set[str], term: str) -> bool:
    return term in forms or term.lower() in text_low


@dataclass
class Candidate:
    hit_rank: int
    hit: Hit
    start: int
    end: int
    text: str
    dense: float
    coverage: float = 0.0
    type_ok: bool = True
    missing: tuple[str, ...] = ()
    score: float = 0.0
    confidence: float = 0.0


@dataclass(frozen=True)
class Weights:
    """Scoring weights and the confidence scale (calibrated on eval/gold.jsonl; see README)."""

    coverage: float = 0.12
    type_match: float = 0.05
    rank_prior: float = 0.02
    dense_low: float = 0.78
    dense_high: float = 0.90


def score_sentences(question: str, q_vec: np.ndarray, hits: list[Hit], sentence_vecs: dict,
                    weights: Weights = Weights()) -> list[Candidate]:
    """Every sentence of the retrieved passages, scored and sorted best first."""
    qt = question_terms(question)
    kind = asked_type(question)
    total_w = sum(qt.terms.values())
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for rank, hit in enumerate(hits):
        context = f"{hit.chunk.title} {hit.chunk.text}"
        ctx_low = context.lower()
        ctx_forms = {m.form for m in analyze(context)}
        for s in hit.chunk.sentences:
            key = (hit.chunk.article_id, s.start)
            if key in seen or key not in sentence_vecs:
                continue
            seen.add(key)
            forms = {m.form for m in analyze(s.text)}
            low = s.text.lower()
            # terms count fully in the sentence, half in its passage or title
            cov = sum(w if _contains(low, forms, t) else (0.5 * w if _contains(ctx_low, ctx_forms, t) else 0.0)
                      for t, w in qt.terms.items()) / total_w if total_w else None
            missing = tuple(t for t in qt.required if not _contains(ctx_low, ctx_forms, t))
            c = Candidate(rank, hit, s.start, s.end, s.text, float(sentence_vecs[key] @ q_vec), cov or 0.0,
                          holds_type(s.text, kind), missing)
            c.score = (c.dense + weights.coverage * c.coverage + weights.type_match * c.type_ok
                       + weights.rank_prior / (1 + rank))
            dense_n = min(1.0, max(0.0, (c.dense - weights.dense_low) / (weights.dense_high - weights.dense_low)))
            if cov is None:  # nothing lexical to check: similarity and the asked-for kind decide
                conf = 0.70 * dense_n + 0.30 * c.type_ok
            else:
                conf = 0.45 * dense_n + 0.35 * c.coverage + 0.20 * c.type_ok
            if missing:
                conf *= 0.4
            c.confidence = conf
            out.append(c)
    out.sort(key=lambda c: -c.score)
    return out


def choose_evidence(cands: list[Candidate], max_sentences: int = 2, margin: float = 0.015) -> list[Candidate]:
    """The best sentence, plus a runner-up from another article when it scores almost as well
    (questions whose answer spans two articles)."""
    if not cands:
        return []
    chosen = [cands[0]]
    for c in cands[1:]:
        if len(chosen) >= max_sentences or c.score < cands[0].score - margin:
            break
        if (c.hit.chunk.article_id != chosen[0].hit.chunk.article_id and c.type_ok and not c.missing
                and c.confidence >= cands[0].confidence * 0.8):
            chosen.append(c)
    return chosen


def citations_for(chosen: list[Candidate]) -> list[Citation]:
    return [Citation(n=i, article_id=c.hit.chunk.article_id, chunk_id=c.hit.chunk.chunk_id, title=c.hit.chunk.title,
                     publisher=c.hit.chunk.publisher, date=c.hit.chunk.date, quote=c.text, start=c.start,
                     end=c.end, passage=c.hit.chunk.text, passage_start=c.hit.chunk.start)
            for i, c in enumerate(chosen, 1)]


def extractive_text(chosen: list[Candidate], language: str) -> str:
    body = " ".join(f"{c.text} [{i}]" for i, c in enumerate(chosen, 1))
    return f"{EN_LEAD} {body}" if language == "en" else body
