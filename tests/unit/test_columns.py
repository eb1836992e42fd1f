"""Which column of a delimited row a value sits in: the context a dump's header gives it."""

from __future__ import annotations

import csv
import io

from hypothesis import example, given, settings
from hypothesis import strategies as st

from detectors import context, load_rules
from detectors.context import ColumnContext, KeywordContext, column_index

_FIELD = st.text(st.sampled_from('ab 7,;|\t"\''), max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.lists(_FIELD, min_size=2, max_size=8), st.sampled_from([",", ";", "|", "\t"]),
       st.data())
def test_column_index_counts_fields_as_the_csv_module_reads_them(fields, delimiter, data):
    """Each field of a row Python's csv module writes, looked up from where its value starts."""
    def written(field: str) -> str:  # the field as csv.writer writes it inside a row
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow([field, "x"])
        return out.getvalue()[:-len(delimiter) - 2]

    encoded = [written(field) for field in fields]
    line = "prefix\n" + delimiter.join(encoded)
    row_start = len("prefix\n")
    assert next(csv.reader([line[row_start:]], delimiter=delimiter)) == fields
    limit = data.draw(st.integers(1, len(fields) + 1))
    at = row_start
    for number, field in enumerate(encoded):
        position = at + (1 if field.startswith('"') else 0)  # a value starts inside quotes
        found = column_index(line, row_start, position, delimiter, limit)
        assert min(found, limit) == min(number, limit)  # from limit up: "past the last"
        at += len(field) + len(delimiter)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from("ab 7,'()"), max_size=8) | st.integers(0, 99),
                min_size=1, max_size=8))
def test_column_index_reads_sql_string_literals(values):
    """An INSERT tuple: strings quoted with ' and '' inside, numbers bare, ", " between."""
    encoded = [f"'{v.replace(chr(39), chr(39) * 2)}'" if isinstance(v, str) else str(v)
               for v in values]
    line = "VALUES (" + ", ".join(encoded) + ")"
    at = len("VALUES (")
    for number, field in enumerate(encoded):
        position = at + (1 if field.startswith("'") else 0)
        assert column_index(line, len("VALUES ("), position, ",", len(values),
                            quote="'") == number
        at += len(field) + 2


_KEYWORDS = KeywordContext(load_rules())
_LINES = st.sampled_from([
    "ho_ten,cccd,sdt", "stt\tso_cmnd\tstk", "name;so_tai_khoan", "a|sdt|b", "ten, stk",
    "0912345678,079203012345", "\t079203012345\t0912345678", "Nguyen Van A,0912345678",
    "2026-11-05T18:10:00Z INFO user_id=776317066", "Liên hệ mua thêm: 0912345678",
    "+----+------+", "", "   ", '"12 Le Loi, Q1", 0912345678', "stk: 190366558880, ok",
    "cccd", "x" * 60 + ",sdt", "١٢,sdt", "\rsdt,cccd",
]) | st.text(st.sampled_from("ab7,;|\t\r \"đ"), max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.lists(_LINES, max_size=25), st.sampled_from(["\n", "\r\n"]), st.data())
@example(["cccd", "ho_ten,cccd,sdt", "0912345678,079203012345"], "\n", None)
def test_lines_skipped_outside_tables_change_no_column_context(lines, newline, data):
    """Outside a table, lines without a delimiter are skipped; the column context where
    values start (after a line break or a delimiter) must equal that of looking at every
    line, whether candidates come on every line or far apart (skips of many lines)."""
    text = newline.join(lines) + newline
    starts = [at for at in range(len(text)) if at == 0 or text[at - 1] in "\n,\t;|"]
    positions = sorted(data.draw(st.lists(st.sampled_from(starts), max_size=6)) if data
                       else starts[-1:])
    keywords = _KEYWORDS

    def contexts() -> list[dict]:
        columns = ColumnContext(keywords)
        columns.reset_text(text, carry_header=False)
        columns._skip_lines = True  # whatever the text's delimiter density
        return [columns.at(position) for position in positions]

    fast = contexts()
    original = ColumnContext._next_possible_header
    ColumnContext._next_possible_header = lambda self, position, limit: position  # every line
    try:
        assert fast == contexts()
    finally:
        ColumnContext._next_possible_header = original


