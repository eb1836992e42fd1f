"""Document summaries: counts, records and severity a SOC acts on."""

from detectors import Fingerprinter, Scanner, load_rules, summarize
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
