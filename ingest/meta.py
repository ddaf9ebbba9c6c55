"""A page's title and article date as learned choices among candidates.

Every line that could be the headline and every date the page states is a candidate; each gets
features that hold on any Korean news page (what the cleaner read its block as, where it sits
relative to the headline and the story's first sentence, the words of a byline before a date, its
format), and a logistic model fitted on a labelled corpus (``ingest/meta_model.json``, refit with
``python -m eval.fit meta``) scores them. The best candidate wins unless its score is under the
fitted threshold: then the page states no date, or (titles) a short title is made from the first
clause of the story's first sentence and marked as derived. A caption or the story's first sentence
is never a title candidate, and a title is never cut inside a word.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.lexicon import EDITED_WORDS, PUBLISHED_WORDS, iso_date
from rag.linear import LinearModel, LinearSpec, ModelSpec, Probability, check_features, read_model

from .blocks import Page
from .features import NEIGHBOUR, PASS1

META_MODEL_PATH = Path(__file__).with_name("meta_model.json")
ROLES = ("article", "caption", "title", "byline", "furniture")  # the cleaner's probability columns
MAX_TITLE_CHARS = 60  # a derived title is cut (at a word boundary) to this many characters

# ---- dates -----------------------------------------------------------------------------------
_EN_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_EN_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
# The ways a page writes a calendar date: 2026.03.02, 2026-03-02, 2026/3/2, 2026. 3. 2., 2026년 3월 2일,
# two-digit years (26.03.02, 23년 6월 9일), and English (March 2, 2026; 2 March 2026).
DATE_FORMS = (
    ("ymd", re.compile(r"(?<![\d.])(\d{4})\s*(?:[-./]|년)\s*(\d{1,2})\s*(?:[-./]|월)\s*(\d{1,2})(?!\d)(?:\s*일|\.(?!\d))?")),
    ("ymd2", re.compile(r"(?<![\d.,:])(\d{2})\s*(?:[-./]|년)\s*(\d{1,2})\s*(?:[-./]|월)\s*(\d{1,2})(?![\d.,]\d|\d)(?:\s*일|\.)?")),
    ("mdy_en", re.compile(r"\b" + _EN_MONTH + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", re.I)),
    ("dmy_en", re.compile(r"\b(\d{1,2})\s+" + _EN_MONTH + r",?\s+(\d{4})\b", re.I)),
)
# what may follow a date: a weekday ("(월)", "월요일", "Mon"), then a time ("14:05", "오후 2:05",
# "PM 2:05", "2:05 PM", "14시 5분")
_WEEKDAY = re.compile(r"^\s*,?\s*[(（\[]?\s*(?:[월화수목금토일](?:요일)?|mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?\s*[)）\]]?(?![가-힣])",
                      re.I)
_TIME = re.compile(r"^\s*,?\s*(?:(오전|오후|am|pm|a\.m\.|p\.m\.)\s*)?(\d{1,2})\s*(?::|시\s*)(\d{2})?(?:\s*분)?(?::\d{2})?"
                   r"\s*(am|pm)?(?![\d가-힣])", re.I)
_CUE_WINDOW = 16  # characters before a date searched for a byline word ("입력 ", "기사입력 : ", "등록일 ")
_PUBLISHED = re.compile("|".join(re.escape(w) for w in sorted(PUBLISHED_WORDS, key=len, reverse=True)), re.I)
_EDITED = re.compile("|".join(re.escape(w) for w in sorted(EDITED_WORDS, key=len, reverse=True)), re.I)
_JOURNALIST = re.compile(r"[가-힣]{2,4}\s?(?:기자|특파원|앵커|리포터)(?![가-힣])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")

DATE_FEATURES = (
    "rel_position", "before_title", "title_distance", "article_distance", "before_article", "in_kept",
    "p_article", "p_byline", "p_furniture", "nb_byline", "block_len", "date_share",
    "published_cue", "edited_cue", "cue_right_before", "has_time", "has_ampm", "has_weekday",
    "form_ymd", "form_ymd2", "form_korean", "form_en", "journalist_near", "email_near",
    "first_on_page", "order", "same_value", "dates_in_block", "dates_nearby", "header_below", "from_meta",
    "meta_agrees",
)


@dataclass(frozen=True)
class DateMention:
    """One date written on a page."""

    block: int  # -1: the HTML page's own metadata
    start: int
    end: int
    date: str  # ISO
    form: str
    weekday: bool
    time: bool
    ampm: bool
    cue: str  # "published", "edited" or ""
    cue_gap: int  # characters between the cue word and the date


def find_dates(text: str) -> list[tuple[int, int, str, str, bool, bool, bool]]:
    """(start, end, iso date, form, weekday, time, am/pm) of every date expression in ``text``."""
    found: list[tuple[int, int, str, str, bool, bool, bool]] = []
    taken: list[tuple[int, int]] = []
    for form, pattern in DATE_FORMS:
        for m in pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            g = m.groups()
            if form == "ymd":
                date = iso_date(g[0], g[1], g[2])
            elif form == "ymd2":
                date = iso_date(2000 + int(g[0]), g[1], g[2])
            elif form == "mdy_en":
                date = iso_date(g[2], _EN_MONTHS[g[0][:3].lower()], g[1])
            else:
                date = iso_date(g[2], _EN_MONTHS[g[1][:3].lower()], g[0])
            if date is None:
                continue
            end = m.end()
            weekday = bool(w := _WEEKDAY.match(text[end:])) and bool(w.group(0).strip())
            if weekday:
                end += w.end()
            t = _TIME.match(text[end:])
            has_time = bool(t) and (t.group(3) is not None or t.group(1) is not None) and int(t.group(2)) <= 24
            ampm = has_time and bool(t.group(1) or t.group(4))
            if has_time:
                end += t.end()
            taken.append((m.start(), end))
            found.append((m.start(), end, date, form, weekday, has_time, ampm))
    return sorted(found)


def date_mentions(page: Page) -> list[DateMention]:
    """Every date on the page, with the byline word (if any) written just before it."""
    out = []
    for b in page.blocks:
        prev_end = 0
        for start, end, date, form, weekday, time_, ampm in find_dates(b.text):
            window = b.text[max(prev_end, start - _CUE_WINDOW):start]
            cue, gap = "", _CUE_WINDOW
            hits = [(m.end(), "published") for m in _PUBLISHED.finditer(window)] + \
                   [(m.end(), "edited") for m in _EDITED.finditer(window)]
            if hits:
                at, cue = max(hits)
                gap = len(window) - at
            out.append(DateMention(b.index, start, end, date, form, weekday, time_, ampm, cue, gap))
            prev_end = end
    if page.meta.date and (iso := _iso(page.meta.date)):
        out.append(DateMention(-1, 0, 0, iso, "meta", False, False, False, "", _CUE_WINDOW))
    return out


def _iso(text: str) -> str | None:
    m = re.match(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    return iso_date(*m.groups()) if m else None


def date_features(page: Page, mentions: list[DateMention], probs: np.ndarray, X: np.ndarray,
                  kept: np.ndarray, title_i: int | None, first_body: int) -> np.ndarray:
    """One row of ``DATE_FEATURES`` per mention."""
    n = max(1, len(page.blocks))
    values = [m.date for m in mentions]
    per_block = {}
    for m in mentions:
        per_block[m.block] = per_block.get(m.block, 0) + 1
    journalist = X[:, PASS1.index("journalist")] if len(X) else np.zeros(0)
    meta = _iso(page.meta.date) if page.meta.date else None
    rows = []
    for k, m in enumerate(mentions):
        i = m.block
        if i < 0:
            rows.append([0.0] * (len(DATE_FEATURES) - 2) + [1.0, 1.0])
            rows[-1][DATE_FEATURES.index("same_value")] = math.log1p(min(3, values.count(m.date)))
            continue
        text = page.blocks[i].text
        p = probs[i]
        nb = [probs[j, 3] for j in (i - 1, i + 1) if 0 <= j < len(probs)]
        near = range(max(0, i - 1), min(len(page.blocks), i + 2))
        t_dist = (i - title_i) if title_i is not None else 10
        a_dist = i - first_body
        rows.append([
            i / n, float(title_i is not None and i < title_i), float(np.clip(t_dist, -10, 10)) / 10,
            float(np.clip(a_dist, -10, 10)) / 10, float(a_dist < 0), float(kept[i]),
            p[0], p[3], p[4], max(nb) if nb else 0.0, math.log1p(len(text)),
            (m.end - m.start) / max(1, len(text)),
            float(m.cue == "published"), float(m.cue == "edited"), float(bool(m.cue) and m.cue_gap <= 4),
            float(m.time), float(m.ampm), float(m.weekday),
            float(m.form == "ymd"), float(m.form == "ymd2"), float("년" in text[m.start:m.end]),
            float(m.form.endswith("_en")), float(any(journalist[j] for j in near)),
            float(any(_EMAIL.search(page.blocks[j].text) for j in near)),
            # how often the page repeats the day (a byline's 입력 and 수정; capped, as a list of other
            # stories repeats its own day many times), and dates in the blocks around (such a list)
            float(k == 0), min(k, 10) / 10, math.log1p(min(3, values.count(m.date))), math.log1p(per_block[i] - 1),
            sum(per_block.get(j, 0) > 0 for j in (i - 2, i - 1, i + 1, i + 2)) / 4,
            # a headline with its own byline between this date and the story: the date heads something
            # else (a blog post around a pasted story, a saved copy's note)
            float(_header_below(i, first_body, probs, journalist, per_block)),
            0.0, float(meta == m.date),
        ])
    return np.asarray(rows, dtype=np.float64).reshape(len(mentions), len(DATE_FEATURES))


def _header_below(i: int, first_body: int, probs: np.ndarray, journalist: np.ndarray, per_block: dict) -> bool:
    """A title-like block, then a journalist's byline that states no date, between block ``i`` and the
    story's first sentence."""
    titled = False
    for j in range(i + 1, min(first_body, len(probs))):
        if probs[j, 2] >= 0.5:
            titled = True
        elif titled and journalist[j] and not per_block.get(j):
            return True
    return False


