"""SQL string literals read as the dump's dialect writes them, against reading char by char."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from detectors.context import column_index
from detectors.sqltext import backslash_escapes, quote_is_escaped, quote_parity, statement_end

_SQLISH = st.text(st.sampled_from("'\\a;(,"), max_size=40)


def _delimiting_quotes(text: str, backslash: bool) -> list[int]:
    """Positions of the quotes that open or close a literal: not after an odd backslash run."""
    found = []
    run = 0
    for at, char in enumerate(text):
        if char == "'" and not (backslash and run % 2):
            found.append(at)
        run = run + 1 if char == "\\" else 0
    return found


def _quoted(value: str, backslash: bool) -> str:
    """A string literal as each dialect's dump writes it."""
    if backslash:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + value.replace("'", "''") + "'"


def _reading_states(text: str, backslash: bool) -> list[tuple[bool, bool]]:
    """(inside a literal, right after an escaping backslash) before each character."""
    states = []
    inside = escaped = False
    for char in text:
        states.append((inside, escaped))
        if escaped:
            escaped = False
        elif inside and backslash and char == "\\":
            escaped = True
        elif char == "'":
            inside = not inside  # a doubled quote closes and reopens: the same in the end
    return states


# (text, is a literal): literals hold anything; between them, what a row list holds.
_STATEMENT_PIECE = (st.tuples(st.text(st.sampled_from("'\\a;("), max_size=6), st.just(True))
                    | st.tuples(st.sampled_from([";", "(", ",", " ", "1"]), st.just(False)))


@settings(max_examples=500, deadline=None)
@given(_SQLISH, st.booleans(), st.data())
@example("a\\\\\\\\\\'b'", True, None)  # a run of five backslashes: the regex fallback
def test_quote_parity_counts_the_quotes_that_delimit_literals(text, backslash, data):
    start, end = 0, len(text)
    if data is not None:
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, len(text)))
    quotes = [at for at in _delimiting_quotes(text, backslash) if start <= at < end]
    assert quote_parity(text, start, end, backslash) == len(quotes) % 2


@settings(max_examples=500, deadline=None)
@given(st.lists(_STATEMENT_PIECE, max_size=12), st.booleans(),
       st.data())
def test_statement_end_is_the_first_semicolon_outside_a_literal(pieces, backslash, data):
    """Row lists written by either dialect, read from any point not inside an escape."""
    text = "".join(_quoted(piece, backslash) if literal else piece
                   for piece, literal in pieces)
    states = _reading_states(text, backslash)
    starts = [at for at in range(len(text)) if not states[at][1]]
    start = data.draw(st.sampled_from(starts)) if starts else 0
    inside = states[start][0] if starts else False
    expected = next((at for at in range(start, len(text))
                     if text[at] == ";" and not states[at][0]), len(text))
    assert statement_end(text[start:], 0, backslash, int(inside)) == expected - start
    assert statement_end(text, start, backslash, int(inside)) == expected


def test_an_escaped_quote_follows_an_odd_run_of_backslashes():
    text = "'a\\'b\\\\'c\\\\\\'"
    assert [quote_is_escaped(text, at, 0) for at, c in enumerate(text) if c == "'"] == [
        False, True, False, True]
    assert not quote_is_escaped(text, 3, 3)  # the run starts at the floor


def test_double_quoted_identifiers_mark_standard_sql():
    assert backslash_escapes("INSERT INTO `kh` (`stk`) VALUES")
    assert backslash_escapes("insert into kh values")
    assert not backslash_escapes('INSERT INTO "public"."kh" ("stk") VALUES')


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from("ab 7,'()\\;"), max_size=8) | st.integers(0, 99),
                min_size=1, max_size=8))
def test_column_index_reads_mysql_escapes(values):
    """An INSERT tuple as mysqldump writes it: \\' and \\\\ inside strings."""
    def quoted(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    encoded = [quoted(v) if isinstance(v, str) else str(v) for v in values]
    line = "VALUES (" + ",".join(encoded) + ")"
    at = len("VALUES (")
    for number, field in enumerate(encoded):
        position = at + (1 if field.startswith("'") else 0)
        assert column_index(line, len("VALUES ("), position, ",", len(values), quote="'",
                            backslash=True) == number
        at += len(field) + 1
