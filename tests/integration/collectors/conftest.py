"""Fixtures for collector tests against the shared Kafka: fixture HTTP server and topic reader."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.collectors.testing import FixtureServer

FIXTURES = Path(__file__).resolve().parents[3] / "samples" / "collectors" / "fixtures"


@pytest.fixture
def fixture_http() -> Iterator[FixtureServer]:
    server = FixtureServer(FIXTURES).start()
    yield server
    server.stop()


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> Any:
    """Read a topic from the beginning until ``expected`` records arrived or ``timeout`` passed.

    With ``settle`` it keeps reading a little longer, so a test can assert nothing *extra*
    arrived (no duplicates after a restart).
    """
    from kafka import KafkaConsumer

    def read(topic: str, expected: int, *, timeout: float = 10.0, settle: float = 0.0) -> list[Any]:
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=200,
        )
        records: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and len(records) < expected:
                batches = consumer.poll(timeout_ms=200)
                for batch in batches.values():
                    records.extend(batch)
            settle_until = time.monotonic() + settle
            while time.monotonic() < settle_until:
                for batch in consumer.poll(timeout_ms=100).values():
                    records.extend(batch)
        finally:
            consumer.close()
        return records

    return read
