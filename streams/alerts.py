"""Envelope + findings + summary → the alert record; pure functions, no I/O.

An alert is one document that crossed the severity threshold. It is built to be indexed,
shown and shared inside a SOC without itself becoming a copy of the leak: it carries counts,
masked samples, keyed fingerprints and finding offsets, never the raw identifiers or the
document text, and the free-text metadata that could hold identifiers (title, URL, author,
item id, site) goes through a redactor that masks them.

The alert id is deterministic (feed, site, item id, content hash) and becomes the
Elasticsearch ``_id``: a redelivered or replayed message overwrites its own alert instead of
adding a duplicate, while an edited paste (new content hash) is a new alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from detectors import DocumentSummary, Finding, Scanner
from detectors.privacy import MASK_CHAR
from detectors.summary import SEVERITY_RANK
from streams.envelope import FeedEnvelope

ALERT_SCHEMA_VERSION = 1
# Bounds that keep an alert well under Kafka's 1 MiB default message size even for a dump
# with a million findings; the summary still counts everything.
MAX_FINDINGS_IN_ALERT = 1000
MAX_FINGERPRINTS_IN_ALERT = 1000
MAX_TEXT_FIELD = 2048

Redactor = Callable[[str], str]


def alert_id_for(feed: str, site: str, item_id: str, content_sha256: str) -> str:
    """Stable id of the alert for one version of one item: the first 32 hex of a SHA-256.

    A plain hash (not the HMAC) on purpose: any component can recompute it from the envelope,
    and the content hash inside makes it useless for guessing identifiers.
    """
    material = "|".join((feed, site, item_id, content_sha256)).encode("utf-8")
    return hashlib.sha256(material).hexdigest()[:32]


def crosses_threshold(summary: DocumentSummary, min_severity: str) -> bool:
    """Whether the document deserves an alert: any finding, at or above the configured level."""
    if not summary.findings_total:
        return False
    return summary.severity_rank >= SEVERITY_RANK[min_severity]


def redact_text(text: str, findings: Iterable[Finding]) -> str:
    """Replace every finding's span in ``text`` with its masked form.

    Overlapping spans (from two scans of the same text) are merged: the part of a later span
    that sticks out of an earlier one is starred, never shown.
    """
    pieces: list[str] = []
    last = 0
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if finding.start < last:
            if finding.end > last:
                pieces.append(MASK_CHAR * (finding.end - last))
                last = finding.end
            continue
        pieces.append(text[last:finding.start])
        pieces.append(finding.masked)
        last = finding.end
    pieces.append(text[last:])
    return "".join(pieces)


# Characters that glue an identifier to its neighbours in ids and URLs ("post-0912345678",
# "?phone=0912345678"). The scanner rightly ignores glued digits in prose (order numbers,
# paths), but in metadata a glued identifier is still an identifier.
_METADATA_GLUE = str.maketrans(dict.fromkeys("-_/=:?&#%;|", " "))


def make_redactor(scanner: Scanner) -> Redactor:
    """A redactor that masks whatever ``scanner`` recognises as an identifier.

    The same scanner and threshold as the content (what counts as an identifier in a paste
    counts as one in its title or URL), run twice: on the text as written and with the glue
    characters above turned into spaces, which keeps offsets aligned.
    """
    def redact(text: str) -> str:
        findings = scanner.scan(text)
        unglued = text.translate(_METADATA_GLUE)
        if unglued != text:
            findings += scanner.scan(unglued)
        return redact_text(text, findings)
    return redact


def _clean(value: str | None, redact: Redactor | None) -> str | None:
    if value is None:
        return None
    value = value[:MAX_TEXT_FIELD]
    return redact(value) if redact is not None else value


def build_alert(
    envelope: FeedEnvelope,
    summary: DocumentSummary,
    findings: Sequence[Finding],
    *,
    content_sha256: str,
    content_bytes: int,
    detected_at: str,
    rules_version: str,
    key_id: str,
    redact: Redactor | None = None,
    source: Mapping[str, Any] | None = None,
    warnings: Sequence[str] = (),
    watchlist_detectors: Collection[str] = (),
) -> dict[str, Any]:
    """The alert document for one document's findings, ready for Kafka and Elasticsearch.

    ``findings`` may be the full list or a bounded prefix (large documents keep only the first
    :data:`MAX_FINDINGS_IN_ALERT`); counts and severity come from ``summary`` either way.
    ``watchlist_detectors`` are the ids of keyword watch-list rules; those found are listed in
    ``keyword_watchlists`` so analysts can filter "our brand was named" without knowing rule
    ids. ``watchlists`` / ``watchlist_hits`` are for fingerprint watch-lists and start empty.
    """
    fingerprints = summary.fingerprints[:MAX_FINGERPRINTS_IN_ALERT]
    kept = findings[:MAX_FINDINGS_IN_ALERT]
    meta = envelope.meta if isinstance(envelope.meta, Mapping) else {}
    collector_source = meta.get("source") if isinstance(meta.get("source"), str) else None
    return {
        "alert_id": alert_id_for(envelope.feed, envelope.site, envelope.item_id, content_sha256),
        "schema_version": ALERT_SCHEMA_VERSION,
        "detected_at": detected_at,
        "feed": envelope.feed,
        "site": _clean(envelope.site, redact),
        "item_id": _clean(envelope.item_id, redact),
        "url": _clean(envelope.url, redact),
        "title": _clean(envelope.title, redact),
        "author": _clean(envelope.author, redact),
        "collector_source": _clean(collector_source, redact),
        "published_at": envelope.published_at,
        "fetched_at": envelope.fetched_at,
        "content_sha256": content_sha256,
        "content_bytes": content_bytes,
        "content_truncated": bool(meta.get("truncated", False)),
        "key_id": key_id,
        "rules_version": rules_version,
        "severity": summary.severity,
        "severity_rank": summary.severity_rank,
        "reasons": list(summary.reasons),
        "detectors": sorted(summary.counts),
        "counts": dict(summary.counts),
        "findings_total": summary.findings_total,
        "distinct_fingerprints": summary.distinct_fingerprints,
        # Past 100,000 distinct values of one detector the count is a ~1 % estimate.
        "distinct_estimated": summary.distinct_estimated,
        "estimated_records": summary.estimated_records,
        "fingerprints": list(fingerprints),
        "fingerprints_truncated": len(summary.fingerprints) > len(fingerprints)
        or summary.distinct_fingerprints > len(fingerprints),
        "samples": [dict(sample) for sample in summary.samples],
        "findings": [
            {"detector": f.detector, "start": f.start, "end": f.end,
             "confidence": round(f.confidence, 3), "fingerprint": f.fingerprint}
            for f in kept
        ],
        "findings_truncated": summary.findings_total > len(kept),
        "decode_warnings": list(warnings),
        "source": dict(source) if source is not None else {},
        # Filled by streams.watchlists.apply_watchlist_hits when fingerprints match a list.
        "watchlists": [],
        "watchlist_hits": {},
        "keyword_watchlists": sorted(d for d in summary.counts if d in watchlist_detectors),
    }
