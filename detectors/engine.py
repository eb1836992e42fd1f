"""The scanner: text in, findings out, fast and deterministic.

Cost model (see ../shared/reference/stack-notes.md): Python work per candidate dominates,
so the full text is only ever walked by C code: one stdlib ``re`` pass for digit runs (its
pattern starts with a character class, which lets the regex engine skip non-digits in a
tight C loop; in digit-dense ASCII text, the class of characters that may precede a run:
``AsciiRunFinder``), a ``bytes.find`` for the seeds of letter-prefixed tokens, and a substring
search for ``@``. Only the few candidates that survive reach Python, where validators check
structure, rule patterns (``regex`` module) run on the candidate token alone, and the keyword
automaton runs on a small window around the candidate, or, once that stops paying, one
keyword index over the whole folded text. With the index, bare digit runs are screened: a
run is looked at only if an ungated rule's ``screen`` admits it or a context-gated rule
could have context there (``_screened_numbers``), and where those areas leave most of the
text out, the screens move into the digit-run regex itself (``_prescreened_numbers``).
Keyword watch-list rules add one Aho-Corasick pass over the folded text, and only when such
rules are loaded.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import ahocorasick

from detectors.context import (
    WINDOW_AFTER,
    WINDOW_BEFORE,
    ColumnContext,
    ContextHit,
    KeywordContext,
    KeywordIndex,
)
from detectors.findings import Finding
from detectors.normalize import NormalizedText, fold, normalize
from detectors.privacy import Fingerprinter, mask_value
from detectors.ruleset import RuleSet
from detectors.validators import CANONICALISERS, VALIDATORS, Verdict

# First pass: maximal runs of digits and separators. Its pattern starts with a character
# class, so the regex engine skips everything else in a tight C loop, and each run is
# consumed in one match instead of being retried at every digit.
_RUN_START = (r"[0-9+(]"
              r"(?<![\w@.+/\-].)")  # width 2, after the first character: keeps the class skip
_RUN_LONG_ENOUGH = r"(?=[0-9 .\-()+]{7})"  # first, so short runs skip the tests after it
# An IPv4 address, read from just after its first character: every octet at most 255. Four
# dot-joined groups of up to three digits with a larger one are no address, and the citizen
# ID rule's written form "079.203.012.345" is exactly that shape (~95 % of such IDs have a
# group over 255). After "+" or "(" the first group is read as before: up to two digits.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2})"
_IPV4_AFTER_FIRST = (r"(?:(?<=[01])[0-9]{0,2}|(?<=2)(?:[0-4][0-9]|5[0-5]|[0-9]?)"
                     r"|(?<=[3-9])[0-9]?|(?<=[+(])[0-9]{0,2})"
                     + (r"\." + _OCTET) * 3 + r"(?![0-9])")
_RUN_NOT_DATE_OR_IP = (r"(?![0-9]{3}-[0-9]{2}-[0-9]{2}(?![0-9])"  # ISO dates
                       r"|" + _IPV4_AFTER_FIRST + ")")
# Digit groups joined by "." or "-" and glued to a word ("15.990.000đ", "1.234-5678ab"): no
# NUMBER_CANDIDATE fits inside (it can only start at the run's start, and every end inside
# is followed by a digit or ".5"/"-5", the last by the word), so the run is not worth the
# Python steps. Prices are most of the runs in Vietnamese forum text.
_RUN_NOT_GLUED = r"(?![0-9]++(?:[.\-][0-9]++)++[\w@])"
_RUN_BODY = r"[0-9 .\-()+]{6,}[0-9]"
NUMBER_RUN = re.compile(_RUN_START + _RUN_LONG_ENOUGH + _RUN_NOT_DATE_OR_IP + _RUN_NOT_GLUED
                        + _RUN_BODY)
# Second pass, inside a run: digit sequences with single separators, never glued to a word,
# a decimal or a path, and not shaped like an IPv4 address or a date.
NUMBER_CANDIDATE = re.compile(
    r"(?<![\w@.+/\-])[0-9+(]"
    r"(?:(?<=\+)84[ .\-]?[0-9]"
    r"|(?<=\()(?:\+?84|0[0-9]{1,3})\)[ .\-]?[0-9]"
    r"|(?<=[0-9])"
    r"(?!" + _IPV4_AFTER_FIRST + ")"
    r"(?![0-9]{3}[-./][0-9]{1,2}[-./][0-9]{1,2}(?![0-9]))"
    r"(?![0-9]?[-./][0-9]{1,2}[-./][0-9]{4}(?![0-9]))"
    r")"
    r"(?:[ .\-]?[0-9]){7,24}"
    r"(?![\w@]|[.\-][0-9])"
)
# A keyword gives context to a run starting at S when it lies in [S - WINDOW_BEFORE,
# S + length + WINDOW_AFTER] (context.line_window), so around a keyword hit (hs, he) only runs
# starting in [he - WINDOW_AFTER - MAX_RUN_CHARS, hs + WINDOW_BEFORE] can use it.
MAX_RUN_CHARS = 64  # NUMBER_CANDIDATE spans at most 49 characters
BLANK_LINE = re.compile(r"\n[^\S\n]*(?:\n|\Z)")
HEADER_MAX_CHARS = 4000
# Uppercase letter(s) + digits: passports (C1234567) and health-insurance cards.
TOKEN_CANDIDATE = re.compile(r"[A-Z](?<![\w@.\-/][A-Z])[A-Z]?[0-9]{7,13}(?![\w@])")
# Every TOKEN_CANDIDATE match holds an uppercase letter followed by 7 digits, at its start or
# one character in. Found with bytes.find on a one-byte "shape" of the text (letters "A",
# digits "9"), the regex then runs only there: the class-first scan tried every capital
# letter of a log ("INFO", "T", "Z"), ~9 ms per MB against ~2 here.
_TOKEN_SEED = b"A9999999"
_TOKEN_SHAPE = bytes(65 if 65 <= i <= 90 else 57 if 48 <= i <= 57 else 46 for i in range(256))
# Characters a NUMBER_RUN match can hold: no match spans a character outside them.
_RUN_CHARS = "0123456789 .-()+"
# Areas covering more than this share of a text are scanned in one NUMBER_RUN pass instead.
PRESCREEN_MAX_AREA_SHARE = 0.5
EMAIL_LOCAL_CHARS = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                     "._%+-")
EMAIL_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.)+[A-Za-z]{2,24}(?![\w\-])")
_SEPARATORS = str.maketrans("", "", " .-()+")
# Digit groups joined by single "." or "-" and nothing else ("374.477.525", a UUID's digits).
# NUMBER_CANDIDATE can only take such a run whole: a start needs no digit or joiner before
# it, and an end inside the run is followed by a digit or by a joiner and a digit. So the
# run's digit count alone says whether any rule could accept it (``_joined_run_open``).
_JOINED_RUN = re.compile(r"[0-9]++(?:[.\-][0-9]++)+")
_GLUE_BEFORE = "_@.+/-"
MAX_TOKEN = 64
MAX_GROUP_PARTS = 6
EAGER_INDEX_CHARS = 1 << 18
# Window look-ups before one full-text keyword pass may replace them (see _keyword_context).
# 32 until session 6; the feed's documents are a few KB, and a dense dump of that size then
# paid ~33 window look-ups before its index: 4 scans the pipeline's document mix 2.8 ->
# 3.2 MB/s, with large texts unchanged (BENCHMARKS.md).
WINDOW_LOOKUPS_BEFORE_INDEX = 4
CHARS_PER_LOOKUP_INDEX_PAYS = 256


# One rule as a candidate of one length sees it: (rule index, requires context, gated here,
# pad to (0: none), canonicaliser, validator, written-form patterns, context score, base score).
_Plan = tuple[int, bool, bool, int, Callable[[str], str], Callable[[str], Verdict],
              tuple[Any, ...], float, float]
_REJECTED = Verdict.REJECTED
# A plan that accepted a value: (rule index, requires context, pad to, canonical value,
# context score, base score); _evaluate collects them before asking for context.
_Accepted = tuple[int, bool, int, str, float, float]


def _stands_alone(norm: str, begin: int, finish: int) -> bool:
    """Whether a bare digit run is a whole value: not glued to a word, a path or a decimal."""
    if begin and (norm[begin - 1].isalnum() or norm[begin - 1] in _GLUE_BEFORE):
        return False
    after = norm[finish:finish + 2]
    return not (after and (after[0].isalnum() or after[0] in "_@" or (
        after[0] in ".-" and after[1:].isdigit())))


def _digit_counts(counts: list[int]) -> str:
    """A regex for exactly one of ``counts`` digits, consecutive counts as one possessive range."""
    ranges: list[tuple[int, int]] = []
    for count in sorted(set(counts)):
        if ranges and count == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], count)
        else:
            ranges.append((count, count))
    parts = [f"[0-9]{{{low}}}" if low == high else f"[0-9]{{{low},{high}}}+"
             for low, high in ranges]
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def screened_run_pattern(screens: dict[int, tuple[str, ...]], *,
                         skip_glued: bool = True) -> re.Pattern[str]:
    """NUMBER_RUN narrowed to the runs that need Python whatever the keywords say.

    A match of NUMBER_RUN that also has a separator (or starts with "+" or "("), or is a
    bare digit run whose length and leading digits pass a screen
    (``Scanner._compile_screens``). ``skip_glued=False`` leaves out NUMBER_RUN's glued-run
    test: in ASCII logs glued runs are rare and the test costs more than it saves (the
    runs it drops hold no candidate either way), while Vietnamese prices need it.

    The condition is a lookahead placed after the first character, so every match is a run
    match at the same place, and the ones dropped are exactly the bare runs failing every
    screen. The first character is inside the run, so a screen's first digit is checked
    with a lookbehind and the rest counted from there.
    """
    lengths_by_prefix: dict[str, list[int]] = {}
    for length, prefixes in screens.items():
        for prefix in prefixes:
            lengths_by_prefix.setdefault(prefix, []).append(length)
    # Prefixes sharing a first digit and a set of total lengths become one branch, so the
    # engine tries a handful of branches per run, not one per prefix.
    grouped: dict[tuple[str, tuple[int, ...]], list[str]] = {}
    for prefix, lengths in lengths_by_prefix.items():
        # A prefix longer than a length: no run of that length starts with it.
        fitting = tuple(sorted({n for n in lengths if n >= max(1, len(prefix))}))
        if fitting:
            grouped.setdefault((prefix[:1], fitting), []).append(prefix[1:])
    branches = []
    for (first, totals), rests in sorted(grouped.items()):
        singles = sorted(rest for rest in rests if len(rest) == 1)
        if len(singles) > 1:  # "3", "5", "7" after a "0": one class, "[357]"
            rests = [rest for rest in rests if len(rest) != 1] + ["[" + "".join(singles) + "]"]
        after = "|".join(
            (rest if rest.startswith("[") else re.escape(rest))
            + _digit_counts([n - 1 - (1 if rest.startswith("[") else len(rest)) for n in totals])
            for rest in sorted(rests))
        branches.append(f"(?<={re.escape(first) if first else '[0-9]'})(?:{after})(?![0-9])")
    screen = "|".join(branches) or "(?!)"
    return re.compile(_RUN_START + _RUN_LONG_ENOUGH + _RUN_NOT_DATE_OR_IP
                      + (_RUN_NOT_GLUED if skip_glued else "")
                      + r"(?=(?<=[+(])|[0-9]*+[ .\-()+]++[0-9]|" + screen + ")" + _RUN_BODY)


# In ASCII text a run can only start after one of these characters (or at the start).
# Looking for that character first tries a position per blank or punctuation mark instead of
# per digit: logs hold ~540,000 digits per MB but ~120,000 such characters, and each try
# costs the regex engine ~19 ns either way.
_RUN_PRECEDING = r"[^0-9A-Za-z_@.+/\-]"
_RUN_PRECEDING_BYTES = bytes(c for c in range(128) if re.fullmatch(_RUN_PRECEDING, chr(c)))
_RUN_FIRST_BYTES = b"0123456789+("
_RUN_SAMPLE_CHARS = 1 << 16


class AsciiRunFinder:
    """The matches of a ``_RUN_START``-led pattern in ASCII text, found the cheaper way.

    ``matches(text, start)`` gives the same runs as ``pattern.finditer(text, start)``, as
    matches whose group 1 is the run. Where a sample of the text holds fewer characters that
    can precede a run than characters that can start one (logs), the search looks for the
    preceding character: the pattern's own lookbehind on that character then holds by
    construction. Elsewhere (prose) the pattern runs as written.
    """

    def __init__(self, pattern: re.Pattern[str]) -> None:
        if not pattern.pattern.startswith(_RUN_START):
            raise ValueError("a run pattern starts with _RUN_START")
        run = "([0-9+(]" + pattern.pattern[len(_RUN_START):] + ")"
        self.pattern = pattern
        self.plain = re.compile("(" + pattern.pattern + ")")
        self.preceded = re.compile(_RUN_PRECEDING + run)
        self.at_start = re.compile(run)  # position 0: no character before it to check

    def prefers_preceded(self, text: str, start: int) -> bool:
        """Whether the next 64K characters hold fewer possible run predecessors than starts."""
        sample = text[start:start + _RUN_SAMPLE_CHARS].encode("ascii")
        starts = len(sample) - len(sample.translate(None, _RUN_FIRST_BYTES))
        preceding = len(sample) - len(sample.translate(None, _RUN_PRECEDING_BYTES))
        return preceding < starts

    def matches(self, text: str, start: int = 0) -> Iterator[re.Match[str]]:
        """Runs from ``start`` (0, or where a scan of the same pattern had a match start)."""
        if not self.prefers_preceded(text, start):
            return self.plain.finditer(text, start)
        if start:
            return self.preceded.finditer(text, start - 1)
        first = self.at_start.match(text)
        if first is None:
            return self.preceded.finditer(text)
        return itertools.chain((first,), self.preceded.finditer(text, first.end()))


def off_screen_runs(norm: str, areas: Sequence[tuple[int, int]],
                    screens: dict[int, tuple[str, ...]], lengths: frozenset[int],
                    start: int = 0) -> Iterator[tuple[int, int, str]]:
    """The bare runs of a full NUMBER_RUN scan that pass no screen and start in an area.

    Yields (start, end, digits) in order, for runs of one of ``lengths`` that stand alone;
    ``areas`` are sorted, disjoint, inclusive (low, high) ranges of starts. Runs starting
    before ``start`` (a match boundary of the full scan) are left out.

    Each area is scanned from the start of the run of NUMBER_RUN characters around its low
    end (or from where the last area's scan stopped), so a scan started inside a longer run
    cannot mistake the run's tail for a run of its own.
    """
    resume = start  # where the last area's scan stopped: a match boundary of the full scan
    for low, high in areas:
        if high < start:
            continue
        for run in NUMBER_RUN.finditer(norm, _run_start(norm, low, resume)):
            begin, finish = run.span()
            if begin > high:
                break
            resume = finish
            if begin < low:
                continue
            token = run.group()
            if (token.isdigit() and finish - begin in lengths
                    and not token.startswith(screens.get(finish - begin, (".",)))
                    and _stands_alone(norm, begin, finish)):
                yield begin, finish, token


def token_candidates(norm: str) -> Iterator[re.Match[str]]:
    """The matches of ``TOKEN_CANDIDATE.finditer(norm)``, looked for only at their seeds.

    A match starts at the capital of a seed (a capital and seven digits) or at the capital
    before it; if that capital is there and the match fails, the lookbehind fails at the
    seed too. Each code point is one byte of the shape, so offsets agree.
    """
    shape = norm.encode("ascii", "replace").translate(_TOKEN_SHAPE)
    at = shape.find(_TOKEN_SEED)
    while at >= 0:
        match = TOKEN_CANDIDATE.match(norm, at - 1 if at and shape[at - 1] == 65 else at)
        if match is not None:
            yield match
            at = shape.find(_TOKEN_SEED, match.end())
        else:
            at = shape.find(_TOKEN_SEED, at + len(_TOKEN_SEED))


def _run_start(norm: str, position: int, floor: int) -> int:
    """Where the run of NUMBER_RUN characters holding ``position`` begins (not below ``floor``).

    NUMBER_RUN.finditer started there finds exactly the matches a scan of the whole text
    finds from there on: no match spans a character outside the run characters. A
    ``position`` past the end of the text counts from the end (an empty window there would
    never move the search back).
    """
    position = min(position, len(norm))
    while position > floor:
        window = norm[max(floor, position - 64):position]
        kept = len(window.rstrip(_RUN_CHARS))
        if kept:
            return position - len(window) + kept
        position -= len(window)
    return floor


class _Candidate(NamedTuple):
    """A value one rule accepted, before overlaps are resolved (named tuple: cheap to build)."""

    rule_index: int
    start: int
    end: int
    canonical: str
    confidence: float
    context: ContextHit | None


class Scanner:
    """Compiled rules plus the fingerprint key; reusable and safe to share per thread."""

    def __init__(
        self,
        rules: RuleSet,
        fingerprinter: Fingerprinter | None = None,
        *,
        min_confidence: float = 0.5,
        previous_fingerprinters: Sequence[Fingerprinter] = (),
        screening: bool = True,
    ) -> None:
        """Compile the rules once; the scanner is then reused for every document.

        ``previous_fingerprinters``: retired keys still in use by some watch-list; every
        finding then also carries its fingerprint under each of them (a rotation costs one
        HMAC per finding per old key, so pass only the keys that something still needs).
        ``screening=False`` looks at every digit run in Python (the reference behaviour the
        screened path is tested against; same findings, slower).
        """
        self.rules = rules
        self.fingerprinter = fingerprinter or Fingerprinter.ephemeral_key()
        self.previous_fingerprinters = tuple(previous_fingerprinters)
        self.min_confidence = min_confidence
        self._keywords = KeywordContext(rules)
        self._number_rules: dict[int, list[int]] = {}
        self._token_rules: dict[int, list[int]] = {}
        self._email_rules: list[int] = []
        self._validators = [VALIDATORS[r.validator] for r in rules.rules]
        self._canonical = [CANONICALISERS[r.canonical] for r in rules.rules]
        for index, rule in enumerate(rules.rules):
            if rule.kind == "number":
                for length in rule.lengths:
                    self._number_rules.setdefault(length, []).append(index)
            elif rule.kind == "token":
                for length in rule.lengths:
                    self._token_rules.setdefault(length, []).append(index)
            elif rule.kind == "email":
                self._email_rules.append(index)
        self._watch = self._build_watch_automaton(rules)
        self._all_lengths = frozenset(self._number_rules)
        self.screening = screening
        self._screens, self._zone_owners, self._gated_pairs = self._compile_screens(
            rules, min_confidence)
        self._screened_run = screened_run_pattern(self._screens)
        self._screened_ascii_runs = AsciiRunFinder(
            screened_run_pattern(self._screens, skip_glued=False))
        self._area_lows: list[int] | None = None
        self._areas: list[tuple[int, int]] = []
        self._column_plan_memo: dict[tuple[int, int],
                                     tuple[dict[int, ContextHit], tuple[_Plan, ...]]] = {}
        self._number_plans = self._compile_plans(self._number_rules)
        self._ungated_lengths = frozenset(
            length for length, plans in self._number_plans.items()
            if any(not plan[2] for plan in plans))
        self._token_plans = self._compile_plans(self._token_rules)
        self._finish_rules = [(r.id, r.severity, r.kind == "keyword") for r in rules.rules]
        self._priorities = [r.priority for r in rules.rules]

    def _compile_plans(self, by_length: dict[int, list[int]]) -> dict[int, tuple[_Plan, ...]]:
        """Per value length, what each candidate rule needs, resolved once (hot path)."""
        plans: dict[int, tuple[_Plan, ...]] = {}
        for length, indexes in by_length.items():
            rows = []
            for index in indexes:
                rule = self.rules.rules[index]
                padded = bool(rule.pad_to) and length < rule.pad_to
                rows.append((index, rule.requires_context,
                             self.screening and (index, length) in self._gated_pairs,
                             rule.pad_to if padded else 0, self._canonical[index],
                             self._validators[index], tuple(rule.compiled),
                             rule.context_score, rule.base_score))
            plans[length] = tuple(rows)
        return plans

    @staticmethod
    def _compile_screens(rules: RuleSet, min_confidence: float
                         ) -> tuple[dict[int, tuple[str, ...]], frozenset[int],
                                    frozenset[tuple[int, int]]]:
        """Leading digits per digit count worth a look without context; and gated rules.

        A (rule, digit count) is gated when it can only fire with context: the rule needs
        context, its base score is under ``min_confidence``, or the count is padded. Bare runs
        for gated pairs are only looked at near their keywords or under a table header;
        ungated pairs contribute their screen (leading digits, "" for any), so every other
        bare run is dropped with one ``str.startswith``.
        """
        screens: dict[int, set[str]] = {}
        zone_owners: set[int] = set()
        gated_pairs: set[tuple[int, int]] = set()
        for index, rule in enumerate(rules.rules):
            if rule.kind != "number":
                continue
            for length in rule.lengths:
                gated = (rule.requires_context or rule.base_score < min_confidence
                         or (rule.pad_to and length < rule.pad_to))
                if gated:
                    zone_owners.add(index)
                    gated_pairs.add((index, length))
                    continue
                prefixes = [p for p, counts in rule.screen if length in counts]
                screens.setdefault(length, set()).update(prefixes if rule.screen else [""])
        return ({length: tuple(sorted(p)) for length, p in screens.items()},
                frozenset(zone_owners), frozenset(gated_pairs))

    @staticmethod
    def _build_watch_automaton(rules: RuleSet) -> ahocorasick.Automaton | None:
        watch = ahocorasick.Automaton()
        count = 0
        for index, rule in enumerate(rules.rules):
            if rule.kind != "keyword":
                continue
            for keyword in rule.keywords:
                watch.add_word(keyword, (keyword, index))
                count += 1
        if not count:
            return None
        watch.make_automaton()
        return watch

    def new_columns(self) -> ColumnContext:
        """Column state for one document; pass the same one to every chunk of a file."""
        return ColumnContext(self._keywords)

    def scan(self, text: str, *, columns: ColumnContext | None = None,
             carry_header: bool = False, offset: int = 0) -> list[Finding]:
        """Find identifiers in ``text``; offsets refer to ``text`` itself, plus ``offset``.

        ``offset`` places a chunk of a larger file without building every finding twice.
        """
        view = normalize(text)
        norm = view.text
        columns = columns or self.new_columns()
        columns.reset_text(norm, carry_header, offset)
        self._lookups = 0
        self._index: KeywordIndex | None = None
        self._no_context_anywhere: frozenset[int] = frozenset()
        self._active_lengths = self._all_lengths
        self._columns = columns
        found: list[_Candidate] = []
        self._area_lows = None
        # A local flag, not "self._index is not None": mypy narrows the attribute to None
        # after the assignment above, and a compiled build would enforce that narrowing.
        indexed = len(norm) >= EAGER_INDEX_CHARS and norm.isascii()
        if indexed:
            self._build_index(norm)  # cheap for ASCII, and it prunes most log candidates
        if not self.screening:
            self._all_numbers(norm, columns, found)
        elif indexed and self._areas_are_sparse(norm):
            self._prescreened_numbers(norm, columns, found)
        else:
            self._screened_numbers(norm, columns, found)
        if self._token_rules:
            self._tokens(norm, columns, found)
        if self._email_rules and "@" in norm:
            self._emails(norm, found)
        if self._watch is not None:
            self._watchlist(norm, found)
        return self._finish(found, view, offset)

    # -- candidates -------------------------------------------------------------------

    def _all_numbers(self, norm: str, columns: ColumnContext, found: list[_Candidate]) -> None:
        """Every digit run through Python: the reference path (``screening=False``)."""
        for run in NUMBER_RUN.finditer(norm):
            token = run.group()
            begin, finish = run.span()
            if not token.isdigit():
                self._separated_run(norm, token, begin, finish, columns, found)
            elif len(token) in self._active_lengths and _stands_alone(norm, begin, finish):
                self._number(norm, token, begin, columns, found)

    def _separated_run(self, norm: str, token: str, begin: int, finish: int,
                       columns: ColumnContext, found: list[_Candidate]) -> None:
        """A run with separators: every digit sequence in it that could be one value."""
        if finish - begin < 10 and len(token.translate(_SEPARATORS)) < 8:
            return
        for match in NUMBER_CANDIDATE.finditer(norm, begin, finish + 2):
            self._number(norm, match.group(), match.start(), columns, found)

    def _joined_run_open(self, norm: str, token: str, start: int) -> bool:
        """Whether a run with separators may hold a finding, answered without the candidate regex.

        False only for a joined run (``_JOINED_RUN``) whose digit count no rule can take
        here: no rule accepts that count, or every rule that does needs context it cannot
        have (none in the text, or no keyword or table near ``start``). Logs are full of
        these (prices "374.477.525 VND", UUIDs): ~2,400 per MB that each cost ~3.5 µs of
        candidate matching and evaluation to reject.
        """
        digits = len(token) - token.count(".") - token.count("-")
        if digits in self._ungated_lengths:  # phones written "0912.345.678": most of them
            return True  # (open whatever the run holds: the count is only exact if joined)
        if _JOINED_RUN.fullmatch(token) is None:
            return True
        no_context = self._no_context_anywhere
        for plan in self._number_plans.get(digits, ()):  # all gated
            if (not (plan[1] and plan[0] in no_context)  # context possible in this text
                    and self._gated_possible(norm, start)):
                return True
        return False

    def _screened_numbers(self, norm: str, columns: ColumnContext,
                          found: list[_Candidate]) -> None:
        """The same findings as ``_all_numbers`` with most bare digit runs skipped in C.

        Runs with a separator are evaluated as before. Once the text has a keyword index
        (built up front for large ASCII texts, or when window look-ups stop paying), a bare
        digit run is evaluated only when it passes an ungated rule's screen, lies near a
        gated rule's keyword, or sits in a table whose header gives a gated rule context: no
        other bare run can produce a finding, and those checks cost a prefix test and a
        bisection instead of validators, written-form patterns and context look-ups. Before
        that, texts with few candidates pay per candidate rather than for a full-text pass.
        """
        screens = self._screens
        may_switch = True
        for run in NUMBER_RUN.finditer(norm):
            token = run.group()
            begin, finish = run.span()
            if may_switch and self._index is not None:
                # Indexed by now (window look-ups stopped paying): the rest of the text
                # takes the path with the screens in C, from this run on.
                may_switch = False
                if self._areas_are_sparse(norm):
                    self._prescreened_numbers(norm, columns, found, begin)
                    return
            if not token.isdigit():
                if self._joined_run_open(norm, token, begin):
                    self._separated_run(norm, token, begin, finish, columns, found)
                continue
            length = finish - begin
            if length not in self._active_lengths:
                continue
            if not token.startswith(screens.get(length, (".",))) and not self._gated_possible(
                    norm, begin):
                continue  # no screen passed, and no gated rule can have context here
            if _stands_alone(norm, begin, finish):
                self._number(norm, token, begin, columns, found)

    def _areas_are_sparse(self, norm: str) -> bool:
        """Whether the gated areas leave most of the text out (computes them, once per text).

        Only then does a second pass over the areas cost less than the Python steps it saves.
        """
        covered = sum(high - low for low, high in self._known_areas(norm))
        return covered <= PRESCREEN_MAX_AREA_SHARE * len(norm)

    def _known_areas(self, norm: str) -> list[tuple[int, int]]:
        """The gated areas of this text (``_gated_areas``), computed on first use."""
        if self._area_lows is None:
            self._areas = self._gated_areas(norm, self._columns)
            self._area_lows = [low for low, _ in self._areas]
        return self._areas

    def _prescreened_numbers(self, norm: str, columns: ColumnContext,
                             found: list[_Candidate], start: int = 0) -> None:
        """``_screened_numbers`` with the screens applied in C, once the text is indexed.

        From ``start``: 0 for texts indexed up front, or the run at which an index built on
        the way was first seen (a NUMBER_RUN match start, where both passes agree).

        With every gated area known before the first run, a bare run that fails every
        screen matters only inside an area. One pass of ``screened_run_pattern`` yields the
        runs with separators and the bare runs passing a screen; NUMBER_RUN runs again only
        over the areas, for the rest. Both are merged by position, so the runs and their
        order are those of ``_screened_numbers``, while Python sees ~6,000 runs per MB of
        logs instead of ~21,000.
        """
        in_areas = off_screen_runs(norm, self._areas, self._screens, self._active_lengths,
                                   start)
        pending = next(in_areas, None)
        active = self._active_lengths
        runs = (self._screened_ascii_runs.matches(norm, start) if norm.isascii()
                else self._screened_run.finditer(norm, start))
        group = 1 if norm.isascii() else 0
        for run in runs:
            begin, finish = run.span(group)
            while pending is not None and pending[0] < begin:
                self._number(norm, pending[2], pending[0], columns, found)
                pending = next(in_areas, None)
            token = run.group(group)
            if not token.isdigit():
                if self._joined_run_open(norm, token, begin):
                    self._separated_run(norm, token, begin, finish, columns, found)
            elif finish - begin in active and _stands_alone(norm, begin, finish):
                self._number(norm, token, begin, columns, found)
        while pending is not None:
            self._number(norm, pending[2], pending[0], columns, found)
            pending = next(in_areas, None)

    def _tokens(self, norm: str, columns: ColumnContext, found: list[_Candidate]) -> None:
        for match in token_candidates(norm):
            self._token(norm, match.group(), match.start(), columns, found)

    def _gated_possible(self, norm: str, start: int) -> bool:
        """Whether a context-gated rule can have context for a candidate at ``start``.

        True (unknown) until the text has a keyword index; then a bisection over the
        areas computed once from it.
        """
        if self._index is None:
            return True
        areas = self._known_areas(norm)
        at = bisect.bisect_right(self._area_lows or (), start) - 1
        return at >= 0 and areas[at][1] >= start

    def _gated_areas(self, norm: str, columns: ColumnContext) -> list[tuple[int, int]]:
        """(from, last start) ranges where a gated rule can have context, merged and sorted.

        Around each keyword hit of a gated rule (its context window), and from a table
        header or SQL column list naming a gated column down to where that table ends.
        """
        assert self._index is not None
        owners = self._zone_owners - self._no_context_anywhere
        if not owners:
            return []
        areas: list[tuple[int, int]] = []
        header_lines: set[int] = set()
        for hit_start, hit_end, _keyword, hit_owners in self._index.hits:
            if hit_owners.isdisjoint(owners):
                continue
            areas.append((max(0, hit_end - WINDOW_AFTER - MAX_RUN_CHARS),
                          hit_start + WINDOW_BEFORE))
            header_lines.add(norm.rfind("\n", max(0, hit_start - HEADER_MAX_CHARS),
                                        hit_start) + 1)
        blanks: list[int] | None = None

        # A blank line ends a table; ColumnContext may end it sooner (a line without the
        # delimiter), so areas to the next blank line cover every column context.
        def table_end(position: int) -> int:
            nonlocal blanks
            if blanks is None:
                blanks = [m.start() for m in BLANK_LINE.finditer(norm)]
            at = bisect.bisect_left(blanks, position)
            return blanks[at] if at < len(blanks) else len(norm)

        for line_start in sorted(header_lines):
            line_end = norm.find("\n", line_start, line_start + HEADER_MAX_CHARS + 2)
            line_end = len(norm) if line_end < 0 else line_end
            if columns.header_gives_context(norm[line_start:line_end], owners):
                areas.append((line_start, table_end(line_end)))
        if columns.header_owners() & owners:  # a header carried over from the last chunk
            areas.append((0, table_end(0)))
        areas.extend(columns.sql_column_lists(norm, owners))
        areas.sort()
        merged: list[tuple[int, int]] = []
        for low, high in areas:
            if merged and low <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], high))
            else:
                merged.append((low, high))
        return merged

    def _number(self, norm: str, token: str, start: int, columns: ColumnContext,
                found: list[_Candidate]) -> None:
        if self._number_token(norm, token, start, columns, found):
            return
        if " " in token:  # space-joined columns: "0912345678 079203012345"
            self._split_on_spaces(norm, token, start, columns, found)

    def _number_token(self, norm: str, token: str, start: int, columns: ColumnContext,
                      found: list[_Candidate]) -> bool:
        digits = token.translate(_SEPARATORS)
        plans = self._number_plans.get(len(digits))
        if not plans:
            return False
        return self._evaluate(norm, token, digits, start, plans, columns, found)

    def _split_on_spaces(self, norm: str, token: str, start: int, columns: ColumnContext,
                         found: list[_Candidate]) -> None:
        """Space-joined values ("0912345678 079203012345"): longest valid groups, left first.

        Only groups whose digit count some rule accepts are tried, and at most
        MAX_GROUP_PARTS parts per group, so a hostile "1 1 1 1 ..." stays linear.
        """
        parts: list[tuple[int, int]] = []  # (offset in token, digit count)
        offset = 0
        for part in token.split(" "):
            parts.append((offset, len(part.translate(_SEPARATORS))))
            offset += len(part) + 1
        index = 0
        while index < len(parts):
            digits = 0
            stops = []
            for stop in range(index, min(len(parts), index + MAX_GROUP_PARTS)):
                digits += parts[stop][1]
                if digits in self._number_rules:
                    stops.append(stop + 1)
            for stop in reversed(stops):
                begin = parts[index][0]
                finish = parts[stop][0] - 1 if stop < len(parts) else len(token)
                if finish - begin == len(token):
                    continue
                if self._number_token(norm, token[begin:finish], start + begin, columns, found):
                    index = stop
                    break
            else:
                index += 1

    def _token(self, norm: str, token: str, start: int, columns: ColumnContext,
               found: list[_Candidate]) -> None:
        plans = self._token_plans.get(len(token))
        if plans:
            self._evaluate(norm, token, token, start, plans, columns, found)

    def _emails(self, norm: str, found: list[_Candidate]) -> None:
        at = norm.find("@")
        while at >= 0:
            # The mailbox is the run of mailbox characters just before "@" (at most 64):
            # rstrip finds it in C, where a backwards regex search retried every start.
            before = norm[max(0, at - 64):at]
            local = before[len(before.rstrip(EMAIL_LOCAL_CHARS)):]
            domain = EMAIL_DOMAIN.match(norm, at + 1) if local else None
            if domain is not None:
                local = local.lstrip(".")
                start = at - len(local)
                if start == 0 or not (norm[start - 1].isalnum() or norm[start - 1] in "@"):
                    written = norm[start:domain.end()]
                    for index in self._email_rules:
                        self._accept_email(index, start, domain.end(), written, found)
            at = norm.find("@", at + 1)

    def _watchlist(self, norm: str, found: list[_Candidate]) -> None:
        folded = fold(norm)
        size = len(folded)
        assert self._watch is not None
        for end_index, (keyword, index) in self._watch.iter(folded):
            start = end_index - len(keyword) + 1
            if start > 0 and folded[start - 1].isalnum():
                continue
            if end_index + 1 < size and folded[end_index + 1].isalnum():
                continue
            rule = self.rules.rules[index]
            found.append(_Candidate(index, start, end_index + 1, keyword, rule.base_score, None))

    # -- evaluation ---------------------------------------------------------------------

    def _evaluate(self, norm: str, token: str, value: str, start: int,
                  plans: tuple[_Plan, ...], columns: ColumnContext,
                  found: list[_Candidate]) -> bool:
        end = start + len(token)
        keyword_index = self._index
        column: dict[int, ContextHit] | None = None  # looked up once, here or in _context
        if self.screening and keyword_index is not None and columns.in_table():
            column = columns.at(start)
            if column and start not in keyword_index.ends:
                # A table column gives its rules context at distance 0, which nothing else
                # can beat here (no keyword ends at the value): if one of them accepts the
                # value, every other rule's candidate would lose the span in _finish, so
                # the other validators need not run (dumps: most values, ~1-3 plans each).
                first = self._column_plans(plans, column)
                if first and self._accept_in_column(norm, token, value, start, end, first,
                                                    column, found):
                    return True
        accepted = self._accepted(norm, token, value, start, plans)
        if not accepted:
            return False
        context = self._context(norm, start, end, columns, accepted, column)
        appended = False
        for index, needs_context, pad_to, canonical, context_score, base_score in accepted:
            chosen = context.get(index)
            if chosen is None:
                if needs_context or pad_to:
                    continue
                found.append(_Candidate(index, start, end, canonical, base_score, None))
            else:
                found.append(_Candidate(index, start, end, canonical, context_score, chosen))
            appended = True
        return appended

    def _column_plans(self, plans: tuple[_Plan, ...], column: dict[int, ContextHit]
                      ) -> tuple[_Plan, ...]:
        """The plans of the rules ``column`` gives context to, kept per (plans, column).

        A column's context object is shared by every value in it, so the filter runs once
        per column and value length instead of once per value. The memo keeps the column
        alive, so no other object can take its id while the entry stands.
        """
        key = (id(plans), id(column))
        memo = self._column_plan_memo.get(key)
        if memo is not None:
            return memo[1]
        if len(self._column_plan_memo) > 4096:  # hostile dumps with endless columns
            self._column_plan_memo.clear()
        first = tuple(plan for plan in plans if plan[0] in column)
        self._column_plan_memo[key] = (column, first)
        return first

    def _accept_in_column(self, norm: str, token: str, value: str, start: int, end: int,
                          plans: tuple[_Plan, ...], column: dict[int, ContextHit],
                          found: list[_Candidate]) -> bool:
        """Candidates of the rules a value's column names, with the column's context."""
        accepted = self._accepted(norm, token, value, start, plans)
        for index, _needs, _pad, canonical, context_score, _base in accepted:
            found.append(_Candidate(index, start, end, canonical, context_score, column[index]))
        return bool(accepted)

    def _accepted(self, norm: str, token: str, value: str, start: int,
                  plans: tuple[_Plan, ...]) -> list[_Accepted]:
        """The plans that accept a value: validator, then written form; context comes after."""
        accepted: list[_Accepted] = []
        gated_here: bool | None = None
        no_context = self._no_context_anywhere
        for (index, needs_context, gated, pad_to, canonicalise, validate, patterns,
             context_score, base_score) in plans:
            if needs_context and index in no_context:
                continue
            if gated:
                if gated_here is None:
                    gated_here = self._gated_possible(norm, start)
                if not gated_here:
                    continue
            canonical = canonicalise(value.zfill(pad_to) if pad_to else value)
            # Validators are cheap and reject most junk; the written-form patterns run after.
            if validate(canonical) is _REJECTED:
                continue
            for pattern in patterns:
                if pattern.fullmatch(token) is not None:
                    break
            else:
                continue
            accepted.append((index, needs_context, pad_to, canonical, context_score, base_score))
        return accepted

    def _context(self, norm: str, start: int, end: int, columns: ColumnContext,
                 accepted: list[_Accepted], column: dict[int, ContextHit] | None = None
                 ) -> dict[int, ContextHit]:
        """Context per rule for a value some rules accepted: its column's, then keywords'.

        A column gives its rules distance 0, and only a candidate with context at distance
        0 can then win the value (see ``_finish``). A keyword reaches distance 0 only by ending
        exactly where the value starts, so when an accepted rule has the column's context
        and the index shows no keyword ending there, the keyword look-up cannot change the
        finding and is skipped: most values of a dump with a header.
        """
        if column is None:
            column = columns.at(start)
        index = self._index
        if (column and index is not None and start not in index.ends
                and any(plan[0] in column for plan in accepted)):
            return column
        context = self._keyword_context(norm, start, end, tuple(plan[0] for plan in accepted))
        for owner, hit in column.items():
            if owner not in context or context[owner].distance > hit.distance:
                context[owner] = hit
        return context

    def _keyword_context(self, norm: str, start: int, end: int,
                         wanted: tuple[int, ...]) -> dict[int, ContextHit]:
        """Keyword context of the rules in ``wanted`` (the ones that accepted the value)."""
        if self._index is not None:
            return self._index.around(norm, start, end, wanted)
        self._lookups += 1
        # Measured here: a window look-up costs ~4–6 µs, an indexed one ~1.5–3.5 µs, and the
        # index ~20–37 ns per character (fold, automaton, one Python step per keyword hit).
        # The index also turns screening on, so bare runs no gated rule can use (9-digit
        # user ids, order numbers) stop costing ~10 µs each: with that it pays from about
        # one look-up per 250–400 characters. Once enough look-ups have been seen, switch
        # as soon as their density so far reaches that (a dense dump switches near its
        # start instead of two thirds in), or when the count alone says so. 256 measured
        # best on the bench corpora (BENCHMARKS.md); prose with few candidates never pays.
        lookups = self._lookups
        if lookups > WINDOW_LOOKUPS_BEFORE_INDEX and (
                lookups * CHARS_PER_LOOKUP_INDEX_PAYS > start
                or lookups > len(norm) // CHARS_PER_LOOKUP_INDEX_PAYS):
            return self._build_index(norm).around(norm, start, end, wanted)
        return self._keywords.around(norm, start, end, wanted)

    def _build_index(self, norm: str) -> KeywordIndex:
        """Index every keyword once; rules that need context and have none anywhere stop here.

        Context-gated rules whose keywords appear nowhere in this text (nor in a carried
        table header) cannot fire, so later candidates skip them, and digit runs of lengths
        only those rules accept are dropped before any Python work.
        """
        self._index = self._keywords.index(norm)
        possible = (self._index.owners | self._columns.header_owners()
                    | self._columns.table_owners())
        gated = frozenset(i for i, rule in enumerate(self.rules.rules)
                          if rule.requires_context and i not in possible)
        self._no_context_anywhere = gated
        self._active_lengths = frozenset(
            length for length, indexes in self._number_rules.items()
            if any(i not in gated for i in indexes)
        )
        return self._index

    def _accept_email(self, index: int, start: int, end: int, written: str,
                      found: list[_Candidate]) -> None:
        """E-mail candidates skip _evaluate: validated lower-cased, no keyword context."""
        if self._validators[index](written.lower()) is _REJECTED:
            return
        found.append(_Candidate(index, start, end, self._canonical[index](written),
                                self.rules.rules[index].base_score, None))

    def _finish(self, found: list[_Candidate], view: NormalizedText,
                offset: int) -> list[Finding]:
        # Per span, the best candidate: context first, then nearer context, confidence,
        # rule priority; the first seen wins a tie. Ranked inline: dumps have a collision
        # (phone, account and tax code for one value) at most of their ~40,000 spans per MB.
        best: dict[tuple[int, int], _Candidate] = {}
        keep_first = best.setdefault  # one dict operation for the common, collision-free span
        priorities = self._priorities
        for cand in found:
            current = keep_first(cand[1:3], cand)  # (start, end)
            if current is cand:
                continue
            mine, theirs = cand.context, current.context
            if ((mine is not None, -mine.distance if mine else 0, cand.confidence,
                 priorities[cand.rule_index])
                    > (theirs is not None, -theirs.distance if theirs else 0,
                       current.confidence, priorities[current.rule_index])):
                best[cand[1:3]] = cand
        # Building the findings is most of this method's cost in dumps (~40,000 per MB), so
        # what repeats is computed once per call: rounded confidences (a handful of rule
        # scores) and keyword tuples (column context objects are shared by a whole column).
        # With the other dump changes of session 10: +5-15 % on a dump excerpt (BENCHMARKS.md).
        findings: list[Finding] = []
        append = findings.append
        new_finding = tuple.__new__  # Finding's generated __new__ adds a Python call
        previous = self.previous_fingerprinters
        fingerprint = self.fingerprinter.fingerprint
        key_id = self.fingerprinter.key_id
        # Text that needed no normalising (nearly all) keeps its offsets: skip the call.
        original_span = None if view.starts is None and view.runs is None else view.original_span
        rules = self._finish_rules
        min_confidence = self.min_confidence
        rounded: dict[float, float] = {}
        keyword_tuples: dict[int, tuple[str, ...]] = {}  # by id(): each context lives on here
        for key in sorted(best):  # (start, end) order, compared in C
            cand = best[key]
            confidence = cand.confidence
            if confidence < min_confidence:
                continue
            detector, severity, is_keyword = rules[cand.rule_index]
            start, end = key if original_span is None else original_span(*key)
            canonical = cand.canonical
            shown = rounded.get(confidence)
            if shown is None:
                shown = rounded[confidence] = round(confidence, 3)
            context = cand.context
            if context is None:
                keywords: tuple[str, ...] = ()
            else:
                cached = keyword_tuples.get(id(context))
                if cached is None:
                    cached = keyword_tuples[id(context)] = tuple(context.keywords)
                keywords = cached
            append(new_finding(Finding, (
                detector,
                start + offset,
                end + offset,
                shown,
                canonical if is_keyword else mask_value(canonical),
                fingerprint(canonical),
                key_id,
                severity,
                keywords,
                tuple((old.key_id, old.fingerprint(canonical)) for old in previous)
                if previous else (),
            )))
        return findings
