"""Normalisation that keeps offsets honest.

Leaked data arrives decomposed (NFD), in fullwidth digits, or with zero-width characters
slipped between digits to dodge filters. Matching runs on a normalised copy; every finding
is mapped back to code-point offsets of the *original* text, so ``text[start:end]`` is
always the written match. Plain ASCII and already-clean text (almost everything) takes a
fast path with no offset table at all.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import regex

# Characters that are invisible or formatting-only; removed before matching.
INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"

# Fullwidth and other look-alike punctuation mapped one-to-one to ASCII.
_WIDTH_MAP = {0xFF10 + i: 0x30 + i for i in range(10)}
_WIDTH_MAP.update({0xFF0B: ord("+"), 0xFF0D: ord("-"), 0xFF0E: ord("."), 0xFF08: ord("("),
                   0xFF09: ord(")"), 0x3000: ord(" "), 0x00A0: ord(" "), 0x2010: ord("-"),
                   0x2011: ord("-"), 0x2012: ord("-"), 0x2013: ord("-"), 0xFF20: ord("@")})
_NEEDS_WORK = re.compile("[" + INVISIBLE + "\uff08-\uff20\u3000\u00a0\u2010-\u2013]")
_CLUSTER = regex.compile(r"\P{M}\p{M}*|\p{M}+")


def _build_fold_table() -> dict[int, int]:
    """Lower-case and strip Vietnamese diacritics one code point to one, keeping offsets."""
    table: dict[int, int] = {}
    for cp in list(range(0xC0, 0x250)) + list(range(0x1E00, 0x1F00)):
        char = chr(cp)
        low = char.lower()
        if len(low) != 1:
            continue
        base = unicodedata.normalize("NFD", low)[0]
        if base != char:
            table[cp] = ord(base)
    table[ord("đ")] = ord("d")
    table[ord("Đ")] = ord("d")
    return table


_FOLD = _build_fold_table()


def fold(text: str) -> str:
    """Diacritic-folded lower-case copy of the same length (``số tài khoản`` → ``so tai khoan``)."""
    if text.isascii():
        return text.lower()
    low = text.lower()
    if len(low) != len(text):  # a few letters lower-case to two code points: keep them as is
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    return low.translate(_FOLD)


@dataclass(frozen=True)
class NormalizedText:
    """The matching view of a text plus the map back to original offsets.

    ``starts[i]``/``ends[i]`` give the original span of normalised character ``i``; they are
    ``None`` when the text needed no change (offsets are then identical).
    """

    text: str
    starts: list[int] | None = None
    ends: list[int] | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open span of the normalised text to the original text."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            pos = self.starts[start] if start < len(self.starts) else (self.ends[-1] if self.ends
                                                                        else 0)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


def normalize(text: str) -> NormalizedText:
    """NFC, fullwidth→ASCII and invisible characters removed, with an offset map when needed."""
    if text.isascii():
        return NormalizedText(text)
    if unicodedata.is_normalized("NFC", text) and _NEEDS_WORK.search(text) is None:
        return NormalizedText(text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in _CLUSTER.finditer(text):
        cluster = match.group()
        if cluster in INVISIBLE:
            continue
        begin, finish = match.span()
        piece = unicodedata.normalize("NFC", cluster).translate(_WIDTH_MAP)
        piece = "".join(ch for ch in piece if ch not in INVISIBLE)
        for ch in piece:
            out.append(ch)
            starts.append(begin)
            ends.append(finish)
    return NormalizedText("".join(out), starts, ends)
