"""Prometheus metrics of correlation, watch-lists and routing.

Labels come from closed sets only: severities, route names and watch-list names (both set by
configuration, so bounded by it), the outcome enum below and the error stages. No incident id,
site or identifier is ever a label. Bound to the registry passed in, so the scan pipeline can
hand over its own and one /metrics endpoint serves both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
# What happened to one notification of one incident on one route.
OUTCOMES: tuple[str, ...] = (
    "sent",  # the receiver accepted it
    "failed",  # every attempt failed, or the receiver refused it for good (4xx)
    "retried",  # one failed attempt that was retried (counted per retry)
    "rate_limited",  # the route's token bucket was empty; tried again on the next sighting
    "deduplicated",  # already notified at this severity or higher on this route
)
ERROR_STAGES: tuple[str, ...] = ("decode", "correlate", "index", "route", "forward")


@dataclass(frozen=True)
class IncidentMetrics:
    """Counters of the incidents agent and the router."""

    registry: CollectorRegistry
    notifications: Counter
    incidents: Counter
    escalations: Counter
    watchlist_hits: Counter
    errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None, *, routes: Iterable[str] = (),
               watchlists: Iterable[str] = ()) -> IncidentMetrics:
        """Register the counters, with every known label combination pre-set to zero.

        Pre-set series make ``rate()`` and ``increase()`` see the first failure of a route.
        """
        registry = registry if registry is not None else CollectorRegistry()
        metrics = cls(
            registry=registry,
            notifications=Counter("roriwatch_notifications",
                                  "Incident notifications per route and outcome.",
                                  ["route", "outcome"], registry=registry),
            incidents=Counter("roriwatch_incidents", "New incidents, per severity at opening.",
                              ["severity"], registry=registry),
            escalations=Counter("roriwatch_incident_escalations",
                                "Incidents whose severity went up, per new severity.",
                                ["severity"], registry=registry),
            watchlist_hits=Counter("roriwatch_watchlist_hits",
                                   "Watched identifiers found in alerts, per watch-list.",
                                   ["watchlist"], registry=registry),
            errors=Counter("roriwatch_incident_errors",
                           "Alerts the incidents agent could not process, per stage.",
                           ["stage"], registry=registry),
        )
        for severity in SEVERITIES:
            metrics.incidents.labels(severity=severity)
            metrics.escalations.labels(severity=severity)
        for stage in ERROR_STAGES:
            metrics.errors.labels(stage=stage)
        metrics.declare_routes(routes)
        metrics.declare_watchlists(watchlists)
        return metrics

    def declare_routes(self, routes: Iterable[str]) -> None:
        """Pre-set the series of configured routes."""
        for route in routes:
            for outcome in OUTCOMES:
                self.notifications.labels(route=route, outcome=outcome)

    def declare_watchlists(self, names: Iterable[str]) -> None:
        """Pre-set the series of loaded watch-lists."""
        for name in names:
            self.watchlist_hits.labels(watchlist=name)

    def count_notification(self, route: str, outcome: str) -> None:
        """Count one notification outcome; an unknown outcome is a bug, counted as failed."""
        self.notifications.labels(route=route,
                                  outcome=outcome if outcome in OUTCOMES else "failed").inc()

    def count_error(self, stage: str) -> None:
        """Count an alert that failed at ``stage``."""
        self.errors.labels(stage=stage if stage in ERROR_STAGES else "correlate").inc()
