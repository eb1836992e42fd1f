"""Context: the words around a number, and the column it sits in.

A 10-digit run is a bank account after "STK:" and a phone number after "SĐT:". Context
comes from two places: keywords near the candidate (one Aho-Corasick automaton over every
rule's keywords, run on a small diacritic-folded window around each candidate, so
documents without candidates never pay for it), and the header of the CSV/TSV/SQL column
the value sits in (dumps carry their context once, in the header).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import NamedTuple

import ahocorasick

from detectors.normalize import fold, fold_for_ascii_keywords
from detectors.ruleset import RuleSet
from detectors.sqltext import backslash_escapes, quote_is_escaped, quote_parity, statement_end

WINDOW_BEFORE = 48
WINDOW_AFTER = 24
_DELIMITERS = (",", "\t", ";", "|")
_HEADER_FIELD = re.compile(r"^[\"'`\[\s]*([^\W\d][\w .\-/()#]{0,40}?)[\"'`\]\s]*$")
# How a header's first field (and so the line) can begin: _HEADER_FIELD's opening.
_HEADER_START = re.compile(r"[\"'`\[\s]|[^\W\d]")
# Every piece between delimiters at most 48 characters, at least one delimiter: true of any
# header (its fields, split further by other delimiters, are no longer), and checked in one
# C call, where prose lines with a comma cost ~4 µs each in counting and splitting.
_HEADER_SHAPE = re.compile(r"[^,\t;|]{0,48}+(?:[,\t;|][^,\t;|]{0,48}+)++")  # no backtracking
_SQL_COLUMNS = re.compile(
    r"insert\s+into\s+[`\"\[]?[\w.]+[`\"\]]?\s*\(([^()]{1,2000})\)\s*values", re.IGNORECASE
)
# mysqldump's default INSERT has no column list: its columns come from the table's CREATE
# TABLE, earlier in the dump (or in an earlier chunk of the same file).
_SQL_INSERT_BARE = re.compile(
    r"insert\s+(?:ignore\s+)?into\s+[`\"\[]?([\w.]+)[`\"\]]?\s*values", re.IGNORECASE)
_CREATE_TABLE = re.compile(
    r"create\s+table\s+(?:if\s+not\s+exists\s+)?[`\"\[]?([\w.]+)[`\"\]]?\s*\(", re.IGNORECASE)
# Inside a CREATE TABLE body: quoted strings (COMMENT 'a, b'), quoted names, parentheses, commas.
_CREATE_BODY_TOKEN = re.compile(r"'(?:[^'\\]|''|\\.)*'|`[^`]*`|\"[^\"]*\"|[(),]")
_DEFINITION_NAME = re.compile(r"\s*(?:`([^`]+)`|\"([^\"]+)\"|\[([^\]]+)\]|([^\s,()`\"\[]+))")
_NOT_A_COLUMN = frozenset({"primary", "key", "unique", "constraint", "index", "foreign",
                           "check", "fulltext", "spatial", "period"})
CREATE_TABLE_MAX_CHARS = 20_000


def line_window(text: str, start: int, end: int) -> tuple[int, int]:
    """The context window of a span: a few words either side, never past its own line.

    A keyword on the previous line of a chat or a list describes that line's value, not
    this one; table headers reach other lines through the column context instead.
    """
    left = text.rfind("\n", max(0, start - WINDOW_BEFORE), start) + 1 or max(0, start
                                                                             - WINDOW_BEFORE)
    right = text.find("\n", end, end + WINDOW_AFTER)
    return left, (end + WINDOW_AFTER if right < 0 else right)


@dataclass
class ContextHit:
    """Best evidence for one rule: the nearest keyword and where it came from."""

    keywords: list[str] = field(default_factory=list)
    distance: int = 1_000_000


def _as_spaced(folded: str) -> str:
    return folded.replace("_", " ").replace("-", " ")


def _is_word_char(char: str) -> bool:
    return char.isalnum()


class KeywordContext:
    """One automaton over all rules' folded keywords; answers 'which rules have context here'."""

    def __init__(self, rules: RuleSet) -> None:
        owners: dict[str, set[int]] = {}
        for index, rule in enumerate(rules.rules):
            if rule.kind == "keyword":
                continue
            for keyword in rule.keywords:
                owners.setdefault(keyword, set()).add(index)
        # Texts are matched with "_" and "-" read as spaces ("so_tai_khoan", "so-tai-khoan"),
        # so keywords are too; hits still report the keyword as written in the rule.
        self._automaton = ahocorasick.Automaton()
        for keyword, rule_indexes in owners.items():
            self._automaton.add_word(_as_spaced(keyword), (keyword, frozenset(rule_indexes)))
        self._empty = not owners
        if not self._empty:
            self._automaton.make_automaton()
        self._fold = (fold_for_ascii_keywords if all(k.isascii() for k in owners) else fold)

    def prepare(self, text: str) -> str:
        """The folded, same-length view of ``text`` that the automaton runs on."""
        return _as_spaced(self._fold(text))

    def hits_in(self, folded: str) -> list[tuple[int, int, str, frozenset[int]]]:
        """Word-bounded keyword hits in a folded string: (start, end, keyword, rule indexes)."""
        if self._empty:
            return []
        found = []
        size = len(folded)
        for end_index, (keyword, owners) in self._automaton.iter(folded):
            start = end_index - len(keyword) + 1
            if start > 0 and _is_word_char(folded[start - 1]):
                continue
            if end_index + 1 < size and _is_word_char(folded[end_index + 1]):
                continue
            found.append((start, end_index + 1, keyword, owners))
        return found

    def around(self, text: str, start: int, end: int,
               wanted: Container[int] | None = None) -> dict[int, ContextHit]:
        """Keyword context per rule index for the span [start, end) of ``text``.

        One folded window and one automaton pass per candidate; words before the value
        count as nearer than the same words after it. ``wanted``: only these rules' context
        (the rules that accepted the value). A JSON line names a dozen fields around each
        value, and recording every rule they name was most of a look-up's cost.
        """
        result: dict[int, ContextHit] = {}
        if self._empty:
            return result
        left, right = line_window(text, start, end)
        # One character more on each side, so a word cut by the window's edge ("da|nh")
        # is not taken for a whole word: the same hits as KeywordIndex over the full text.
        low, high = max(0, left - 1), min(len(text), right + 1)
        window = self.prepare(text[low:high])
        first, last = left - low, right - low  # hits must lie in window[first:last]
        value_start = start - low
        value_end = end - low
        size = len(window)
        for end_index, (keyword, owners) in self._automaton.iter(window):
            hit_start = end_index - len(keyword) + 1
            if hit_start < first or end_index >= last:
                continue
            if hit_start > 0 and window[hit_start - 1].isalnum():
                continue
            if end_index + 1 < size and window[end_index + 1].isalnum():
                continue
            if end_index < value_start:
                distance = value_start - end_index - 1
            elif hit_start >= value_end:
                distance = hit_start - value_end + 8
            else:
                continue
            for owner in owners:
                if wanted is None or owner in wanted:
                    self._record(result, owner, keyword, distance)
        return result

    def index(self, text: str) -> KeywordIndex:
        """All word-bounded keyword hits of a whole text, for documents dense in candidates."""
        hits = self.hits_in(self.prepare(text))
        return KeywordIndex([h[1] for h in hits], hits)

    @staticmethod
    def _record(result: dict[int, ContextHit], owner: int, keyword: str, distance: int) -> None:
        hit = result.get(owner)
        if hit is None:
            hit = result[owner] = ContextHit()
        if keyword not in hit.keywords:
            hit.keywords.append(keyword)
        hit.distance = min(hit.distance, distance)


