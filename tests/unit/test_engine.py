"""Spans found in text: offsets, normalisation, context, columns, never a slice."""

import re
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from detectors import DocumentAccumulator, Fingerprinter, Scanner, load_rules
from detectors.normalize import fold, normalize
from detectors.synthetic import Synth
from streams.textsource import scan_chunks

SCANNER = Scanner(load_rules(), Fingerprinter(b"test-key-0123456789abcdef"))


def spans(text):
    return [(f.detector, text[f.start:f.end]) for f in SCANNER.scan(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SĐT: 0912.345.678", [("vn_phone", "0912.345.678")]),
        ("gọi +84 912 345 678 nhé", [("vn_phone", "+84 912 345 678")]),
        ("STK: 0912345678 MB Bank", [("vn_bank_account", "0912345678")]),
        ("CCCD 079203012345, SĐT 0912345678",
         [("vn_citizen_id", "079203012345"), ("vn_phone", "0912345678")]),
        ("MST: 0315482678", [("vn_tax_code", "0315482678")]),
        ("0912345678 079203012345", [("vn_phone", "0912345678"),
                                     ("vn_citizen_id", "079203012345")]),
        ("id=A0912345678 x0912345678 0912345678123 1.0912345678", []),
        ("ip 192.168.100.200 on 2026-11-24 and 24.11.2026", []),
        ("price 12.345.678 VND via STK", []),
    ],
)
def test_spans_found_in_text(text, expected):
    assert spans(text) == expected


def test_offsets_point_into_original_text_after_normalisation():
    written = "Số điện thoại: ０９１２\u200b３４５６７８ — căn cước 079203012345"
    text = unicodedata.normalize("NFD", written)
    found = SCANNER.scan(text)
    assert [f.detector for f in found] == ["vn_phone", "vn_citizen_id"]
    phone = found[0]
    assert text[phone.start:phone.end] == "０９１２\u200b３４５６７８"
    assert "so dien thoai" in phone.context
    assert text[found[1].start:found[1].end] == "079203012345"


def test_csv_header_is_context_for_the_whole_column():
    text = "ho_ten;so_tai_khoan;ghi_chu\n" + "".join(
        f"Nguyen Van {i};{1903567890120 + i};ok\n" for i in range(50)
    )
    found = SCANNER.scan(text)
    assert len(found) == 50
    assert {f.detector for f in found} == {"vn_bank_account"}
    assert all(f.context == ("so tai khoan",) for f in found)


def test_a_line_without_the_delimiter_ends_the_table():
    """Text after a pasted table must not inherit its columns (first column: bank account)."""
    table = "so_tai_khoan,ho_ten\n1903567890120,Nguyen Van A\n"
    after = "Don hang 1903567890121 da giao\n1903567890122,Tran Thi B\n"
    assert spans(table + after) == [("vn_bank_account", "1903567890120")]
    rows = after.replace("Don hang 1903567890121 da giao", "1903567890121,Le Van C")
    assert [value for _, value in spans(table + rows)] == [
        "1903567890120", "1903567890121", "1903567890122"]


@pytest.mark.parametrize("between", ['"12 Le Loi\nQuan 1"', "x\n-------------,----"])
def test_quoted_line_breaks_and_borders_stay_in_the_table(between):
    text = f"so_tai_khoan,dia_chi\n1903567890120,{between}\n1903567890122,y\n"
    assert [d for d, _ in spans(text)] == ["vn_bank_account", "vn_bank_account"]


def test_sql_insert_column_list_is_context():
    text = ("INSERT INTO kh (id, ten, so_cmnd, stk) VALUES (1, 'A', '024567891', '0071001234567'),"
            " (2, 'B', '381234567', '19035678901234');")
    assert spans(text) == [
        ("vn_legacy_id", "024567891"), ("vn_bank_account", "0071001234567"),
        ("vn_legacy_id", "381234567"), ("vn_bank_account", "19035678901234"),
    ]


