"""Prometheus metrics of the stream workers: the names Grafana dashboards and alert rules use.

Every label comes from a closed set (feed kinds, severities, the reason enums below, rule ids
loaded at start, configured topic names, partition numbers), so cardinality is bounded by
configuration and never by data: no URL, site, item id, key or identifier is ever a label.
Unknown values are folded into ``other`` instead of creating a new series.

Each worker owns a registry (not the global default) so tests and benchmarks can run several
pipelines in one process without "duplicated timeseries" errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

FEED_KINDS: tuple[str, ...] = ("paste", "forum", "log")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

# Why a message went to the dead-letter topic. Fixed on purpose: alert rules and runbooks key on
# these values, and the free-text explanation lives in the dead-letter record's ``detail``.
DEADLETTER_REASONS: tuple[str, ...] = (
    "empty",  # no value (a tombstone or an empty message)
    "invalid_json",  # paste/forum message that is not JSON
    "invalid_envelope",  # JSON, but not a valid feed envelope
    "not_utf8",  # envelope not UTF-8, or text that is mostly not UTF-8
    "binary",  # payload is binary data, not text
    "oversized",  # larger than RORIWATCH_MAX_CONTENT_BYTES
    "scan_error",  # the detection core raised on this document
    "invalid_alert",  # a record on the alerts topic that is not an alert
    "index_rejected",  # Elasticsearch refused the alert for good (mapping, size)
    "processing_error",  # any other per-message failure (a bug: the log has the traceback)
)

# Why a bulk request (or one document in it) failed; ``other`` catches the rest.
ES_FAILURE_REASONS: tuple[str, ...] = (
    "connection_error",
    "timeout",
    "http_429",
    "http_5xx",
    "item_transient",  # a document answered 429/503/... inside a successful bulk request
    "mapping_error",  # document_parsing_exception, mapper_parsing_exception, illegal_argument
    "too_large",
    "serialization_error",
    "missing_alert_id",
    "retries_exhausted",
    "unavailable",  # cluster refused the whole request for a non-document reason (auth, alias)
    "other",
)

_MAPPING_ERRORS = frozenset({
    "document_parsing_exception", "mapper_parsing_exception", "illegal_argument_exception",
    "strict_dynamic_mapping_exception", "version_conflict_engine_exception",
})

SCAN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
               3600.0, 21600.0, 86400.0)
BULK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def es_failure_reason(raw: str) -> str:
    """Map what the ES sink reports (error types, ``http_503``, ``item_429``) onto the enum."""
    if raw in ES_FAILURE_REASONS:
        return raw
    if raw in _MAPPING_ERRORS:
        return "mapping_error"
    if raw == "request_entity_too_large":
        return "too_large"
    if raw == "http_429":
        return "http_429"
    if raw.startswith("http_5"):
        return "http_5xx"
    if raw.startswith("item_"):
        return "item_transient"
    return "other"


@dataclass(frozen=True)
class PipelineMetrics:
    """All pipeline metrics, bound to one registry."""

    registry: CollectorRegistry
    documents: Counter
    bytes: Counter
    findings: Counter
    alerts: Counter
    scan_duration: Histogram
    end_to_end_lag: Histogram
    es_bulk_duration: Histogram
    es_bulk_failures: Counter
    es_retries: Counter
    deadletter: Counter
    consumer_lag: Gauge
    worker_up: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None,
               detectors: Iterable[str] = ()) -> PipelineMetrics:
        """Register every metric, with known label values pre-set to zero.

        Pre-setting matters for alerting: ``rate()`` over a series that appears only on the
        first failure misses that first failure.
        """
        registry = registry if registry is not None else CollectorRegistry()
        metrics = cls(
            registry=registry,
            documents=Counter("roriwatch_documents", "Feed messages consumed, per feed kind.",
                              ["feed"], registry=registry),
            bytes=Counter("roriwatch_bytes", "Bytes of feed messages consumed, per feed kind.",
                          ["feed"], registry=registry),
            findings=Counter("roriwatch_findings", "Identifiers found, per detector.",
                             ["detector"], registry=registry),
            alerts=Counter("roriwatch_alerts", "Alerts emitted, per severity.", ["severity"],
                           registry=registry),
            scan_duration=Histogram("roriwatch_scan_duration_seconds",
                                    "Time to decode and scan one document.", ["feed"],
                                    buckets=SCAN_BUCKETS, registry=registry),
            end_to_end_lag=Histogram("roriwatch_end_to_end_lag_seconds",
                                     "From the envelope's fetched_at to the alert indexed.",
                                     buckets=LAG_BUCKETS, registry=registry),
            es_bulk_duration=Histogram("roriwatch_es_bulk_duration_seconds",
                                       "Duration of successful Elasticsearch bulk requests.",
                                       buckets=BULK_BUCKETS, registry=registry),
            es_bulk_failures=Counter("roriwatch_es_bulk_failures",
                                     "Failed bulk requests and rejected documents, per reason.",
                                     ["reason"], registry=registry),
            es_retries=Counter("roriwatch_es_retries", "Bulk requests retried after a failure.",
                               registry=registry),
            deadletter=Counter("roriwatch_deadletter",
                               "Messages sent to the dead-letter topic, per reason.", ["reason"],
                               registry=registry),
            consumer_lag=Gauge("roriwatch_consumer_lag",
                               "Messages not yet committed by this worker, per partition.",
                               ["topic", "partition"], registry=registry),
            worker_up=Gauge("roriwatch_worker_up", "1 while the worker runs.", registry=registry),
        )
        for feed in FEED_KINDS:
            metrics.documents.labels(feed=feed)
            metrics.bytes.labels(feed=feed)
            metrics.scan_duration.labels(feed=feed)
        for severity in SEVERITIES:
            metrics.alerts.labels(severity=severity)
        for reason in DEADLETTER_REASONS:
            metrics.deadletter.labels(reason=reason)
        for reason in ES_FAILURE_REASONS:
            metrics.es_bulk_failures.labels(reason=reason)
        for detector in detectors:
            metrics.findings.labels(detector=detector)
        return metrics

    def count_deadletter(self, reason: str) -> None:
        """Count a dead-lettered message; an unknown reason is a bug, counted as processing."""
        self.deadletter.labels(
            reason=reason if reason in DEADLETTER_REASONS else "processing_error").inc()

    def count_es_failure(self, raw_reason: str) -> None:
        """Count a failed bulk request or a rejected document (hook for the ES sink)."""
        self.es_bulk_failures.labels(reason=es_failure_reason(raw_reason)).inc()

    def count_es_retry(self, raw_reason: str) -> None:
        """Count a retry; the failure that caused it is counted too, so dashboards see why."""
        self.es_retries.inc()
        self.count_es_failure(raw_reason)

    def observe_bulk(self, duration_s: float, n_docs: int) -> None:
        """Record a successful bulk request (hook for the ES sink)."""
        del n_docs  # the histogram is per request; documents are counted by alerts_total
        self.es_bulk_duration.observe(duration_s)


def start_metrics_server(metrics: PipelineMetrics, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104
    """Serve /metrics from a daemon thread, so a busy event loop never delays a scrape.

    The ``*_created`` series are switched off: they double the series count and no dashboard
    or rule of ours uses them.
    """
    disable_created_metrics()
    start_http_server(port, addr=addr, registry=metrics.registry)
