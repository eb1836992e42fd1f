"""Faults the pipeline must survive: a killed worker, Elasticsearch down, the broker restarting.

Every test runs against a private noida-db (Kafka protocol + Elasticsearch API) started by
this module on free ports with its own data directory, because the tests stop and start its
services; the shared server on 9092/9200 is never touched. A worker is a real
``roriwatch worker`` subprocess; the collector is a real ``roriwatch collect log`` subprocess.

What "no loss, no duplicate" means here, checked independently of the pipeline's own code
where possible:

* every expected alert id is in Elasticsearch (nothing lost), and
* the alerts index pattern holds exactly one document per expected id: the total hit count
  over every backing index equals the number of distinct ids (nothing duplicated, even across
  a rollover).

Each test prints one ``FIGURES {...}`` line (documents sent, alerts indexed, duplicates,
losses, redeliveries) and appends it to ``$RORIWATCH_RELIABILITY_FIGURES`` when that is set;
docs/reliability.md quotes them. ``RORIWATCH_FAULT_ES_OUTAGE_S`` sets the Elasticsearch outage
(default 12 s in CI; the issue's full 30 s is run the same way, see docs/reliability.md).

Every wait is bounded; on failure the message carries the tail of the worker's log, which
like every log line of ours holds no identifier.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from detectors.corpus import csv_dump, forum_post
from detectors.synthetic import Synth
from streams.es_schema import alerts_alias, alerts_index_pattern
from streams.pipeline_commands import (
    SentMessage,
    expected_alert_ids,
    send_messages,
    start_worker_process,
    stop_worker_process,
)
from streams.settings import Settings, load_settings
from streams.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[2]
HMAC_KEY = "fault-test-key-0123456789abcdef-xyz"
BOUND_S = 90.0  # no single wait in this file is longer
ES_OUTAGE_S = float(os.environ.get("RORIWATCH_FAULT_ES_OUTAGE_S", "12"))
BROKER_OUTAGE_S = float(os.environ.get("RORIWATCH_FAULT_BROKER_OUTAGE_S", "8"))


# --- small helpers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str,
             *watched: Any, interval_s: float = 0.25) -> Any:
    """Poll until truthy; fail with the watched processes' log tails on timeout or death."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        for proc in watched:
            if not proc.alive():
                pytest.fail(f"{proc.name} died while waiting for {what}\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(proc.log_tail() for proc in watched)
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{tails}")
        time.sleep(interval_s)


def record_figures(test: str, **figures: Any) -> None:
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(f"FIGURES {line}")
    target = os.environ.get("RORIWATCH_RELIABILITY_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")


def noida_binary() -> str:
    beside_python = Path(sys.executable).with_name("noida-db")
    found = str(beside_python) if beside_python.exists() else shutil.which("noida-db")
    if not found:
        pytest.fail("noida-db is not installed; `bash scripts/services.sh up` installs it")
    return found


class PrivateServices:
    """A noida-db with Kafka and Elasticsearch that only this module uses and may stop."""

    def __init__(self, data_dir: Path) -> None:
        self.binary = noida_binary()
        self.data_dir = data_dir
        self.kafka_port = free_port()
        self.es_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.es_url = f"http://127.0.0.1:{self.es_port}"
        self.log = data_dir.parent / "private-noida.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "start", "--only", "kafka,elasticsearch", "--host", "127.0.0.1",
                 "--kafka-port", str(self.kafka_port),
                 "--elasticsearch-port", str(self.es_port), "--data-dir", str(self.data_dir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + 30
        while not (self._es_ready() and port_open(self.kafka_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"private noida-db did not start: {self.log.read_text()[-1500:]}")
            time.sleep(0.1)

    def _es_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.es_url + "/", timeout=1):
                return True
        except OSError:
            return False

    def _service(self, action: str, service: str) -> None:
        subprocess.run([self.binary, action, service, "--data-dir", str(self.data_dir)],
                       capture_output=True, timeout=30, check=False)

    def stop_service(self, service: str) -> None:
        """Stop Kafka or Elasticsearch alone (data kept); returns once its port is closed."""
        self._service("stop", service)
        port = self.kafka_port if service == "kafka" else self.es_port
        deadline = time.monotonic() + 30
        while port_open(port):
            assert time.monotonic() < deadline, f"{service} port still open after stop"
            time.sleep(0.1)

    def start_service(self, service: str) -> None:
        self._service("start", service)
        ready = (lambda: port_open(self.kafka_port)) if service == "kafka" else self._es_ready
        deadline = time.monotonic() + 30
        while not ready():
            assert time.monotonic() < deadline, f"{service} did not come back"
            time.sleep(0.1)

    def down(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        subprocess.run([self.binary, "down", "--data-dir", str(self.data_dir)],
                       capture_output=True, timeout=30, check=False)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Proc:
    """A child process of ours (worker or collector) with its log file."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no commit, no flush."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only our child
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        code = stop_worker_process(self.process, timeout_s=30)
        self.process = None
        return code

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_text().splitlines()
        return f"--- {self.name} log (tail) ---\n" + "\n".join(text[-lines:])


class Worker(Proc):
    """``roriwatch worker`` with its own /metrics port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__("worker", log_path)
        self.env = env
        self.metrics_port = free_port()

    def start(self) -> None:
        self.process = start_worker_process(self.env, self.log_path, self.metrics_port,
                                            ["--loglevel", "info", "--metrics-addr",
                                             "127.0.0.1"])
        wait_for(self.metrics_text, 30, "the worker's /metrics endpoint", self)

    def metrics_text(self) -> str:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            return ""

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in self.metrics_text().splitlines():
            if not (line.startswith(name + "{") or line.startswith(name + " ")):
                continue
            series, _, value = line.rpartition(" ")
            found = dict(re.findall(r'(\w+)="([^"]*)"', series))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(value)
        return total


class Collector(Proc):
    """``roriwatch collect log`` tailing files into the feed topic."""

    def __init__(self, env: dict[str, str], config: Path, log_path: Path) -> None:
        super().__init__("collector", log_path)
        self.env = env
        self.config = config

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "collect", "log", "--config",
                 str(self.config)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=str(ROOT), start_new_session=True)


class Stack:
    """Settings, environment and clients for one test's pipeline on the private server."""

    def __init__(self, services: PrivateServices, data_dir: Path) -> None:
        name = f"t-fault-{uuid.uuid4().hex[:10]}"
        self.name = name
        self.services = services
        self.data_dir = data_dir
        variables = {
            "RORIWATCH_BROKER": f"kafka://{services.bootstrap}",
            "RORIWATCH_TOPIC_PASTE": f"{name}-paste", "RORIWATCH_TOPIC_FORUM": f"{name}-forum",
            "RORIWATCH_TOPIC_LOG": f"{name}-log", "RORIWATCH_TOPIC_ALERTS": f"{name}-alerts",
            "RORIWATCH_TOPIC_DEADLETTER": f"{name}-deadletter",
            "RORIWATCH_ES_URL": services.es_url, "RORIWATCH_ES_INDEX_PREFIX": name,
            "RORIWATCH_APP_ID": name, "RORIWATCH_HMAC_KEY": HMAC_KEY,
            "RORIWATCH_DATA_DIR": str(data_dir),
        }
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RORIWATCH_")}
        self.env.update(variables)
        self.settings: Settings = load_settings(variables)
        ensure_topics(self.settings)
        self.es = Elasticsearch(services.es_url, request_timeout=10, max_retries=0)
        self.alias = alerts_alias(name)
        self.procs: list[Proc] = []

    def worker(self, label: str = "worker") -> Worker:
        worker = Worker(self.env, self.data_dir / f"{label}.log")
        self.procs.append(worker)
        return worker

    def collector(self, config: Path) -> Collector:
        collector = Collector(self.env, config, self.data_dir / "collector.log")
        self.procs.append(collector)
        return collector

    def send(self, topic: str, messages: list[tuple[bytes | None, bytes]]) -> list[SentMessage]:
        return send_messages(self.settings, topic, messages)

    def indexed_ids(self) -> list[str]:
        """Every alert _id in every backing index (a duplicate would appear twice)."""
        pattern = alerts_index_pattern(self.name)
        try:
            self.es.indices.refresh(index=pattern, ignore_unavailable=True)
            response = self.es.search(index=pattern, query={"match_all": {}}, size=10_000,
                                      source=False, ignore_unavailable=True,
                                      track_total_hits=True)
        except Exception:  # Elasticsearch down or the alias not there yet: nothing visible
            return []
        hits = response["hits"]["hits"]
        assert response["hits"]["total"]["value"] == len(hits), "more hits than one page"
        return [hit["_id"] for hit in hits]

    def count(self) -> int:
        return len(self.indexed_ids())

    def wait_all(self, expected: set[str], timeout_s: float, *watched: Proc) -> list[str]:
        def arrived() -> list[str]:
            ids = self.indexed_ids()
            return ids if expected <= set(ids) else []
        return wait_for(arrived, timeout_s, f"{len(expected)} alerts in Elasticsearch",
                        *watched, interval_s=0.5)

    def topic_count(self, topic: str) -> int:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.services.bootstrap, group_id=None,
                                 enable_auto_commit=False)
        try:
            partitions = [TopicPartition(topic, p)
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
            return sum(consumer.end_offsets(partitions).values())
        finally:
            consumer.close()

    def close(self) -> None:
        """Stop whatever a failed test left running, then the client."""
        for proc in self.procs:
            if proc.alive():
                proc.stop()
        self.es.close()


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServices]:
    server = PrivateServices(tmp_path_factory.mktemp("faults") / "noida")
    server.start()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture
def stack(services: PrivateServices, tmp_path: Path) -> Iterator[Stack]:
    # A test that failed with a service stopped must not break the next one.
    for service in ("kafka", "elasticsearch"):
        port = services.kafka_port if service == "kafka" else services.es_port
        if not port_open(port):
            services.start_service(service)
    built = Stack(services, tmp_path)
    try:
        yield built
    finally:
        built.close()


def paste_documents(count: int, prefix: str, seed: int) -> list[tuple[bytes | None, bytes]]:
    """Realistic synthetic leaks (CSV dumps and sale posts), each worth exactly one alert."""
    synth = Synth(seed=seed)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    messages = []
    for number in range(count):
        doc = csv_dump(synth, rows=12) if number % 2 else forum_post(synth)
        item_id = f"{prefix}-{number}"
        envelope = {"feed": "paste", "site": "fault-test", "item_id": item_id, "url": None,
                    "author": None, "title": f"dump {number}", "published_at": None,
                    "fetched_at": now, "content": doc.text}
        messages.append((item_id.encode(), json.dumps(envelope, ensure_ascii=False).encode()))
    return messages


def assert_exactly_once(indexed: list[str], expected: set[str]) -> tuple[int, int]:
    """(duplicates, losses) among the expected ids; both must be zero."""
    duplicates = len(indexed) - len(set(indexed))
    losses = len(expected - set(indexed))
    assert duplicates == 0, f"{duplicates} alert(s) indexed more than once"
    assert losses == 0, f"{losses} alert(s) never indexed"
    assert set(indexed) == expected, "alerts indexed that no document explains"
    return duplicates, losses


# --- tests ---------------------------------------------------------------------------------


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(stack: Stack) -> None:
    settings = stack.settings
    documents = paste_documents(1500, "kill", seed=11)
    sent = stack.send(settings.topic_paste, documents)
    expected = expected_alert_ids(settings, sent)
    assert len(expected) == len(documents)

    worker = stack.worker("worker-1")
    worker.start()
    # Kill as soon as alerts start landing: scan batches, sends and bulk writes are in flight.
    wait_for(lambda: stack.count() > 0, BOUND_S, "the first indexed alerts", worker,
             interval_s=0.05)
    worker.kill()
    at_kill = stack.count()
    assert 0 < at_kill < len(expected), "the kill did not land mid-stream; raise the load"
    # noida-db's group coordinator never completes a rebalance after a member died without
    # leaving (SyncGroup answers REBALANCE_IN_PROGRESS forever; docs/reliability.md). Real
    # Kafka evicts the member when its session expires (Faust default 60 s). Restarting the
    # emulated broker clears the group but keeps topics and committed offsets, which is what
    # the replacement worker must resume from.
    stack.services.stop_service("kafka")
    stack.services.start_service("kafka")

    restarted = stack.worker("worker-2")
    restarted.start()
    try:
        stack.wait_all(expected, BOUND_S, restarted)
        time.sleep(2)  # a late duplicate, if any, would land now
        indexed = stack.indexed_ids()
        duplicates, losses = assert_exactly_once(indexed, expected)
        alert_records = stack.topic_count(settings.topic_alerts)
        scanned_again = restarted.metric("roriwatch_documents_total")
    finally:
        assert restarted.stop() == 0
    assert alert_records >= len(expected)
    record_figures("sigkill_mid_batch", documents_sent=len(sent), alerts_expected=len(expected),
                   alerts_indexed_at_kill=at_kill, alerts_indexed=len(set(indexed)),
                   duplicates=duplicates, losses=losses,
                   alert_records_in_topic=alert_records,
                   redelivered_alert_records=alert_records - len(expected),
                   documents_scanned_by_replacement=int(scanned_again))


def test_elasticsearch_down_then_back_loses_and_duplicates_nothing(stack: Stack) -> None:
    settings = stack.settings
    worker = stack.worker()
    worker.start()
    before = paste_documents(200, "before", seed=21)
    sent = stack.send(settings.topic_paste, before)
    stack.wait_all(expected_alert_ids(settings, sent), BOUND_S, worker)
    retries_before = worker.metric("roriwatch_es_retries_total")

    stack.services.stop_service("elasticsearch")
    outage_started = time.monotonic()
    during: list[SentMessage] = []
    try:
        # Load keeps arriving through the whole outage.
        batch = 0
        while time.monotonic() - outage_started < ES_OUTAGE_S:
            during.extend(stack.send(settings.topic_paste,
                                     paste_documents(40, f"during-{batch}", seed=100 + batch)))
            batch += 1
            time.sleep(1.0)
            assert worker.alive(), f"worker died during the outage\n{worker.log_tail()}"
        retries_during = worker.metric("roriwatch_es_retries_total") - retries_before
        failures = worker.metric("roriwatch_es_bulk_failures_total", reason="connection_error")
        assert retries_during >= 2, f"no retries counted\n{worker.log_tail()}"
    finally:
        stack.services.start_service("elasticsearch")
    outage_s = time.monotonic() - outage_started
    after = stack.send(settings.topic_paste, paste_documents(100, "after", seed=31))
    sent += during + after
    expected = expected_alert_ids(settings, sent)
    assert len(expected) == len(sent)
    stack.wait_all(expected, BOUND_S, worker)
    time.sleep(2)
    indexed = stack.indexed_ids()
    duplicates, losses = assert_exactly_once(indexed, expected)
    assert worker.alive()
    retries_total = worker.metric("roriwatch_es_retries_total")
    # The Elasticsearch client logs each failed attempt with its traceback; what must never
    # appear is an agent of ours crashing.
    assert "crashed" not in worker.log_text().lower()
    assert worker.stop() == 0
    record_figures("elasticsearch_outage", outage_s=round(outage_s, 1),
                   documents_sent=len(sent), documents_sent_during_outage=len(during),
                   alerts_expected=len(expected), alerts_indexed=len(set(indexed)),
                   duplicates=duplicates, losses=losses,
                   es_retries_during_outage=int(retries_during),
                   es_retries_total=int(retries_total),
                   es_connection_failures=int(failures), worker_restarts=0)


def test_broker_restart_under_load_worker_and_collector_carry_on(
        stack: Stack, tmp_path: Path) -> None:
    settings = stack.settings
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log_file = log_dir / "app.log"
    log_file.touch()
    config = tmp_path / "collector.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "state_dir": str(tmp_path / "collector-state"),
        "kafka": {"bootstrap": stack.services.bootstrap, "client_id": "fault-collector",
                  "topics": {"log": settings.topic_log}, "acks_timeout_seconds": 10},
        "poll_interval_seconds": 0.5,
        "sources": [{"name": "app", "type": "file_tail", "site": "fault-app",
                     "paths": [str(log_dir / "*.log")], "start_at": "beginning"}],
    }))
    worker = stack.worker()
    worker.start()
    collector = stack.collector(config)
    collector.start()

    synth = Synth(seed=41)
    offsets: list[int] = []
    stop_writing = threading.Event()

    def write_lines() -> None:
        # ~40 lines/s of application log, each line leaking one synthetic phone number.
        number = 0
        with log_file.open("ab") as out:
            while not stop_writing.is_set():
                offsets.append(out.tell())
                out.write(f"2024-05-01T10:00:00Z INFO otp sent line={number} "
                          f"phone={synth.mobile()}\n".encode())
                out.flush()
                number += 1
                time.sleep(0.025)

    writer = threading.Thread(target=write_lines, daemon=True)
    writer.start()
    try:
        wait_for(lambda: stack.count() >= 20, BOUND_S, "alerts flowing before the restart",
                 worker, collector)
        stack.services.stop_service("kafka")
        down_at = time.monotonic()
        time.sleep(BROKER_OUTAGE_S)
        assert worker.alive(), f"worker died with the broker down\n{worker.log_tail()}"
        assert collector.alive(), f"collector died with the broker down\n{collector.log_tail()}"
        stack.services.start_service("kafka")
        broker_down_s = time.monotonic() - down_at
        lines_at_restart = len(offsets)
        wait_for(lambda: len(offsets) >= lines_at_restart + 200, 30, "more log lines")
    finally:
        stop_writing.set()
        writer.join(timeout=5)
    # One alert per line, named by the collector's item id (file identity and byte offset).
    stat = log_file.stat()
    expected_items = {f"{stat.st_dev}.{stat.st_ino}-0:{offset}" for offset in offsets}

    def all_items() -> set[str] | None:
        stack.es.indices.refresh(index=stack.alias, ignore_unavailable=True)
        response = stack.es.search(index=alerts_index_pattern(stack.name), size=10_000,
                                   source=["item_id"], ignore_unavailable=True)
        items = {hit["_source"]["item_id"] for hit in response["hits"]["hits"]}
        return items if expected_items <= items else None

    try:
        wait_for(all_items, BOUND_S, f"alerts for all {len(offsets)} log lines", worker,
                 collector, interval_s=1.0)
        time.sleep(2)
        indexed = stack.indexed_ids()
        duplicates = len(indexed) - len(set(indexed))
        assert duplicates == 0
        assert len(indexed) == len(expected_items), "more alerts than log lines"
        feed_records = stack.topic_count(settings.topic_log)
        assert worker.alive() and collector.alive()
    finally:
        collector_code = collector.stop()
        worker_code = worker.stop()
    assert worker_code == 0
    assert collector_code in (0, 1)  # 1: some poll cycle failed while the broker was down
    record_figures("broker_restart", broker_down_s=round(broker_down_s, 1),
                   log_lines_written=len(offsets), feed_records=feed_records,
                   collector_resent=feed_records - len(offsets),
                   alerts_indexed=len(set(indexed)), duplicates=duplicates,
                   losses=len(expected_items) - len(set(indexed)))
