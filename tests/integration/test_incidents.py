"""The incidents worker end to end: alerts on Kafka → incidents in Elasticsearch → a webhook.

Runs the real worker (``python -m streams.incidents.command``) as a subprocess against the
shared local Kafka + Elasticsearch, with its own topics, app id (consumer group, changelogs) and
index prefix. A repost on another site joins the first incident; after a restart of the worker
a near-duplicate (same people, other bytes) still joins it, which only works if the tables (the
incident and its LSH band keys) were restored from their changelogs, and the route is not told
about the incident a second time. Every wait is bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from detectors import Fingerprinter, Scanner, load_rules, summarize
from detectors.synthetic import Synth
from streams import es_schema
from streams.alerts import build_alert
from streams.envelope import FeedEnvelope
from streams.incidents.agent import ensure_incident_topics, incident_app_id, incident_topics
from streams.settings import load_settings
from streams.watchlists import import_csv, new_watchlist, save_watchlist

ROOT = Path(__file__).resolve().parents[2]
HMAC_KEY = "integration-incidents-key-0123456789"
WAIT_S = 60.0
STOP_WAIT_S = 30.0


def _rows(seed: int, n: int) -> list[tuple[str, str, str]]:
    synth = Synth(seed)
    return [(synth.name(), synth.citizen_id(), synth.mobile()) for _ in range(n)]


def _text(rows: list[tuple[str, str, str]], header: str = "Ho ten | CCCD | SDT") -> str:
    return "\n".join([header, *(f"{a} | {b} | {c}" for a, b, c in rows)])


def _alert(scanner: Scanner, text: str, site: str, item_id: str, fetched_at: str) -> bytes:
    findings = scanner.scan(text)
    envelope = FeedEnvelope(feed="paste", site=site, item_id=item_id,
                            url=f"https://{site}/{item_id}", author=None, title="data 2025",
                            published_at=None, fetched_at=fetched_at, content=text,
                            content_encoding=None, meta={})
    alert = build_alert(envelope, summarize(text, findings), findings,
                        content_sha256=hashlib.sha256(text.encode()).hexdigest(),
                        content_bytes=len(text.encode()), detected_at=fetched_at,
                        rules_version="test", key_id=scanner.fingerprinter.key_id)
    return json.dumps(alert).encode()


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Hook,), {"received": received}))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def _offsets(bootstrap: str, group: str, topics: list[str]) -> str:
    """End and committed offsets, so a timeout says where the message stopped."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        if hasattr(admin, "list_group_offsets"):  # kafka-python 3.x
            committed = admin.list_group_offsets(group).get(group, {})
        else:
            committed = admin.list_consumer_group_offsets(group)
        parts = [TopicPartition(t, p) for t in topics
                 for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(parts)
        return "\n".join(f"{tp.topic}[{tp.partition}] end={ends.get(tp)} committed="
                         f"{getattr(committed.get(tp), 'offset', None)}" for tp in parts)
    finally:
        consumer.close()
        admin.close()


def _wait(what: str, check: Callable[[], Any], timeout_s: float = WAIT_S,
          worker: subprocess.Popen | None = None, log: Path | None = None,
          diagnose: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if worker is not None and worker.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            pytest.fail(f"worker exited ({worker.returncode}) while waiting for {what}:\n{tail}")
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log else ""
    offsets = diagnose() if diagnose else ""
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{offsets}\n{tail}")


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=10)


def test_reposts_join_one_incident_across_a_restart(
    tmp_path: Path, unique_name: str, kafka_bootstrap: str, es_url: str,
    es_client: Elasticsearch, webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    from kafka import KafkaAdminClient, KafkaProducer

    hook_url, received = webhook
    env = {**os.environ,
           "RORIWATCH_BROKER": f"kafka://{kafka_bootstrap}", "RORIWATCH_ES_URL": es_url,
           "RORIWATCH_APP_ID": unique_name, "RORIWATCH_TOPIC_ALERTS": f"{unique_name}.alerts",
           "RORIWATCH_ES_INDEX_PREFIX": unique_name, "RORIWATCH_TOPIC_PARTITIONS": "3",
           "RORIWATCH_DATA_DIR": str(tmp_path / "data"), "RORIWATCH_HMAC_KEY": HMAC_KEY,
           "RORIWATCH_HMAC_KEY_ID": "it1", "PYTHONUNBUFFERED": "1"}
    settings = load_settings(env)
    fingerprinter = Fingerprinter(HMAC_KEY.encode(), key_id="it1")
    scanner = Scanner(load_rules(), fingerprinter)
    rows = _rows(101, 40)
    save_watchlist(settings.data_dir, new_watchlist(
        "customers", import_csv("cccd\n" + "\n".join(r[1] for r in rows[:5]), fingerprinter),
        fingerprinter))
    routes = tmp_path / "routes.yaml"
    routes.write_text(f"routes:\n  - name: soc\n    target: {{type: webhook, url: '{hook_url}'}}\n")
    ensure_incident_topics(settings, incident_app_id(settings))
    index = es_schema.incidents_index(unique_name)
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "streams.incidents.command", "--routes", str(routes),
               "--metrics-port", "0", "--loglevel", "info"]

    def start() -> subprocess.Popen:
        with log.open("a") as handle:
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def incident() -> dict[str, Any] | None:
        if not es_client.indices.exists(index=index):
            return None
        es_client.indices.refresh(index=index)
        hits = es_client.search(index=index, size=10)["hits"]["hits"]
        return hits[0]["_source"] if len(hits) == 1 else None

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    group = incident_app_id(settings)
    topics = [settings.topic_alerts, f"{settings.topic_alerts}.correlation"]

    def offsets() -> str:
        return _offsets(kafka_bootstrap, group, topics)

    worker = start()
    try:
        text = _text(rows)
        producer.send(settings.topic_alerts, key=b"a1",
                      value=_alert(scanner, text, "pastebin.com", "a1", "2025-03-01T00:00:00Z"))
        producer.flush(timeout=10)
        first = _wait("the first incident", incident, worker=worker, log=log, diagnose=offsets)
        assert first["sites"] == ["pastebin.com"]
        assert first["watchlists"] == ["customers"] and first["watchlist_hits"] == {"customers": 5}

        producer.send(settings.topic_alerts, key=b"b1",
                      value=_alert(scanner, text, "forum.example.vn", "b1",
                                   "2025-03-02T00:00:00Z"))
        producer.flush(timeout=10)
        second = _wait("the repost to join", lambda: (i := incident()) and
                       len(i["sites"]) == 2 and i, worker=worker, log=log)
        assert second["incident_id"] == first["incident_id"]
        assert [s["site"] for s in second["sightings"]] == ["pastebin.com", "forum.example.vn"]
        _wait("the first notification", lambda: received, worker=worker, log=log)

        _stop(worker)
        notifications_before = len(received)
        worker = start()
        # Produced once the restarted worker is ready: a record already waiting while a worker
        # joins is sometimes never fetched by Faust 0.15.3 on this broker (committed offset
        # stays below the end offset, nothing logged; see docs/incidents.md, "Limits"), and
        # this test is about table recovery, not about that.
        _wait("the restarted worker to be ready", lambda: log.read_text().count(
            "[^Worker]: Ready") >= 2, worker=worker, log=log)
        # Other bytes, mostly the same people: only the restored band table can find it.
        repost = rows[:37] + _rows(202, 3)
        producer.send(settings.topic_alerts, key=b"c1",
                      value=_alert(scanner, _text(repost[::-1], header="name;cccd;phone"),
                                   "t.me", "c1", "2025-03-03T00:00:00Z"))
        producer.flush(timeout=10)
        third = _wait("the near-duplicate to join after the restart",
                      lambda: (i := incident()) and len(i["sites"]) == 3 and i,
                      worker=worker, log=log, diagnose=offsets)
        assert third["incident_id"] == first["incident_id"]
        assert len(third["alert_ids"]) == 3 and third["severity"] == "critical"
        time.sleep(1.0)  # a re-notification after the restart would arrive now
        events = [r["type"] for r in received]
        assert events.count("incident.new") == 1, events
        assert len(received) <= notifications_before + 1  # at most one escalation
        blob = json.dumps(received) + json.dumps(third)
        assert not any(cid in blob or phone in blob for _, cid, phone in rows)
    finally:
        producer.close(timeout=5)
        _stop(worker)
        indices = es_client.indices.get(index=f"{unique_name}-*", ignore_unavailable=True).body
        if indices:
            es_client.indices.delete(index=",".join(indices), ignore_unavailable=True)
        tolerant = es_client.options(ignore_status=404)
        for name in es_schema.index_templates(unique_name):
            tolerant.indices.delete_index_template(name=name)
        for name in es_schema.component_templates(unique_name):
            tolerant.cluster.delete_component_template(name=name)
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            existing = set(admin.list_topics())
            topics = [t for t in incident_topics(settings, incident_app_id(settings))
                      if t in existing]
            if topics:
                admin.delete_topics(topics)
        except Exception:  # cleanup of a shared server must not fail the test
            pass
        finally:
            admin.close()
