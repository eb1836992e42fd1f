"""Which column of a delimited row a value sits in: the context a dump's header gives it."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.context import column_index

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