# An address with commas before the account column, as spreadsheets and dumps quote it.
@pytest.mark.parametrize("text", [
    'ho_ten,dia_chi,so_tai_khoan,sdt\n'
    'Nguyen Van A,"12 Le Loi, Q1, HCM",190345678901,0912345678\n'
    'Tran Thi B,"5 Tran ""Hung"" Dao, Hanoi","0451000123456",0987654321\n',
    "INSERT INTO kh (ho_ten, dia_chi, so_tai_khoan, sdt) VALUES\n"
    "('Nguyen Van A', '12 Le Loi, Q1, HCM', '190345678901', '0912345678'),\n"
    "('Tran Thi B', '5 Tran ''Hung'' Dao, Hanoi', '0451000123456', '0987654321');\n",
])
def test_delimiters_inside_quoted_fields_do_not_shift_the_columns(text):
    found = SCANNER.scan(text)
    assert [(f.detector, text[f.start:f.end], f.context) for f in found] == [
        ("vn_bank_account", "190345678901", ("so tai khoan",)),
        ("vn_phone", "0912345678", ("sdt",)),
        ("vn_bank_account", "0451000123456", ("so tai khoan",)),
        ("vn_phone", "0987654321", ("sdt",)),
    ]


@pytest.mark.parametrize("rows", [4, 200], ids=["few rows", "indexed dump"])
def test_a_value_its_column_does_not_name_is_still_found_on_its_own(rows):
    """A citizen ID in the phone column: the column gives the phone rule context, but the
    phone rule turns the value down, so the citizen ID rule still finds it (no context)."""
    text = "ho_ten,sdt\n" + "".join(f"A{i},0912345678\n" for i in range(rows))
    text += "B,079203012345\n"
    found = [(f.detector, text[f.start:f.end], f.context) for f in SCANNER.scan(text)]
    assert found[-1] == ("vn_citizen_id", "079203012345", ())
    assert found[:-1] == [("vn_phone", "0912345678", ("sdt",))] * rows


def test_keyword_on_previous_line_is_not_context():
    assert spans("ck vào STK nhé\ntồn kho 9183396686 chiếc") == []


def test_findings_never_carry_the_raw_value():
    text = "CCCD 079203012345 SĐT 0912345678 the 9704365829147351 a.b@gmail.com"
    for finding in SCANNER.scan(text):
        raw = text[finding.start:finding.end]
        assert raw not in repr(finding.to_dict())


@given(st.text(max_size=200))
def test_normalisation_is_idempotent(text):
    once = normalize(text).text
    assert normalize(once).text == once


@given(st.text(max_size=200))
def test_fold_keeps_length(text):
    assert len(fold(text)) == len(text)


@given(st.text(max_size=300))
def test_scanner_never_crashes_and_spans_are_in_bounds(text):
    for finding in SCANNER.scan(text):
        assert 0 <= finding.start < finding.end <= len(text)


def test_chunked_scan_equals_whole_scan_across_borders():
    line = "KH Nguyen Van A CCCD 079203012345 SĐT 0912 345 678 STK 0071001234567 Vietcombank\n"
    text = "ho_ten,cccd,sdt\n" + line * 300 + "".join(
        f"Tran Thi B,0792030{i:05d},09{i:08d}\n" for i in range(300)
    )
    whole = [(f.detector, f.start, f.end) for f in SCANNER.scan(text)]
    for chunk_chars in (1000, 1013, 4096):
        pieces = [text[i:i + 777] for i in range(0, len(text), 777)]
        chunked = [
            (f.detector, f.start, f.end)
            for chunk in scan_chunks(SCANNER, pieces, DocumentAccumulator(), chunk_chars)
            for f in chunk.findings
        ]
        assert chunked == whole, chunk_chars


def _assert_same_spans(fast, reference) -> None:
    """Every span of up to four normalised characters maps back to the same original span."""
    size = len(fast.text)
    for start in range(size + 1):
        for end in range(start, min(size, start + 4) + 1):
            assert fast.original_span(start, end) == reference.original_span(start, end)