# ---- titles ----------------------------------------------------------------------------------
# a photo's credit or a caption's tell: "(사진=…)", "<사진=…>", "/ 사진 제공", "…제공", "촬영", "캡처"
_CREDIT = re.compile(r"(?:사진|그래픽|자료|영상|이미지)\s*[=:/]|[<(\[]\s*사진|(?:제공|촬영|캡처|캡쳐)\s*[)>\]]?\s*$|/\s*사진"
                     r"|[.!?]\s*[가-힣]{2,4}\s?기자\s*$")
# a caption describes a picture: "…하고 있다.", "…을 들어 보이고 있다"
_CAPTION_END = re.compile(r"(?:있|하였|했|였)다\.\s*(?:[(<\[].{0,30}[)>\]])?\s*$")

TITLE_FEATURES = (
    "p_article", "p_caption", "p_title", "p_byline", "p_furniture", "log_len", "too_long", "ends_final",
    "ends_punct", "ends_quote", "quotes_inside", "heading", "meta_title", "repeated", "digits", "has_date",
    "journalist", "bracket_tag", "key_value", "pipes", "url", "rel_position", "article_distance",
    "first_title_like", "title_rank", "order", "after_title_like", "caption_end", "credit", "core_overlap",
    "core_proper_overlap", "overlap_gap", "crumbs", "byline_next", "kept",
)
# a site's path to the page ("홈 > 경제 > 산업", "뉴스 › 정치"): menu, not a headline
_CRUMB = re.compile(r"\s[>›»]\s|\s/\s")


