"""A page as a sequence of blocks: the lines of a text dump, or the block elements of an HTML page
(with what the markup says about each: heading, list item, inside a nav or footer, link share,
class names, whether trafilatura counts it as main text)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from rag.lexicon import ARTICLE_CLASS_WORDS, CHROME_TAGS, LAYOUT_CLASS_WORDS

_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")
_BULLET = re.compile(r"^[\s•·▶▷►■□◆◇●○※☞\-–—*>]+")
_INLINE = frozenset({"a", "span", "b", "strong", "em", "i", "u", "small", "sub", "sup", "time", "img", "mark", "abbr",
                     "cite", "q", "s", "code", "font", "label", "wbr"})
_SKIP = frozenset({"script", "style", "head", "noscript", "template", "svg", "iframe", "canvas", "object", "select"})
_CLASS_TOKEN = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class HtmlContext:
    """What the markup says about a block."""

    tag: str
    heading: int = 0  # 1-6 for h1-h6
    in_chrome: bool = False  # inside nav/header/footer/aside/form/button
    in_article: bool = False  # inside <article> or <main>
    layout_class: bool = False  # an ancestor's class or id names page chrome (nav, footer, related...)
    article_class: bool = False  # ... or the story body (article, content, view...)
    in_list: bool = False
    in_figure: bool = False
    in_table: bool = False
    link_share: float = 0.0  # share of the block's characters inside links
    in_main: bool = False  # trafilatura's main text holds it


@dataclass(frozen=True)
class PageBlock:
    """One line or block element of a page."""

    index: int
    text: str  # normalised: NFC, no zero-width characters, single spaces, no leading bullet
    bullet: bool = False  # the raw line started with a bullet or arrow
    html: HtmlContext | None = None


@dataclass(frozen=True)
class PageMeta:
    """What an HTML page states about itself (trafilatura's metadata)."""

    title: str | None = None
    site_name: str | None = None
    date: str | None = None
    author: str | None = None


@dataclass
class Page:
    blocks: list[PageBlock]
    meta: PageMeta = field(default_factory=PageMeta)
    is_html: bool = False


# Kiwi's sentence splitter costs more than linearly in the length of what it is given (100k
# characters: 4.9 s; 700k: minutes): a longer line or paragraph is cut into pieces at sentence ends.
MAX_BLOCK_CHARS = 2000
_SENTENCE_END = re.compile(r"(?<=[.!?。…])\s+|(?<=[다요][.])(?=\S)")


def split_long(text: str, limit: int = MAX_BLOCK_CHARS) -> list[str]:
    """``text`` as pieces of at most ``limit`` characters, cut after sentence ends where it can be
    (else at a space, else anywhere)."""
    if len(text) <= limit:
        return [text]
    pieces, current = [], ""
    for part in _SENTENCE_END.split(text):
        while len(part) > limit:  # one "sentence" longer than the limit
            cut = part.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if current:
                pieces.append(current)
                current = ""
            pieces.append(part[:cut].strip())
            part = part[cut:].strip()
        if current and len(current) + 1 + len(part) > limit:
            pieces.append(current)
            current = part
        else:
            current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


def normalize_line(line: str) -> str:
    line = unicodedata.normalize("NFC", _ZERO_WIDTH.sub("", line)).replace("\xa0", " ")
    line = _BULLET.sub("", line)
    return re.sub(r"\s+", " ", line).strip()


def text_page(text: str) -> Page:
    """A text dump: one block per non-empty line."""
    blocks = []
    for raw in text.split("\n"):
        t = normalize_line(raw)
        bullet = bool(_BULLET.match(raw.strip()[:1] or " ") and raw.strip()[:1] not in "-")
        for piece in split_long(t) if t else ():
            blocks.append(PageBlock(len(blocks), piece, bullet))
    return Page(blocks)


def html_page(html: str) -> Page:
    """An HTML page: one block per block-level element's own text (a <br> also ends a block)."""
    import lxml.html
    from lxml.etree import ParserError

    try:
        root = lxml.html.document_fromstring(html)
    except (ParserError, ValueError):
        return Page([], is_html=True)
    pieces: list[tuple[object, str, bool]] = []  # (block element, text, inside a link)
    breaks = object()

    def visit(el, in_link: bool):
        tag = el.tag if isinstance(el.tag, str) else ""
        if not tag or tag in _SKIP:
            return
        if tag == "br":
            pieces.append((breaks, "", False))
        link = in_link or tag == "a"
        block = _block_of(el)
        if el.text:
            pieces.append((block, el.text, link))
        for child in el:
            visit(child, link)
            if child.tail:
                pieces.append((block, child.tail, in_link))

    body = root.find("body")
    visit(body if body is not None else root, False)
    groups: list[tuple[object, list[tuple[str, bool]]]] = []
    for block, text, link in pieces:
        if block is breaks:
            groups.append((None, []))
            continue
        if not groups or groups[-1][0] is not block:
            if not text.strip():
                continue
            groups.append((block, []))
        groups[-1][1].append((text, link))
    doc = _trafilatura(html)
    main = _key(getattr(doc, "text", None) or "")
    blocks = []
    for el, parts in groups:
        if el is None:
            continue
        text = normalize_line("".join(t for t, _ in parts))
        if not text:
            continue
        linked = sum(len(t.strip()) for t, link in parts if link)
        k = _key(text)
        ctx = _context(el, linked / max(1, sum(len(t.strip()) for t, _ in parts)), bool(k) and k in main)
        raw = "".join(t for t, _ in parts).strip()
        for piece in split_long(text):
            blocks.append(PageBlock(len(blocks), piece, bool(raw) and bool(_BULLET.match(raw[0])) and raw[0] != "-", ctx))
    return Page(blocks, _html_meta(doc), is_html=True)


def _block_of(el):
    while el is not None and isinstance(el.tag, str) and el.tag in _INLINE:
        el = el.getparent()
    return el


def _class_tokens(el) -> set[str]:
    return set(_CLASS_TOKEN.findall(f"{el.get('class') or ''} {el.get('id') or ''}".lower().replace("-", "_")))


def _context(el, link_share: float, in_main: bool) -> HtmlContext:
    tag = el.tag
    heading = int(tag[1]) if re.fullmatch(r"h[1-6]", tag) else 0
    chrome = article = layout = article_cls = in_list = figure = table = False
    node = el
    while node is not None and isinstance(node.tag, str):
        t = node.tag
        chrome |= t in CHROME_TAGS
        article |= t in ("article", "main")
        in_list |= t == "li"
        figure |= t in ("figure", "figcaption")
        table |= t in ("td", "th", "table")
        if not (layout or article_cls):  # the nearest class or id that names a part of the page decides
            tokens = _class_tokens(node)
            # an underscore-joined name ("article_body") counts as a whole, then by its parts
            joined = set(f"{node.get('class') or ''} {node.get('id') or ''}".lower().replace("-", "_").split())
            article_cls = bool(joined & ARTICLE_CLASS_WORDS or tokens & ARTICLE_CLASS_WORDS)
            layout = bool(tokens & LAYOUT_CLASS_WORDS) and not joined & ARTICLE_CLASS_WORDS
        node = node.getparent()
    return HtmlContext(tag, heading, chrome, article, layout, article_cls, in_list, figure, table, round(link_share, 3),
                       in_main)


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text)).casefold()


def _trafilatura(html: str):
    """trafilatura's main text and metadata (recall-oriented: it is one signal among several)."""
    import trafilatura

    try:
        return trafilatura.bare_extraction(html, with_metadata=True, favor_recall=True, include_comments=False,
                                           include_tables=True)
    except Exception:  # trafilatura raises assorted errors on broken markup; its signal is then absent
        return None


def _html_meta(doc) -> PageMeta:
    if doc is None:
        return PageMeta()
    site = getattr(doc, "sitename", None)
    if site and re.fullmatch(r"[\w.-]+\.[a-z]{2,}", site):  # a host name, not the outlet's name
        site = None
    return PageMeta(getattr(doc, "title", None), site, getattr(doc, "date", None), getattr(doc, "author", None))
