"""Normalisation that keeps offsets honest.

Leaked data arrives decomposed (NFD), in fullwidth digits, or with zero-width characters
slipped between digits to dodge filters. Matching runs on a normalised copy; every finding
is mapped back to code-point offsets of the *original* text, so ``text[start:end]`` is
always the written match. Plain ASCII and already-clean text (almost everything) takes a
fast path with no offset table at all.
"""

from __future__ import annotations

import bisect
import codecs
import itertools
import re
import threading
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


# Keyword matching needs a folded copy of whole documents, and ``str.translate`` with a dict
# costs ~30 ns per non-ASCII character. Vietnamese text uses 67 lower-case letters outside
# ASCII; a charmap codec turns each into one byte (C speed), ``bytes.translate`` folds those
# bytes, and every other non-ASCII character becomes a stand-in that keeps only what ASCII
# keywords can observe: whether it is alphanumeric (word boundaries).
_VIETNAMESE_LOWER = sorted(
    {unicodedata.normalize("NFC", base + tone)
     for base in ("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y")
     for tone in ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")} - set("aeiouy")
    | {"đ"}
)
_OTHER_ALNUM, _OTHER = "\ue000", "\ue001"
_CODEC_CHARS = [chr(i) for i in range(128)] + _VIETNAMESE_LOWER + [_OTHER_ALNUM, _OTHER]
_CODEC_CHARS += [chr(0xE100 + i) for i in range(256 - len(_CODEC_CHARS))]
_ENCODING_MAP = codecs.charmap_build("".join(_CODEC_CHARS))
# The stand-ins and filler slots are private-use characters: a text that holds one takes
# the exact path, so it cannot be confused with a stand-in.
_FILLERS = re.compile("[" + "".join(_CODEC_CHARS[128 + len(_VIETNAMESE_LOWER):]) + "]")
_BYTE_FOLD = bytearray(range(256))
for _slot, _char in enumerate(_VIETNAMESE_LOWER, start=128):
    _BYTE_FOLD[_slot] = ord(unicodedata.normalize("NFD", _char)[0]) if _char != "đ" else ord("d")
_BYTE_FOLD[128 + len(_VIETNAMESE_LOWER)] = 0xFF  # "ÿ": alphanumeric, never in an ASCII keyword
_BYTE_FOLD[ord("A"):ord("Z") + 1] = bytes(range(ord("a"), ord("z") + 1))  # no str.lower()
_BYTE_FOLD[129 + len(_VIETNAMESE_LOWER)] = 0x00
_BYTE_FOLD_TABLE = bytes(_BYTE_FOLD)


# Capitals outside ASCII ("SỐ TÀI KHOẢN", common in sale posts) reach the error handler one
# word at a time: an all-caps Vietnamese text folded at ~205 ms per MB, against ~11 for the
# same text in lower case. Past this many handler calls in one text, the fold starts again
# on ``str.lower()`` of the text (~6 ms per MB), where those letters encode in C.
STAND_INS_BEFORE_LOWER = 256
_fold_calls = threading.local()  # handler calls in this thread's current encode, or None


class _ManyCapitals(Exception):
    """Raised by the handler to switch ``fold_for_ascii_keywords`` to the lower-cased text."""


def _stand_ins(error: UnicodeEncodeError) -> tuple[str, int]:
    calls = getattr(_fold_calls, "count", None)
    if calls is not None:
        if calls >= STAND_INS_BEFORE_LOWER:
            raise _ManyCapitals
        _fold_calls.count = calls + 1
    out = []
    for char in error.object[error.start:error.end]:
        low = char.lower()  # upper-case Vietnamese ("Ố"), or "K" (Kelvin) -> "k"
        char = low if len(low) == 1 else char
        folded = chr(_FOLD.get(ord(char), ord(char)))
        out.append(folded if folded.isascii() else (_OTHER_ALNUM if char.isalnum() else _OTHER))
    return "".join(out), error.end


# Only ever called for encoding errors; typeshed types handlers for any UnicodeError.
codecs.register_error("roriwatch-fold", _stand_ins)  # type: ignore[arg-type]


def fold_for_ascii_keywords(text: str) -> str:
    """Like ``fold`` wherever an ASCII keyword can tell the difference, several times faster.

    Same length as ``text``; ASCII and Vietnamese letters fold exactly as in ``fold``;
    other non-ASCII characters become "ÿ" when alphanumeric and NUL otherwise, so
    ASCII-only keyword automata find exactly the same word-bounded hits.
    """
    if text.isascii():
        return text.lower()
    if _FILLERS.search(text) is not None:
        return fold(text)
    # No str.lower() first (~6 ms per MB of Vietnamese): ASCII capitals fold in the byte
    # table, and capitals outside ASCII, rare in running text, in the error handler, until
    # there are many of them (STAND_INS_BEFORE_LOWER). The handler lower-cases each
    # character it gets, so starting again on the lower-cased text gives the same result;
    # unless lower-casing changes the length ("İ"), which only the per-character way keeps.
    _fold_calls.count = 0
    try:
        encoded, _ = codecs.charmap_encode(text, "roriwatch-fold", _ENCODING_MAP)
    except _ManyCapitals:
        low = text.lower()
        _fold_calls.count = None
        encoded, _ = codecs.charmap_encode(low if len(low) == len(text) else text,
                                           "roriwatch-fold", _ENCODING_MAP)
    finally:
        _fold_calls.count = None
    return encoded.translate(_BYTE_FOLD_TABLE).decode("latin-1")


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
    ``None`` when the text needed no change (offsets are then identical). Decomposed text
    whose every combining mark composed into the character before it keeps a sparse map
    instead (``runs``: see ``_composed``), one entry per mark run rather than per character;
    so does composed text that only lost invisible characters (see ``_cleaned``).
    """

    text: str
    starts: list[int] | None = None
    ends: list[int] | None = None
    runs: _MarkRuns | _RemovedRuns | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open span of the normalised text to the original text."""
        if self.runs is not None:
            return self.runs.original_span(start, end, len(self.text))
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            pos = self.starts[start] if start < len(self.starts) else (self.ends[-1] if self.ends
                                                                        else 0)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


@dataclass(frozen=True)
class _MarkRuns:
    """Where combining marks were absorbed into the character before them.

    Per run of marks: the normalised index of the character it composed into, the marks
    absorbed up to and including it, and where the run ends in the original text.
    """

    bases: list[int]
    absorbed: list[int]
    ends: list[int]
    original_length: int

    def _position(self, index: int) -> tuple[int, int]:
        """Original position of normalised character ``index``, and which run (or -1) it has."""
        at = bisect.bisect_left(self.bases, index)
        before = self.absorbed[at - 1] if at else 0
        has_run = at < len(self.bases) and self.bases[at] == index
        return index + before, at if has_run else -1

    def original_span(self, start: int, end: int, length: int) -> tuple[int, int]:
        if end <= start:
            pos = self._position(start)[0] if start < length else self.original_length
            return pos, pos
        begin = self._position(start)[0]
        last, run = self._position(end - 1)
        return begin, (self.ends[run] if run >= 0 else last + 1)


_MARK_RUN = regex.compile(r"\p{M}+")
_HANGUL_JAMO = re.compile("[\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff]")


def _composed(text: str) -> NormalizedText | None:
    """NFC in C for decomposed text (macOS file names, some input methods); None if unsuitable.

    Applies when every combining mark composes into the character before it. The per-cluster
    path costs ~1 µs per character cluster (1 MB/s on decomposed Vietnamese);
    here Python only touches each run of marks.
    """
    if _NEEDS_WORK.search(text) is not None or _HANGUL_JAMO.search(text) is not None:
        return None  # invisible/fullwidth characters, or jamo that compose without marks
    composed = unicodedata.normalize("NFC", text)
    spans = [match.span() for match in _MARK_RUN.finditer(text)]
    if spans and spans[0][0] == 0:
        return None  # marks with nothing to compose with
    absorbed = list(itertools.accumulate(finish - begin for begin, finish in spans))
    total = absorbed[-1] if absorbed else 0
    if len(composed) != len(text) - total:
        return None  # some mark stayed a character of its own
    # Run i's base is the character before it, shifted left by the marks absorbed before it.
    bases = [begin - 1 - (absorbed[i] - (finish - begin))
             for i, (begin, finish) in enumerate(spans)]
    ends = [finish for _, finish in spans]
    return NormalizedText(composed, runs=_MarkRuns(bases, absorbed, ends, len(text)))


@dataclass(frozen=True)
class _RemovedRuns:
    """Where runs of invisible characters were deleted (nothing else moved).

    Per run: the normalised index of the first character after it, and the characters
    removed up to and including it. Each kept character keeps its own one-character span.
    """

    after: list[int]
    removed: list[int]

    def _position(self, index: int) -> int:
        at = bisect.bisect_right(self.after, index)
        return index + (self.removed[at - 1] if at else 0)

    def original_span(self, start: int, end: int, length: int) -> tuple[int, int]:
        if end <= start:  # an empty span at the very end sits after the last kept character
            if start < length:
                pos = self._position(start)
            else:
                pos = self._position(length - 1) + 1 if length else 0
            return pos, pos
        return self._position(start), self._position(end - 1) + 1


_INVISIBLE_RUN = re.compile("[" + INVISIBLE + "]+")
_WIDTH_AND_INVISIBLE: dict[int, int | None] = {**_WIDTH_MAP, **{ord(c): None for c in INVISIBLE}}


def _cleaned(text: str) -> NormalizedText | None:
    """Composed (NFC) text with fullwidth or invisible characters, without combining marks.

    Every grapheme cluster is then one character, so mapping width look-alikes one to one and
    deleting invisible characters is all the general path would do: done here in C, with one
    map entry per deleted run instead of one per character (zero-width characters slipped
    between digits otherwise cost ~1 µs per character of the whole text).
    """
    if _MARK_RUN.search(text) is not None:
        return None
    clean = text.translate(_WIDTH_AND_INVISIBLE)
    if len(clean) == len(text):
        return NormalizedText(clean)
    after: list[int] = []
    removed: list[int] = []
    total = 0
    for match in _INVISIBLE_RUN.finditer(text):
        begin, finish = match.span()
        after.append(begin - total)
        total += finish - begin
        removed.append(total)
    return NormalizedText(clean, runs=_RemovedRuns(after, removed))


def normalize(text: str) -> NormalizedText:
    """NFC, fullwidth→ASCII and invisible characters removed, with an offset map when needed."""
    if text.isascii():
        return NormalizedText(text)
    if unicodedata.is_normalized("NFC", text):
        if _NEEDS_WORK.search(text) is None:
            return NormalizedText(text)
        cleaned = _cleaned(text)
        if cleaned is not None:
            return cleaned
    fast = _composed(text)
    if fast is not None:
        return fast
    return _per_cluster(text)


def _per_cluster(text: str) -> NormalizedText:
    """The general path: one grapheme cluster at a time, any mix of changes."""
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