class KeywordIndex:
    """Keyword hits of one document sorted by end offset, answering window queries by bisection."""

    def __init__(self, ends: list[int], hits: list[tuple[int, int, str, frozenset[int]]]) -> None:
        self._ends = ends
        self._hits = hits
        # Where keyword hits end (distance 0 to a value starting there): asked once or twice
        # per value of a dump, so a set the scanner reads directly, not a method and bisection.
        self.ends: frozenset[int] = frozenset(ends)
        self.owners: frozenset[int] = frozenset().union(*(h[3] for h in hits)) if hits else (
            frozenset())

    @property
    def hits(self) -> list[tuple[int, int, str, frozenset[int]]]:
        """(start, end, keyword, rule indexes) in text order."""
        return self._hits

    def around(self, text: str, start: int, end: int,
               wanted: Container[int] | None = None) -> dict[int, ContextHit]:
        """Same answer as ``KeywordContext.around`` for the same text, span and ``wanted``."""
        result: dict[int, ContextHit] = {}
        left, right = line_window(text, start, end)
        low = bisect.bisect_right(self._ends, left)
        high = bisect.bisect_right(self._ends, right)
        for hit_start, hit_end, keyword, owners in self._hits[low:high]:
            if hit_start < left:
                continue
            if hit_end <= start:
                distance = start - hit_end
            elif hit_start >= end:
                distance = hit_start - end + 8
            else:
                continue
            for owner in owners:
                if wanted is None or owner in wanted:
                    KeywordContext._record(result, owner, keyword, distance)
        return result


