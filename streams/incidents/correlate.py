"""Alerts → incidents: one leak is one incident, however often and wherever it is reposted.

Pure functions over plain data, so every rule below is unit-tested without Kafka: the agent
looks candidate incidents up in its tables (by content hash and by LSH band key), passes them
here, and stores what comes back.

An alert joins an existing incident when

1. its ``content_sha256`` is one the incident has already seen (the same bytes reposted), or
2. the Jaccard index of its identifier-fingerprint set with one of the incident's member sets
   is at least ``threshold`` (default 0.8): the same people, whatever the formatting. Only
   alerts with at least :data:`MIN_SIMILARITY_FINGERPRINTS` identifier fingerprints take part:
   two posts that share one hotline number are not the same leak. Fingerprints of keyword
   watch-list findings (brand names) are left out for the same reason.

Otherwise it opens a new incident whose id is derived from the alert id, so reprocessing the
same alert after a crash recreates the same incident instead of a twin.

Severity (see docs/incidents.md, "Escalation"): the highest severity of the member alerts, then

* spread: seen on 2 or more distinct sites raises it one level; on 5 or more it is critical;
* growth: when the distinct identifiers reach twice what the first sighting had, one level;
  1,000 or more distinct identifiers is at least high, 10,000 or more critical;
* watch-lists: any identifier on a fingerprint watch-list makes it at least high, 100 or more
  watched identifiers critical; a keyword watch-list (brand, domain) makes it at least medium.

``escalated`` is true when the severity rank went up; routing notifies again only then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from detectors.summary import SEVERITY_RANK
from streams.incidents.similarity import (
    band_keys,
    bottom_k,
    estimate_distinct,
    minhash_signature,
    sample_jaccard,
)

SEVERITY_BY_RANK = {rank: name for name, rank in SEVERITY_RANK.items()}
DEFAULT_THRESHOLD = 0.8
MIN_SIMILARITY_FINGERPRINTS = 5
# A member set this close to a stored one adds nothing new to compare against.
SAME_VARIANT_JACCARD = 0.95
SPREAD_SITES = 2
WIDE_SPREAD_SITES = 5
GROWTH_FACTOR = 2
LARGE_IDENTIFIERS = 1_000
HUGE_IDENTIFIERS = 10_000
WATCHLIST_BULK_HITS = 100
# Bounds that keep one incident's state (a Kafka message in the changelog) far below 1 MiB.
MAX_SIGHTINGS = 200
MAX_ALERT_IDS = 1_000
MAX_CONTENT_HASHES = 100
MAX_VARIANTS = 8
MAX_SITES = 500
MAX_BAND_KEYS = 8 * 16
MAX_SAMPLES = 12
MAX_SAMPLES_PER_DETECTOR = 3


@dataclass(frozen=True)
class AlertFeatures:
    """What correlation needs from an alert, computed once: hash, sample and LSH band keys."""

    content_sha256: str
    sample: tuple[str, ...]
    band_keys: tuple[str, ...]
    fingerprints_n: int

    @property
    def comparable(self) -> bool:
        """Whether the alert has enough identifiers for near-duplicate matching."""
        return self.fingerprints_n >= MIN_SIMILARITY_FINGERPRINTS


def similarity_fingerprints(alert: Mapping[str, Any]) -> list[str]:
    """The alert's identifier fingerprints without those of keyword watch-list findings."""
    fingerprints = [f for f in alert.get("fingerprints") or () if isinstance(f, str)]
    # Alerts name keyword lists in ``keyword_watchlists``; older alerts only in ``watchlists``.
    named = alert.get("keyword_watchlists", alert.get("watchlists"))
    keyword_lists = set(named or ())
    if not keyword_lists:
        return fingerprints
    excluded = {f.get("fingerprint") for f in alert.get("findings") or ()
                if isinstance(f, Mapping) and f.get("detector") in keyword_lists}
    return [f for f in fingerprints if f not in excluded]


def alert_features(alert: Mapping[str, Any]) -> AlertFeatures:
    """Hash, bottom-k sample and band keys of an alert; band keys only when it is comparable."""
    fingerprints = set(similarity_fingerprints(alert))
    keys: tuple[str, ...] = ()
    if len(fingerprints) >= MIN_SIMILARITY_FINGERPRINTS:
        keys = tuple(band_keys(minhash_signature(fingerprints)))
    return AlertFeatures(
        content_sha256=str(alert.get("content_sha256") or ""),
        sample=tuple(bottom_k(fingerprints)),
        band_keys=keys,
        fingerprints_n=len(fingerprints),
    )


