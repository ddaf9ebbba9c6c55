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
    """Text of a page: a BOM wins, then strict UTF-8, then CP949 (a superset of EUC-KR)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _normalize_newlines(data.decode(encoding))
            except UnicodeDecodeError:
                raise DocumentError(f"{name}: has a {encoding} byte-order mark but does not decode as it") from None
    if b"\x00" in data[:8192]:
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
    """UTF-16 text saved without a byte-order mark: every NUL byte sits on one side of the byte
    pairs, and the bytes are not UTF-8 (Korean in UTF-16 never is), or nearly every byte on that
    side is NUL (ASCII in UTF-16). Anything else with NUL bytes is binary."""
    sample = data[:8192]
    if len(sample) < 4 or len(data) % 2:
        return None
    try:
        data.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    for encoding, side, other in (("utf-16-le", sample[1::2], sample[0::2]), ("utf-16-be", sample[0::2], sample[1::2])):
        if other.count(0) or not side.count(0):
            continue
        if utf8 and side.count(0) < 0.9 * len(side):
            continue
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _control_ratio(text) <= 0.05:
            return text
    return None


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
