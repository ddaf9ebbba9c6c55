"""Cleaning a Korean news page down to the article itself, with an audit of every block.

A page (text dump or HTML) becomes a sequence of blocks (``ingest.blocks``); each block gets
features that hold for any Korean news page (``ingest.features``: shape, grammar, symbols, position,
markup, neighbours, shared vocabulary with the rest of the article); a linear model fitted on the
development corpus's labels (``ingest/cleaner_model.json``, refit with ``python -m eval.fit cleaner``)
gives each block a probability of being article text, a caption, the title, a byline or furniture.
Blocks whose article-or-caption probability clears the fitted threshold are the article. The title
and the date are learned choices among every line that could be the headline and every date on the
page (``ingest.meta``, ``ingest/meta_model.json``): a page without a headline is titled by its deck
line or, failing that, by its story's first clause (marked as derived), and a page that states no
date gets none. Publisher and reporter come from the blocks the model reads as byline (and from the
HTML page's own metadata), never from a widget or another story. Nothing here knows particular
sites or strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from rag.errors import DocumentError
from rag.lexicon import JOURNALIST_TITLES
from rag.linear import LinearModel, LinearSpec, ModelSpec, Probability, check_features, read_model
from rag.types import Article, Block

from .blocks import Page, PageBlock, html_page, normalize_line, text_page
from .features import NEIGHBOUR, PASS1, block_vectors, neighbour_features, pass1_features
from .meta import MetaChoice, MetaModel, choose_date, choose_title, cut_at_word, first_body_block
from .meta import meta_model as meta_model_default
from .read import decode, is_html

MODEL_PATH = Path(__file__).with_name("cleaner_model.json")
ROLES = ("article", "caption", "title", "byline", "furniture")
KEPT_ROLES = ("article", "caption")

_TITLES = "|".join(JOURNALIST_TITLES)
_REPORTER = re.compile(rf"(?<![가-힣])([가-힣]{{2,4}})\s?(?:{_TITLES})(?![가-힣])")
_COPYRIGHT_OWNER = re.compile(
    r"(?:copyright|저작권자|ⓒ|©|\(c\))\s*(?:by\s*)?[\s:ⓒ©(c)]*\s*([가-힣A-Za-z][가-힣A-Za-z0-9&·]*(?:\s[가-힣A-Za-z0-9&·]+){0,2}?)"
    r"(?=\s*(?:[.,|>)\]&]|all\b|무단|$|\s+[a-z0-9.-]+\.(?:com|kr|net|co\.kr)))", re.I)
# where a byline names the outlet: "[매체=홍길동 기자]", "[매체 / 홍길동 기자 / e-mail]", "(서울=매체)", "[매체]"
_BRACKET_BYLINES = (
    re.compile(r"^[\[(]\s*([^\]=)/]{2,20}?)\s*=\s*[가-힣]{2,4}\s*(?:" + _TITLES + r")\s*[\])]"),
    re.compile(r"^\[\s*([^\]=/]{2,24}?)\s*/\s*[가-힣]{2,4}\s*(?:" + _TITLES + r")"),
    re.compile(r"^\(\s*[가-힣]{2,6}\s*=\s*([^)=]{2,20}?)\s*\)"),
    re.compile(r"^\[\s*([^\]=/\d][^\]=/]{1,20}?)\s*\]$"),
)
_SIGNOFF = re.compile(r"^(?:지금까지\s+)?(?:[가-힣]+에서\s+)?([가-힣A-Za-z][가-힣A-Za-z0-9 ]{1,15}?)\s+([가-힣]{2,4})(?:\s*기자)?입니다\.?$")
_SOURCE = re.compile(r"^(?:\[\s*)?(?:출처|기사\s*출처|원문\s*출처|source)\s*(?:\]\s*)?[:：]?\s*([가-힣A-Za-z][가-힣A-Za-z0-9 ]{1,20}?)\s*(?:\(.*\))?\s*$", re.I)
PUBLISHER_SOURCES = ("bracket", "copyright", "source", "signoff", "site_name", "masthead")


class CleanerSpec(ModelSpec):
    """What ``python -m eval.fit cleaner`` writes."""

    pass1: LinearSpec
    pass2: LinearSpec
    keep: LinearSpec
    keep_threshold: Probability
    publisher_order: list[Literal[PUBLISHER_SOURCES]] | None = Field(None, max_length=len(PUBLISHER_SOURCES))


@dataclass(frozen=True)
class CleanerModel:
    """The fitted cleaner: block roles (two passes), the cut for keeping a block, and which places on
    a page to trust for the outlet's name."""

    pass1: LinearModel  # roles, each block alone
    pass2: LinearModel  # roles, with neighbours and the article's core
    keep: LinearModel  # keep or drop, on the pass-2 features
    keep_threshold: float
    publisher_order: tuple[str, ...]

    @classmethod
    def from_dict(cls, d: dict) -> "CleanerModel":
        """The model in a cleaner file; a ValidationError or ValueError when it is not one this version
        can use (wrong types or shapes, other features, or classes it does not know)."""
        spec = CleanerSpec.model_validate(d)
        check_features("pass1", spec.pass1.features, PASS1)
        check_features("pass2", spec.pass2.features, PASS1 + NEIGHBOUR)
        check_features("keep", spec.keep.features, PASS1 + NEIGHBOUR)
        for part in (spec.pass1, spec.pass2):
            if not set(part.classes) <= set(ROLES):
                raise ValueError(f"its role classes {part.classes} are not among {list(ROLES)}")
        if set(spec.keep.classes) != {"keep", "drop"}:
            raise ValueError(f"its keep model's classes are {spec.keep.classes}, not keep and drop")
        order = tuple(dict.fromkeys(spec.publisher_order or PUBLISHER_SOURCES))
        return cls(spec.pass1.model(), spec.pass2.model(), spec.keep.model(), spec.keep_threshold, order)

    def classify(self, page: Page, embed=None) -> tuple[np.ndarray, np.ndarray]:
        """Per-role probabilities (blocks x ROLES) and the pass-2 feature rows. ``embed`` (a passage
        embedder) adds the embedding-similarity feature; without it that feature is neutral."""
        n = len(page.blocks)
        if n == 0:
            return np.zeros((0, len(ROLES))), np.zeros((0, len(PASS1) + len(NEIGHBOUR)))
        X1, analyses = pass1_features(page)
        p1 = self._by_role(self.pass1, X1)
        keep1 = p1[:, 0] + p1[:, 1]
        vectors = block_vectors(page, keep1, embed) if embed is not None else None
        X2 = np.hstack([X1, neighbour_features(keep1, p1[:, 2], analyses, vectors)])
        return self._by_role(self.pass2, X2), X2

    @staticmethod
    def _by_role(model: LinearModel, X: np.ndarray) -> np.ndarray:
        probs = model.predict_proba(X)
        cols = [model.classes.index(r) if r in model.classes else None for r in ROLES]
        return np.stack([probs[:, c] if c is not None else np.zeros(len(X)) for c in cols], axis=1)