@dataclass
class IncidentState:
    """Everything the agent keeps about one incident; JSON-ready, bounded in size."""

    incident_id: str
    first_seen: str
    last_seen: str
    title: str | None = None
    severity: str = "low"
    severity_rank: int = 1
    base_rank: int = 1
    reasons: list[str] = field(default_factory=list)
    sightings: list[dict[str, Any]] = field(default_factory=list)
    sightings_total: int = 0
    sites: list[str] = field(default_factory=list)
    feeds: list[str] = field(default_factory=list)
    alert_ids: list[str] = field(default_factory=list)
    content_hashes: list[str] = field(default_factory=list)
    band_keys: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    detectors: list[str] = field(default_factory=list)
    first_distinct: int = 0
    largest_alert_distinct: int = 0
    largest_alert_records: int = 0
    fingerprint_sample: list[str] = field(default_factory=list)
    variants: list[list[str]] = field(default_factory=list)
    fingerprints_count: int = 0
    estimated_records: int = 0
    watchlists: list[str] = field(default_factory=list)
    watchlist_hits: dict[str, int] = field(default_factory=dict)
    keyword_watchlists: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    notified: dict[str, int] = field(default_factory=dict)
    revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the value stored in the incidents table."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IncidentState:
        """Rebuild from a table value; unknown keys (a newer writer) are ignored."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Correlation:
    """Outcome of :func:`correlate` for one alert."""

    incident: IncidentState
    is_new: bool
    escalated: bool
    matched_by: str  # "new", "content", "similarity" or "duplicate"
    similarity: float = 0.0
    previous_rank: int = 0


def incident_id_for(alert_id: str) -> str:
    """Id of the incident an alert opens: stable, so a replayed alert recreates the same one."""
    return hashlib.sha256(f"incident|{alert_id}".encode()).hexdigest()[:32]


def _best_match(features: AlertFeatures, candidates: Sequence[IncidentState],
                threshold: float) -> tuple[IncidentState | None, str, float]:
    by_content = [c for c in candidates if features.content_sha256
                  and features.content_sha256 in c.content_hashes]
    if by_content:
        return min(by_content, key=lambda c: (c.first_seen, c.incident_id)), "content", 1.0
    if not features.comparable:
        return None, "new", 0.0
    best: tuple[float, str, str] | None = None
    chosen: IncidentState | None = None
    for candidate in candidates:
        score = max((sample_jaccard(features.sample, v) for v in candidate.variants), default=0.0)
        if score < threshold:
            continue
        rank = (-score, candidate.first_seen, candidate.incident_id)
        if best is None or rank < best:
            best, chosen = rank, candidate
    if chosen is None or best is None:
        return None, "new", 0.0
    return chosen, "similarity", -best[0]


def _sighting(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "site": alert.get("site"),
        "feed": alert.get("feed"),
        "url": alert.get("url"),
        "seen_at": _seen_at(alert),
        "alert_id": alert.get("alert_id"),
    }


def _seen_at(alert: Mapping[str, Any]) -> str:
    # When the item was fetched is when it was seen; detection time only if that is missing.
    return str(alert.get("fetched_at") or alert.get("detected_at") or "")


def _append_capped(items: list[Any], value: Any, cap: int) -> None:
    if value in items:
        return
    items.append(value)
    del items[:-cap]


def _merge_samples(state: IncidentState, samples: Iterable[Any]) -> None:
    per_detector: dict[str, int] = {}
    for sample in state.samples:
        detector = str(sample.get("detector", ""))
        per_detector[detector] = per_detector.get(detector, 0) + 1
    for sample in samples:
        if len(state.samples) >= MAX_SAMPLES:
            return
        if not isinstance(sample, Mapping):
            continue
        detector = str(sample.get("detector", ""))
        clean = {"detector": detector, "masked": sample.get("masked"),
                 "confidence": sample.get("confidence")}
        if per_detector.get(detector, 0) >= MAX_SAMPLES_PER_DETECTOR or clean in state.samples:
            continue
        state.samples.append(clean)
        per_detector[detector] = per_detector.get(detector, 0) + 1


def _absorb(state: IncidentState, alert: Mapping[str, Any], features: AlertFeatures,
            watchlist_hits: Mapping[str, int]) -> None:
    """Fold one alert into the incident (everything but severity)."""
    seen_at = _seen_at(alert)
    if seen_at and (not state.first_seen or seen_at < state.first_seen):
        state.first_seen = seen_at
    if seen_at and seen_at > state.last_seen:
        state.last_seen = seen_at
    if state.title is None and alert.get("title"):
        state.title = str(alert["title"])
    state.sightings.append(_sighting(alert))
    state.sightings.sort(key=lambda s: (s.get("seen_at") or "", s.get("alert_id") or ""))
    del state.sightings[:-MAX_SIGHTINGS]
    state.sightings_total += 1
    site = alert.get("site")
    if isinstance(site, str) and site and site not in state.sites and \
            len(state.sites) < MAX_SITES:
        state.sites = sorted([*state.sites, site])
    feed = alert.get("feed")
    if isinstance(feed, str) and feed and feed not in state.feeds:
        state.feeds = sorted([*state.feeds, feed])
    _append_capped(state.alert_ids, str(alert.get("alert_id")), MAX_ALERT_IDS)
    if features.content_sha256:
        _append_capped(state.content_hashes, features.content_sha256, MAX_CONTENT_HASHES)
    for key in features.band_keys:
        _append_capped(state.band_keys, key, MAX_BAND_KEYS)
    # Reposts carry the same records: the per-detector maximum counts them once.
    for detector, count in (alert.get("counts") or {}).items():
        if isinstance(count, int):
            state.counts[detector] = max(state.counts.get(detector, 0), count)
    state.detectors = sorted(state.counts)
    distinct = max(int(alert.get("distinct_fingerprints") or 0), features.fingerprints_n)
    state.largest_alert_distinct = max(state.largest_alert_distinct, distinct)
    state.largest_alert_records = max(state.largest_alert_records,
                                      int(alert.get("estimated_records") or 0))
    if features.sample:
        state.fingerprint_sample = bottom_k([*state.fingerprint_sample, *features.sample])
        if features.comparable and all(sample_jaccard(features.sample, v) < SAME_VARIANT_JACCARD
                                       for v in state.variants):
            state.variants.append(list(features.sample))
            del state.variants[:-MAX_VARIANTS]
    # The union sample is only a sample when alerts were truncated: never report less than
    # the largest single alert saw.
    state.fingerprints_count = max(estimate_distinct(state.fingerprint_sample),
                                   state.largest_alert_distinct)
    if state.largest_alert_distinct and state.largest_alert_records:
        growth = state.fingerprints_count / state.largest_alert_distinct
        state.estimated_records = round(state.largest_alert_records * max(1.0, growth))
    else:
        state.estimated_records = state.largest_alert_records
    names = set(state.watchlists)
    names.update(str(n) for n in alert.get("watchlists") or ())
    # Keyword lists (rule ids); alerts before keyword_watchlists existed listed them in
    # "watchlists" without hit counts.
    named = alert.get("keyword_watchlists")
    if named is None:
        named = [n for n in alert.get("watchlists") or () if n not in watchlist_hits]
    keyword = set(state.keyword_watchlists) | {str(n) for n in named}
    state.keyword_watchlists = sorted(keyword)
    names.update(keyword)
    for name, hits in watchlist_hits.items():
        if hits > 0:
            names.add(name)
            state.watchlist_hits[name] = max(state.watchlist_hits.get(name, 0), int(hits))
    state.watchlists = sorted(names)
    _merge_samples(state, alert.get("samples") or ())
    state.base_rank = max(state.base_rank, _alert_rank(alert))
    state.revision += 1


def _alert_rank(alert: Mapping[str, Any]) -> int:
    rank = alert.get("severity_rank")
    if isinstance(rank, int) and rank in SEVERITY_BY_RANK:
        return rank
    return SEVERITY_RANK.get(str(alert.get("severity")), 1)


def incident_severity(state: IncidentState) -> tuple[int, list[str]]:
    """Severity rank of an incident and the reasons it was raised above its alerts'."""
    rank = state.base_rank
    reasons: list[str] = []
    sites = len(state.sites)
    if sites >= WIDE_SPREAD_SITES:
        rank = 4
        reasons.append(f"seen on {sites} sites (wide spread)")
    elif sites >= SPREAD_SITES:
        rank += 1
        reasons.append(f"seen on {sites} sites")
    if state.first_distinct and state.fingerprints_count >= GROWTH_FACTOR * state.first_distinct:
        rank += 1
        reasons.append(f"grew from {state.first_distinct} to ~{state.fingerprints_count} "
                       "distinct identifiers")
    if state.fingerprints_count >= HUGE_IDENTIFIERS:
        rank = 4
        reasons.append(f"~{state.fingerprints_count} distinct identifiers")
    elif state.fingerprints_count >= LARGE_IDENTIFIERS:
        rank = max(rank, 3)
        reasons.append(f"~{state.fingerprints_count} distinct identifiers")
    watched = sum(state.watchlist_hits.values())
    if watched >= WATCHLIST_BULK_HITS:
        rank = 4
    elif watched:
        rank = max(rank, 3)
    for name, hits in sorted(state.watchlist_hits.items()):
        reasons.append(f"{hits} identifier(s) on watch-list '{name}'")
    keyword_lists = state.keyword_watchlists
    if keyword_lists:
        rank = max(rank, 2)
        reasons.append("keyword watch-list(s) named: " + ", ".join(keyword_lists))
    return min(rank, 4), reasons