_DECOMPOSABLE = st.sampled_from(list("aăâeêioôơuưyAĂÂĐđ") + ["\u0300", "\u0301", "\u0309",
                                "\u0303", "\u0323", "\u0302", "\u0306", "\u031b", "\u0308",
                                "x", "0", "9", " ", "\n", "\u1100", "\u1161", "\u200b", "\uff10",
                                "\u0327", "\u0338", "\u05b4", "한"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_DECOMPOSABLE, st.text(max_size=3)), max_size=40).map("".join))
def test_decomposed_text_takes_the_fast_path_with_the_same_map(written):
    """NFD input is composed in C with a sparse offset map (one entry per mark run); the
    result and every span must equal the per-cluster path's."""
    from detectors.normalize import _composed, _per_cluster

    text = unicodedata.normalize("NFD", written)
    fast = _composed(text)
    assume(fast is not None)  # invisible/fullwidth characters, jamo, marks that stay apart
    reference = _per_cluster(text)
    assert fast.text == reference.text == normalize(text).text
    _assert_same_spans(fast, reference)


_HIDDEN = st.sampled_from(["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u2060",
                           "\uff10", "\uff19", "\uff0b", "\u00a0", "\u3000", "\u2013",
                           "0", "9", " ", "\n", "ố", "Đ", "\u1100", "\u1161", "x", "\u0301"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_HIDDEN, st.text(max_size=3)), max_size=40).map("".join))
def test_invisible_and_fullwidth_characters_take_the_fast_path_with_the_same_map(text):
    """Composed text that only needs width mapping and invisible characters removed is done
    in C with one map entry per removed run; text and every span equal the general path's."""
    from detectors.normalize import _cleaned, _per_cluster

    assume(unicodedata.is_normalized("NFC", text))
    fast = _cleaned(text)
    assume(fast is not None)  # combining marks: the general path
    reference = _per_cluster(text)
    assert fast.text == reference.text == normalize(text).text
    _assert_same_spans(fast, reference)


def test_zero_width_between_digits_takes_the_fast_path():
    text = "Số tài khoản: 0123\u200b456\u200c789, SĐT ０９１２３４５６７８"
    from detectors.normalize import _RemovedRuns

    assert isinstance(normalize(text).runs, _RemovedRuns)
    assert [(f.detector, text[f.start:f.end]) for f in SCANNER.scan(text)] == [
        ("vn_bank_account", "0123\u200b456\u200c789"), ("vn_phone", "０９１２３４５６７８")]


def test_decomposed_vietnamese_keeps_its_offsets():
    written = "Số tài khoản của Nguyễn Thị Hằng: 0123456789 (Vietcombank), SĐT 0912345678"
    text = unicodedata.normalize("NFD", written)
    assert normalize(text).runs is not None, "decomposed Vietnamese should take the fast path"
    assert [(f.detector, text[f.start:f.end]) for f in SCANNER.scan(text)] == [
        ("vn_bank_account", "0123456789"), ("vn_phone", "0912345678")]


def test_a_parenthesis_inside_an_sql_literal_does_not_start_the_row():
    text = ("INSERT INTO khach_hang (ten_cong_ty, dia_chi, so_tai_khoan, sdt) VALUES\n"
            "('Công ty (TNHH) An Phát', 'Số 5 (cũ) Q1', '190345678901', '0912345678'),\n"
            "('Cty B', 'Lô 7 (A, B)', '0451000123456', '0987654321');\n")
    found = [(f.detector, text[f.start:f.end], f.context) for f in SCANNER.scan(text)]
    assert found == [
        ("vn_bank_account", "190345678901", ("so tai khoan",)),
        ("vn_phone", "0912345678", ("sdt",)),
        ("vn_bank_account", "0451000123456", ("so tai khoan",)),
        ("vn_phone", "0987654321", ("sdt",)),
    ]


@given(st.lists(st.integers(0, 999).map(str) | st.integers(0, 99).map("0{:02d}".format),
                min_size=4, max_size=4))
def test_dotted_quads_are_addresses_only_when_every_octet_fits(groups):
    """IPv4 addresses are left alone; four dotted groups with one over 255 are not one."""
    from detectors.engine import _IPV4_AFTER_FIRST

    written = ".".join(groups)
    is_address = re.match("[0-9]" + _IPV4_AFTER_FIRST, written) is not None
    assert is_address == all(int(group) <= 255 for group in groups)


