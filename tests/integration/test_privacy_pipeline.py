"""No identifier leaves the monitor: samples through the whole pipeline, then a search of
everything it wrote for every raw identifier the samples contain.

The raw values come from the same thing an analyst would run, ``roriwatch scan --reveal
--format jsonl`` (called in-process), over samples/feeds/ and over the hostile messages this
test adds: each value as written and, for values of 8+ digits, its bare digits. The search
covers every surface the monitor writes to:

* every document in the Elasticsearch indices of this run (alerts and incidents),
* every record on the alerts topic and on the dead-letter topic (keys and values),
* the worker's whole stdout/stderr log, and
* the Prometheus /metrics text,

and also every secret the worker was configured with (HMAC key, Elasticsearch API key and
password): none may be printed either. Dead-letter records keep the raw message only with
``RORIWATCH_DEADLETTER_KEEP_RAW=1`` (off here, as in production by default; see
docs/security.md), so they must carry no identifier at all.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaConsumer, TopicPartition

from detectors.synthetic import Synth
from streams.cli import build_parser
from streams.es_schema import alerts_index_pattern, incidents_index
from streams.pipeline_commands import (
    SentMessage,
    expected_alert_ids,
    replay_samples,
    send_messages,
    start_worker_process,
    stop_worker_process,
)
from streams.scan_command import run_scan
from streams.settings import Settings, SettingsError, load_settings
from streams.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples" / "feeds"
WAIT_S = 90.0
SECRETS = {
    "RORIWATCH_HMAC_KEY": "privacy-test-hmac-secret-7f3a9c1e5b",
    "RORIWATCH_HMAC_PREVIOUS_KEYS": "k0:privacy-test-retired-secret-2b8d4f",
    "RORIWATCH_ES_API_KEY": "cHJpdmFjeS10ZXN0LWFwaS1rZXktc2VjcmV0",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Any, timeout_s: float, what: str, log_path: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{tail}")
        time.sleep(0.5)


def revealed_values(paths: list[Path]) -> set[str]:
    """Raw identifiers, exactly as ``roriwatch scan --reveal --format jsonl`` prints them."""
    values: set[str] = set()
    for min_confidence in ("0.5", "0"):
        out = io.StringIO()
        args = build_parser().parse_args(["scan", "--reveal", "--format", "jsonl",
                                          "--min-confidence", min_confidence,
                                          *map(str, paths)])
        run_scan(args, out=out, err=io.StringIO())
        for line in out.getvalue().splitlines():
            written = json.loads(line)["value"]
            values.add(written)
            digits = re.sub(r"\D", "", written)
            if len(digits) >= 8:
                values.add(digits)
    return values


def hostile_messages(synth: Synth, settings: Settings) -> list[tuple[str, bytes | None, bytes]]:
    """(topic, key, value): bad input that must be dead-lettered without its content."""
    phone, cccd, card = synth.mobile(), synth.citizen_id(), synth.card()
    envelope = {"feed": "forum", "site": "privacy", "item_id": "p-1", "url": None,
                "author": None, "title": None, "published_at": None,
                "fetched_at": "2024-05-01T10:00:00Z", "content": f"CCCD {cccd}"}
    return [
        (settings.topic_paste, b"priv-1", f"not json: SĐT {phone}, CCCD {cccd}".encode()),
        (settings.topic_forum, f"user-{phone}".encode(),
         json.dumps({**envelope, "feed": 7}).encode()),  # the key itself leaks a phone
        (settings.topic_forum, b"priv-3", json.dumps({**envelope, "fetched_at": cccd}).encode()),
        (settings.topic_log, b"priv-4", b"\x00\x01\x02" + f"card={card}".encode()),
        (settings.topic_paste, b"priv-5",
         json.dumps({**envelope, "content_encoding": "base64",
                     "content": base64.b64encode(b"\x00\xff" * 50 + phone.encode()).decode()
                     }).encode()),
        (settings.topic_alerts, b"priv-6", f'{{"alert_id": "x", "leak": "{cccd}"}}'.encode()),
        (settings.topic_paste, b"priv-7", ("{" * 50_000 + phone).encode()),
    ]


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None)
    records: list[Any] = []
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


def record_text(record: Any) -> str:
    key = (record.key or b"").decode("utf-8", errors="replace")
    value = (record.value or b"").decode("utf-8", errors="replace")
    return f"{key}\n{value}"


class Run:
    """One worker on unique topics and index prefix of the shared services, and its outputs."""

    def __init__(self, settings: Settings, env: dict[str, str], data_dir: Path,
                 bootstrap: str, es: Elasticsearch) -> None:
        self.settings = settings
        self.env = env
        self.log_path = data_dir / "worker.log"
        self.metrics_port = free_port()
        self.bootstrap = bootstrap
        self.es = es
        self.process: Any = None

    def metrics_text(self) -> str:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            return ""

    def es_documents(self) -> list[dict[str, Any]]:
        prefix = self.settings.es_index_prefix
        indices = f"{alerts_index_pattern(prefix)},{incidents_index(prefix)}*"
        self.es.indices.refresh(index=indices, ignore_unavailable=True, allow_no_indices=True)
        response = self.es.search(index=indices, size=10_000, ignore_unavailable=True,
                                  allow_no_indices=True, query={"match_all": {}})
        return [hit for hit in response["hits"]["hits"]]


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, es_url: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Run]:
    name = f"t-priv-{uuid.uuid4().hex[:10]}"
    data_dir = tmp_path_factory.mktemp("privacy")
    variables = {
        "RORIWATCH_BROKER": f"kafka://{kafka_bootstrap}",
        "RORIWATCH_TOPIC_PASTE": f"{name}-paste", "RORIWATCH_TOPIC_FORUM": f"{name}-forum",
        "RORIWATCH_TOPIC_LOG": f"{name}-log", "RORIWATCH_TOPIC_ALERTS": f"{name}-alerts",
        "RORIWATCH_TOPIC_DEADLETTER": f"{name}-deadletter", "RORIWATCH_ES_URL": es_url,
        "RORIWATCH_ES_INDEX_PREFIX": name, "RORIWATCH_APP_ID": name,
        "RORIWATCH_DATA_DIR": str(data_dir), "RORIWATCH_PRODUCTION": "1", **SECRETS,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RORIWATCH_")}
    env.update(variables)
    settings = load_settings(variables)
    ensure_topics(settings)
    es = Elasticsearch(es_url, request_timeout=10)
    result = Run(settings, env, data_dir, kafka_bootstrap, es)
    result.process = start_worker_process(env, result.log_path, result.metrics_port,
                                          ["--loglevel", "info", "--metrics-addr", "127.0.0.1"])
    try:
        wait_for(result.metrics_text, 30, "the worker's /metrics endpoint", result.log_path)
        yield result
    finally:
        if result.process is not None:
            stop_worker_process(result.process, timeout_s=30)
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
            admin.delete_topics([settings.topic_paste, settings.topic_forum, settings.topic_log,
                                 settings.topic_alerts, settings.topic_deadletter])
        except Exception as exc:  # best effort on a shared server
            print(f"topic cleanup failed: {type(exc).__name__}")
        finally:
            admin.close()


def test_no_raw_identifier_or_secret_leaves_the_monitor(run: Run, tmp_path: Path) -> None:
    settings = run.settings
    synth = Synth(seed=4242)
    sent: list[SentMessage] = replay_samples(settings, SAMPLES)
    expected = expected_alert_ids(settings, sent)
    assert expected, "the samples must produce alerts"
    hostile = hostile_messages(synth, settings)
    dead_sent = []
    for topic, key, value in hostile:
        dead_sent.extend(send_messages(settings, topic, [(key, value)]))
    # The hostile messages' text, as files, so the same --reveal scan lists their identifiers.
    hostile_dir = tmp_path / "hostile"
    hostile_dir.mkdir()
    for number, (_, key, value) in enumerate(hostile):
        (hostile_dir / f"{number}.txt").write_bytes((key or b"") + b"\n" + value)
    paths = [SAMPLES / "paste", SAMPLES / "forum", SAMPLES / "log", hostile_dir]
    raw = revealed_values(paths)
    assert len(raw) >= 30, "the samples should hold plenty of identifiers"

    def everything_arrived() -> list[dict[str, Any]]:
        docs = run.es_documents()
        if not expected <= {d["_id"] for d in docs}:
            return []
        letters = read_topic(run.bootstrap, settings.topic_deadletter)
        return docs if len(letters) >= len(hostile) else []

    documents = wait_for(everything_arrived, WAIT_S, "alerts and dead letters", run.log_path)
    time.sleep(1)
    letters = read_topic(run.bootstrap, settings.topic_deadletter)
    alert_records = read_topic(run.bootstrap, settings.topic_alerts)
    metrics = run.metrics_text()
    log_text = run.log_path.read_text(errors="replace")
    surfaces = {
        "elasticsearch": json.dumps(documents, ensure_ascii=False),
        "dead-letter topic": "\n".join(record_text(r) for r in letters),
        # Minus the one bad record this test wrote there itself.
        "alerts topic": "\n".join(record_text(r) for r in alert_records if r.key != b"priv-6"),
        "worker log": log_text,
        "metrics": metrics,
    }
    leaks = {surface: sorted(v for v in raw if v in text) for surface, text in surfaces.items()}
    found = {surface: len(values) for surface, values in leaks.items() if values}
    if os.environ.get("RORIWATCH_PRIVACY_DEBUG"):  # where a leak sits, without the value
        for surface, values in leaks.items():
            for value in values:
                at = surfaces[surface].find(value)
                print(f"leak in {surface} at {at}: ...{surfaces[surface][max(0, at - 200):at]!r}"
                      f"<{len(value)} chars elided>")
    # Counts only: the assertion message must not print the values it is hunting for.
    assert not found, f"raw identifiers found (count per surface): {found}"
    secrets = [value for var, value in SECRETS.items()]
    secrets += [s.split(":", 1)[1] for s in SECRETS["RORIWATCH_HMAC_PREVIOUS_KEYS"].split(",")]
    for surface, text in surfaces.items():
        assert not [s for s in secrets if s in text], f"a configured secret is in the {surface}"

    # Every rejected message is in the dead-letter topic, with a reason a person can act on.
    by_origin = {(d["topic"], d["partition"], d["offset"]): d
                 for d in (json.loads(r.value) for r in letters)}
    for message in dead_sent:
        letter = by_origin.get((message.topic, message.partition, message.offset))
        assert letter is not None, f"no dead letter for {message.topic}@{message.offset}"
        assert letter["error"] != "processing_error", letter["detail"]
        assert len(letter["detail"]) >= 20
        assert letter["raw_base64"] is None
    # The phone in the key of the second message is masked, not dropped.
    masked_key = by_origin[(dead_sent[1].topic, dead_sent[1].partition, dead_sent[1].offset)]
    assert masked_key["key"] and "*" in masked_key["key"]
    print(f"privacy: {len(raw)} raw values searched in {len(documents)} ES documents, "
          f"{len(letters)} dead letters, {len(alert_records)} alert records, "
          f"{len(log_text.splitlines())} log lines, {len(metrics.splitlines())} metric lines")


def test_worker_refuses_to_start_in_production_without_a_key(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RORIWATCH_")}
    env.update({"RORIWATCH_PRODUCTION": "1", "RORIWATCH_BROKER": f"kafka://{kafka_bootstrap}",
                "RORIWATCH_DATA_DIR": str(tmp_path)})
    log_path = tmp_path / "worker.log"
    process = start_worker_process(env, log_path, free_port(), ["--metrics-addr", "127.0.0.1"])
    try:
        code = process.wait(timeout=60)
    finally:
        stop_worker_process(process, timeout_s=10)
    assert code != 0
    assert "RORIWATCH_HMAC_KEY" in log_path.read_text(errors="replace")


def test_only_roles_that_fingerprint_need_the_key(tmp_path: Path) -> None:
    """Production refuses a scanning worker without the HMAC key; an index-only worker, which
    never fingerprints, runs without it (index pods do not mount the key)."""
    from streams.app import create_app

    settings = Settings(production=True, data_dir=str(tmp_path))
    for role in ("all", "scan"):
        with pytest.raises(SettingsError, match="RORIWATCH_HMAC_KEY"):
            create_app(settings, role=role)
    app = create_app(settings, role="index")
    try:
        assert app.pipeline.scanner.fingerprinter.ephemeral
    finally:
        app.pipeline.close()


# --- security settings reach the clients (no services needed) -------------------------------
# The settings exist and are validated (tests/unit/test_settings.py); these check that the
# processes actually use them. A TLS/SASL setting that is parsed and then ignored makes a
# worker connect in plain text, or not at all, with nothing saying why.


def _faust_app(which: str, settings: Settings) -> tuple[Any, Any]:
    """The scan/index worker's or the incidents worker's Faust app, and how to close it."""
    if which == "worker":
        from streams.app import create_app

        app = create_app(settings)
        return app, app.pipeline.close
    from streams.incidents.agent import create_incident_app

    return create_incident_app(settings), lambda: None


def _secure_settings(tmp_path: Path, protocol: str, mechanism: str | None) -> Settings:
    import certifi

    return Settings(
        hmac_key=b"security-wiring-test-key-0123456789", data_dir=str(tmp_path),
        kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="roriwatch" if mechanism else None,
        kafka_sasl_password="kafka-secret-pw" if mechanism else None,
        kafka_ssl_cafile=certifi.where() if protocol.endswith("SSL") else None,
    )


@pytest.mark.parametrize(("protocol", "mechanism"), [
    ("SASL_SSL", "SCRAM-SHA-512"), ("SASL_SSL", "SCRAM-SHA-256"), ("SASL_PLAINTEXT", "PLAIN"),
    ("SSL", None),
])
@pytest.mark.parametrize("which", ["worker", "incidents"])
def test_worker_app_connects_with_the_configured_kafka_security(
        tmp_path: Path, protocol: str, mechanism: str | None, which: str) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    app, close = _faust_app(which, _secure_settings(tmp_path, protocol, mechanism))
    try:
        auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    finally:
        close()
    assert auth["security_protocol"] == protocol
    if mechanism:
        assert auth["sasl_mechanism"] == mechanism
        assert auth["sasl_plain_username"] == "roriwatch"
        assert auth["sasl_plain_password"] == "kafka-secret-pw"
    if protocol.endswith("SSL"):
        assert auth["ssl_context"] is not None


def test_topic_admin_and_replay_producer_use_the_kafka_security_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    from streams.topics import _admin_config

    settings = _secure_settings(tmp_path, "SASL_SSL", "SCRAM-SHA-512")
    admin = _admin_config(settings, 5.0)
    assert admin.get("security_protocol") == "SASL_SSL"
    assert admin.get("sasl_mechanism") == "SCRAM-SHA-512"

    captured: dict[str, Any] = {}

    class FakeProducer:
        def __init__(self, **kwargs: Any) -> None:
            captured.update(kwargs)
            raise RuntimeError("stop here")

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    with pytest.raises(RuntimeError, match="stop here"):
        send_messages(settings, "any-topic", [(None, b"x")])
    assert captured.get("security_protocol") == "SASL_SSL"
    assert captured.get("sasl_plain_password") == "kafka-secret-pw"


def test_watch_lists_made_with_the_previous_key_still_match_during_a_rotation(
        tmp_path: Path) -> None:
    """docs/operations.md: keep the old key in RORIWATCH_HMAC_PREVIOUS_KEYS until the
    watch-lists are re-imported. Until then a list made with the old key must keep matching."""
    from types import SimpleNamespace

    from detectors import Fingerprinter
    from streams.app import create_app
    from streams.watchlists import Watchlist, save_watchlist

    phone = Synth(seed=77).mobile()
    old_key = b"retired-watchlist-key-0123456789"
    old = Fingerprinter(key=old_key, key_id="k0")
    save_watchlist(tmp_path, Watchlist(name="vip-old-key", key_id="k0",
                                       created="2024-05-01T00:00:00Z",
                                       fingerprints=frozenset({old.fingerprint(phone)})))
    # A list under a key that is neither current nor retired-but-kept stays skipped.
    stray = Fingerprinter(key=b"unknown-watchlist-key-0123456789", key_id="kx")
    save_watchlist(tmp_path, Watchlist(name="vip-stray-key", key_id="kx",
                                       created="2024-05-01T00:00:00Z",
                                       fingerprints=frozenset({stray.fingerprint(phone)})))
    settings = Settings(hmac_key=b"current-watchlist-key-0123456789", hmac_key_id="k1",
                        previous_hmac_keys=(("k0", old_key),), data_dir=str(tmp_path))
    app = create_app(settings)
    pipeline = app.pipeline
    message = SimpleNamespace(topic=settings.topic_log, partition=0, offset=5, key=b"host",
                              value=f"otp sent to phone={phone}".encode(), timestamp=None)

    async def process() -> list[Any]:
        return await pipeline.process_feed_event(SimpleNamespace(message=message))

    import asyncio

    try:
        outgoing = asyncio.run(process())
    finally:
        pipeline.close()
    [(_, _, value)] = outgoing
    alert = json.loads(value)
    assert alert["watchlists"] == ["vip-old-key"], "the old-key list was skipped"
    assert alert["watchlist_hits"] == {"vip-old-key": 1}
    assert alert["key_id"] == "k1"
    assert old.fingerprint(phone) not in value.decode(), "alerts carry current-key prints only"
    assert "vip-stray-key" in pipeline.watchlists.skipped


@pytest.mark.parametrize("which", ["worker", "incidents"])
def test_only_roriwatch_settings_configure_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    """Faust reads unprefixed variables of its own (BROKER_URL, PROCESSING_GUARANTEE,
    WEB_PORT, ...) and lets them override what create_app() passes. A stray BROKER_URL (other
    tools use the name) would send every document to another broker; Kubernetes service links
    inject WEB_PORT=tcp://... for a Service named "web", which makes Faust fail on an int."""
    monkeypatch.setenv("BROKER_URL", "kafka://somewhere-else.invalid:9092")
    monkeypatch.setenv("PROCESSING_GUARANTEE", "exactly_once")
    monkeypatch.setenv("STREAM_BUFFER_MAXSIZE", "5")
    monkeypatch.setenv("WEB_PORT", "tcp://10.0.0.1:80")
    monkeypatch.setenv("BROKER_SESSION_TIMEOUT", "7")
    settings = Settings(hmac_key=b"env-isolation-test-key-0123456789", data_dir=str(tmp_path),
                        kafka_session_timeout_s=45.0)
    app, close = _faust_app(which, settings)
    try:
        assert [str(url) for url in app.conf.broker] == [settings.broker]
        assert app.conf.processing_guarantee.value == "at_least_once"
        assert app.conf.stream_buffer_maxsize != 5
        assert isinstance(app.conf.web_port, int)
        assert app.conf.broker_session_timeout == 45.0
    finally:
        close()
