"""Document summaries: from a list of findings to "what leaked here, and how bad is it".

A SOC wants one line per document ("4,812 records with citizen ID + phone + bank account"),
not 4,812 findings. Severity follows the scale suggested in
../shared/reference/vn-identifiers.md ("Law and severity"); it is a product choice.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from detectors.distinct import DistinctCounter
from detectors.findings import Finding

SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
BULK_RECORDS = 100
TRADING_VOLUME = 100
MAX_SAMPLES_PER_DETECTOR = 3
IDENTITY_NUMBERS = ("vn_citizen_id", "vn_legacy_id", "vn_passport")
BULK_IDENTIFIERS = ("vn_citizen_id", "vn_legacy_id", "vn_phone", "vn_passport", "email")
CONTEXT_CONFIDENCE = 0.8

# Chip-card QR payload: ID12|CMND9|name|DDMMYYYY|sex|address|DDMMYYYY. The pattern starts with
# its first "|", so the regex engine looks for pipes in C and the lookbehinds check the 12
# digits before it. Written from the digits ("(?<!\d)\d{12}\|..."), the engine tried every
# digit of the text: ~33 ms per MB of logs or dumps against ~1 (BENCHMARKS.md, session 10).
ID_CARD_QR = re.compile(
    r"\|(?<=\d{12}\|)(?<!\d{13}\|)(?:\d{9})?\|[^|\n]{2,80}\|\d{8}\|(?:Nam|Nữ|Nu)\|")
BIRTH_DATE = re.compile(r"(?<!\d)(?:[0-3]?\d[/.\-][01]?\d[/.\-](?:19|20)\d\d)(?!\d)")
HOLDER_WORDS = ("chu tai khoan", "ctk", "chu tk", "account holder", "holder")


@dataclass
class DocumentSummary:
    """Aggregate of one document's findings, safe to index: no raw values."""

    counts: dict[str, int] = field(default_factory=dict)
    distinct_fingerprints: int = 0
    fingerprints: list[str] = field(default_factory=list)
    estimated_records: int = 0
    severity: str = "low"
    reasons: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    findings_total: int = 0
    # key id -> fingerprints under that retired key, for watch-list matching during a key
    # rotation only; alerts carry the current key's fingerprints (see to_dict).
    previous_fingerprints: dict[str, list[str]] = field(default_factory=dict)
    # True when the document held so many distinct values (over 100,000 for one detector)
    # that distinct counts are ~1 % estimates: see detectors.distinct.
    distinct_estimated: bool = False

    @property
    def severity_rank(self) -> int:
        """1 (low) to 4 (critical), for sorting and range queries in Kibana."""
        return SEVERITY_RANK[self.severity]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "counts": dict(self.counts),
            "findings_total": self.findings_total,
            "distinct_fingerprints": self.distinct_fingerprints,
            "fingerprints": list(self.fingerprints),
            "estimated_records": self.estimated_records,
            "severity": self.severity,
            "severity_rank": self.severity_rank,
            "reasons": list(self.reasons),
            "samples": list(self.samples),
        }


