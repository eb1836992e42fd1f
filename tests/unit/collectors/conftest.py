"""Fixtures for collector unit tests: a local HTTP server over samples/ and a runner harness."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.collectors.checkpoint import CheckpointStore
from streams.collectors.config import CollectorConfig, parse_config
from streams.collectors.metrics import collector_metrics
from streams.collectors.runner import SourceRunner
from streams.collectors.sinks import ListSink
from streams.collectors.sources import build_source
from streams.collectors.testing import FixtureServer, encode_windows_1258

FIXTURES = Path(__file__).resolve().parents[3] / "samples" / "collectors" / "fixtures"

# Fast but still real: tiny backoff, no rate limit worth waiting for, short timeouts.
FAST_HTTP = {
    "rate_limit_per_second": 1000,
    "backoff_initial_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "timeout_seconds": 2,
    "max_retries": 2,
}


@pytest.fixture(name="cp1258")
def cp1258_fixture() -> Any:
    return encode_windows_1258


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    fixture = FixtureServer(FIXTURES).start()
    yield fixture
    fixture.stop()


def make_config(tmp_path: Path, sources: list[dict[str, Any]], **top: Any) -> CollectorConfig:
    data: dict[str, Any] = {"state_dir": str(tmp_path / "state"), "http": dict(FAST_HTTP)}
    data.update(top)
    data["sources"] = sources
    return parse_config(data, origin="test", config_dir=tmp_path)


class Harness:
    """One source driven by a SourceRunner into a ListSink; ``restart`` mimics a new process."""

    def __init__(self, config: CollectorConfig, sink: ListSink | None = None) -> None:
        self.config = config
        self.sink = sink or ListSink()
        self.registry = CollectorRegistry()
        self.metrics = collector_metrics(self.registry)
        self.stop_event = threading.Event()
        self.runner: SourceRunner | None = None
        self.store: CheckpointStore | None = None
        self.start()

    def start(self) -> None:
        self.store = CheckpointStore(self.config.state_dir)
        source = build_source(self.config.sources[0], stop_event=self.stop_event)
        self.runner = SourceRunner(
            source, self.sink, self.store, self.metrics, stop_event=self.stop_event
        )

    def restart(self) -> None:
        self.close()
        self.start()

    def cycle(self) -> bool:
        assert self.runner is not None
        self.runner.source.start()
        return self.runner.run_cycle()

    @property
    def source(self) -> Any:
        assert self.runner is not None
        return self.runner.source

    @property
    def envelopes(self) -> list[Any]:
        return self.sink.envelopes

    def ids(self) -> list[str]:
        return [e.item_id for e in self.sink.envelopes]

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self.store is not None:
            self.store.release()


@pytest.fixture(name="make_config")
def make_config_fixture(tmp_path: Path) -> Any:
    def build(sources: list[dict[str, Any]], **top: Any) -> CollectorConfig:
        return make_config(tmp_path, sources, **top)

    return build


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Any]:
    made: list[Harness] = []

    def build(sources: list[dict[str, Any]], **top: Any) -> Harness:
        instance = Harness(make_config(tmp_path, sources, **top))
        made.append(instance)
        return instance

    yield build
    for instance in made:
        instance.close()