def test_a_dotted_citizen_id_is_found_and_addresses_are_not():
    text = "cccd 079.203.012.345, may chu 192.168.100.254 va 10.0.0.1"
    assert spans(text) == [("vn_citizen_id", "079.203.012.345")]


_CREATE_KHACH_HANG = """CREATE TABLE `khach_hang` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `ho_ten` varchar(100) DEFAULT NULL COMMENT 'Họ, tên (đầy đủ)',
  `so_du` decimal(15,2) DEFAULT '0.00',
  `so_tai_khoan` varchar(20) DEFAULT NULL,
  `sdt` varchar(15) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_sdt` (`sdt`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
"""


def _mysqldump(rows: int, name: str = "Khách",
               between: str = "\n" + ("x" * 70 + "\n") * 30  # a border may fall in there
               ) -> tuple[str, list[tuple[str, str]]]:
    """mysqldump's default output: the columns are named only in CREATE TABLE, and the
    extended INSERT holds every row on one line."""
    synth = Synth(21)
    values, expected = [], []
    for i in range(rows):
        account, phone = synth.bank_account(), synth.mobile()
        values.append(f"({i + 1},'{name} {i}',{i}.50,'{account}','{phone}')")
        expected += [("vn_bank_account", account), ("vn_phone", phone)]
    text = _CREATE_KHACH_HANG + between
    text += "INSERT INTO `khach_hang` VALUES " + ",".join(values) + ";\n"
    return text, expected


@pytest.mark.parametrize("rows", [3, 400], ids=["few rows", "indexed dump"])
def test_mysqldump_rows_take_their_columns_from_create_table(rows):
    text, expected = _mysqldump(rows)
    found = [(f.detector, text[f.start:f.end], f.context) for f in SCANNER.scan(text)]
    assert [(d, v) for d, v, _ in found] == expected
    assert {c for d, _, c in found} == {("so tai khoan",), ("sdt",)}


def test_create_table_columns_carry_into_later_chunks():
    text, expected = _mysqldump(40)
    chunk_chars = text.index("INSERT") - 200  # CREATE TABLE only in the first chunk
    pieces = (text[i:i + 1000] for i in range(0, len(text), 1000))
    found = [(f.detector, text[f.start:f.end]) for chunk in
             scan_chunks(SCANNER, pieces, DocumentAccumulator(), chunk_chars)
             for f in chunk.findings]
    assert found == expected


@pytest.mark.parametrize("rows", [3, 400], ids=["few rows", "indexed dump"])
def test_mysql_escapes_and_semicolons_in_literals_keep_each_column(rows):
    """A ';' or an escaped quote inside a name neither ends the INSERT nor shifts a field."""
    text, expected = _mysqldump(rows, "Khách O\\'Neil; (cũ) values", between="")
    found = [(f.detector, text[f.start:f.end], f.context) for f in SCANNER.scan(text)]
    assert [(d, v) for d, v, _ in found] == expected
    assert {c for d, _, c in found} == {("so tai khoan",), ("sdt",)}


def test_standard_sql_reads_a_backslash_as_itself():
    text = ('INSERT INTO "kh" ("duong_dan", "so_tai_khoan") VALUES '
            "('C:\\', '0071001234567'), ('D:\\x', '0071001234568');\n")
    assert spans(text) == [("vn_bank_account", "0071001234567"),
                           ("vn_bank_account", "0071001234568")]


@pytest.mark.parametrize("chunk_chars", [1000, 1013, 4096])
def test_an_insert_open_at_a_chunk_border_keeps_its_columns(chunk_chars):
    """A chunk starting inside a one-line INSERT (no line break to cut at) keeps its columns."""
    text, expected = _mysqldump(120, "Khách O\\'Neil; (cũ)", between="")
    pieces = (text[i:i + 777] for i in range(0, len(text), 777))
    found = [(f.detector, text[f.start:f.end]) for chunk in
             scan_chunks(SCANNER, pieces, DocumentAccumulator(), chunk_chars)
             for f in chunk.findings]
    assert found == expected