def test_line_skipping_is_for_texts_with_sparse_delimiters():
    log = "2026-11-05T18:10:00Z INFO api user_id=776317066\n" * 50
    prose = "Bán data khách hàng, giá tốt, liên hệ sđt, zalo\n" * 50
    assert context.delimiters_are_sparse(log)
    assert context.delimiters_are_sparse(log + "a,b\n")
    assert not context.delimiters_are_sparse(prose)
    assert not context.delimiters_are_sparse("ho_ten,cccd\nA,079203012345\n")


_SQL_PIECES = st.lists(st.sampled_from([
    "INSERT INTO kh (`ten`, `so_tai_khoan`, `sdt`) VALUES ('A', '190366558880', '0912345678'),",
    "('B', '0451000123456', '0987654321');", "insert into t (cccd, email) values ('079203012345', "
    "'a@b.vn');", "ho_ten,sdt", "C,0912345678", '{"sdt": "0912345678", "note": "values"}',
    "giá trị (values) thấp; xem thêm", "('D', '190366558881', '0912345679')", ";", "",
    "INSERT INTO x (a) VALUES", "(1);", "insert into y (stk) values ('190366558882');",
    "('O\\'Neil; (cũ) values', '190366558883', '0912345670'),", "('a\\\\', '0912345671'),",
    'INSERT INTO "kh" ("stk", "sdt") VALUES (\'C:\\\', \'190366558884\');',
]), max_size=20)


def _statements_by_reading(text: str) -> list[tuple[int, int, list[str], bool]]:
    """(rows at, end, columns, backslash escapes) of each INSERT, literals read char by char."""
    found = []
    at = 0
    while True:
        hits = [hit for hit in (text.find("values", at), text.find("VALUES", at)) if hit >= 0]
        if not hits:
            return found
        values_at = min(hits)
        head_start = max(text.rfind(";", max(0, values_at - 4000), values_at), 0)
        head = context._SQL_COLUMNS.search(text, head_start, values_at + 6)
        names = context._listed_columns(head) if head is not None else []
        if head is None:
            head = context._SQL_INSERT_BARE.search(text, head_start, values_at + 6)
        if head is None:
            at = values_at + 6
            continue
        backslash = '"' not in head.group()
        rows_at = values_at + 6
        outside = _outside_literals(text, rows_at, backslash)
        end = next((at for at in range(rows_at, len(text))
                    if text[at] == ";" and outside[at - rows_at]), len(text))
        found.append((rows_at, end, names, backslash))
        at = end + 1


def _sql_context_by_reading(text: str, position: int) -> dict | None:
    for rows_at, end, names, backslash in _statements_by_reading(text):
        if rows_at < position < end and names:
            row = _tuple_start_by_reading(text, rows_at, position, backslash)
            if row < 0:
                return None
            column = column_index(text, row + 1, position, ",", len(names), quote="'",
                                  backslash=backslash)
            if column >= len(names):
                return None
            rules = ColumnContext(_KEYWORDS)._column_rules(names[column])
            return {owner: context.ContextHit([keyword], 0) for owner, keyword in rules.items()}
    return None


@settings(max_examples=400, deadline=None)
@given(_SQL_PIECES, st.data())
def test_sql_column_context_equals_reading_each_statement_char_by_char(lines, data):
    """Statements found incrementally, and looked up in any order, as a plain reading finds
    them: a ";" or a "values" inside a literal neither ends nor starts one."""
    text = "\n".join(lines) + "\n"
    starts = [at for at in range(len(text)) if at == 0 or text[at - 1] in "\n,(' \""]
    positions = data.draw(st.lists(st.sampled_from(starts), max_size=12))
    columns = ColumnContext(_KEYWORDS)
    columns.reset_text(text, carry_header=False)
    for position in sorted(set(positions)) + positions:  # in order, then any order
        assert columns._sql_columns(position) == _sql_context_by_reading(text, position)