def caption_shaped(text: str) -> bool:
    """A line shaped like a photo's caption or a story's sentence: it holds a sentence ended by a full
    stop ("…하고 있다. ", "…밝혔다."), or carries a photo credit. A headline does neither."""
    t = text.rstrip()
    return bool(_CAPTION_END.search(t) or _CREDIT.search(t) or re.search(r"[가-힣]다\.(?:\s|$)", t))


def title_candidates(page: Page, probs: np.ndarray, first_body: int) -> list[int]:
    """Blocks that could be the headline: those before the story's first sentence, of a headline's
    length, not shaped like a caption (the cleaner's reading of them is a feature: a short headline
    can look like a caption to it)."""
    out = []
    for i in range(min(first_body, len(page.blocks))):
        t = page.blocks[i].text
        if not 4 <= len(t) <= 200 or not re.search(r"[가-힣A-Za-z]{2}", t) or caption_shaped(t):
            continue
        out.append(i)
    return out


def title_features(page: Page, cands: list[int], probs: np.ndarray, X: np.ndarray, kept: np.ndarray,
                   first_body: int) -> np.ndarray:
    """One row of ``TITLE_FEATURES`` per candidate block."""
    n = max(1, len(page.blocks))
    col = {name: j for j, name in enumerate(PASS1 + NEIGHBOUR)}
    ranked = sorted(cands, key=lambda i: -probs[i, 2])
    first_like = next((i for i in cands if probs[i, 2] >= 0.5), None)
    overlap = {i: X[i, col["core_overlap"]] + X[i, col["core_proper_overlap"]] for i in cands}
    top_overlap = max(overlap.values(), default=0.0)
    rows = []
    for k, i in enumerate(cands):
        t = page.blocks[i].text
        x = X[i]
        rows.append([
            *probs[i], x[col["log_len"]], float(len(t) > 100), x[col["ends_final"]], x[col["ends_punct"]],
            x[col["ends_quote"]], x[col["quotes_inside"]], x[col["h_heading_major"]], x[col["h_meta_title"]],
            x[col["repeated"]], x[col["digits"]], x[col["date"]], x[col["journalist"]], x[col["bracket_tag"]],
            x[col["key_value"]], x[col["pipes"]], x[col["url"]], i / n,
            float(np.clip(first_body - i, 0, 20)) / 20, float(i == first_like), ranked.index(i) / max(1, len(cands)),
            min(k, 20) / 20, float(first_like is not None and i > first_like),
            float(bool(_CAPTION_END.search(t))), float(bool(_CREDIT.search(t))),
            x[col["core_overlap"]] if len(x) > col["core_overlap"] else 0.0,
            x[col["core_proper_overlap"]] if len(x) > col["core_proper_overlap"] else 0.0,
            # how far the line's share of the story's words falls short of the best line's: the story's
            # own headline shares its words, a ticker's or another story's does not
            overlap[i] - top_overlap, min(3, len(_CRUMB.findall(t))) / 3,
            float(probs[i + 1:i + 3, 3].max()) if i + 1 < len(probs) else 0.0,  # a byline right under it
            float(kept[i]),
        ])
    return np.asarray(rows, dtype=np.float64).reshape(len(cands), len(TITLE_FEATURES))


