"""The substrate does what the pipeline relies on.

noida-db stands in for Kafka and Elasticsearch here; these tests pin down the behaviour our code
assumes (partitioning by key, resuming from committed offsets, idempotent writes by _id, per-item
bulk errors) so that a change of substrate, or of its version, shows up as a failing test rather
than as lost or duplicated alerts.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from prometheus_client import CollectorRegistry, Counter, start_http_server

POLL_DEADLINE_S = 20


@pytest.fixture
def topic(kafka_admin: KafkaAdminClient, unique_name: str) -> Iterator[str]:
    kafka_admin.create_topics([NewTopic(unique_name, num_partitions=3, replication_factor=1)])
    yield unique_name
    kafka_admin.delete_topics([unique_name])


@pytest.fixture
def index(es_client: Elasticsearch, unique_name: str) -> Iterator[str]:
    yield unique_name
    es_client.indices.delete(index=unique_name, ignore_unavailable=True)


def _consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
    )


def _poll(consumer: KafkaConsumer, count: int) -> list:
    """Poll until `count` records arrived; bounded so a broken broker fails instead of hanging."""
    records: list = []
    deadline = time.monotonic() + POLL_DEADLINE_S
    while len(records) < count and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500, max_records=count - len(records))
        for partition_records in batch.values():
            records.extend(partition_records)
    return records


def _produce(bootstrap: str, topic: str, messages: list[tuple[str, str]]) -> list:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=k.encode(), value=v.encode()) for k, v in messages]
        producer.flush(timeout=10)
        return [f.get(timeout=10) for f in futures]
    finally:
        producer.close(timeout=5)


# --- Kafka -------------------------------------------------------------------------------------


def test_admin_creates_topic_with_three_partitions(
    kafka_admin: KafkaAdminClient, topic: str
) -> None:
    assert topic in kafka_admin.list_topics()
    (described,) = kafka_admin.describe_topics([topic])
    # kafka-python 3 says partition_index, 2.x said partition.
    numbers = sorted(p.get("partition_index", p.get("partition")) for p in described["partitions"])
    assert numbers == [0, 1, 2]


def test_keyed_messages_stay_on_one_partition_in_order(kafka_bootstrap: str, topic: str) -> None:
    messages = [(f"key-{i % 10}", f"value-{i}") for i in range(300)]
    sent = _produce(kafka_bootstrap, topic, messages)

    partition_of: dict[str, set[int]] = {}
    for (key, _), meta in zip(messages, sent, strict=True):
        partition_of.setdefault(key, set()).add(meta.partition)
    assert all(len(parts) == 1 for parts in partition_of.values()), partition_of
    assert {p for parts in partition_of.values() for p in parts} == {0, 1, 2}

    consumer = _consumer(kafka_bootstrap, topic, f"{topic}-reader")
    try:
        records = _poll(consumer, len(messages))
    finally:
        consumer.close()
    assert len(records) == len(messages)
    by_key: dict[str, list[int]] = {}
    for record in records:
        by_key.setdefault(record.key.decode(), []).append(int(record.value.decode().split("-")[1]))
    # Order is guaranteed per partition, hence per key: what incident grouping relies on.
    assert all(values == sorted(values) for values in by_key.values())
    assert sum(len(v) for v in by_key.values()) == len(messages)


def test_consumer_group_resumes_from_committed_offset(kafka_bootstrap: str, topic: str) -> None:
    messages = [(f"key-{i % 7}", f"value-{i}") for i in range(120)]
    _produce(kafka_bootstrap, topic, messages)
    group = f"{topic}-group"

    first = _consumer(kafka_bootstrap, topic, group)
    try:
        committed_batch = _poll(first, 50)
        assert len(committed_batch) == 50
        first.commit()
        committed = {tp: first.committed(tp) for tp in first.assignment()}
        # Read further but do not commit: a crash here must make these come back.
        uncommitted_batch = _poll(first, 30)
        assert len(uncommitted_batch) == 30
    finally:
        first.close(autocommit=False)

    assert sum(committed.values()) == 50

    second = _consumer(kafka_bootstrap, topic, group)
    try:
        rest = _poll(second, len(messages) - 50)
        # Nothing more than the uncommitted remainder may arrive.
        extra = second.poll(timeout_ms=500)
    finally:
        second.close(autocommit=False)

    assert not any(extra.values())
    seen_first = {r.value for r in committed_batch}
    seen_second = {r.value for r in rest}
    assert len(rest) == len(messages) - 50
    assert not seen_first & seen_second, "committed messages were delivered again"
    assert {r.value for r in uncommitted_batch} <= seen_second
    first_offsets: dict[TopicPartition, int] = {}
    for record in rest:
        tp = TopicPartition(record.topic, record.partition)
        first_offsets[tp] = min(first_offsets.get(tp, record.offset), record.offset)
    for tp, offset in first_offsets.items():
        assert offset == (committed.get(tp) or 0)


# --- Elasticsearch -----------------------------------------------------------------------------

MAPPING = {
    "dynamic": False,
    "properties": {
        "alert_id": {"type": "keyword"},
        "severity_rank": {"type": "integer"},
        "detected_at": {"type": "date"},
        "title": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
    },
}


def test_index_with_explicit_mapping(es_client: Elasticsearch, index: str) -> None:
    es_client.indices.create(index=index, mappings=MAPPING, settings={"number_of_shards": 1})
    props = es_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert props["alert_id"] == {"type": "keyword"}
    assert props["severity_rank"] == {"type": "integer"}
    assert props["title"]["fields"]["keyword"]["type"] == "keyword"

    es_client.index(
        index=index,
        id="a-1",
        document={
            "alert_id": "a-1",
            "severity_rank": 3,
            "detected_at": "2024-05-01T10:00:00Z",
            "title": "Danh sách khách hàng",
            "unmapped": "kept in _source only",
        },
        refresh=True,
    )
    hits = es_client.search(index=index, query={"term": {"alert_id": "a-1"}})["hits"]
    assert hits["total"]["value"] == 1
    assert hits["hits"][0]["_source"]["unmapped"] == "kept in _source only"
    # dynamic: false keeps an unknown field out of the mapping (what protects us from mapping
    # explosions). Real Elasticsearch also makes it unsearchable; noida-db still matches it, so
    # nothing may rely on that.
    after = es_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert "unmapped" not in after
    ranged = es_client.count(index=index, query={"range": {"severity_rank": {"gte": 3}}})
    assert ranged["count"] == 1


def test_bulk_with_explicit_ids_twice_gives_one_doc_per_id(
    es_client: Elasticsearch, index: str
) -> None:
    es_client.indices.create(index=index, mappings=MAPPING)
    operations = []
    for i in range(50):
        operations.append({"index": {"_index": index, "_id": f"alert-{i}"}})
        operations.append({"alert_id": f"alert-{i}", "severity_rank": 1 + i % 4})

    first = es_client.bulk(operations=operations, refresh="wait_for")
    second = es_client.bulk(operations=operations, refresh="wait_for")

    assert not first["errors"] and not second["errors"]
    assert {item["index"]["result"] for item in first["items"]} == {"created"}
    assert {item["index"]["result"] for item in second["items"]} == {"updated"}
    assert {item["index"]["_version"] for item in second["items"]} == {2}
    assert es_client.count(index=index)["count"] == 50


def test_bulk_reports_errors_per_item(es_client: Elasticsearch, index: str) -> None:
    es_client.indices.create(index=index, mappings=MAPPING)
    operations = [
        {"index": {"_index": index, "_id": "good-1"}},
        {"alert_id": "good-1", "severity_rank": 2},
        {"index": {"_index": index, "_id": "bad-rank"}},
        {"severity_rank": "not a number"},
        {"index": {"_index": index, "_id": "bad-date"}},
        {"detected_at": "yesterday-ish"},
        {"create": {"_index": index, "_id": "good-1"}},
        {"alert_id": "good-1"},
        {"index": {"_index": index, "_id": "good-2"}},
        {"alert_id": "good-2", "severity_rank": 4},
    ]
    response = es_client.bulk(operations=operations, refresh="wait_for")

    assert response["errors"] is True
    statuses = [
        (op, body["_id"], body["status"]) for item in response["items"] for op, body in item.items()
    ]
    assert statuses == [
        ("index", "good-1", 201),
        ("index", "bad-rank", 400),
        ("index", "bad-date", 400),
        ("create", "good-1", 409),
        ("index", "good-2", 201),
    ]
    errors = {
        body["_id"]: body["error"]["type"]
        for item in response["items"]
        for body in item.values()
        if "error" in body
    }
    assert errors["bad-rank"] in {"document_parsing_exception", "mapper_parsing_exception"}
    assert errors["bad-date"] in {"document_parsing_exception", "mapper_parsing_exception"}
    assert errors["good-1"] == "version_conflict_engine_exception"
    assert es_client.count(index=index)["count"] == 2


# --- Prometheus --------------------------------------------------------------------------------


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def _local_targets(prometheus_url: str) -> list[str]:
    # Right after start Prometheus may not have loaded its targets yet: give it a few seconds.
    deadline = time.monotonic() + 10
    while True:
        targets = _get_json(f"{prometheus_url}/api/v1/targets")["data"]["activeTargets"]
        found = [
            t["labels"]["instance"]
            for t in targets
            if t["labels"].get("job") == "roriwatch"
            and t["labels"]["instance"].startswith("127.0.0.1:")
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_prometheus_scrapes_a_configured_target(prometheus_url: str) -> None:
    candidates = _local_targets(prometheus_url)
    ports = [int(instance.rsplit(":", 1)[1]) for instance in candidates]
    free = [port for port in ports if _free(port)]
    if not free:
        pytest.skip(f"every configured scrape target is in use ({candidates}); nothing to test")
    port = free[0]

    registry = CollectorRegistry()
    Counter("roriwatch_substrate_check", "set by the services test", registry=registry).inc()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        query = urllib.parse.quote(f'up{{job="roriwatch",instance="127.0.0.1:{port}"}}')
        deadline = time.monotonic() + 20  # scrape_interval is 2s
        value = None
        while time.monotonic() < deadline:
            result = _get_json(f"{prometheus_url}/api/v1/query?query={query}")["data"]["result"]
            value = result[0]["value"][1] if result else None
            if value == "1":
                break
            time.sleep(0.5)
        assert value == "1", f"Prometheus never saw 127.0.0.1:{port} up (last value {value})"
    finally:
        server.shutdown()
        thread.join(timeout=5)