def _outside_literals(text: str, start: int, backslash: bool) -> list[bool]:
    """Whether each character from ``start`` lies outside a string literal, read one by one.

    With ``backslash``, a backslash escapes the next character outside a literal too. That
    is no valid MySQL (outside a literal a backslash is a syntax error), and the scanner's
    count of escaped quotes (``sqltext.quote_parity``) keeps no literal state, so this is
    the reading it promises; it differs only where a standard-SQL literal ending in a
    backslash ('C:\\') sits inside a MySQL statement left open.
    """
    outside = []
    inside = escaped = False
    for char in text[start:]:
        outside.append(not inside)
        if escaped:
            escaped = False
        elif backslash and char == "\\":
            escaped = True
        elif char == "'":
            inside = not inside
    return outside


def _tuple_start_by_reading(text: str, rows_at: int, position: int, backslash: bool) -> int:
    """The last "(" outside string literals from VALUES to ``position``, char by char."""
    outside = _outside_literals(text, rows_at, backslash)
    return max((at for at in range(max(rows_at, position - 4000), position)
                if text[at] == "(" and outside[at - rows_at]), default=-1)


_SQL_FIELD = st.sampled_from(["'0912345678'", "'Công ty (TNHH) ABC'", "'a, (b'", "'It''s ('",
                              "12", "NULL", "'x)'", "'(('", "''", "'190366558880'",
                              "'O\\'Neil ('", "'a\\\\'", "'\\\\\\'('"])
_SQL_ROW = st.lists(_SQL_FIELD, min_size=1, max_size=5).map(lambda f: "(" + ", ".join(f) + ")")


@settings(max_examples=300, deadline=None)
@given(st.lists(_SQL_ROW, min_size=1, max_size=8), st.data())
def test_sql_row_start_is_the_last_parenthesis_outside_literals(rows, data):
    text = "INSERT INTO kh (ten, sdt, stk, ghi_chu, x) VALUES " + ",\n".join(rows) + ";\n"
    rows_at = text.index("VALUES") + 6
    columns = ColumnContext(_KEYWORDS)
    columns.reset_text(text, carry_header=False)
    statement = columns._statement_at(rows_at + 1)
    assert statement is not None and statement.end == len(text) - 2
    positions = data.draw(st.lists(st.integers(rows_at, len(text)), max_size=20))
    for position in sorted(positions) + positions:  # in order (the memo), then any order
        assert columns._tuple_start(statement, position) == _tuple_start_by_reading(
            text, rows_at, position, backslash=True)


_COLUMN_TYPE = st.sampled_from(["int(11) NOT NULL", "varchar(20) DEFAULT NULL", "decimal(15,2)",
                                "text COMMENT 'Họ, tên (đầy đủ)'", "enum('a','b,c')",
                                "char(2) DEFAULT ')'", "datetime"])
_KEY_LINE = st.sampled_from(["PRIMARY KEY (`id`)", "KEY `ix` (`a`,`b`)", "UNIQUE KEY `u` (`c`)",
                             "CONSTRAINT `fk` FOREIGN KEY (`a`) REFERENCES `t` (`id`)"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True), _COLUMN_TYPE,
                          st.booleans()), min_size=1, max_size=8),
       st.lists(_KEY_LINE, max_size=3))
def test_create_table_columns_are_the_defined_names_in_order(columns, keys):
    definitions = [f"`{name}` {kind}" if quoted else f"{name} {kind}"
                   for name, kind, quoted in columns]
    body = ",\n  ".join(definitions + keys)
    text = (f"CREATE TABLE if not exists `t` (\n  {body}\n) ENGINE=InnoDB;\n"
            "INSERT INTO t VALUES (1);")
    assert context.create_table_columns(text, text.index("(")) == [  # bare `key` is a key line
        name for name, _, quoted in columns if quoted or name not in context._NOT_A_COLUMN]
