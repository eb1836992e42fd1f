"""Runs sources: poll, drop duplicates, deliver, then commit the checkpoint.

The order inside a cycle is the whole delivery guarantee: envelopes are delivered (and
acknowledged) before the checkpoint that covers them is written, so a crash can repeat the last
batch but never lose one. Each source runs in its own thread so a slow or rate-limited site
does not hold the others back.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from prometheus_client import CollectorRegistry, start_http_server

from streams.collectors.checkpoint import Checkpoint, CheckpointError, CheckpointStore, content_hash
from streams.collectors.config import COLLECTOR_KINDS, CollectorConfig, SourceConfig, load_config
from streams.collectors.feeds import FeedParseError
from streams.collectors.fetch import FetchError, Stopped
from streams.collectors.metrics import CollectorMetrics, collector_metrics
from streams.collectors.sinks import EnvelopeSink, JsonLinesSink, KafkaSink, SinkError
from streams.collectors.sources import PollContext, Source, build_source
from streams.envelope import FeedEnvelope

log = logging.getLogger(__name__)

ERROR_BACKOFF_INITIAL_SECONDS = 5.0
ERROR_BACKOFF_MAX_SECONDS = 600.0


class CollectorError(RuntimeError):
    """The collector cannot run as configured; the message says what to change."""


@dataclass
class SourceStats:
    """What one source did during this run."""

    cycles: int = 0
    failed_cycles: int = 0
    delivered: int = 0
    duplicates: int = 0
    errors: int = 0


@dataclass
class CollectorReport:
    """Per-source statistics of a run, returned by :func:`run_collector`."""

    sources: dict[str, SourceStats] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every cycle of every source completed."""
        return all(stats.failed_cycles == 0 for stats in self.sources.values())

    @property
    def delivered(self) -> int:
        """Total envelopes delivered."""
        return sum(stats.delivered for stats in self.sources.values())


class SourceRunner:
    """Drives one source against a sink and a checkpoint store."""

    def __init__(
        self,
        source: Source,
        sink: EnvelopeSink,
        store: CheckpointStore,
        metrics: CollectorMetrics,
        *,
        stop_event: threading.Event,
    ) -> None:
        self.source = source
        self.config: SourceConfig = source.config
        self.sink = sink
        self.store = store
        self.metrics = metrics
        self.stop_event = stop_event
        self.stats = SourceStats()
        store.lock(self.config.name)
        self.checkpoint: Checkpoint = store.load(self.config.name, self.config.dedupe.window)

    def _error(self, kind: str) -> None:
        self.stats.errors += 1
        self.metrics.error(self.config.name, kind)

    def _is_seen(self, item_id: str) -> bool:
        return self.config.dedupe.by_item_id and item_id in self.checkpoint.recent_ids

    def _fresh(self, envelopes: list[FeedEnvelope]) -> tuple[list[FeedEnvelope], list[str]]:
        dedupe = self.config.dedupe
        fresh: list[FeedEnvelope] = []
        hashes: list[str] = []
        batch_ids: set[str] = set()
        batch_hashes: set[str] = set()
        for envelope in envelopes:
            digest = content_hash(envelope.content_sha256())
            # Empty bodies (a photo without caption) all hash alike but are different items.
            hashable = dedupe.by_content and bool(envelope.content.strip())
            duplicate = (
                dedupe.by_item_id
                and (
                    envelope.item_id in self.checkpoint.recent_ids or envelope.item_id in batch_ids
                )
            ) or (hashable and (digest in self.checkpoint.recent_hashes or digest in batch_hashes))
            if duplicate:
                self.stats.duplicates += 1
                self.metrics.duplicates.labels(source=self.config.name).inc()
                continue
            batch_ids.add(envelope.item_id)
            if hashable:
                batch_hashes.add(digest)
                hashes.append(digest)
            fresh.append(envelope)
        return fresh, hashes

    def run_cycle(self) -> bool:
        """Poll once; return whether the cycle completed without error."""
        name = self.config.name
        self.stats.cycles += 1
        context = PollContext(is_seen=self._is_seen, error=self._error, stop_event=self.stop_event)
        delivered = 0
        try:
            for emission in self.source.poll(self.checkpoint.snapshot_state(), context):
                fresh, hashes = self._fresh(emission.envelopes)
                if fresh:
                    self.sink.deliver(fresh)
                # Delivered: only now may the checkpoint move past these items.
                remember_ids = [e.item_id for e in fresh] if self.config.dedupe.by_item_id else []
                remember_ids.extend(emission.seen_ids)
                for item_id in remember_ids:
                    self.checkpoint.recent_ids.add(item_id)
                for digest in hashes:
                    self.checkpoint.recent_hashes.add(digest)
                changed = bool(remember_ids or hashes)
                if emission.state is not None and emission.state != self.checkpoint.state:
                    self.checkpoint.state = emission.state
                    changed = True
                if changed:
                    self.store.save(self.checkpoint)
                for envelope in fresh:
                    self.metrics.items.labels(source=name).inc()
                    size = len(envelope.content.encode("utf-8"))
                    self.metrics.bytes.labels(source=name).inc(size)
                delivered += len(fresh)
                self.stats.delivered += len(fresh)
        except Stopped:
            return True
        except FetchError as exc:
            self._error(exc.kind)
            log.warning("source %s: fetch failed (%s): %s", name, exc.kind, exc)
        except FeedParseError as exc:
            self._error("parse")
            log.warning("source %s: could not parse: %s", name, exc)
        except SinkError as exc:
            self._error("sink")
            log.error("source %s: delivery failed, checkpoint not advanced: %s", name, exc)
        except CheckpointError as exc:
            self._error("checkpoint")
            log.error("source %s: %s", name, exc)
        except OSError as exc:
            self._error("io")
            log.warning("source %s: I/O error (%s)", name, type(exc).__name__)
        except Exception as exc:
            self._error("internal")
            # The message of an unexpected exception may quote content: log type and frames only.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("source %s: internal error %s\n%s", name, type(exc).__name__, frames)
        else:
            self.metrics.last_success.labels(source=name).set(time.time())
            log.info("source %s: cycle done, %d item(s) delivered", name, delivered)
            return True
        self.stats.failed_cycles += 1
        return False

    def run_forever(self) -> None:
        """Poll until stopped, backing off exponentially while cycles fail."""
        failures = 0
        rng = random.Random()  # noqa: S311 - jitter only
        try:
            self.source.start()
        except OSError as exc:
            self._error("io")
            log.error("%s", exc)
            self.stats.failed_cycles += 1
            return
        while not self.stop_event.is_set():
            if self.run_cycle():
                failures = 0
                delay = self.source.poll_interval
            else:
                failures += 1
                delay = min(
                    ERROR_BACKOFF_MAX_SECONDS,
                    max(self.source.poll_interval, ERROR_BACKOFF_INITIAL_SECONDS)
                    * 2 ** (failures - 1),
                ) * (1 + 0.1 * rng.random())
                log.info("source %s: next attempt in %.0fs", self.config.name, delay)
            if self.stop_event.wait(delay):
                break

    def close(self) -> None:
        """Close the source (sockets, files)."""
        self.source.close()