def _apply_severity(state: IncidentState) -> None:
    rank, reasons = incident_severity(state)
    state.severity_rank = rank
    state.severity = SEVERITY_BY_RANK[rank]
    state.reasons = reasons


def correlate(
    alert: Mapping[str, Any],
    candidates: Sequence[IncidentState],
    *,
    features: AlertFeatures | None = None,
    watchlist_hits: Mapping[str, int] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Correlation:
    """Attach ``alert`` to the best matching candidate incident, or open a new one.

    ``candidates`` are the incidents the caller found by content hash and band key; they are
    not modified (the result holds an updated copy). ``watchlist_hits`` maps watch-list names
    to how many of the alert's fingerprints are on each. An alert already in an incident (a
    redelivery) comes back as ``matched_by="duplicate"`` with nothing changed.
    """
    features = features or alert_features(alert)
    # Hits the scan worker already marked on the alert count too: the incidents worker may run
    # where the watch-list files are not.
    hits: dict[str, int] = {}
    marked = alert.get("watchlist_hits")
    for source in (marked if isinstance(marked, Mapping) else {}, watchlist_hits or {}):
        for name, count in source.items():
            if isinstance(count, int) and count > 0:
                hits[str(name)] = max(hits.get(str(name), 0), count)
    alert_id = str(alert.get("alert_id") or "")
    for candidate in candidates:
        if alert_id and alert_id in candidate.alert_ids:
            copy = IncidentState.from_dict(candidate.to_dict())
            return Correlation(copy, False, False, "duplicate", 1.0, candidate.severity_rank)
    matched, how, score = _best_match(features, candidates, threshold)
    if matched is None:
        seen_at = _seen_at(alert)
        state = IncidentState(incident_id=incident_id_for(alert_id), first_seen=seen_at,
                              last_seen=seen_at)
        state.first_distinct = max(int(alert.get("distinct_fingerprints") or 0),
                                   features.fingerprints_n)
        _absorb(state, alert, features, hits)
        _apply_severity(state)
        return Correlation(state, True, False, "new", 0.0, 0)
    state = IncidentState.from_dict(matched.to_dict())
    previous = state.severity_rank
    _absorb(state, alert, features, hits)
    _apply_severity(state)
    return Correlation(state, False, state.severity_rank > previous, how, score, previous)


def incident_document(state: IncidentState, *, updated_at: str | None = None) -> dict[str, Any]:
    """The Elasticsearch document of an incident (``_id`` = incident_id, written whole).

    Fields outside the index mapping (sites, samples, reasons, watch-list hits) stay in
    ``_source`` for Kibana's document view; routing state and samples of fingerprints do not
    leave the agent.
    """
    doc: dict[str, Any] = {
        "incident_id": state.incident_id,
        "first_seen": state.first_seen or None,
        "last_seen": state.last_seen or None,
        "severity": state.severity,
        "severity_rank": state.severity_rank,
        "sightings": [dict(s) for s in state.sightings],
        "sightings_total": state.sightings_total,
        "sites": list(state.sites),
        "feeds": list(state.feeds),
        "alert_ids": list(state.alert_ids),
        "counts": dict(state.counts),
        "detectors": list(state.detectors),
        "estimated_records": state.estimated_records,
        "fingerprints_count": state.fingerprints_count,
        "watchlists": list(state.watchlists),
        "watchlist_hits": dict(state.watchlist_hits),
        "keyword_watchlists": list(state.keyword_watchlists),
        "title": state.title,
        "reasons": list(state.reasons),
        "samples": [dict(s) for s in state.samples],
        "revision": state.revision,
    }
    if updated_at is not None:
        doc["updated_at"] = updated_at
    return doc
