"""The whole pipeline against the shared Kafka/Elasticsearch: feeds in, alerts in the index.

One worker subprocess (``roriwatch worker``) serves the module, on topics, a consumer group and
an index prefix no one else uses. It reaches Elasticsearch through a TCP proxy owned by the
test, so "Elasticsearch is down" can be played without stopping the server everyone shares.
Every wait is bounded; on failure the assertion shows the tail of the worker's log (which, like
every log line of ours, carries no identifier).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer

from detectors import Scanner, load_rules
from streams.decode import DeadLetter, MessageInfo, decode_feed_message
from streams.es_schema import alerts_alias
from streams.metrics import DEADLETTER_REASONS, ES_FAILURE_REASONS, FEED_KINDS, SEVERITIES
from streams.pipeline_commands import (
    SentMessage,
    expected_alert_ids,
    file_envelope,
    replay_samples,
    send_messages,
    start_worker_process,
    stop_worker_process,
)
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.watchlists import Watchlist, save_watchlist

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "feeds"
HMAC_KEY = "integration-test-key-0123456789abcdef"
WAIT_S = 60.0
WATCHED_PHONE = "0916000001"  # synthetic; on the "itest-vip" fingerprint watch-list


# --- helpers -------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str,
             worker: Worker | None = None, interval_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if worker is not None and not worker.alive():
            pytest.fail(f"worker died while waiting for {what}\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            tail = worker.log_tail() if worker is not None else ""
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{tail}")
        time.sleep(interval_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TcpProxy:
    """127.0.0.1:port → upstream; stop() refuses and cuts connections like a dead server."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: close() alone leaves a thread blocked in accept() listening.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Worker:
    """A `roriwatch worker` subprocess with its own log file and metrics port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.metrics_port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = start_worker_process(self.env, self.log_path, self.metrics_port,
                                            ["--loglevel", "info", "--metrics-addr",
                                             "127.0.0.1"])
        wait_for(self.metrics_text, 30, "the worker's /metrics endpoint", self)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        code = stop_worker_process(self.process, timeout_s=30)
        self.process = None
        return code

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

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
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            series, _, value = line.rpartition(" ")
            found = dict(re.findall(r'(\w+)="([^"]*)"', series))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(value)
        return total

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no worker log)"
        return "--- worker log (tail) ---\n" + "\n".join(text[-lines:])


class Pipeline:
    """Settings, worker, proxy and clients of one test module."""

    def __init__(self, settings: Settings, worker: Worker, proxy: TcpProxy,
                 es: Elasticsearch) -> None:
        self.settings = settings
        self.worker = worker
        self.proxy = proxy
        self.es = es
        self.alias = alerts_alias(settings.es_index_prefix)

    def alerts(self, ids: set[str] | None = None) -> list[dict[str, Any]]:
        self.es.indices.refresh(index=self.alias, ignore_unavailable=True)
        query = {"ids": {"values": sorted(ids)}} if ids is not None else {"match_all": {}}
        response = self.es.search(index=self.alias, query=query, size=1000,
                                  ignore_unavailable=True)
        return [hit["_source"] for hit in response["hits"]["hits"]]

    def count(self) -> int:
        self.es.indices.refresh(index=self.alias, ignore_unavailable=True)
        return int(self.es.count(index=self.alias)["count"])

    def wait_for_alerts(self, ids: set[str], timeout_s: float = WAIT_S) -> list[dict[str, Any]]:
        def arrived() -> list[dict[str, Any]]:
            found = self.alerts(ids)
            return found if len(found) == len(ids) else []
        return wait_for(arrived, timeout_s, f"{len(ids)} alert(s) in Elasticsearch", self.worker)

    def send(self, topic: str, messages: list[tuple[bytes | None, bytes]]) -> list[SentMessage]:
        return send_messages(self.settings, topic, messages)


def envelope_bytes(feed: str, item_id: str, content: str, site: str = "itest") -> bytes:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps({"feed": feed, "site": site, "item_id": item_id, "url": None,
                       "author": None, "title": f"item {item_id}", "published_at": None,
                       "fetched_at": now, "content": content}, ensure_ascii=False).encode()


def raw_identifiers(scanner: Scanner, sent: list[SentMessage], settings: Settings) -> set[str]:
    """Every identifier as written in the sent documents, and its bare digits."""
    kinds = {topic: kind for kind, topic in settings.feed_topics().items()}
    values: set[str] = set()
    for message in sent:
        info = MessageInfo(message.topic, message.partition, message.offset, message.key,
                           message.timestamp_ms)
        decoded = decode_feed_message(message.value, info, feed_kind=kinds[message.topic],
                                      max_content_bytes=settings.max_content_bytes)
        if isinstance(decoded, DeadLetter):
            continue
        for finding in scanner.scan(decoded.text):
            written = decoded.text[finding.start:finding.end]
            values.add(written)
            digits = re.sub(r"\D", "", written)
            if len(digits) >= 8:
                values.add(digits)
    return values


def read_topic(settings: Settings, topic: str) -> list:
    """Every record currently in ``topic``, read up to the end offsets of this moment."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.broker.split("://")[-1],
                             enable_auto_commit=False, group_id=None)
    records: list = []
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + 20
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap: str, es_url: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Pipeline]:
    name = f"t-pipe-{uuid.uuid4().hex[:10]}"
    proxy = TcpProxy(int(es_url.rsplit(":", 1)[1]))
    proxy.start()
    data_dir = tmp_path_factory.mktemp("pipeline")
    variables = {
        "RORIWATCH_BROKER": f"kafka://{kafka_bootstrap}",
        "RORIWATCH_TOPIC_PASTE": f"{name}-paste", "RORIWATCH_TOPIC_FORUM": f"{name}-forum",
        "RORIWATCH_TOPIC_LOG": f"{name}-log", "RORIWATCH_TOPIC_ALERTS": f"{name}-alerts",
        "RORIWATCH_TOPIC_DEADLETTER": f"{name}-deadletter",
        "RORIWATCH_ES_URL": f"http://127.0.0.1:{proxy.port}",
        "RORIWATCH_ES_INDEX_PREFIX": name, "RORIWATCH_APP_ID": name,
        "RORIWATCH_HMAC_KEY": HMAC_KEY, "RORIWATCH_DATA_DIR": str(data_dir),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RORIWATCH_")}
    env.update(variables)
    from streams.settings import load_settings

    settings = load_settings(variables)
    ensure_topics(settings)
    save_watchlist(data_dir, Watchlist(
        name="itest-vip", key_id=settings.hmac_key_id, created="2024-05-01T00:00:00Z",
        fingerprints=frozenset({settings.fingerprinter().fingerprint(WATCHED_PHONE)})))
    worker = Worker(env, data_dir / "worker.log")
    es = Elasticsearch(es_url, request_timeout=10)
    worker.start()
    try:
        yield Pipeline(settings, worker, proxy, es)
    finally:
        worker.stop()
        proxy.stop()
        for index in es.indices.get(index=f"{name}-*", ignore_unavailable=True,
                                    allow_no_indices=True):
            es.indices.delete(index=index, ignore_unavailable=True)
        for template in (f"{name}-alerts", f"{name}-incidents"):
            es.options(ignore_status=404).indices.delete_index_template(name=template)
        for component in ("alerts-mappings", "alerts-settings", "incidents-mappings",
                          "incidents-settings"):
            es.options(ignore_status=404).cluster.delete_component_template(
                name=f"{name}-{component}")
        es.close()
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            admin.delete_topics([t for t in (settings.topic_paste, settings.topic_forum,
                                             settings.topic_log, settings.topic_alerts,
                                             settings.topic_deadletter)])
            admin.delete_groups([name])
        except Exception as exc:  # cleanup of a shared server is best effort
            print(f"topic cleanup failed: {type(exc).__name__}")
        finally:
            admin.close()


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    from detectors import Fingerprinter

    return Scanner(load_rules(), Fingerprinter(key=HMAC_KEY.encode()), min_confidence=0.5)


# --- tests ---------------------------------------------------------------------------------


def test_samples_become_the_expected_alerts_without_raw_identifiers(
        pipeline: Pipeline, scanner: Scanner) -> None:
    settings = pipeline.settings
    sent = replay_samples(settings, SAMPLES)
    expected_ids = expected_alert_ids(settings, sent)
    golden = json.loads((SAMPLES / "expected-alerts.json").read_text())["alerts"]
    assert len(expected_ids) == len(golden)

    alerts = pipeline.wait_for_alerts(expected_ids)

    got = sorted((a["feed"], a["severity"], json.dumps(a["counts"], sort_keys=True))
                 for a in alerts)
    want = sorted((g["feed"], g["severity"], json.dumps(g["counts"], sort_keys=True))
                  for g in golden)
    assert got == want
    for alert in alerts:
        assert alert["site"] in ("samples", "raw-log")
        assert alert["indexed_at"] and alert["detected_at"] and alert["content_sha256"]
        assert alert["samples"] and all("*" in s["masked"] for s in alert["samples"])
    # Nothing in the whole index may carry an identifier as written, or a line of content.
    dumped = json.dumps(pipeline.alerts(), ensure_ascii=False)
    leaked = sorted(v for v in raw_identifiers(scanner, sent, settings) if v in dumped)
    assert not leaked, f"{len(leaked)} raw identifier(s) found in the index"
    for content_line in ("ho_ten,so_cccd", "Vietcombank", "het han", "otp-service"):
        assert content_line not in dumped


def test_redelivered_batch_creates_no_duplicates(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    paste = sorted((SAMPLES / "paste").iterdir())
    messages = [(str(p).encode(), file_envelope(p, str(p.relative_to(ROOT)), "paste", "redeliv"))
                for p in paste]
    first = pipeline.send(settings.topic_paste, messages)
    ids = expected_alert_ids(settings, first)
    assert ids
    before = {a["alert_id"]: a["indexed_at"] for a in pipeline.wait_for_alerts(ids)}
    count_before = pipeline.count()

    # The same batch again through the feed (a collector re-sending after a crash) ...
    again = [(k, file_envelope(p, str(p.relative_to(ROOT)), "paste", "redeliv"))
             for (k, _), p in zip(messages, paste, strict=True)]
    pipeline.send(settings.topic_paste, again)
    # ... and the alert records themselves twice (Kafka redelivering to the indexer).
    alert_records = [r for r in read_topic(settings, settings.topic_alerts)
                     if r.key and r.key.decode() in ids]
    assert alert_records
    pipeline.send(settings.topic_alerts, [(r.key, r.value) for r in alert_records] * 2)

    def reindexed() -> bool:
        now = {a["alert_id"]: a["indexed_at"] for a in pipeline.alerts(ids)}
        return all(now.get(i, "") > before[i] for i in ids)

    wait_for(reindexed, WAIT_S, "the redelivered alerts to be re-indexed", pipeline.worker)
    time.sleep(2)  # let any straggler land before counting
    assert pipeline.count() == count_before
    assert len(pipeline.alerts(ids)) == len(ids)


def test_poison_messages_go_to_the_deadletter_topic_and_the_worker_keeps_going(
        pipeline: Pipeline) -> None:
    settings = pipeline.settings
    secret = "0912345678"  # synthetic; must not show up in any dead-letter record
    poison = [
        (settings.topic_paste, f"paste-{secret}".encode(), f"not json, sdt {secret}".encode()),
        (settings.topic_forum, b"poison-2", json.dumps({"feed": "forum", "content": secret})
         .encode()),
        (settings.topic_log, b"poison-3", b"\x00\x01\x02binary" + secret.encode()),
        (settings.topic_alerts, b"poison-4", f'{{"alert": "{secret}"'.encode()),
    ]
    sent = []
    for topic, key, value in poison:
        sent.extend(pipeline.send(topic, [(key, value)]))
    good = pipeline.send(settings.topic_forum, [(b"after-poison", envelope_bytes(
        "forum", "after-poison", f"Lien he SĐT: {secret} de mua data"))])
    pipeline.wait_for_alerts(expected_alert_ids(settings, good))
    assert pipeline.worker.alive()

    origins = {(m.topic, m.partition, m.offset) for m in sent}

    def dead_letters() -> dict[tuple[str, int, int], dict]:
        letters = [json.loads(r.value) for r in read_topic(settings, settings.topic_deadletter)]
        found = {(d["topic"], d["partition"], d["offset"]): d for d in letters}
        return found if origins <= set(found) else {}

    by_origin = wait_for(dead_letters, 20, "the dead letters", pipeline.worker)
    letters = list(by_origin.values())
    expected_errors = ["invalid_json", "invalid_envelope", "binary", "invalid_alert"]
    for message, error in zip(sent, expected_errors, strict=True):
        letter = by_origin.get((message.topic, message.partition, message.offset))
        assert letter is not None, f"no dead letter for {message.topic}@{message.offset}"
        assert letter["error"] == error
        assert letter["error"] in DEADLETTER_REASONS
        assert letter["size_bytes"] == len(message.value)
        assert letter["detail"] and letter["received_at"] and letter["content_sha256"]
        key = message.key.decode()
        assert letter["key"] == key.replace(secret, "09******78")  # identifiers masked
        assert letter["raw_base64"] is None  # RORIWATCH_DEADLETTER_KEEP_RAW is off
    assert secret not in json.dumps(letters)
    assert pipeline.worker.metric("roriwatch_deadletter_total", reason="invalid_json") >= 1


def test_elasticsearch_outage_loses_nothing_even_across_a_worker_restart(
        pipeline: Pipeline) -> None:
    settings = pipeline.settings
    count_before = pipeline.count()
    pipeline.proxy.stop()
    try:
        messages = [(f"outage-{i}".encode(),
                     envelope_bytes("paste", f"outage-{i}", f"khach hang {i}: SĐT 0912{i:06d}"))
                    for i in range(20)]
        sent = pipeline.send(settings.topic_paste, messages)
        ids = expected_alert_ids(settings, sent)
        assert len(ids) == 20
        # The worker keeps retrying and keeps running; nothing can reach the index.
        wait_for(lambda: pipeline.worker.metric("roriwatch_es_retries_total") >= 2, 40,
                 "the indexer to retry against the dead Elasticsearch", pipeline.worker)
        assert pipeline.count() == count_before
        assert pipeline.worker.alive()
        # A restart while Elasticsearch is down: the alerts must be waiting in Kafka.
        assert pipeline.worker.stop() == 0
        pipeline.worker.start()
        time.sleep(3)
        assert pipeline.count() == count_before
    finally:
        pipeline.proxy.start()
    arrived = pipeline.wait_for_alerts(ids, timeout_s=WAIT_S)
    assert len(arrived) == 20
    assert pipeline.count() == count_before + 20
    assert pipeline.worker.alive()


def test_a_second_worker_joining_and_leaving_loses_and_duplicates_nothing(
        pipeline: Pipeline, tmp_path: Path) -> None:
    settings = pipeline.settings
    count_before = pipeline.count()
    first = [(f"rb-{i}".encode(), envelope_bytes("forum", f"rb-{i}", f"Zalo: 0913{i:06d}"))
             for i in range(300)]
    sent = pipeline.send(settings.topic_forum, first)
    second = Worker(pipeline.worker.env, tmp_path / "second-worker.log")
    second.start()  # joins the group while the first worker is busy: a rebalance
    try:
        ids = expected_alert_ids(settings, sent)
        assert len(ids) == 300
        pipeline.wait_for_alerts(ids)
        wait_for(lambda: second.metric("roriwatch_documents_total") > 0 or
                 (second.metric("roriwatch_consumer_lag") >= 0 and
                 "roriwatch_consumer_lag{" in second.metrics_text()), 30,
                 "the second worker to get partitions", second)
    finally:
        assert second.stop() == 0  # leaves the group: another rebalance
    more = [(f"rb2-{i}".encode(), envelope_bytes("forum", f"rb2-{i}", f"Zalo: 0914{i:06d}"))
            for i in range(50)]
    more_ids = expected_alert_ids(settings, pipeline.send(settings.topic_forum, more))
    pipeline.wait_for_alerts(more_ids)
    time.sleep(2)  # a duplicate, if any, would be a late write
    assert pipeline.count() == count_before + 350


def test_a_watch_list_hit_is_marked_and_raises_the_severity(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    sent = pipeline.send(settings.topic_log, [
        (b"vip-host", f"otp sent to phone={WATCHED_PHONE}".encode()),
        (b"vip-host", b"otp sent to phone=0916000002"),
    ])
    alerts = {a["source"]["offset"]: a for a in
              pipeline.wait_for_alerts(expected_alert_ids(settings, sent))}
    watched, plain = alerts[sent[0].offset], alerts[sent[1].offset]
    assert watched["watchlists"] == ["itest-vip"]
    assert watched["watchlist_hits"] == {"itest-vip": 1}
    assert watched["severity"] == "high" and plain["severity"] == "medium"
    assert plain["watchlists"] == []


def test_a_multi_megabyte_paste_goes_through(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    rows = [f"Tran Thi B,0791{n % 10}0{n:06d},0913{n:06d},03/04/1991" for n in range(30_000)]
    text = "ho_ten,cccd,sdt,ngay_sinh\n" + "\n".join(rows)
    value = envelope_bytes("paste", "big-dump", text)
    assert len(value) > 1_300_000  # over Kafka's 1 MiB default fetch size per partition
    sent = pipeline.send(settings.topic_paste, [(b"big-dump", value)])
    (alert,) = pipeline.wait_for_alerts(expected_alert_ids(settings, sent))
    assert alert["severity"] == "critical"
    assert alert["counts"]["vn_phone"] == 30_000
    assert alert["findings_truncated"] and len(alert["findings"]) == 1000
    assert alert["content_bytes"] == len(text.encode())


def test_metrics_show_the_counters_with_bounded_labels(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    good = pipeline.send(settings.topic_log, [(b"metrics-host", b"user phone=0912345678 ok")])
    pipeline.send(settings.topic_paste, [(None, b"definitely not json")])
    pipeline.wait_for_alerts(expected_alert_ids(settings, good))
    worker = pipeline.worker
    wait_for(lambda: worker.metric("roriwatch_deadletter_total", reason="invalid_json") >= 1,
             20, "the dead-letter counter", worker)
    wait_for(lambda: worker.metric("roriwatch_consumer_lag") >= 0 and
             "roriwatch_consumer_lag{" in worker.metrics_text(), 20, "consumer lag gauges",
             worker)
    text = worker.metrics_text()
    assert worker.metric("roriwatch_worker_up") == 1
    assert worker.metric("roriwatch_documents_total", feed="log") >= 1
    assert worker.metric("roriwatch_bytes_total", feed="log") >= len(good[0].value)
    assert worker.metric("roriwatch_findings_total", detector="vn_phone") >= 1
    assert worker.metric("roriwatch_alerts_total", severity="medium") >= 1
    assert worker.metric("roriwatch_scan_duration_seconds_count", feed="log") >= 1
    assert worker.metric("roriwatch_end_to_end_lag_seconds_count") >= 1
    assert worker.metric("roriwatch_es_bulk_duration_seconds_count") >= 1
    for name in ("roriwatch_es_bulk_failures_total", "roriwatch_es_retries_total"):
        assert name in text
    # Bounded labels: every label value comes from a closed set; no site, URL or id.
    allowed = {
        "feed": set(FEED_KINDS), "severity": set(SEVERITIES),
        "reason": set(DEADLETTER_REASONS) | set(ES_FAILURE_REASONS),
        "detector": set(load_rules().ids),
        "topic": {settings.topic_paste, settings.topic_forum, settings.topic_log,
                  settings.topic_alerts},
    }
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        for label, value in re.findall(r'(\w+)="([^"]*)"', line):
            if label == "le":
                continue
            if label == "partition":
                assert value.isdigit()
                continue
            assert value in allowed[label], line
    assert "0912345678" not in text and "metrics-host" not in text


def test_large_documents_are_scanned_off_the_event_loop(tmp_path: Path) -> None:
    """A multi-megabyte paste is scanned in a thread, window by window, with the same result
    as one whole scan, while the event loop keeps ticking (heartbeats, commits, fetches)."""
    import asyncio

    from detectors import Fingerprinter, summarize
    from streams.app import INLINE_SCAN_CHARS, create_app

    settings = Settings(hmac_key=HMAC_KEY.encode(), data_dir=str(tmp_path))
    app = create_app(settings)
    pipeline = app.pipeline
    rows = [f"Nguyen Van A,07920{n % 10}0{n:05d},0912{n:06d},01/02/1990" for n in range(40_000)]
    text = "ho_ten,cccd,sdt,ngay_sinh\n" + "\n".join(rows)
    assert len(text) > 10 * INLINE_SCAN_CHARS

    async def scan_while_ticking() -> tuple[Any, float]:
        gaps: list[float] = []

        async def tick() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        result = await pipeline.scan(text)
        ticker.cancel()
        return result, gaps

    try:
        (findings, summary), gaps = asyncio.run(scan_while_ticking())
    finally:
        pipeline.close()
    whole = Scanner(load_rules(), Fingerprinter(key=HMAC_KEY.encode()), min_confidence=0.5)
    expected = summarize(text, whole.scan(text))
    assert summary.counts == expected.counts
    assert summary.severity == expected.severity == "critical"
    assert len(findings) == 1000
    # Structural, not timed (benchmarks measure time): had the scan run on the event loop,
    # the ticker could not have run at all until it finished; in a thread it keeps ticking.
    print(f"{len(gaps)} ticks during the scan, worst gap {max(gaps, default=0) * 1000:.0f} ms")
    assert len(gaps) >= 3, "the event loop did not run while the document was scanned"


@pytest.mark.parametrize(("role", "agents", "group"), [
    ("all", {"scan_documents", "index_alerts"}, "rw"),
    ("scan", {"scan_documents"}, "rw-scan"),
    ("index", {"index_alerts"}, "rw-index"),
])
def test_worker_roles_pick_agents_and_consumer_groups(tmp_path: Path, role: str,
                                                      agents: set[str], group: str) -> None:
    from streams.app import create_app

    settings = Settings(app_id="rw", hmac_key=HMAC_KEY.encode(), data_dir=str(tmp_path))
    app = create_app(settings, role=role)
    try:
        assert app.conf.id == group
        assert {agent.name.rsplit(".", 1)[-1] for agent in app.agents.values()} == agents
    finally:
        app.pipeline.close()


@pytest.mark.parametrize(("raw", "reason"), [
    ("connection_error", "connection_error"), ("http_503", "http_5xx"), ("http_429", "http_429"),
    ("item_429", "item_transient"), ("mapper_parsing_exception", "mapping_error"),
    ("request_entity_too_large", "too_large"), ("some_new_es_error_type", "other"),
])
def test_es_failure_reasons_fold_into_the_fixed_enum(raw: str, reason: str) -> None:
    from streams.metrics import es_failure_reason

    assert es_failure_reason(raw) == reason