@lru_cache(maxsize=4)
def cleaner_model(path: Path = MODEL_PATH) -> CleanerModel:
    return read_model(path, CleanerModel.from_dict, "cleaner model",
                      "python -m eval.fit cleaner")


@dataclass(frozen=True)
class CleanResult:
    """A cleaned article and the audit trail of every block."""

    article: Article
    blocks: tuple[Block, ...]
    title: MetaChoice | None = None  # how the title was chosen (None: no cleaning)
    date: MetaChoice | None = None  # how the date was chosen

    @property
    def dropped(self) -> list[Block]:
        return [b for b in self.blocks if not b.kept]

    def to_dict(self) -> dict:
        return {"article": self.article.to_dict(), "blocks": [b.to_dict() for b in self.blocks],
                "title": self.title.to_dict() if self.title else None,
                "date": self.date.to_dict() if self.date else None}


def read_page(data: bytes | str, name: str = "input") -> Page:
    """Bytes (or text) of a page -> its blocks (HTML when the name or content says so)."""
    text = decode(data, name) if isinstance(data, bytes) else data
    return html_page(text) if is_html(name, text) else text_page(text)


def clean_text(text: str, article_id: str, *, embed=None, source_path: str | None = None,
               metadata: MetaModel | None = None) -> CleanResult:
    """Clean a plain-text page dump (``embed``: a passage embedder, for the topical-similarity feature;
    ``metadata``: another title and date model than the shipped one)."""
    return clean_page(text_page(text), article_id, embed=embed, source_path=source_path, metadata=metadata)


def clean_html(html: str, article_id: str, *, embed=None, source_path: str | None = None) -> CleanResult:
    """Clean an HTML page."""
    return clean_page(html_page(html), article_id, embed=embed, source_path=source_path)


