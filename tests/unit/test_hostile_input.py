"""Hostile and broken input: no crash, no hang, no raw value in what comes out.

Time is not asserted (benchmarks measure it: bench/linearity.py); a quadratic regression
shows up as this file taking minutes instead of about a second.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import DocumentAccumulator, Fingerprinter, Scanner, load_rules
from streams.textsource import DecodeReport, decode_blocks, scan_chunks

SCANNER = Scanner(load_rules(), Fingerprinter(b"test-key-0123456789abcdef"))

WORST_CASES = {
    "digit wall": "0" * 200_000,
    "spaced digits": "1 " * 100_000,
    "spaced pairs": "12 " * 60_000,
    "at signs": "@" * 200_000,
    "fake emails": "a@b." * 50_000,
    "brackets": "(+84)" * 40_000,
    "invisible between digits": "0\u200b" * 100_000,
    "fullwidth digits": "０" * 200_000,
    "keyword wall": "stk " * 50_000,
    "one long line of records": "stk 0123456789 cccd 079203012345 " * 5_000,
    "nul and controls": "\x00\x01\x02 0912345678 \x7f" * 10_000,
}


@pytest.mark.parametrize("name", sorted(WORST_CASES))
def test_worst_cases_finish_and_stay_in_bounds(name):
    text = WORST_CASES[name]
    for finding in SCANNER.scan(text):
        assert 0 <= finding.start < finding.end <= len(text)


def test_zero_width_characters_between_digits_are_normalised():
    text = "SĐT 0912\u200b345\u2060678 hoặc 0\ufeff9\u200c1\u200d2345678"
    assert [f.detector for f in SCANNER.scan(text)] == ["vn_phone", "vn_phone"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_decode_and_scan_without_crashing(data):
    import io

    report = DecodeReport()
    try:
        pieces = list(decode_blocks(io.BytesIO(data), report))
    except Exception as exc:  # only the documented skip is allowed
        assert type(exc).__name__ == "SkipFile"
        return
    for chunk in scan_chunks(SCANNER, pieces, DocumentAccumulator(), chunk_chars=512):
        for finding in chunk.findings:
            assert finding.start < finding.end


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789 .-+()@\u200b０ab\n,;|\tđĐ")),
               max_size=600))
def test_digit_heavy_text_never_crashes(text):
    for finding in SCANNER.scan(text):
        assert 0 <= finding.start < finding.end <= len(text)
        assert text[finding.start:finding.end] not in finding.masked or len(finding.masked) < 6


def test_single_50mb_line_is_scanned_in_bounded_windows():
    line_piece = "x" * 999 + " "
    pieces = (line_piece * 1000 for _ in range(50))  # 50 MB, no newline, never in memory at once
    accumulator = DocumentAccumulator()
    windows = 0
    for chunk in scan_chunks(SCANNER, pieces, accumulator):
        windows += 1
        assert len(chunk.text) <= 4_200_000
    assert windows >= 12
    assert accumulator.summary().findings_total == 0
