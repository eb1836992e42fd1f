"""Document summaries: counts, records and severity a SOC acts on."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import Fingerprinter, Scanner, load_rules, summarize, summary
from detectors.corpus import csv_dump
from detectors.synthetic import Synth

SCANNER = Scanner(load_rules(), Fingerprinter(b"test-key-0123456789abcdef"))


def summary_of(text):
    return summarize(text, SCANNER.scan(text))


def test_bulk_dump_is_critical_with_reasons():
    doc = csv_dump(Synth(3), rows=150)
    summary = summary_of(doc.text)
    assert summary.severity == "critical"
    assert summary.estimated_records == 150
    assert summary.counts["vn_citizen_id"] == 150
    assert summary.distinct_fingerprints >= 150 * 4
    assert any("bulk" in reason for reason in summary.reasons)


def test_single_phone_with_context_is_medium():
    summary = summary_of("liên hệ SĐT 0912345678")
    assert (summary.severity, summary.counts) == ("medium", {"vn_phone": 1})


def test_number_without_context_is_low():
    assert summary_of("ref 079203012345").severity == "low"


def test_card_is_critical_and_identity_kit_is_high():
    assert summary_of("the 9704365829147351").severity == "critical"
    kit = summary_of("Nguyen Van A, CCCD 079203012345, sinh 01/02/2003")
    assert kit.severity == "high"
    assert any("identity kit" in r for r in kit.reasons)


def test_summary_holds_masks_not_values():
    text = "CCCD 079203012345 SĐT 0912345678"
    data = summary_of(text).to_dict()
    assert "079203012345" not in repr(data)
    assert "0912345678" not in repr(data)
    assert {s["masked"] for s in data["samples"]} == {"079******345", "09******78"}


_QR_READING = re.compile(r"(?<!\d)\d{12}\|(?:\d{9})?\|[^|\n]{2,80}\|\d{8}\|(?:Nam|Nữ|Nu)\|")


_QR_LIKE = st.builds(
    lambda digits, old_id, name, born, sex: f"{digits}|{old_id}|{name}|{born}|{sex}|",
    st.text("0123456789٣", min_size=10, max_size=14), st.sampled_from(["", "123456789", "1234"]),
    st.sampled_from(["Nguyễn Văn A", "A", "x|y", "", "B\nC"]),
    st.sampled_from(["01011990", "0101199", "010119900"]),
    st.sampled_from(["Nam", "Nữ", "Nu", "N"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_QR_LIKE, st.sampled_from([
    "079203012345", "|", "||", "Nam|", "7", "x", "\n", " ",
])), max_size=12).map("".join))
def test_qr_payloads_are_counted_as_reading_them_from_their_digits(text):
    """The pipe-led pattern counts exactly the payloads the digit-led reading finds."""
    expected = sum(1 for _ in _QR_READING.finditer(text))
    assert sum(1 for _ in summary.ID_CARD_QR.finditer(text)) == expected


def test_a_qr_payload_in_a_document_makes_it_critical():
    text = "log: 079203012345|123456789|Nguyen Van A|01011990|Nam|Ha Noi|01012021|\n"
    result = summarize(text, SCANNER.scan(text))
    assert any("QR payload" in reason for reason in result.reasons)
    assert result.severity == "critical"