# where a sentence's first clause ends: a comma, or a connective ending closing a word ("…하며 ", "…했고 ")
_CLAUSE_END = re.compile(r"[,，;](?=\s)|(?<=[가-힣])(?:며|면서|고|지만|는데|으나|하여)(?=\s)")


def derived_title(lede: str, limit: int = MAX_TITLE_CHARS) -> str:
    """A short title from the first clause of a story's first sentence, cut between words (with "…"
    where the sentence goes on), never inside a word."""
    first = re.split(r"(?<=[.!?])\s|(?<=다\.)", lede.strip(), maxsplit=1)[0].strip().rstrip(".")
    m = _CLAUSE_END.search(first)
    if m and m.start() >= 10 and m.end() < len(first):
        end = m.start() if first[m.start()] in ",，;" else m.end()  # a comma goes; an ending stays with its word
        return cut_at_word(first[:end].rstrip(), limit) .rstrip("…") + "…"
    return cut_at_word(first, limit)


def cut_at_word(text: str, limit: int = MAX_TITLE_CHARS) -> str:
    """``text`` itself when it fits in ``limit`` characters, else its words up to the limit and "…"."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    if cut <= 0:  # one long word: kept whole rather than cut inside it
        cut = text.find(" ")
        return text if cut < 0 else text[:cut] + "…"
    return text[:cut].rstrip(" ,·…") + "…"


# ---- the model -------------------------------------------------------------------------------
class MetaSpec(ModelSpec):
    """What ``python -m eval.fit meta`` writes."""

    title: LinearSpec
    date: LinearSpec
    title_threshold: Probability
    date_threshold: Probability


@dataclass(frozen=True)
class MetaModel:
    """The fitted title and date choosers, and the scores under which each abstains."""

    title: LinearModel
    date: LinearModel
    title_threshold: float
    date_threshold: float

    @classmethod
    def from_dict(cls, d: dict) -> "MetaModel":
        """The model in a meta file; a ValidationError or ValueError when this version cannot use it."""
        spec = MetaSpec.model_validate(d)
        check_features("title", spec.title.features, TITLE_FEATURES)
        check_features("date", spec.date.features, DATE_FEATURES)
        for name, part in (("title", spec.title), ("date", spec.date)):
            if sorted(part.classes) != ["0", "1"]:
                raise ValueError(f"its {name} model's classes are {part.classes}, not 0 and 1")
        return cls(spec.title.model(), spec.date.model(), spec.title_threshold, spec.date_threshold)


@lru_cache(maxsize=4)
def meta_model(path: Path = META_MODEL_PATH) -> MetaModel:
    return read_model(path, MetaModel.from_dict, "title and date model", "python -m eval.fit meta")


@dataclass(frozen=True)
class Candidate:
    """One candidate for a title or a date, its score and the features that pushed it most."""

    value: str
    block: int  # -1: the page's metadata or derived from the lede
    score: float
    why: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict:
        return {"value": self.value, "block": self.block, "score": round(self.score, 4), "why": dict(self.why)}


@dataclass(frozen=True)
class MetaChoice:
    """What was chosen for one field, the best candidate it was chosen over, and why."""

    value: str | None
    chosen: Candidate | None  # None: no candidate cleared the threshold
    runner_up: Candidate | None
    threshold: float
    derived: bool = False  # a title made from the lede (no line of the page passed)

    def to_dict(self) -> dict:
        return {"value": self.value, "derived": self.derived, "threshold": self.threshold,
                "chosen": self.chosen.to_dict() if self.chosen else None,
                "runner_up": self.runner_up.to_dict() if self.runner_up else None}


def _why(model: LinearModel, x: np.ndarray, n: int = 3) -> tuple[tuple[str, float], ...]:
    contrib = model.contributions(x)
    return tuple((k, round(v, 2)) for k, v in sorted(contrib.items(), key=lambda kv: -abs(kv[1]))[:n])


def _choose(model: LinearModel, F: np.ndarray, values: list[str], blocks: list[int],
            threshold: float) -> tuple[Candidate | None, Candidate | None]:
    """The best-scoring candidate and the runner-up (the best of another value, else the next one)."""
    if not len(F):
        return None, None
    p = model.predict_proba(F)[:, list(model.classes).index("1")]
    order = np.argsort(-p, kind="stable")
    best = int(order[0])
    cand = [Candidate(values[j], blocks[j], float(p[j]), _why(model, F[j])) for j in range(len(values))]
    runner = next((cand[int(j)] for j in order[1:] if values[int(j)] != values[best]),
                  cand[int(order[1])] if len(order) > 1 else None)
    return cand[best], runner


def first_body_block(probs: np.ndarray, X: np.ndarray, kept: np.ndarray) -> int:
    """The block of the story's first sentence: the first kept block the cleaner reads as article text
    that ends a sentence (a deck or a caption kept before it is not the lede)."""
    finals = X[:, PASS1.index("final_sentences")] if len(X) else np.zeros(0)
    for i in range(len(kept)):
        if kept[i] and int(np.argmax(probs[i])) == 0 and finals[i] > 0:
            return i
    return int(np.argmax(kept)) if kept.any() else len(kept)


def choose_title(page: Page, probs: np.ndarray, X: np.ndarray, kept: np.ndarray, model: MetaModel,
                 first_body: int) -> tuple[MetaChoice, int | None]:
    """The page's title and the block it came from (None: derived from the lede)."""
    cands = title_candidates(page, probs, first_body)
    F = title_features(page, cands, probs, X, kept, first_body)
    best, runner = _choose(model.title, F, [page.blocks[i].text for i in cands], cands, model.title_threshold)
    if best is not None and best.score >= model.title_threshold:
        return MetaChoice(cut_at_word(best.value, 200), best, runner, model.title_threshold), best.block
    lede = page.blocks[first_body].text if first_body < len(page.blocks) else (page.blocks[0].text if page.blocks else "")
    title = derived_title(lede) or None
    return MetaChoice(title, None, best, model.title_threshold, derived=True), None


def choose_date(page: Page, probs: np.ndarray, X: np.ndarray, kept: np.ndarray, model: MetaModel,
                title_i: int | None, first_body: int) -> MetaChoice:
    """The article's date (None when no date on the page scores over the threshold)."""
    mentions = date_mentions(page)
    F = date_features(page, mentions, probs, X, kept, title_i, first_body)
    best, runner = _choose(model.date, F, [m.date for m in mentions], [m.block for m in mentions],
                           model.date_threshold)
    if best is not None and best.score >= model.date_threshold:
        return MetaChoice(best.value, best, runner, model.date_threshold)
    return MetaChoice(None, None, best, model.date_threshold)
