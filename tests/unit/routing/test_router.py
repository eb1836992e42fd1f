from __future__ import annotations

import asyncio

import pytest
import yaml

from streams.incidents.metrics import IncidentMetrics
from streams.routing.config import RateLimit, parse_routes
from streams.routing.router import Router, TokenBucket
from streams.routing.senders import DeliveryError

ROUTES = yaml.safe_load("""
defaults: {retry: {attempts: 3, base_delay_s: 1, max_delay_s: 5}}
routes:
  - {name: soc, match: {min_severity: high}, target: {type: webhook, url: 'http://127.0.0.1:9'}}
  - name: owner
    match: {watchlists: [customers]}
    target: {type: webhook, url: 'http://127.0.0.1:9'}
    rate_limit: {per_minute: 1, burst: 1}
""")


class FakeSender:
    def __init__(self, failures=()):
        self.failures = list(failures)
        self.sent = []

    async def __call__(self, route, summary):
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((route.name, summary))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_router(sender, clock=None):
    sleeps = []

    async def sleep(delay):
        sleeps.append(delay)

    metrics = IncidentMetrics.create()
    router = Router(parse_routes(ROUTES, "r"), metrics, sender=sender, sleep=sleep,
                    clock=clock or Clock(), jitter=lambda: 1.0)
    return router, metrics, sleeps


def count(metrics, route, outcome):
    return metrics.registry.get_sample_value("roriwatch_notifications_total",
                                             {"route": route, "outcome": outcome})


def run(coro):
    return asyncio.run(coro)


def test_notifies_once_then_only_on_escalation(make_incident):
    sender = FakeSender()
    router, metrics, _ = make_router(sender)
    notified: dict[str, int] = {}
    state = make_incident()
    first = run(router.notify(state, notified))
    assert [(d.route, d.event, d.outcome) for d in first] == [("soc", "new", "sent")]
    assert notified == {"soc": 3}
    again = run(router.notify(state, notified))
    assert [(d.route, d.outcome) for d in again] == [("soc", "deduplicated")]
    escalated = run(router.notify(make_incident(severity="critical", severity_rank=4), notified))
    assert [(d.event, d.outcome) for d in escalated] == [("escalated", "sent")]
    assert sender.sent[-1][1]["previous_severity"] == "high"
    assert notified == {"soc": 4}
    assert count(metrics, "soc", "sent") == 2 and count(metrics, "soc", "deduplicated") == 1


def test_a_route_that_starts_matching_later_gets_a_first_notification(make_incident):
    sender = FakeSender()
    router, _, _ = make_router(sender)
    notified = {"soc": 3}
    decisions = run(router.notify(make_incident(watchlists=["customers"],
                                                watchlist_hits={"customers": 4}), notified))
    assert {(d.route, d.event, d.outcome) for d in decisions} == {
        ("soc", None, "deduplicated"), ("owner", "new", "sent")}


def test_rate_limit_defers_without_recording(make_incident):
    sender, clock = FakeSender(), Clock()
    router, metrics, _ = make_router(sender, clock)
    low = {"severity": "low", "severity_rank": 1, "watchlists": ["customers"]}
    a, b = {}, {}
    run(router.notify(make_incident(incident_id="a", **low), a))
    limited = run(router.notify(make_incident(incident_id="b", **low), b))
    assert [d.outcome for d in limited] == ["rate_limited"] and b == {}
    clock.now += 61
    run(router.notify(make_incident(incident_id="b", **low), b))
    assert b == {"owner": 1}
    assert count(metrics, "owner", "rate_limited") == 1 and count(metrics, "owner", "sent") == 2


def test_retries_with_backoff_and_retry_after(make_incident):
    sender = FakeSender([DeliveryError("HTTP 503", retryable=True),
                         DeliveryError("HTTP 429", retryable=True, retry_after_s=4.0)])
    router, metrics, sleeps = make_router(sender)
    notified: dict[str, int] = {}
    decisions = run(router.notify(make_incident(), notified))
    assert decisions[0].outcome == "sent" and sleeps == [1.0, 4.0]
    assert count(metrics, "soc", "retried") == 2


def test_gives_up_after_attempts_and_on_permanent_errors(make_incident):
    sender = FakeSender([DeliveryError("HTTP 502", retryable=True)] * 3)
    router, metrics, sleeps = make_router(sender)
    notified: dict[str, int] = {}
    assert run(router.notify(make_incident(), notified))[0].outcome == "failed"
    assert sleeps == [1.0, 2.0] and notified == {}
    sender.failures = [DeliveryError("HTTP 404", retryable=False)]
    assert run(router.notify(make_incident(), notified))[0].outcome == "failed"
    assert sleeps == [1.0, 2.0]  # no retry for a 404
    assert count(metrics, "soc", "failed") == 2


def test_a_crashing_sender_is_a_failure_not_a_crash(make_incident):
    sender = FakeSender([ZeroDivisionError()])
    router, _metrics, _ = make_router(sender)
    assert run(router.notify(make_incident(), {}))[0].outcome == "failed"


def test_token_bucket():
    clock = Clock()
    bucket = TokenBucket(RateLimit(per_minute=60, burst=2), clock)
    assert bucket.take() and bucket.take() and not bucket.take()
    clock.now += 1.0
    assert bucket.take() and not bucket.take()


@pytest.mark.parametrize("route", ["soc", "owner"])
def test_routes_are_preset_in_metrics(route):
    _, metrics, _ = make_router(FakeSender())
    assert count(metrics, route, "failed") == 0.0
