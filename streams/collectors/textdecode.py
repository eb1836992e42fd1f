"""Bytes to text for pages whose charset is missing, wrong or exotic.

Vietnamese sites still serve windows-1258 and pages that declare ``iso-8859-1`` while sending
UTF-8. Decoding must never raise: a page that cannot be decoded cleanly is still scanned, with
``charset_fallback`` recorded so an analyst knows the text may contain replacement characters.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Labels servers send by default without knowing the real encoding; UTF-8 that decodes cleanly
# wins over them.
_WEAK_DECLARATIONS = {"ascii", "iso8859-1", "cp1252", "latin-1"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_SNIFF_BYTES = 4096
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\b\x1b")
_DETECT_BYTES = 64 * 1024


@dataclass(frozen=True)
class DecodedText:
    """Decoded text and how it was obtained."""

    text: str
    charset: str
    fallback: bool
    binary: bool = False


def charset_from_content_type(content_type: str | None) -> str | None:
    """Extract ``charset=`` from a Content-Type header value."""
    if not content_type:
        return None
    match = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.I)
    return match.group(1) if match else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def looks_binary(data: bytes) -> bool:
    """Guess whether bytes are not text at all: NUL bytes or many control characters."""
    sample = data[:_SNIFF_BYTES]
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    controls = sum(1 for byte in sample if byte < 32 and byte not in _TEXT_CONTROLS)
    return controls > len(sample) // 10


def _finish(text: str, charset: str, fallback: bool) -> DecodedText:
    # windows-1258 spells tones as combining marks; NFC gives detectors one form of each letter.
    return DecodedText(unicodedata.normalize("NFC", text), charset, fallback)


def decode_bytes(data: bytes, declared: str | None = None, *, sniff: bool = True) -> DecodedText:
    """Decode ``data`` trying, in order: BOM, declared charset, in-document declaration, UTF-8,
    statistical detection, and finally UTF-8 with replacement characters.
    """  # noqa: D205 - the order is the point of the docstring
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _finish(data.decode(codec, errors="replace"), codec, False)

    candidates: list[str] = []
    declared_codec = _codec(declared)
    fallback = declared is not None and declared_codec is None
    if declared_codec:
        candidates.append(declared_codec)
    if sniff:
        head = data[:_SNIFF_BYTES]
        match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
        if match:
            sniffed = _codec(match.group(1).decode("ascii", errors="ignore"))
            if sniffed and sniffed not in candidates:
                candidates.append(sniffed)
    if candidates and candidates[0] in _WEAK_DECLARATIONS:
        utf8 = _strict(data, "utf-8")
        if utf8 is not None:
            return _finish(utf8, "utf-8", False)
    for position, codec in enumerate(candidates):
        text = _strict(data, codec)
        if text is not None:
            return _finish(text, codec, fallback or (position > 0 and declared_codec is not None))
        fallback = True

    if looks_binary(data):
        return DecodedText("", "binary", True, binary=True)
    utf8 = _strict(data, "utf-8")
    if utf8 is not None:
        return _finish(utf8, "utf-8", fallback)
    detected = _detect(data)
    if detected:
        return _finish(data.decode(detected, errors="replace"), detected, True)
    return _finish(data.decode("utf-8", errors="replace"), "utf-8", True)


def _detect(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - optional dependency
        return None
    best = from_bytes(data[:_DETECT_BYTES]).best()
    return _codec(best.encoding) if best is not None else None
