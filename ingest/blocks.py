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


# A photo's credit glued to the end of its caption ("… 있다. /사진=가람일보 DB", "… 있다. 가람시 제공",
# "… 있다. 2026.2.11 [가람통신 사진부]"): the words that mark a credit (사진=, 제공, DB, 캡처, 자료사진,
# 사진부, a reporter's title) after a sentence's end make it a block of its own, so that the caption is
# kept and the credit, which is page furniture, can be dropped.
_CREDIT_TAIL = re.compile(
    r"(?<=[.!?。\"'”’])\s*("
    r"(?:\d{4}\.\d{1,2}\.\d{1,2}\.?\s*)?[\[(<]\s*[^\[\]()<>]{1,40}?(?:제공|DB|캡처|캡쳐|자료사진|사진부|사진|기자|통신원)"
    r"(?:\s*[.,]\s*[^\[\]()<>]{0,20})?\s*[\])>]"
    r"|/?\s*(?:사진|영상|그래픽)\s*(?:제공)?\s*[=:]\s*[^=/]{1,30}"
    r"|/\s*[^/=]{1,30}?(?:제공|DB|캡처|캡쳐|자료사진|기자)?"
    # a bare name before 제공: words that end in no particle ("가람시 제공", not "시는 자료를 제공")
    r"|(?:[가-힣A-Za-z0-9·&]{1,15}(?<![은는이가을를에의도로와과])\s){1,3}(?:제공|자료사진)"
    r")\s*$")


def split_credit(text: str) -> list[str]:
    """A block, or the caption and the credit glued to its end as two blocks."""
    m = _CREDIT_TAIL.search(text)
    if not m or m.start(1) < 10 or len(m.group(1)) > 50:
        return [text]
    return [text[:m.start(1)].rstrip(), m.group(1).strip()]


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
        for piece in (p for part in split_long(t) for p in split_credit(part)) if t else ():
            blocks.append(PageBlock(len(blocks), piece, bullet))
    return Page(blocks)


def html_page(html: str) -> Page:
    """An HTML page: one block per block-level element's own text (a <br> also ends a block)."""
    import lxml.html
    from lxml.etree import ParserError

    try:
        root = _parse(html)
        if root is None:  # nested deeper than the parser goes: read it with its nesting cut
            html = flatten_nesting(html)
            root = _parse(html)
            if root is None:  # still too deep: what the parser keeps
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
    doc = _trafilatura(html)  # the flattened page, when it was nested too deep
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
        for piece in (p for part in split_long(text) for p in split_credit(part)):
            blocks.append(PageBlock(len(blocks), piece, bool(raw) and bool(_BULLET.match(raw[0])) and raw[0] != "-", ctx))
    return Page(blocks, _html_meta(doc), is_html=True)


def _parse(html: str):
    """The page's element tree, or None when libxml2 stopped at its depth limit (256 elements deep;
    what lies deeper would be dropped without a word)."""
    import lxml.html

    parser = lxml.html.HTMLParser()
    root = lxml.html.document_fromstring(html, parser=parser)
    return None if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log) else root


# How deep a page may nest elements once flattened: below libxml2's limit of 256, which trafilatura
# stops at too. Real news pages nest 20 to 40 deep.
MAX_DEPTH = 200
_WRAPPERS_KEPT = 32  # opening tags kept at the inner end of a run of them (a deep wrapper chain)
_TAG = re.compile(r"<!--.*?-->|<(script|style|textarea|title)\b[^>]*>.*?</\1\s*>|<(/?)([A-Za-z][\w:-]*)([^<>]*)>",
                  re.S | re.I)
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
                   "track", "wbr"})
_IMPLIED_END = {"p": {"p"}, "li": {"li"}, "dt": {"dt", "dd"}, "dd": {"dt", "dd"}, "option": {"option"},
                "tr": {"tr", "td", "th"}, "td": {"td", "th"}, "th": {"td", "th"}}
_NEVER_DROPPED = frozenset({"html", "head", "body"})


def flatten_nesting(html: str, max_depth: int = MAX_DEPTH) -> str:
    """The page with its element nesting cut to ``max_depth``, for a page nested deeper than the
    parsers go (25,000 ``<div>``s around an article). In a run of opening tags with nothing between
    them, all but the innermost ``_WRAPPERS_KEPT`` go, with their closing tags: wrappers that hold no
    text of their own. An element still deeper than ``max_depth`` is read as part of its ancestor at
    that depth: its tags become line breaks (inline ones go), so its text stays, in its place."""
    tags = [m for m in _TAG.finditer(html) if m.group(3)]  # comments and script/style bodies are skipped
    opening = [not m.group(2) and m.group(3).lower() not in _VOID and not m.group(4).rstrip().endswith("/")
               for m in tags]
    wrapper = [False] * len(tags)
    i = 0
    while i < len(tags):  # a run of opening tags with only spaces between them
        j = i + 1
        if opening[i]:
            while j < len(tags) and opening[j] and not html[tags[j - 1].end():tags[j].start()].strip():
                j += 1
            for k in range(i, j - _WRAPPERS_KEPT):
                wrapper[k] = tags[k].group(3).lower() not in _NEVER_DROPPED
        i = j
    out, last = [], 0
    stack: list[tuple[str, str | None]] = []  # open elements: (name, what its tags become when dropped)
    kept = 0  # open elements not dropped
    for i, m in enumerate(tags):
        name = m.group(3).lower()
        if opening[i]:
            while stack and name in _IMPLIED_END and stack[-1][0] in _IMPLIED_END[name]:
                kept -= stack.pop()[1] is None  # "<p>a<p>b": the first p ends where the second starts
            if wrapper[i]:
                becomes = ""
            elif kept >= max_depth:
                becomes = "" if name in _INLINE else "<br>"
            else:
                becomes = None
            stack.append((name, becomes))
            kept += becomes is None
        elif m.group(2):
            at = next((k for k in range(len(stack) - 1, -1, -1) if stack[k][0] == name), None)
            if at is None:
                continue  # closes nothing open: the parser ignores it too
            becomes = stack[at][1]
            kept -= sum(b is None for _, b in stack[at:])
            del stack[at:]
        else:
            continue
        if becomes is not None:
            out.append(html[last:m.start()])
            out.append(becomes)
            last = m.end()
    out.append(html[last:])
    return "".join(out)


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