def build_sink(
    config: CollectorConfig,
    *,
    bootstrap: str | None,
    dry_run: bool,
    dry_run_stream: TextIO | None = None,
    kafka_options: Mapping[str, object] | None = None,
) -> EnvelopeSink:
    """Choose the sink: JSON lines for dry runs, Kafka otherwise."""
    if dry_run:
        return JsonLinesSink(dry_run_stream)
    servers = bootstrap or config.kafka.bootstrap
    if not servers:
        raise CollectorError(
            "no Kafka bootstrap servers: pass --bootstrap HOST:PORT or set kafka.bootstrap "
            "in the config (or use --dry-run)"
        )
    try:
        return KafkaSink(
            servers,
            topics=config.kafka.topics,
            client_id=config.kafka.client_id,
            acks_timeout_seconds=config.kafka.acks_timeout_seconds,
            enable_idempotence=config.kafka.enable_idempotence,
            compression_type=config.kafka.compression_type,
            security=kafka_options,
        )
    except SinkError as exc:
        raise CollectorError(str(exc)) from None


def run_collector(
    kind: str,
    config_path: str | Path,
    *,
    bootstrap: str | None = None,
    stop_event: threading.Event | None = None,
    once: bool = False,
    dry_run: bool = False,
    sink: EnvelopeSink | None = None,
    registry: CollectorRegistry | None = None,
    dry_run_stream: TextIO | None = None,
    serve_metrics: bool = True,
    sources: list[str] | None = None,
    kafka_options: Mapping[str, object] | None = None,
) -> CollectorReport:
    """Run the ``kind`` sources of a config file until ``stop_event`` is set (or one cycle).

    ``sink`` replaces the Kafka/JSON-lines sink (tests); ``dry_run`` prints envelopes and
    leaves checkpoints untouched; ``sources`` restricts the run to the named sources.
    Raises :class:`CollectorError` or ``CollectorConfigError`` for problems an operator must fix.
    """
    if kind not in COLLECTOR_KINDS:
        raise CollectorError(f"unknown collector kind '{kind}' (use {', '.join(COLLECTOR_KINDS)})")
    config = load_config(config_path)
    selected = list(config.sources_for(kind))
    if sources:
        unknown = sorted(set(sources) - {s.name for s in selected})
        if unknown:
            raise CollectorError(f"no {kind} source named {', '.join(unknown)} in {config_path}")
        selected = [s for s in selected if s.name in sources]
    if not selected:
        raise CollectorError(f"{config_path} defines no {kind} sources")
    stop_event = stop_event if stop_event is not None else threading.Event()
    metrics = collector_metrics(registry)
    if serve_metrics and config.metrics.port is not None and not once:
        start_http_server(
            config.metrics.port, addr=config.metrics.address, registry=registry or _default()
        )
    own_sink = sink is None
    if sink is None:
        sink = build_sink(
            config, bootstrap=bootstrap, dry_run=dry_run, dry_run_stream=dry_run_stream
        )
    store = CheckpointStore(config.state_dir, read_only=dry_run)
    runners: list[SourceRunner] = []
    report = CollectorReport()
    try:
        for source_config in selected:
            runner = SourceRunner(
                build_source(source_config, stop_event=stop_event),
                sink,
                store,
                metrics,
                stop_event=stop_event,
            )
            runners.append(runner)
            report.sources[source_config.name] = runner.stats
        if once:
            for runner in runners:
                _run_once(runner)
        else:
            threads = [
                threading.Thread(
                    target=runner.run_forever, name=f"collector-{runner.config.name}", daemon=True
                )
                for runner in runners
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
    except CheckpointError as exc:
        raise CollectorError(str(exc)) from None
    finally:
        for runner in runners:
            runner.close()
        if own_sink:
            sink.close()
        store.release()
    return report


def _run_once(runner: SourceRunner) -> None:
    try:
        runner.source.start()
    except OSError as exc:
        runner._error("io")
        log.error("%s", exc)
        runner.stats.failed_cycles += 1
        return
    if runner.source.source_type == "syslog":
        # A push source has nothing to read at once: give senders one flush interval.
        runner.stop_event.wait(runner.source.poll_interval)
    runner.run_cycle()


def _default() -> CollectorRegistry:
    from prometheus_client import REGISTRY

    return REGISTRY
