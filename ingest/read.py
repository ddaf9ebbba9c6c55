"""Reading a page from disk: size and type checks, encoding detection (UTF-8, BOMs, CP949/EUC-KR)."""

from __future__ import annotations

import codecs
from pathlib import Path

from rag.errors import DocumentError

SUPPORTED_SUFFIXES = (".txt", ".html", ".htm")  # what a folder's ingest takes; anything else is skipped
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or a ``DocumentError`` that says what is wrong with it."""
    try:
        if not path.exists():
            raise DocumentError(f"{path}: no such file")
        if not path.is_file():
            raise DocumentError(f"{path}: not a regular file")
        size = path.stat().st_size
        if size == 0:
            raise DocumentError(f"{path}: file is empty")
        if size > max_bytes:
            raise DocumentError(f"{path}: file is {_size(size)}, over the limit of {_size(max_bytes)} (RAG_MAX_FILE_BYTES)")
        return path.read_bytes()
    except PermissionError:
        raise DocumentError(f"{path}: permission denied") from None
    except OSError as e:
        raise DocumentError(f"{path}: cannot read ({e.strerror or e})") from None


def decode(data: bytes, name: str = "input") -> str:
    """Text of a page: a BOM wins, then UTF-16 without one (a page with NUL bytes), then strict UTF-8,
    then CP949 (a superset of EUC-KR). A NUL character anywhere is refused as binary."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                raise DocumentError(f"{name}: has a {encoding} byte-order mark but does not decode as it") from None
            if "\x00" in text:
                raise DocumentError(f"{name}: looks like a binary file (NUL characters), not a text or HTML page")
            return _normalize_newlines(text)
    if b"\x00" in data:  # anywhere: a NUL never reaches the cleaned text
        utf16 = _utf16_without_bom(data)
        if utf16 is not None:
            return _normalize_newlines(utf16)
        raise DocumentError(f"{name}: looks like a binary file (NUL bytes), not a text or HTML page")
    for encoding in ("utf-8", "cp949"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _control_ratio(text) > 0.05:
            raise DocumentError(f"{name}: looks like a binary file (control characters), not a text or HTML page")
        return _normalize_newlines(text)
    raise DocumentError(f"{name}: not valid UTF-8 or CP949/EUC-KR text; re-save the page as UTF-8")


def _size(n: int) -> str:
    """Bytes in the unit a person reads them in (1024-based: 10485760 is "10 MiB")."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{n} bytes"


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text saved without a byte-order mark (little- or big-endian): the byte order whose text
    is nearly all characters a page is written in wins. Which side its NUL bytes fall on says
    nothing for Korean: 가 (U+AC00), 대, 관 and 글 have a NUL low byte, a space or ASCII letter a NUL
    high byte. The other byte order turns such text into ideographs and symbols, and binary data
    gives code points from all over; both are refused."""
    if len(data) < 4 or len(data) % 2:
        return None
    best, best_share = None, 0.0
    for encoding in ("utf-16-le", "utf-16-be"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:  # a lone surrogate: not text in this byte order
            continue
        share = _page_text_share(text)
        if "\x00" not in text and _control_ratio(text) <= 0.05 and share > best_share:
            best, best_share = text, share
    return best if best_share >= 0.9 else None


def _page_text_share(text: str) -> float:
    """Share of the first 20,000 characters that a Korean or English page is written in: ASCII,
    Hangul, the common punctuation and symbol blocks (CJK ideographs count half: Hanja are rare in
    a page, and ASCII read in the wrong byte order lands among them)."""
    sample = text[:20000]
    if not sample:
        return 0.0
    score = 0.0
    for ch in sample:
        c = ord(ch)
        if (32 <= c < 127 or ch in "\n\r\t" or 0xAC00 <= c <= 0xD7A3 or 0x1100 <= c <= 0x11FF or 0x3130 <= c <= 0x318F
                or 0x2010 <= c <= 0x206F or 0x3000 <= c <= 0x303F or 0xFF01 <= c <= 0xFF5E or c in (0xA0, 0xB7)):
            score += 1.0
        elif 0x4E00 <= c <= 0x9FFF:
            score += 0.5
    return score / len(sample)


def is_html(name: str, text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return name.lower().endswith((".html", ".htm")) or head.startswith(("<!doctype html", "<html"))


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _control_ratio(text: str) -> float:
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f\v")
    return bad / len(sample)
