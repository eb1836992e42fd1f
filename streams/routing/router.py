"""Routing: which routes take an incident, whether they have already been told, and delivery.

De-duplication lives in the incident itself (``notified``: route → severity rank last sent),
which the incidents agent keeps in its changelog-backed table: an incident is announced once
per route, and again only when its severity rises above what that route last heard, even
across worker restarts. A route whose criteria start matching later (a watch-list hit joins)
hears about the incident then, as a first notification.

Rate limits are per route token buckets in memory (a restart refills them, which is harmless).
A notification that meets an empty bucket is not recorded as sent, so the next sighting or
escalation of that incident tries again. Delivery retries with exponential backoff and jitter
up to the route's attempt limit, honouring Retry-After; every outcome is counted in
``roriwatch_notifications_total{route,outcome}``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.summary import SEVERITY_RANK
from streams.incidents.metrics import IncidentMetrics
from streams.routing.config import RateLimit, Route, RoutesConfig
from streams.routing.messages import incident_summary
from streams.routing.senders import DeliveryError, Sender, deliver

log = logging.getLogger(__name__)
SEVERITY_BY_RANK = {rank: name for name, rank in SEVERITY_RANK.items()}


class TokenBucket:
    """``burst`` tokens, refilled continuously at ``per_minute``; the clock is injectable."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(limit.burst)
        self.rate_per_s = limit.per_minute / 60.0
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class Decision:
    """What routing decided for one route."""

    route: str
    event: str | None  # "new", "escalated", or None when nothing is to be sent
    outcome: str = "deduplicated"
    detail: str = ""


@dataclass
class Router:
    """Matches incidents to routes and delivers, with dedup, rate limits and retries."""

    config: RoutesConfig
    metrics: IncidentMetrics | None = None
    sender: Sender = deliver
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.5, 1.0))  # noqa: S311
    _buckets: dict[str, TokenBucket] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for route in self.config.routes:
            self._buckets[route.name] = TokenBucket(route.rate_limit, self.clock)
        if self.metrics is not None:
            self.metrics.declare_routes(self.config.names)

    def matching(self, incident: Mapping[str, Any]) -> list[Route]:
        """Routes whose criteria the incident meets."""
        return [route for route in self.config.routes if route.criteria.matches(incident)]

    def plan(self, incident: Mapping[str, Any], notified: Mapping[str, int]
             ) -> list[tuple[Route, str | None]]:
        """For each matching route: ``new``, ``escalated`` or None (already told at this level)."""
        rank = int(incident.get("severity_rank") or 0)
        plan: list[tuple[Route, str | None]] = []
        for route in self.matching(incident):
            last = notified.get(route.name)
            if last is None:
                plan.append((route, "new"))
            elif rank > last:
                plan.append((route, "escalated"))
            else:
                plan.append((route, None))
        return plan

    async def notify(self, incident: Mapping[str, Any], notified: dict[str, int]
                     ) -> list[Decision]:
        """Notify every route that should hear about ``incident``; updates ``notified``.

        ``incident`` is the incident state as a mapping; ``notified`` is its route → rank map,
        updated in place for each successful delivery so the caller can store it.
        """
        rank = int(incident.get("severity_rank") or 0)
        decisions: list[Decision] = []
        jobs = []
        for route, event in self.plan(incident, notified):
            if event is None:
                decisions.append(Decision(route.name, None))
                self._count(route.name, "deduplicated")
                continue
            if not self._buckets[route.name].take():
                decisions.append(Decision(route.name, event, "rate_limited"))
                self._count(route.name, "rate_limited")
                log.warning("route %s rate-limited: incident %s not notified now (next sighting "
                            "retries)", route.name, incident.get("incident_id"))
                continue
            previous = SEVERITY_BY_RANK.get(notified.get(route.name, 0))
            summary = incident_summary(incident, event=event, previous_severity=previous)
            decision = Decision(route.name, event)
            decisions.append(decision)
            jobs.append(self._deliver(route, summary, decision))
        if jobs:
            await asyncio.gather(*jobs)
        for decision in decisions:
            if decision.outcome == "sent":
                notified[decision.route] = max(rank, notified.get(decision.route, 0))
        return decisions

    async def _deliver(self, route: Route, summary: Mapping[str, Any],
                       decision: Decision) -> None:
        policy = route.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                await self.sender(route, summary)
            except asyncio.CancelledError:
                raise
            except DeliveryError as exc:
                final = not exc.retryable or attempt == policy.attempts
                if final:
                    decision.outcome, decision.detail = "failed", exc.reason
                    self._count(route.name, "failed")
                    log.error("route %s: notification of incident %s failed after %d "
                              "attempt(s): %s", route.name, summary.get("incident_id"),
                              attempt, exc.reason)
                    return
                delay = policy.delay_s(attempt) * self.jitter()
                if exc.retry_after_s is not None:
                    delay = max(delay, min(exc.retry_after_s, policy.max_delay_s))
                self._count(route.name, "retried")
                log.warning("route %s: %s; retry %d in %.1fs", route.name, exc.reason,
                            attempt, delay)
                await self.sleep(delay)
            except Exception as exc:  # a bug in a renderer or sender must not stop the agent
                decision.outcome, decision.detail = "failed", type(exc).__name__
                self._count(route.name, "failed")
                log.error("route %s: notification raised %s", route.name, type(exc).__name__)
                return
            else:
                decision.outcome = "sent"
                self._count(route.name, "sent")
                return

    def _count(self, route: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count_notification(route, outcome)
