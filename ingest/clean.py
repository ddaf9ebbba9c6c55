"""Cleaning a Korean news page down to the article itself, with an audit of every block.

General rules for the common shapes of Korean news pages (UI strings, bylines, weather widgets,
headline tables, related-story lists, polls, copyright lines, repeated lines), an end-of-article
boundary, and a topical-coherence check of each remaining block against the title and lead
(embedding similarity plus Kiwi noun overlap) that removes unrelated stories embedded in the page.
Nothing here knows about particular files.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rag.errors import DocumentError
from rag.korean import analyze
from rag.types import Article, Block

# ---- patterns --------------------------------------------------------------------------------
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")
_BULLET = re.compile(r"^[\s•·▶▷►■□◆◇●○※☞\-–—*>]+")
_UI_EXACT = {
    "기사 읽어주기", "다시듣기", "글씨 크기 조절", "글자 크기 조절", "글자크기", "글씨크기", "댓글", "댓글쓰기",
    "페이스북", "트위터", "트위치", "카카오", "카카오톡", "카카오스토리", "네이버", "네이버 블로그", "밴드",
    "링크복사", "링크 복사", "url복사", "url 복사", "공유", "공유하기", "스크랩", "인쇄", "인쇄하기", "프린트",
    "메뉴 건너뛰기", "본문 바로가기", "이미지 확대", "close button", "광고삭제", "위로", "맨위로", "top",
    "구독", "구독하기", "기자 구독", "좋아요", "추천", "추천하기", "기사저장", "북마크", "닫기", "더보기",
    "이전", "다음", "이전기사", "다음기사", "목록", "검색", "로그인", "회원가입", "전체메뉴", "메뉴",
    "가", "가-", "가+", "확대", "축소", "facebook", "twitter", "x", "share", "print", "copy link",
}
_LISTING_HEADERS = re.compile(
    r"^(관련\s*기사|관련\s*뉴스|많이\s*본\s*뉴스|인기\s*기사|주요\s*뉴스|추천\s*기사|최신\s*기사|실시간\s*뉴스|"
    r"포토\s*뉴스|이\s*시각\s*주요뉴스|핫\s*이슈|오늘의\s*주요뉴스|랭킹\s*뉴스|더\s*많은\s*기사|"
    r"related (articles|stories)|most read|popular)\b|\d+건의\s*관련\s*기사")
_TABLE_HEADER = re.compile(r"^번호\s+제목(\s+글쓴이)?(\s+(날짜|작성일|등록일))?(\s+조회)?$")
_LIST_ROW = re.compile(r"^\d{1,7}\s+.{4,}\s+\d{4}[.\-/]\d{1,2}[.\-/]\d{1,2}\.?(\s+\d+)?$")
_COPYRIGHT = re.compile(r"(copyright|ⓒ|©|\(c\)\s*\w|무단\s*전재|재배포\s*금지|all rights reserved|저작권자)", re.I)
_WEATHER = re.compile(r"(-?\d+(\.\d+)?\s*(℃|°c)|기상청\s*제공|미세먼지\s*(좋음|보통|나쁨)|^(맑음|흐림|구름많음|구름조금|비|눈)\S*\s*-?\d)",
                      re.I)
_PAGE_DATE = re.compile(r"^\d{4}[.\-/]\s?\d{1,2}[.\-/]\s?\d{1,2}\.?\s*(\([월화수목금토일]\))?\s*$")
_BYLINE_DATE = re.compile(
    r"(입력|등록|게재|발행|승인|기사입력|작성|최초\s*입력|published|posted)\s*(일|일시|시간)?\s*[:：]?\s*"
    r"(\d{4})\s*[-./년]\s*(\d{1,2})\s*[-./월]\s*(\d{1,2})", re.I)
_EDIT_DATE = re.compile(r"^(시간\s*)?(수정|업데이트|updated)\s*[:：]?\s*\d{4}", re.I)
_REPORTER_LINE = re.compile(r"^([가-힣]{2,4})\s*(기자|특파원|선임기자|논설위원)(\s+[\w.+-]+@[\w.-]+)?$")
_BRACKET_PUB = re.compile(r"^\[\s*([^\]=/\d][^\]=/]{0,24}?)\s*\]$")
_BRACKET_PUB_REPORTER = re.compile(r"^\[\s*([^\]=/]{2,24}?)\s*=\s*([가-힣]{2,4})\s*(기자|특파원)\s*\]\s*")
_SIGNATURE = re.compile(r"^\[\s*([^\]/]{2,24}?)\s*/\s*([가-힣]{2,4})\s*(기자|특파원)(\s*/\s*[^\]]*)?\]$")
_COPYRIGHT_PUB = re.compile(r"(?:ⓒ|©|저작권자\s*ⓒ?|copyright\s*(?:ⓒ|©)?)\s*([가-힣A-Za-z][가-힣A-Za-z0-9]{1,20})", re.I)
_COMMENT = re.compile(r"(\d+\s*자\s*이내|현재\s*총\s*\d+\s*개의\s*댓글|댓글\s*\d+|의견\s*쓰기|로그인\s*후)")
_POLL_OPTION = re.compile(r"^\d{1,2}[.)]\s*.{1,40}$")
_CAPTION_CREDIT = re.compile(
    r"(<\s*사진\s*=\s*[^>]+>|\[\s*사진\s*=?[^\]]*\]|\(\s*사진\s*=[^)]*\)|/\s*사진\s*=\s*\S+|"
    r"(로이터|AP|AFP|EPA|연합뉴스|뉴시스|뉴스1)\s*$|\S+\s*제공\s*$|\[[^\]]{2,12}\]\s*$)")
_BANNER = re.compile(r"^(배너|광고|ad|advertisement|sponsored|스폰서)$", re.I)
_SENTENCE_END = re.compile(r"[.!?。…\"'”’)\]]$|다$")
_PREFIX_NOISE = re.compile(r"^(thumbnail|썸네일|image|사진|이미지)\s*[-:|]\s*", re.I)
_PAGINATION = re.compile(r"^\d+\s*/\s*\d+$")


@dataclass
class _Line:
    index: int
    text: str
    reason: str | None = None  # None while undecided; "" means kept
    kind: str = "body"  # body | deck | caption | title


@dataclass(frozen=True)
class CleanResult:
    """A cleaned article and the audit trail of every block."""

    article: Article
    blocks: tuple[Block, ...]

    @property
    def dropped(self) -> list[Block]:
        return [b for b in self.blocks if not b.kept]

    def to_dict(self) -> dict:
        return {"article": self.article.to_dict(), "blocks": [b.to_dict() for b in self.blocks]}


@dataclass(frozen=True)
class CoherenceConfig:
    """Thresholds of the topical-coherence check (calibrated on the seeds and the test pages)."""

    min_chars: int = 20
    z_hard: float = -5.0  # this far below the page's median similarity: off-topic whatever it names
    z_soft: float = -1.0  # below this, off-topic when it also shares no names with the article
    min_shared: float = 0.15  # share of a block's proper nouns found elsewhere in the article
    min_spread: float = 0.005


@dataclass
class _Meta:
    title: str | None = None
    publisher: str | None = None
    reporter: str | None = None
    date: str | None = None


def normalize_line(line: str) -> str:
    line = unicodedata.normalize("NFC", _ZERO_WIDTH.sub("", line)).replace("\xa0", " ")
    line = _BULLET.sub("", line)
    return re.sub(r"\s+", " ", line).strip()


def _key(text: str) -> str:
    return re.sub(r"\W+", "", _PREFIX_NOISE.sub("", text)).casefold()


def clean_text(text: str, article_id: str, *, embed: Callable[[list[str]], np.ndarray] | None = None,
               title: str | None = None, publisher: str | None = None, date: str | None = None,
               source_path: str | None = None, coherence: CoherenceConfig = CoherenceConfig()) -> CleanResult:
    """Clean a plain-text page dump. ``embed`` (passage embedder) enables the coherence check."""
    lines = [_Line(i, normalize_line(raw)) for i, raw in enumerate(text.split("\n"))]
    lines = [ln for ln in lines if ln.text]
    if not lines:
        raise DocumentError(f"{article_id}: no text in the page")
    meta = _Meta(title=title, publisher=publisher, date=date)
    _apply_line_rules(lines, meta)
    _find_title(lines, meta)
    _mark_repeats(lines, meta)
    _apply_end_of_article(lines)
    _strip_byline_prefixes(lines, meta)
    if embed is not None:
        _check_coherence(lines, meta, embed, coherence)
    body = [ln for ln in lines if ln.reason == ""]
    if not body:
        raise DocumentError(f"{article_id}: no article text left after cleaning (all {len(lines)} blocks were page furniture)")
    article_text = "\n\n".join(ln.text for ln in body)
    article = Article(article_id=article_id, title=meta.title or body[0].text[:80], text=article_text,
                      publisher=meta.publisher, reporter=meta.reporter, date=meta.date,
                      source_path=source_path)
    blocks = tuple(Block(ln.index, ln.text, ln.reason == "", ln.reason or f"kept ({ln.kind})") for ln in lines)
    return CleanResult(article, blocks)


def raw_article(text: str, article_id: str, source_path: str | None = None) -> CleanResult:
    """No cleaning at all (the ``--no-clean`` ablation): every non-empty line is kept."""
    lines = [normalize_line(raw) for raw in text.split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DocumentError(f"{article_id}: no text in the page")
    article = Article(article_id=article_id, title=lines[0][:80], text="\n\n".join(lines), source_path=source_path)
    return CleanResult(article, tuple(Block(i, t, True, "kept (no cleaning)") for i, t in enumerate(lines)))


def clean_html(html: str, article_id: str, *, embed=None, source_path: str | None = None,
               coherence: CoherenceConfig = CoherenceConfig()) -> CleanResult:
    """Clean an HTML page: trafilatura extracts the main text and metadata, then the text rules run."""
    import trafilatura

    doc = trafilatura.bare_extraction(html, include_comments=False, include_tables=False,
                                      favor_precision=True, with_metadata=True)
    if doc is None or not (getattr(doc, "text", None) or "").strip():
        raise DocumentError(f"{article_id}: no article text found in the HTML page")
    title = getattr(doc, "title", None)
    publisher = getattr(doc, "sitename", None)
    date = _explicit_html_date(html)
    # Byline lines are often outside trafilatura's main text: look for the stated date there too.
    if date is None:
        m = _BYLINE_DATE.search(trafilatura.html2txt(html) or "")
        date = _iso(m) if m else None
    text = doc.text
    if title and not text.lstrip().startswith(title):
        text = title + "\n" + text
    return clean_text(text, article_id, embed=embed, title=title, publisher=publisher, date=date,
                      source_path=source_path, coherence=coherence)


def _explicit_html_date(html: str) -> str | None:
    """A publication date the page states for the article itself (meta tags / JSON-LD), else None."""
    pats = [r'<meta[^>]+(?:property|name|itemprop)=["\'](?:article:published_time|datePublished|pubdate|'
            r'publish-date|article\.published)["\'][^>]+content=["\'](\d{4})-(\d{2})-(\d{2})',
            r'"datePublished"\s*:\s*"(\d{4})-(\d{2})-(\d{2})']
    for p in pats:
        m = re.search(p, html, re.I)
        if m:
            return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    return None


def _iso(m: re.Match) -> str | None:
    y, mo, d = int(m.group(3)), int(m.group(4)), int(m.group(5))
    if 1 <= mo <= 12 and 1 <= d <= 31 and 1990 <= y <= 2100:
        return f"{y:04d}-{mo:02d}-{d:02d}"
    return None


# ---- rule passes ----------------------------------------------------------------------------
def _apply_line_rules(lines: list[_Line], meta: _Meta) -> None:
    for i, ln in enumerate(lines):
        t = ln.text
        low = t.casefold()
        if low in _UI_EXACT or _PAGINATION.match(t) or re.fullmatch(r"\d{1,4}", t):
            ln.reason = "dropped: page UI (buttons, share, menu)"
        elif _TABLE_HEADER.match(t):
            ln.reason = "dropped: headline list (table header)"
            ln.kind = "end"
        elif _LIST_ROW.match(t):
            ln.reason = "dropped: headline list row"
        elif _LISTING_HEADERS.match(t):
            ln.reason = "dropped: related/popular stories header"
            ln.kind = "end"
        elif _BYLINE_DATE.search(t) and len(t) < 80:
            if meta.date is None:
                meta.date = _iso(_BYLINE_DATE.search(t))
            ln.reason = "dropped: byline (date)"
        elif _EDIT_DATE.match(t) and len(t) < 60:
            ln.reason = "dropped: byline (edit date)"
        elif (m := _SIGNATURE.match(t)):
            meta.publisher = meta.publisher or m.group(1).strip()
            meta.reporter = meta.reporter or m.group(2)
            ln.reason = "dropped: signature byline"
            ln.kind = "end"
        elif (m := _REPORTER_LINE.match(t)):
            meta.reporter = meta.reporter or m.group(1)
            ln.reason = "dropped: byline (reporter)"
        elif (m := _BRACKET_PUB.match(t)) and not _BRACKET_PUB_REPORTER.match(t):
            meta.publisher = meta.publisher or m.group(1).strip()
            ln.reason = "dropped: publisher tag"
        elif _COPYRIGHT.search(t) and len(t) < 200:
            m = _COPYRIGHT_PUB.search(t)
            if m and meta.publisher is None and m.group(1).casefold() not in ("all", "copyright"):
                meta.publisher = m.group(1)
            ln.reason = "dropped: copyright line"
            ln.kind = "end"
        elif _COMMENT.search(t) and len(t) < 60:
            ln.reason = "dropped: comment box"
        elif _PAGE_DATE.match(t):
            ln.reason = "dropped: page header date"
        elif _WEATHER.search(t) and len(t) < 60:
            ln.reason = "dropped: weather widget"
        elif _BANNER.match(t):
            ln.reason = "dropped: banner/advertisement"
        elif _POLL_OPTION.match(t) and _near_poll(lines, i):
            ln.reason = "dropped: poll option"
        elif t.endswith("?") and len(t) < 100 and i + 1 < len(lines) and _POLL_OPTION.match(lines[i + 1].text):
            ln.reason = "dropped: poll question"
        elif _CAPTION_CREDIT.search(t) and len(t) < 300:
            ln.kind = "caption"


def _near_poll(lines: list[_Line], i: int) -> bool:
    """A numbered short line is a poll option when it sits in a run of such lines after a question."""
    j = i
    while j > 0 and _POLL_OPTION.match(lines[j - 1].text):
        j -= 1
    return j > 0 and lines[j - 1].text.endswith("?")


def _is_headline_shaped(t: str) -> bool:
    return 6 <= len(t) <= 120 and not re.search(r"[.!]$|다\.$", t)


def _find_title(lines: list[_Line], meta: _Meta) -> None:
    if meta.title:
        key = _key(meta.title)
        for ln in lines:
            if ln.reason is None and _key(ln.text) == key:
                ln.reason, ln.kind = "dropped: title (kept as metadata)", "title"
                break
        return
    for ln in lines:
        if ln.reason is None and len(ln.text) >= 6:
            if _is_headline_shaped(ln.text) and ln.kind == "body":
                meta.title = ln.text
                ln.reason, ln.kind = "dropped: title (kept as metadata)", "title"
            return


def _mark_repeats(lines: list[_Line], meta: _Meta) -> None:
    seen: set[str] = {_key(meta.title)} if meta.title else set()
    for ln in lines:
        k = _key(ln.text)
        if ln.kind == "title":
            continue
        if k in seen and len(k) > 3:
            if ln.reason is None:
                ln.reason = "dropped: repeated line (printed twice)"
        else:
            seen.add(k)


def _apply_end_of_article(lines: list[_Line]) -> None:
    """After the article has begun, a copyright line, signature or listing header ends it."""
    started = False
    ended = False
    for ln in lines:
        if ended:
            if ln.reason is None:
                ln.reason = "dropped: after the end of the article (other stories, widgets)"
            continue
        if ln.reason is None and ln.kind == "body" and len(ln.text) >= 40:
            started = True
        if ln.kind == "end" and started:
            ended = True
    for ln in lines:
        if ln.reason is None:
            if ln.kind == "body" and not _is_sentence(ln.text):
                if len(ln.text) < 12:
                    ln.reason = "dropped: short fragment (section name, label)"
                else:
                    ln.kind = "deck"
            ln.reason = "" if ln.reason is None else ln.reason


def _is_sentence(t: str) -> bool:
    return bool(_SENTENCE_END.search(t)) and len(t) >= 25


def _strip_byline_prefixes(lines: list[_Line], meta: _Meta) -> None:
    """"[매체=기자] 본문…": the prefix gives publisher and reporter; a second one starts another story."""
    seen_body = False
    for idx, ln in enumerate(lines):
        if ln.reason != "":
            continue
        m = _BRACKET_PUB_REPORTER.match(ln.text)
        if m:
            if seen_body and meta.publisher:
                ln.reason = "dropped: another story (second byline in the page)"
                if idx > 0 and lines[idx - 1].reason == "" and lines[idx - 1].kind == "deck":
                    lines[idx - 1].reason = "dropped: another story's headline"
                continue
            meta.publisher = meta.publisher or m.group(1).strip()
            meta.reporter = meta.reporter or m.group(2)
            ln.text = ln.text[m.end():].strip()
        if ln.kind == "body":
            seen_body = True


def _proper_nouns(text: str) -> set[str]:
    return {m.form for m in analyze(text) if m.tag in ("NNP", "SL", "SH") and len(m.form) > 1}


def _check_coherence(lines: list[_Line], meta: _Meta, embed, cfg: CoherenceConfig) -> None:
    """Drop blocks that are off the page's main topic: far from the leave-one-out centroid of the
    other blocks (robust z-score within the page) and sharing no proper nouns with the rest of the
    article (neighbouring blocks excluded, since an embedded story has a headline next to it)."""
    kept = [ln for ln in lines if ln.reason == "" and len(ln.text) >= cfg.min_chars]
    if len(kept) < 4:
        return
    vecs = embed([meta.title or ""] + [ln.text for ln in kept])
    title_vec, vecs = vecs[0], vecs[1:]
    total = vecs.sum(axis=0) + title_vec
    sims = np.empty(len(kept))
    for i, v in enumerate(vecs):
        centroid = total - v
        sims[i] = float(v @ centroid / (np.linalg.norm(centroid) or 1.0))
    median = float(np.median(sims))
    spread = max(1.4826 * float(np.median(np.abs(sims - median))), cfg.min_spread)
    props = [_proper_nouns(ln.text) for ln in kept]
    title_props = _proper_nouns(meta.title or "")
    for i, ln in enumerate(kept):
        z = (sims[i] - median) / spread
        others = set(title_props).union(*(props[j] for j in range(len(kept)) if abs(j - i) > 1))
        shared = len(props[i] & others) / len(props[i]) if props[i] else 1.0
        if z < cfg.z_hard or (z < cfg.z_soft and len(props[i]) >= 2 and shared < cfg.min_shared):
            ln.reason = f"dropped: off-topic block (coherence z {z:.1f}, shared names {shared:.2f})"
    # An off-topic block's headline sits right above it: drop a deck line there too.
    for i, ln in enumerate(lines):
        if ln.reason.startswith("dropped: off-topic") and i > 0:
            prev = lines[i - 1]
            if prev.reason == "" and prev.kind == "deck" and not (_proper_nouns(prev.text) & title_props):
                prev.reason = "dropped: headline of an off-topic story"
