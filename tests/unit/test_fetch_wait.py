"""The empty-fetch wait: applied only after an early, empty answer, and fully removable."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.consumer.fetcher import Fetcher

from streams import fetch_wait
from streams.faust_config import connection_options
from streams.settings import Settings


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    fetch_wait.install(0)


class _FakeFetcher:
    _fetch_max_wait_ms = 500


def _run(monkeypatch: pytest.MonkeyPatch, got_records: bool, max_wait_ms: int = 500
         ) -> list[float]:
    """Call the patched method once with aiokafka's own answer faked; return the sleeps."""
    async def original(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        return got_records

    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(fetch_wait, "_ORIGINAL", original)
    monkeypatch.setattr(fetch_wait.asyncio, "sleep", sleep)
    fetcher = _FakeFetcher()
    fetcher._fetch_max_wait_ms = max_wait_ms
    result = asyncio.run(fetch_wait._proc_fetch_request(fetcher, None, 0, None))
    assert result is got_records  # aiokafka's answer is passed through unchanged
    return sleeps


def test_early_empty_answer_waits_out_the_rest(monkeypatch):
    fetch_wait.install(0.05)
    sleeps = _run(monkeypatch, got_records=False)
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.05


def test_answer_with_records_never_waits(monkeypatch):
    fetch_wait.install(0.05)
    assert _run(monkeypatch, got_records=True) == []


def test_wait_never_exceeds_the_consumers_own_fetch_wait(monkeypatch):
    fetch_wait.install(0.4)
    sleeps = _run(monkeypatch, got_records=False, max_wait_ms=20)
    assert len(sleeps) == 1 and sleeps[0] <= 0.02


def test_cancelled_wait_ends_quietly(monkeypatch):
    # aiokafka's Fetcher.close() cancels each pending fetch task and then awaits it: a
    # CancelledError escaping the wait crashed the consumer thread and the worker never
    # exited on SIGTERM.
    async def original(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
        return False

    monkeypatch.setattr(fetch_wait, "_ORIGINAL", original)
    fetch_wait.install(0.4)

    async def close_while_waiting() -> bool:
        task = asyncio.ensure_future(
            fetch_wait._proc_fetch_request(_FakeFetcher(), None, 0, None))
        await asyncio.sleep(0.01)  # the task is now inside its wait
        assert not task.done()
        task.cancel()
        return await task  # what Fetcher.close() does

    assert asyncio.run(close_while_waiting()) is False


def test_zero_restores_aiokafka():
    original = Fetcher._proc_fetch_request
    fetch_wait.install(0.05)
    assert Fetcher._proc_fetch_request is not original
    assert fetch_wait.installed_wait_s() == 0.05
    fetch_wait.install(0)
    assert Fetcher._proc_fetch_request is original
    assert fetch_wait.installed_wait_s() == 0.0


def test_negative_wait_is_refused():
    with pytest.raises(ValueError):
        fetch_wait.install(-1)


def test_faust_apps_apply_the_configured_wait():
    connection_options(Settings(kafka_empty_fetch_wait_ms=30))
    assert fetch_wait.installed_wait_s() == pytest.approx(0.03)
    connection_options(Settings(kafka_empty_fetch_wait_ms=0))
    assert fetch_wait.installed_wait_s() == 0.0