def clean_page(page: Page, article_id: str, *, embed=None, source_path: str | None = None,
               model: CleanerModel | None = None, metadata: MetaModel | None = None) -> CleanResult:
    """Classify every block, keep the article's, and read the metadata from title and byline blocks.
    ``embed`` (a passage embedder's ``embed_passages``) enables the embedding-similarity feature that
    tells an unrelated story embedded in the page from the article; ingest always passes it."""
    if not page.blocks:
        raise DocumentError(f"{article_id}: no text in the page")
    model = model or cleaner_model()
    probs, X, keep_p, kept, fallback, second = classify_page(page, model, embed)
    role_idx = probs.argmax(axis=1)
    meta_model = metadata or meta_model_default()
    first_body = first_body_block(probs, X, kept)
    title_choice, title_i = choose_title(page, probs, X, kept, meta_model, first_body)
    seen: set[str] = {_line_key(page.blocks[title_i].text)} if title_i is not None else set()
    decks = _decks(title_i, kept, role_idx)
    decisions = []
    for i, b in enumerate(page.blocks):
        role = ROLES[role_idx[i]]
        k = _line_key(b.text)
        keep = bool(kept[i] or decks[i]) and i != title_i
        reason = f"{'kept' if keep else 'dropped'}: {role if not keep or role in KEPT_ROLES else 'article'}"
        if keep and decks[i]:
            reason = "kept: deck (a subheadline of the story)"
        elif keep and fallback:
            reason = "kept: sentences (nothing on the page read as a news article; its sentences are kept)"
        if keep and k in seen and len(k) > 3:
            keep, reason = False, "dropped: repeated line (printed twice)"
        elif second[i]:
            reason = "dropped: another story (a second byline in the page)"
        elif i == title_i:
            reason = "dropped: title (kept as metadata)"
        if keep:
            seen.add(k)
        why = _top_features(model.keep, X[i], keep)
        decisions.append(Block(b.index, b.text, keep, reason, role=role, score=round(float(keep_p[i]), 4), why=why))
    body = [d.text for d in decisions if d.kept]
    if body and (m := _BYLINE_PREFIX.match(body[0])) and body[0][m.end():].strip():
        body[0] = body[0][m.end():].strip()  # "[매체=홍길동 기자] 본문…": the byline is metadata
    if not body:
        raise DocumentError(f"{article_id}: no article text left after cleaning (all {len(page.blocks)} blocks were page furniture)")
    if title_choice.value is None:  # no lede to derive from (the story's first block is not text)
        title_choice = MetaChoice(cut_at_word(body[0].split("\n")[0]), None, title_choice.runner_up,
                                  title_choice.threshold, derived=True)
    date_choice = choose_date(page, probs, X, kept, meta_model, title_i, first_body)
    bylines = [b for i, b in enumerate(page.blocks) if probs[i, 3] >= 0.5 or (role_idx[i] == 3)]
    publisher = choose_publisher(publisher_candidates(page, probs), model.publisher_order)
    reporter = _reporter(bylines, page) or _prefix_reporter(decisions)
    article = Article(article_id=article_id, title=title_choice.value, text="\n\n".join(body), publisher=publisher,
                      reporter=reporter, date=date_choice.value, source_path=source_path,
                      title_derived=title_choice.derived)
    return CleanResult(article, tuple(decisions), title_choice, date_choice)


def classify_page(page: Page, model: CleanerModel, embed=None):
    """(role probabilities, pass-2 features, keep probabilities, kept, whether nothing read as news
    so sentences were kept, blocks dropped as a second story's) for a page with blocks."""
    probs, X = model.classify(page, embed)
    keep_p = model.keep.predict_proba(X)[:, model.keep.classes.index("keep")]
    kept = keep_p >= model.keep_threshold
    fallback = not kept.any()
    if fallback:  # not a news page (a memo, bare text): keep its blocks that hold Korean sentences
        kept = (X[:, PASS1.index("final_sentences")] > 0) & (X[:, PASS1.index("log_len")] >= np.log1p(20))
    second = _second_bylines(page, kept)
    kept = kept & ~second
    return probs, X, keep_p, kept, fallback, second


def _line_key(text: str) -> str:
    return re.sub(r"\W+", "", text).casefold()


