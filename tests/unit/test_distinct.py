"""Distinct counting in bounded memory: exact up to the limit, then a ~1 % estimate."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import distinct
from detectors.distinct import DistinctCounter
from detectors.findings import Finding
from detectors.summary import DocumentAccumulator


def fingerprints(prefix: str, count: int) -> list[str]:
    """Fingerprint-shaped values: hex SHA-256 digests, as the scanner's HMAC gives."""
    return [hashlib.sha256(f"{prefix}{i}".encode()).hexdigest() for i in range(count)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=300), st.integers(0, 400))
def test_below_the_limit_the_count_is_exact(values, limit):
    counter = DistinctCounter(exact_limit=max(limit, len(set(values))))
    for value in values:
        counter.add(value)
    assert counter.count() == len(set(values))
    assert not counter.estimated


@pytest.mark.parametrize("count", [5_000, 60_000, 250_000])
def test_past_the_limit_the_estimate_is_within_three_percent(count):
    counter = DistinctCounter(exact_limit=1_000)
    for value in fingerprints("a", count):
        counter.add(value)
    assert counter.estimated
    assert abs(counter.count() - count) <= 0.03 * count


def test_values_seen_again_are_not_counted_twice_by_the_sketch():
    counter = DistinctCounter(exact_limit=100)
    values = fingerprints("b", 20_000)
    for _ in range(3):
        for value in values:
            counter.add(value)
    assert abs(counter.count() - 20_000) <= 600


def test_any_string_can_be_counted_not_only_fingerprints():
    counter = DistinctCounter(exact_limit=10)
    for i in range(30_000):
        counter.add(f"value {i}")
    assert abs(counter.count() - 30_000) <= 900


def test_a_merged_count_counts_values_shared_by_two_counters_once():
    shared, left, right = fingerprints("s", 20_000), fingerprints("l", 10_000), fingerprints(
        "r", 10_000)
    for limit in (1_000_000, 500):  # exact, then both sketched
        first, second = DistinctCounter(exact_limit=limit), DistinctCounter(exact_limit=limit)
        for value in shared + left:
            first.add(value)
        for value in shared + right:
            second.add(value)
        assert abs(first.merged_count([second]) - 40_000) <= (0 if limit > 40_000 else 1_200)


def test_a_huge_document_summary_says_its_distinct_counts_are_estimates(monkeypatch):
    monkeypatch.setattr(distinct, "EXACT_LIMIT", 2_000)
    accumulator = DocumentAccumulator()
    values = fingerprints("p", 30_000)
    text = "\n" * 30_000
    findings = [Finding("vn_phone", i, i, 0.6, "09******78", fp, "k1", "high")
                for i, fp in enumerate(values)]
    accumulator.add(text, findings)
    summary = accumulator.summary()
    assert summary.distinct_estimated
    assert abs(summary.distinct_fingerprints - 30_000) <= 900
    assert any(reason.startswith("about ") and "distinct" in reason for reason in summary.reasons)


def test_an_ordinary_document_summary_counts_exactly():
    accumulator = DocumentAccumulator()
    values = fingerprints("q", 500)
    findings = [Finding("vn_phone", i, i, 0.6, "09******78", fp, "k1", "high")
                for i, fp in enumerate(values + values)]
    accumulator.add("\n" * 1_000, findings)
    summary = accumulator.summary()
    assert summary.distinct_fingerprints == 500 and not summary.distinct_estimated
