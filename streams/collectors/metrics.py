"""Prometheus metrics of the collectors, labelled by configured source name only.

Labels are never URLs, item ids or content: the source name is a validated slug and the error
kind comes from the closed set :data:`ERROR_KINDS`, so label cardinality stays bounded.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

ERROR_KINDS: tuple[str, ...] = (
    "timeout",  # the server did not answer in time
    "connection",  # DNS, refused, reset, TLS
    "http_status",  # a 4xx/5xx that is not a rate limit
    "rate_limited",  # 429/503 still refused after the allowed retries
    "parse",  # listing, feed, page or export not understood
    "gone",  # a listed item disappeared before it could be fetched (404/410)
    "io",  # local file or socket trouble
    "sink",  # Kafka did not acknowledge
    "checkpoint",  # state could not be written
    "queue_full",  # syslog messages arriving faster than they can be produced
    "internal",  # a bug: the traceback is logged
)


@dataclass(frozen=True)
class CollectorMetrics:
    """The four metrics the issue specifies plus a duplicate counter, in one registry."""

    items: Counter
    bytes: Counter
    errors: Counter
    last_success: Gauge
    duplicates: Counter

    def error(self, source: str, kind: str) -> None:
        """Count an error, folding unknown kinds into ``internal`` to keep labels bounded."""
        self.errors.labels(source=source, kind=kind if kind in ERROR_KINDS else "internal").inc()


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, CollectorMetrics] = (
    weakref.WeakKeyDictionary()
)


def collector_metrics(registry: CollectorRegistry | None = None) -> CollectorMetrics:
    """Return the metrics bound to ``registry`` (the default one when None), creating them once.

    Registering twice in one registry is an error in prometheus-client, and tests want fresh
    registries, hence the cache keyed by registry.
    """
    registry = REGISTRY if registry is None else registry
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = CollectorMetrics(
                items=Counter(
                    "roriwatch_collector_items",
                    "Items delivered to the feed topics, after duplicates were dropped.",
                    ["source"],
                    registry=registry,
                ),
                bytes=Counter(
                    "roriwatch_collector_bytes",
                    "Content bytes (UTF-8, after truncation) of the items delivered.",
                    ["source"],
                    registry=registry,
                ),
                errors=Counter(
                    "roriwatch_collector_errors",
                    "Collection errors by kind (timeout, connection, http_status, rate_limited, "
                    "parse, gone, io, sink, checkpoint, queue_full, internal).",
                    ["source", "kind"],
                    registry=registry,
                ),
                last_success=Gauge(
                    "roriwatch_collector_last_success_timestamp_seconds",
                    "Unix time of the source's last poll cycle that completed without error.",
                    ["source"],
                    registry=registry,
                ),
                duplicates=Counter(
                    "roriwatch_collector_duplicates",
                    "Items dropped before producing because their id or content was seen.",
                    ["source"],
                    registry=registry,
                ),
            )
            _by_registry[registry] = metrics
        return metrics