def _decks(title_i: int | None, kept: np.ndarray, role_idx: np.ndarray) -> np.ndarray:
    """Title-like blocks between the headline and the story's first paragraph: the newsroom's own
    subheadlines, which restate the story (kept; the headline itself becomes metadata)."""
    out = np.zeros(len(kept), dtype=bool)
    if title_i is None or not kept.any():
        return out
    first = int(np.argmax(kept))
    for i in range(title_i + 1, first):
        out[i] = role_idx[i] == ROLES.index("title")
    return out


def _top_features(model: LinearModel, x: np.ndarray, kept: bool, n: int = 3) -> tuple[tuple[str, float], ...]:
    """The features that pushed hardest towards the decision taken (positive: towards it)."""
    contrib = model.contributions(x)  # towards 'keep' (the positive class)
    sign = 1.0 if kept else -1.0
    top = sorted(contrib.items(), key=lambda kv: -sign * kv[1])[:n]
    return tuple((name, round(sign * v, 2)) for name, v in top)


_BYLINE_PREFIX = re.compile(r"^[\[(]\s*[^\]=)]{2,20}=\s*[가-힣]{2,4}\s*(?:" + _TITLES + r")\s*[\])]")


def _second_bylines(page: Page, kept: np.ndarray) -> np.ndarray:
    """Kept blocks that open with a byline ("[매체=홍길동 기자] …") after another kept block did: a page
    tells one story under one byline, so a second one starts another story (a related-story teaser)."""
    out = np.zeros(len(kept), dtype=bool)
    seen = False
    for i, b in enumerate(page.blocks):
        if kept[i] and _BYLINE_PREFIX.match(b.text):
            out[i] = seen
            seen = True
    return out


def _reporter(bylines: list[PageBlock], page: Page) -> str | None:
    for b in bylines:
        m = _REPORTER.search(b.text)
        if m:
            return m.group(1)
    return page.meta.author if page.meta.author and re.fullmatch(r"[가-힣]{2,4}", page.meta.author) else None


def _prefix_reporter(decisions) -> str | None:
    first = next((d.text for d in decisions if d.kept), "")
    m = _BYLINE_PREFIX.match(first)
    return _REPORTER.search(m.group(0)).group(1) if m and _REPORTER.search(m.group(0)) else None


def publisher_candidates(page: Page, probs: np.ndarray) -> dict[str, str]:
    """Where a page names its outlet, by kind of place (the order they are trusted in is fitted)."""
    found: dict[str, str] = {}
    blocks = page.blocks
    for i, b in enumerate(blocks):
        t = b.text
        if "copyright" not in found and (m := _COPYRIGHT_OWNER.search(t)):
            name = m.group(1).strip()
            if name.casefold() not in ("all", "rights", "reserved", "by"):
                found["copyright"] = name
        if "bracket" not in found:
            m = next((m for p in _BRACKET_BYLINES if (m := p.match(t))), None)
            if m and (probs[i, 0] + probs[i, 3] >= 0.3 or m.re is _BRACKET_BYLINES[-1]):
                found["bracket"] = m.group(1).strip()
        if "signoff" not in found and len(t) < 40 and (m := _SIGNOFF.match(t)):
            found["signoff"] = m.group(1).strip()
        if "source" not in found and (m := _SOURCE.match(t)):
            found["source"] = m.group(1).strip()
    if page.meta.site_name:
        found["site_name"] = page.meta.site_name.strip()
    # the page's masthead: a short first line that the page names again further down
    for b in blocks[:3]:
        if 2 <= len(b.text) <= 15 and not re.search(r"\d", b.text):
            rest = " ".join(x.text for x in blocks[3:])
            if b.text in rest:
                found["masthead"] = b.text
                break
    return found


def choose_publisher(candidates: dict[str, str], order: tuple[str, ...]) -> str | None:
    for source in order:
        if candidates.get(source):
            return candidates[source]
    return None


def raw_article(text: str, article_id: str, source_path: str | None = None) -> CleanResult:
    """No cleaning at all (the ``--no-clean`` ablation): every non-empty line is kept."""
    lines = [normalize_line(raw) for raw in text.split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DocumentError(f"{article_id}: no text in the page")
    article = Article(article_id=article_id, title=lines[0][:80], text="\n\n".join(lines), source_path=source_path)
    return CleanResult(article, tuple(Block(i, t, True, "kept (no cleaning)") for i, t in enumerate(lines)))