class DocumentAccumulator:
    """Builds a summary incrementally, chunk by chunk, so large files stay in bounded memory."""

    def __init__(self, max_fingerprints: int = 10_000) -> None:
        self._counts: Counter[str] = Counter()
        self._fingerprints: dict[str, None] = {}
        self._previous: dict[str, dict[str, None]] = {}
        self._max_fingerprints = max_fingerprints
        self._distinct: dict[str, DistinctCounter] = {}  # bounded: see detectors.distinct
        self._records = 0
        self._identity_kits = 0
        self._qr_payloads = 0
        self._held_accounts = 0
        self._samples: dict[str, list[dict[str, Any]]] = {}
        self._contextual: Counter[str] = Counter()
        self._total = 0

    def add(self, text: str, findings: Iterable[Finding], offset: int = 0) -> None:
        """Fold in one chunk: ``findings`` have offsets relative to ``text`` plus ``offset``.

        One light pass per finding (grouping by detector, and lines, which need the order),
        then the counts, distinct values, samples and fingerprints per detector in bulk:
        dumps bring ~40,000 findings per MB.
        """
        if not isinstance(findings, list):
            findings = list(findings)
        by_detector: dict[str, list[Finding]] = {}
        by_line: dict[int, set[str]] = {}
        line_of: dict[int, tuple[int, int]] = {}
        seen_to, line_start, line_end = 0, 0, -1
        line_detectors: set[str] = set()
        for finding in findings:
            detector = finding.detector
            group = by_detector.get(detector)
            if group is None:
                group = by_detector[detector] = []
            group.append(finding)
            if finding.previous_fingerprints:
                self._add_previous(finding.previous_fingerprints)
            local = finding.start - offset
            if local > line_end or local < seen_to:  # findings arrive in order: one pass
                newline = text.rfind("\n", seen_to if local >= seen_to else 0, local)
                line_start = newline + 1 if newline >= 0 else (line_start if local >= seen_to
                                                                else 0)
                line_end = text.find("\n", local)
                line_end = len(text) if line_end < 0 else line_end
                known = by_line.get(line_start)
                if known is None:
                    known = by_line[line_start] = set()
                line_detectors = known
                line_of[line_start] = (line_start, line_end)
            seen_to = local
            line_detectors.add(detector)
        for detector, group in by_detector.items():
            self._add_detector_group(detector, group)
        fingerprints = self._fingerprints
        if len(fingerprints) < self._max_fingerprints:  # the first ones, in document order
            for finding in findings:
                fingerprints[finding.fingerprint] = None
                if len(fingerprints) >= self._max_fingerprints:
                    break
        for line_start, detectors in by_line.items():
            if len(detectors) >= 2:
                self._records += 1
                if "vn_bank_account" in detectors:  # an account next to its holder's identity
                    self._held_accounts += 1
            if detectors.intersection(IDENTITY_NUMBERS):
                begin, end = line_of[line_start]
                if BIRTH_DATE.search(text, begin, end):
                    self._identity_kits += 1
        if "|" in text:
            self._qr_payloads += sum(1 for _ in ID_CARD_QR.finditer(text))

    def _add_previous(self, previous: tuple[tuple[str, str], ...]) -> None:
        for key_id, fingerprint in previous:
            under_key = self._previous.setdefault(key_id, {})
            if len(under_key) < self._max_fingerprints:
                under_key[fingerprint] = None

    def _add_detector_group(self, detector: str, group: list[Finding]) -> None:
        """Counts, distinct values, samples and held accounts for one detector's findings."""
        self._total += len(group)
        self._counts[detector] += len(group)
        distinct = self._distinct.get(detector)
        if distinct is None:
            distinct = self._distinct[detector] = DistinctCounter()
        distinct.update([finding.fingerprint for finding in group])
        contextual = sum(1 for finding in group if finding.confidence >= CONTEXT_CONFIDENCE)
        if contextual:
            self._contextual[detector] += contextual
        samples = self._samples.setdefault(detector, [])
        for finding in group[:MAX_SAMPLES_PER_DETECTOR - len(samples)]:
            samples.append({"detector": detector, "masked": finding.masked,
                            "confidence": finding.confidence})
        if detector == "vn_bank_account":
            self._held_accounts += sum(
                1 for finding in group if any(word in finding.context for word in HOLDER_WORDS))

    @property
    def distinct_estimated(self) -> bool:
        """Whether distinct counts are estimates (past ``detectors.distinct.EXACT_LIMIT``)."""
        return any(counter.estimated for counter in self._distinct.values())

    def summary(self) -> DocumentSummary:
        """Severity and reasons from everything added so far."""
        counts = dict(sorted(self._counts.items()))
        reasons: list[str] = []
        critical = []
        if counts.get("payment_card"):
            critical.append(f"{counts['payment_card']} payment card number(s)")
        if counts.get("vn_health_insurance"):
            critical.append(f"{counts['vn_health_insurance']} health insurance number(s)")
        if self._qr_payloads:
            critical.append(f"{self._qr_payloads} ID-card QR payload(s)")
        if self._held_accounts:
            critical.append(f"{self._held_accounts} bank account(s) with holder")
        if self._records >= BULK_RECORDS:
            critical.append(f"{self._records} records with two or more identifier types (bulk)")
        high = []
        if self._identity_kits:
            high.append(f"{self._identity_kits} identity kit(s): ID number with a birth date")
        volume = sum(self._distinct[d].count() for d in BULK_IDENTIFIERS if d in self._distinct)
        if volume >= TRADING_VOLUME:
            about = "about " if self.distinct_estimated else ""
            high.append(f"{about}{volume} distinct IDs/phones/e-mails in one document "
                        "(trading volume)")
        if counts.get("vn_bank_account"):
            high.append(f"{counts['vn_bank_account']} bank account number(s)")
        if 0 < self._records < BULK_RECORDS:
            high.append(f"{self._records} record(s) combining two or more identifier types")
        medium = [f"{n} {d} with context" for d, n in sorted(self._contextual.items())]
        if critical:
            severity, reasons = "critical", critical + high
        elif high:
            severity, reasons = "high", high
        elif medium:
            severity, reasons = "medium", medium
        else:
            severity = "low"
            reasons = ["structurally valid numbers without context"] if self._total else []
        samples = [s for detector in sorted(self._samples) for s in self._samples[detector]]
        counters = list(self._distinct.values())
        return DocumentSummary(
            counts=counts,
            distinct_fingerprints=counters[0].merged_count(counters[1:]) if counters else 0,
            distinct_estimated=self.distinct_estimated,
            fingerprints=list(self._fingerprints),
            estimated_records=self._records,
            severity=severity,
            reasons=reasons,
            samples=samples,
            findings_total=self._total,
            previous_fingerprints={k: list(v) for k, v in sorted(self._previous.items())},
        )


def summarize(text: str, findings: Iterable[Finding]) -> DocumentSummary:
    """Summary of one whole document."""
    accumulator = DocumentAccumulator()
    accumulator.add(text, findings)
    return accumulator.summary()