def _column_hits(owners: dict[int, str]) -> dict[int, ContextHit]:
    """The context a column gives; built once per header column (callers only read it)."""
    return {owner: ContextHit([keyword], 0) for owner, keyword in owners.items()}


@dataclass
class _Header:
    delimiter: str
    columns: list[dict[int, str]]  # per column: rule index -> header keyword
    hits: list[dict[int, ContextHit]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hits = [_column_hits(column) for column in self.columns]


# Lines of these characters alone are table borders ("+----+-----+" in MySQL client output).
_BORDER_CHARS = "+-=_:*#~|. \t"


def _ends_table(line: str, delimiter: str) -> bool:
    """Whether a line ends the table above it: a blank line, or one that is not a row.

    A line without the table's delimiter is not one of its rows: the text after a pasted
    table ("Liên hệ mua thêm: 0912345678") must not inherit its columns. Border lines and
    lines with a double quote (the rest of a quoted multi-line field) keep the table. The
    verdict depends on the line alone, so a line seen again in the overlap of the next chunk
    of a large file gets the same one.
    """
    if not line.strip():
        return True
    return delimiter not in line and '"' not in line and bool(line.strip(_BORDER_CHARS))


def column_index(text: str, row_start: int, position: int, delimiter: str, limit: int,
                 quote: str = '"', backslash: bool = False) -> int:
    """The field of a delimited row that ``position`` lies in, counted as CSV and SQL do.

    A field that starts with ``quote`` (after any spaces) runs to its closing quote (a
    doubled quote inside is an escaped one) and may hold the delimiter: spreadsheet exports
    and SQL dumps quote every address ("12 Lê Lợi, Q1, HCM"), and counting its commas put
    every later value in the wrong column, or in none. A quote inside a field is a
    character, as for Python's csv module. Counting may stop at ``limit`` (the number of
    columns), so any answer from ``limit`` up means "past the last column": nothing there
    has context, and a hostile megabyte row costs no more than a header's worth of fields.
    ``backslash``: a quote after an odd run of backslashes is escaped too (MySQL's SQL).
    """
    if text.find(quote, row_start, position) < 0:  # most rows: one count in C
        return text.count(delimiter, row_start, position)
    count = 0
    at = row_start
    while count < limit:
        while text.startswith(" ", at, position):
            at += 1
        if text.startswith(quote, at, position):
            close = at + 1
            while True:
                close = text.find(quote, close, position)
                if close < 0:
                    return count  # position is inside this quoted field
                if backslash and quote_is_escaped(text, close, at + 1):
                    close += 1
                    continue
                if not text.startswith(quote, close + 1, position):
                    break
                close += 2  # an escaped quote
            at = close + 1
        following = text.find(delimiter, at, position)
        if following < 0:
            return count
        count += 1
        at = following + 1
    return count


_SAMPLE_CHARS = 1 << 16


def _listed_columns(match: re.Match[str]) -> list[str]:
    """The names of an INSERT's column list (a ``_SQL_COLUMNS`` match)."""
    return [name.strip(" `\"[]\n\r\t") for name in match.group(1).split(",")]


def create_table_columns(text: str, open_paren: int) -> list[str]:
    """Column names, in order, of the CREATE TABLE body opened at ``open_paren``.

    Definitions are split at top-level commas (a type's own, ``decimal(10,2)``, and those
    inside quoted comments do not count); key and constraint lines are not columns. A body
    longer than CREATE_TABLE_MAX_CHARS, or one that never closes, gives no columns.
    """
    names: list[str] = []
    depth = 0
    piece = open_paren + 1
    limit = min(len(text), open_paren + CREATE_TABLE_MAX_CHARS)
    for token in _CREATE_BODY_TOKEN.finditer(text, piece, limit):
        mark = token.group()
        if mark == "(":
            depth += 1
        elif mark == ")" and depth:
            depth -= 1
        elif mark == ")" or (mark == "," and not depth):  # the end of one definition
            name = _DEFINITION_NAME.match(text, piece, token.start())
            if name is not None:
                quoted = name.group(1) or name.group(2) or name.group(3)
                if quoted or name.group(4).lower() not in _NOT_A_COLUMN:  # not "PRIMARY KEY"
                    names.append(quoted or name.group(4))
            piece = token.end()
            if mark == ")":
                return names
    return []


def _find_values(text: str, start: int, cache: list[int]) -> int:
    """Where the first "values" or "VALUES" at or after ``start`` begins (``len(text)`` if none).

    ``cache`` holds each spelling's last answer, searched again only once ``start`` passes
    it, so the searches over a text add up to one pass per spelling (a spelling the text
    lacks is not looked for again after each statement).
    """
    for slot, needle in enumerate(("values", "VALUES")):
        if cache[slot] < start:
            found = text.find(needle, start)
            cache[slot] = found if found >= 0 else len(text)
    return min(cache)


def delimiters_are_sparse(text: str) -> bool:
    """Whether a sample of ``text`` holds fewer delimiters than line breaks (logs, not prose).

    Only then do skips to the next line with a delimiter save more than they cost: where
    most lines hold one, finding it costs ~0.6 µs a line that the header check needs anyway.
    """
    lines = text.count("\n", 0, _SAMPLE_CHARS)
    delimiters = 0
    for delimiter in _DELIMITERS:
        delimiters += text.count(delimiter, 0, _SAMPLE_CHARS)
        if delimiters >= lines:
            return False
    return True


class _Statement(NamedTuple):
    """An INSERT's row list: where it starts and ends, its columns and how it quotes."""

    rows_at: int  # just past VALUES (0 for one carried over from the previous chunk)
    end: int  # its ";" outside literals, or the end of the text
    names: list[str]
    backslash: bool  # literals escape with backslashes (sqltext.backslash_escapes)
    parity: int  # 1 if rows_at lies inside a literal (a chunk may start there)


class ColumnContext:
    """Tracks the header of CSV/TSV dumps and SQL INSERT column lists as scanning advances.

    Lines are examined once, in order, up to each candidate's line, so the cost stays
    linear in the document. The header survives across chunks of a large file.
    """

    def __init__(self, keywords: KeywordContext) -> None:
        self._keywords = keywords
        self._cursor = 0
        self._header: _Header | None = None
        self._text = ""
        self._base = 0  # where the text starts in the file (chunks)
        self._maybe_sql = False
        self._statements: list[_Statement] = []  # INSERTs found so far, in text order
        self._statement_rows: list[int] = []  # their rows_at, for bisection
        self._sql_scanned_to = 0  # every INSERT whose VALUES starts before this is known
        self._values_cache = [-1, -1]  # see _find_values
        self._quote_memo = (-1, -1, 0)  # (rows_at, position, inside a literal there?)
        self._line_memo = (0, 0)
        self._row_memo: tuple[int, str, bool] = (-1, "", False)  # (line start, delimiter, row?)
        self._delimiter_next = [-1] * len(_DELIMITERS)  # see _next_delimiter
        self._skip_lines = False  # see _next_possible_header
        self._sql_hits: dict[str, dict[int, ContextHit]] = {}
        self._tables: dict[str, list[str]] = {}  # CREATE TABLE columns, kept across chunks
        self._table_owners: set[int] = set()  # rules those columns name

    def reset_text(self, text: str, carry_header: bool, offset: int = 0) -> None:
        """Start on a new text, or on the next chunk of the same file starting at ``offset``.

        A chunk that starts inside an INSERT keeps that INSERT's columns: mysqldump writes
        ~1 MB per statement on one line, and rows after a chunk border lost their column
        context until the next VALUES (~12 % of the accounts of a 12 MB dump).
        """
        carried = (self._carried_statement(text, offset - self._base)
                   if carry_header else None)
        self._text = text
        self._base = offset
        self._cursor = 0
        self._maybe_sql = "VALUES" in text or "values" in text or carried is not None
        self._statements = [] if carried is None else [carried]
        self._statement_rows = [statement.rows_at for statement in self._statements]
        self._sql_scanned_to = 0
        self._values_cache = [-1, -1]  # see _find_values
        self._quote_memo = (-1, -1, 0)  # (rows_at, position, inside a literal there?)
        self._line_memo = (0, 0)
        self._row_memo = (-1, "", False)
        self._delimiter_next = [-1] * len(_DELIMITERS)
        self._skip_lines = delimiters_are_sparse(text)
        if not carry_header:
            self._header = None
            self._tables = {}
            self._table_owners = set()
        self._read_tables(text)
        if carried is not None:
            self._table_owners.update(self._owners_of(carried.names))

    def _column_rules(self, name: str) -> dict[int, str]:
        return self._folded_column_rules(_as_spaced(fold(name)))

    def _folded_column_rules(self, folded: str) -> dict[int, str]:
        owners: dict[int, str] = {}
        for _s, _e, keyword, rule_indexes in self._keywords.hits_in(folded):
            for owner in rule_indexes:
                owners.setdefault(owner, keyword)
        return owners

    def _try_header(self, line: str) -> _Header | None:
        if not line or line[0].isdigit() or len(line) > 4000:
            return None
        if _HEADER_START.match(line) is None:  # JSON lines, SQL rows: ~3 µs each otherwise
            return None
        if _HEADER_SHAPE.fullmatch(line) is None:
            return None
        delimiter = max(_DELIMITERS, key=line.count)
        if line.count(delimiter) == 0:
            return None
        fields = line.split(delimiter)
        if len(fields) > 200:
            return None
        for raw in fields:  # cheap structural checks before any folding
            if len(raw) > 48 or _HEADER_FIELD.match(raw) is None:
                return None
        folded = _as_spaced(fold(line)).split(delimiter)
        columns = [self._folded_column_rules(name) for name in folded]
        if not any(columns):
            return None
        return _Header(delimiter, columns)

    def _advance(self, line_start: int) -> None:
        text = self._text
        position = self._cursor
        while position < line_start:
            if self._header is None and self._skip_lines:
                position = self._next_possible_header(position, line_start)
                if position >= line_start:
                    break
            newline = text.find("\n", position, line_start)
            stop = line_start if newline < 0 else newline
            line = text[position:stop].rstrip("\r")
            header = self._try_header(line)
            if header is not None:
                self._header = header
            elif self._header is not None and _ends_table(line, self._header.delimiter):
                self._header = None
            position = stop + 1
        self._cursor = max(self._cursor, line_start)

    def _tuple_start(self, statement: _Statement, position: int) -> int:
        """The "(" opening the SQL row that holds ``position``, or -1 (none within 4000).

        The last "(" outside string literals: one inside a literal ('Công ty (TNHH) ABC')
        was taken for the row's start, and every later field of the row was counted from
        it, so phones and accounts after a company name lost their column. Literals are
        read as the statement's dialect writes them (``sqltext.backslash_escapes``), with
        the literal state at ``position`` kept from the last call, so a long statement
        costs one count over its text.
        """
        text = self._text
        rows_at = statement.rows_at
        backslash = statement.backslash
        memo_rows, memo_at, parity = self._quote_memo
        if memo_rows != rows_at or memo_at > position:
            memo_at, parity = rows_at, statement.parity
        parity ^= quote_parity(text, memo_at, position, backslash)  # inside a literal?
        self._quote_memo = (rows_at, position, parity)
        low = max(rows_at, position - 4000)
        at = position
        while True:
            candidate = text.rfind("(", low, at)
            if candidate < 0:
                return -1
            parity ^= quote_parity(text, candidate, at, backslash)
            if not parity:
                return candidate
            at = candidate

    def _next_possible_header(self, position: int, limit: int) -> int:
        """The first line start from ``position`` whose line holds a delimiter, or ``limit``.

        Used outside a table, in texts whose delimiters are sparse (``delimiters_are_sparse``).

        Every other line was read and handed to the header check (~1.3 µs per line of a
        log). The next delimiter comes from ``str.find`` (memchr speed; a character-class
        regex costs ~3 ns per character, ~1 µs per line of forum text), and the lines
        before it are skipped.
        """
        text = self._text
        following = self._next_delimiter(position)
        if following >= limit:
            return limit
        stop = text.find("\n", position, following)
        if stop < 0:
            return position  # this line holds it
        return text.rfind("\n", stop, following) + 1

    def _next_delimiter(self, position: int) -> int:
        """Where the first delimiter at or after ``position`` is (``len(text)`` if none).

        One cached ``find`` per delimiter, searched again only once passed, so the
        searches over a text add up to one pass per delimiter.
        """
        nexts = self._delimiter_next
        for slot, at in enumerate(nexts):
            if at < position:
                found = self._text.find(_DELIMITERS[slot], position)
                nexts[slot] = found if found >= 0 else len(self._text)
        return min(nexts)

    def _line_start(self, position: int) -> int:
        """Start of the line holding ``position``.

        Incremental, so a line of megabytes is searched once, not once per candidate on it.
        """
        seen_to, start = self._line_memo
        if position >= seen_to:
            newline = self._text.rfind("\n", seen_to, position)
            start = newline + 1 if newline >= 0 else start
        else:
            start = self._text.rfind("\n", 0, position) + 1
        self._line_memo = (position, start)
        return start

    def header_gives_context(self, line: str, owners: frozenset[int]) -> bool:
        """Whether ``line``, read as a table header, names a column for any of ``owners``."""
        header = self._try_header(line.rstrip("\r"))
        return header is not None and any(
            owner in owners for column in header.columns for owner in column)

    def sql_column_lists(self, text: str, owners: frozenset[int]) -> list[tuple[int, int]]:
        """Row lists of the SQL ``INSERT``s whose columns name a column for ``owners``.

        The columns are the INSERT's own list or, without one, its table's CREATE TABLE
        (``_table_columns``). Each span runs from the rows (after VALUES) to the statement's
        end (its first ';' outside a literal), or the end of the text; an INSERT carried over
        from the last chunk spans from the start. These are the statements ``at`` answers
        from, read once: two case-insensitive regexes over the whole text found them again
        at ~20 ms per MB of dump (an ``IGNORECASE`` pattern gets no fast literal search).
        """
        if not self._maybe_sql:
            return []
        self._find_statements(len(text))
        return [(statement.rows_at, statement.end) for statement in self._statements
                if statement.names and self._names_any(statement.names, owners)]

    def _names_any(self, names: list[str], owners: frozenset[int]) -> bool:
        """Whether any of the column ``names`` gives context to one of ``owners``."""
        return not owners.isdisjoint(self._owners_of(names))

    def _owners_of(self, names: list[str]) -> set[int]:
        """The rules that columns with these ``names`` give context to."""
        return {owner for name in names for owner in self._column_rules(name)}

    def _read_tables(self, text: str) -> None:
        """Record the columns of every CREATE TABLE in ``text`` (kept for later chunks).

        Found with ``str.find`` for the two spellings dumps use: a case-insensitive regex
        over every text would cost ~6 ms per MB.
        """
        for spelling in ("CREATE TABLE", "create table"):
            at = text.find(spelling)
            while at >= 0:
                match = _CREATE_TABLE.match(text, at)
                if match is not None:
                    if len(self._tables) > 4096:  # hostile dumps with endless tables
                        self._tables.clear()
                    names = create_table_columns(text, match.end() - 1)
                    self._tables[match.group(1).lower()] = names
                    self._table_owners.update(self._owners_of(names))
                at = text.find(spelling, at + len(spelling))

    def _table_columns(self, table: str) -> list[str]:
        """Columns of ``table`` from its CREATE TABLE, in this text or an earlier chunk."""
        return self._tables.get(table.lower(), [])

    def table_owners(self) -> set[int]:
        """Rules that some CREATE TABLE seen so far (this text or earlier chunks) names."""
        return self._table_owners

    def in_table(self) -> bool:
        """Whether column context is likely here: a header is current, or the text has SQL.

        As of the last look-up; a cheap hint, not an answer (``at`` is the answer).
        """
        return self._header is not None or self._maybe_sql

    def header_owners(self) -> set[int]:
        """Rules that the current table header gives context to (carried across chunks)."""
        if self._header is None:
            return set()
        return {owner for column in self._header.columns for owner in column}

    def at(self, position: int) -> dict[int, ContextHit]:
        """Column context for a value starting at ``position``: rule index -> hit."""
        text = self._text
        line_start = self._line_start(position)
        if line_start > self._cursor:
            self._advance(line_start)
        sql = self._sql_columns(position)
        if sql is not None:
            return sql
        header = self._header
        if header is None:
            return {}
        if self._row_memo[:2] != (line_start, header.delimiter):  # once per line
            line_end = text.find("\n", line_start)
            line = text[line_start:len(text) if line_end < 0 else line_end]
            self._row_memo = (line_start, header.delimiter,
                              not _ends_table(line.rstrip("\r"), header.delimiter))
        if not self._row_memo[2]:
            return {}  # the candidate's own line is not a row of the table either
        column = column_index(text, line_start, position, header.delimiter,
                              len(header.columns))
        if column >= len(header.columns):
            return {}
        return header.hits[column]

    def _sql_columns(self, position: int) -> dict[int, ContextHit] | None:
        """The context of the INSERT column holding ``position``; None outside a row."""
        if not self._maybe_sql:
            return None
        statement = self._statement_at(position)
        if statement is None or not statement.names:
            return None
        names = statement.names
        tuple_start = self._tuple_start(statement, position)
        if tuple_start < 0:
            return None
        column = column_index(self._text, tuple_start + 1, position, ",", len(names),
                              quote="'", backslash=statement.backslash)
        if column >= len(names):
            return None
        name = names[column]
        hits = self._sql_hits.get(name)
        if hits is None:
            if len(self._sql_hits) > 4096:  # hostile dumps with endless column names
                self._sql_hits.clear()
            hits = self._sql_hits[name] = _column_hits(self._column_rules(name))
        return hits

    def _statement_at(self, position: int) -> _Statement | None:
        """The INSERT whose row list holds ``position`` (after its VALUES, before its ";")."""
        if position > self._sql_scanned_to:
            self._find_statements(position)
        at = bisect.bisect_left(self._statement_rows, position) - 1
        if at < 0:
            return None
        statement = self._statements[at]
        return statement if position < statement.end else None

    def _find_statements(self, position: int) -> None:
        """Record every INSERT whose VALUES starts before ``position``, each read once.

        Incremental, so the work over a text stays linear however many candidates a dump
        holds: a statement's end is found once, and the search for the next VALUES resumes
        past it (a "values" inside its literals is text, not a keyword).
        """
        text = self._text
        at = self._sql_scanned_to
        statements = self._statements
        while at < position:
            if statements and statements[-1].end >= at:
                at = statements[-1].end + 1
                continue
            values_at = _find_values(text, at, self._values_cache)
            if values_at >= position:
                at = position
                break
            statement = self._read_statement(values_at)
            if statement is not None:
                statements.append(statement)
                self._statement_rows.append(statement.rows_at)
            at = values_at + 6
        self._sql_scanned_to = max(at, position)

    def _read_statement(self, values_at: int) -> _Statement | None:
        """The INSERT whose VALUES keyword is at ``values_at``; None for a word in prose."""
        text = self._text
        rows_at = values_at + 6
        head_start = max(text.rfind(";", max(0, values_at - 4000), values_at), 0)
        listed = _SQL_COLUMNS.search(text, head_start, rows_at)
        if listed is not None:
            head, names = listed, _listed_columns(listed)
        else:
            bare = _SQL_INSERT_BARE.search(text, head_start, rows_at)
            if bare is None:
                return None
            head, names = bare, self._table_columns(bare.group(1))
        backslash = backslash_escapes(head.group())
        return _Statement(rows_at, statement_end(text, rows_at, backslash), names, backslash, 0)

    def _carried_statement(self, text: str, shift: int) -> _Statement | None:
        """The INSERT still open where ``text`` starts, ``shift`` into the previous text.

        Only when ``text`` really continues the previous one there (normalisation changes
        no offset in either): otherwise nothing is carried.
        """
        previous = self._text
        if not (0 < shift < len(previous)) or not self._maybe_sql or not previous.startswith(
                text[:256], shift):
            return None
        statement = self._statement_at(shift)
        if statement is None or not statement.names:
            return None
        parity = statement.parity ^ quote_parity(previous, statement.rows_at, shift,
                                                 statement.backslash)
        return _Statement(0, statement_end(text, 0, statement.backslash, parity),
                          statement.names, statement.backslash, parity)
