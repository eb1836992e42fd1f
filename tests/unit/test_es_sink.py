"""AlertIndexer against a scripted fake client: retry and backoff, error separation, privacy."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, JsonSerializer, NodeConfig
from elastic_transport import ConnectionError as TransportConnectionError
from elasticsearch import ApiError
from hypothesis import given
from hypothesis import strategies as st

from streams.es_sink import (
    AlertIndexer,
    AsyncAlertIndexer,
    IndexerStopped,
    IndexingError,
    IndexingRetriesExhausted,
    RetryPolicy,
    safe_reason,
)

SECRET = "079201001234"  # a citizen-id-shaped value that must never reach a log or an error


def alert(n: int, **extra: Any) -> dict[str, Any]:
    doc = {
        "alert_id": f"a-{n}",
        "detected_at": "2024-05-01T10:00:00Z",
        "severity": "high",
        "samples": [{"detector": "vn_citizen_id", "masked": SECRET, "confidence": 0.9}],
    }
    doc.update(extra)
    return doc


def api_error(status: int, error_type: str = "some_exception", reason: str = "") -> ApiError:
    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "localhost", 9200),
    )
    body = {"error": {"type": error_type, "reason": reason}, "status": status}
    return ApiError(error_type, meta=meta, body=body)


def ids_of(call: dict[str, Any]) -> list[str]:
    return [op["index"]["_id"] for op in call["operations"][::2]]


def respond(*statuses: int | tuple[int, dict[str, Any]]):
    """A bulk response with one item per status, for the ids of the request."""

    def build(call: dict[str, Any]) -> dict[str, Any]:
        ids = ids_of(call)
        assert len(ids) == len(statuses), "script does not match the request"
        items = []
        for alert_id, status in zip(ids, statuses, strict=True):
            error = None
            if isinstance(status, tuple):
                status, error = status
            body: dict[str, Any] = {"_id": alert_id, "status": status}
            if error is not None:
                body["error"] = error
            items.append({"index": body})
        return {"errors": any(s != 201 for s in statuses), "items": items}

    return build


def all_ok(call: dict[str, Any]) -> dict[str, Any]:
    return {"errors": False, "items": [{"index": {"_id": i, "status": 201}} for i in ids_of(call)]}


MAPPING_ERROR = {
    "type": "document_parsing_exception",
    "reason": f"[1:15] failed to parse field [content_bytes] of type [long] in document with id "
    f"'a-1'. Preview of field's value: '{SECRET}'",
    "caused_by": {"type": "illegal_argument_exception", "reason": f'For input string: "{SECRET}"'},
}


class FakeClient:
    """Plays back a script: each step is an exception to raise or a function of the request."""

    def __init__(self, *script: Any, serialize: bool = False) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []
        self.options_seen: list[dict[str, Any]] = []
        self.serialize = serialize
        self.transport = SimpleNamespace(
            serializers=SimpleNamespace(get_serializer=lambda mimetype: JsonSerializer())
        )

    def options(self, **kwargs: Any) -> FakeClient:
        self.options_seen.append(kwargs)
        return self

    def bulk(self, **kwargs: Any) -> dict[str, Any]:
        if self.serialize:  # like the real client: encoding fails before anything is sent
            for op in kwargs["operations"]:
                JsonSerializer().dumps(op)
        self.calls.append(kwargs)
        step = self.script.pop(0) if self.script else all_ok
        if isinstance(step, BaseException):
            raise step
        return step(kwargs)


class AsyncFakeClient(FakeClient):
    async def bulk(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.sleep(0)
        return FakeClient.bulk(self, **kwargs)


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.bulks: list[tuple[float, int]] = []
        self.retries: list[str] = []
        self.failures: list[str] = []

    def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)

    async def async_sleep(self, delay: float) -> None:
        self.sleeps.append(delay)

    def hooks(self) -> dict[str, Any]:
        return {
            "on_bulk": lambda d, n: self.bulks.append((d, n)),
            "on_retry": self.retries.append,
            "on_failure": self.failures.append,
        }


def make(client: FakeClient, rec: Recorder, **options: Any) -> AlertIndexer:
    options.setdefault("retry", RetryPolicy(base_delay_s=0.1, max_delay_s=2.0, max_attempts=5))
    return AlertIndexer(client, sleep=rec.sleep, rng=random.Random(7), **rec.hooks(), **options)


# --- the happy path ----------------------------------------------------------------------------


def test_writes_each_alert_by_its_id_to_the_alias_with_op_type_index() -> None:
    client, rec = FakeClient(), Recorder()
    alerts = [alert(1), alert(2, indexed_at="2024-05-01T10:00:05Z")]
    result = make(client, rec).index_alerts(alerts)

    assert result.indexed == 2 and result.failed == [] and result.retries == 0
    (call,) = client.calls
    assert call["require_alias"] is True
    actions = call["operations"][::2]
    assert actions == [
        {"index": {"_index": "roriwatch-alerts", "_id": "a-1"}},
        {"index": {"_index": "roriwatch-alerts", "_id": "a-2"}},
    ]
    docs = call["operations"][1::2]
    assert docs[0]["@timestamp"] == "2024-05-01T10:00:00Z"
    assert docs[0]["indexed_at"].endswith("Z")
    assert docs[1]["indexed_at"] == "2024-05-01T10:00:05Z"
    assert "indexed_at" not in alerts[0], "the caller's dict must not be modified"
    assert rec.bulks and rec.bulks[0][1] == 2
    assert rec.retries == [] and rec.failures == []


def test_splits_large_batches_into_chunks() -> None:
    client, rec = FakeClient(), Recorder()
    result = make(client, rec, chunk_size=500).index_alerts(alert(i) for i in range(1200))
    assert result.indexed == 1200
    assert [len(ids_of(c)) for c in client.calls] == [500, 500, 200]
    assert [n for _, n in rec.bulks] == [500, 500, 200]


def test_passes_refresh_and_request_timeout() -> None:
    client, rec = FakeClient(), Recorder()
    make(client, rec, refresh="wait_for", request_timeout_s=7.5).index_alerts([alert(1)])
    assert client.calls[0]["refresh"] == "wait_for"
    assert client.options_seen == [{"request_timeout": 7.5}]


# --- transient failures ------------------------------------------------------------------------


def test_connection_errors_are_retried_with_growing_delays() -> None:
    down = TransportConnectionError("connection refused")
    client, rec = FakeClient(down, down, down, all_ok), Recorder()
    result = make(client, rec).index_alerts([alert(1), alert(2)])

    assert result.indexed == 2 and result.retries == 3
    assert rec.retries == ["connection_error"] * 3
    assert len(rec.sleeps) == 3
    # equal jitter: each delay is in [ceiling/2, ceiling] with ceiling = 0.1 * 2**(n-1)
    for n, delay in enumerate(rec.sleeps, start=1):
        ceiling = 0.1 * 2 ** (n - 1)
        assert ceiling / 2 <= delay <= ceiling
    assert len(rec.bulks) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_request_level_overload_and_5xx_are_retried(status: int) -> None:
    client, rec = FakeClient(api_error(status), all_ok), Recorder()
    result = make(client, rec).index_alerts([alert(1)])
    assert result.indexed == 1
    assert rec.retries == [f"http_{status}"]


def test_only_items_rejected_with_429_or_503_are_resent() -> None:
    client = FakeClient(respond(201, 429, 201, 503), all_ok)
    rec = Recorder()
    result = make(client, rec).index_alerts([alert(i) for i in range(4)])

    assert result.indexed == 4 and result.failed == []
    assert ids_of(client.calls[1]) == ["a-1", "a-3"]
    assert len(rec.retries) == 1 and rec.retries[0] in {"item_429", "item_503"}


def test_gives_up_after_max_attempts_and_says_which_ids_are_pending() -> None:
    down = TransportConnectionError("connection refused")
    client, rec = FakeClient(*[down] * 10), Recorder()
    indexer = make(client, rec, retry=RetryPolicy(base_delay_s=0.01, max_attempts=3))
    with pytest.raises(IndexingRetriesExhausted) as info:
        indexer.index_alerts([alert(1), alert(2)])

    assert info.value.pending_ids == ["a-1", "a-2"]
    assert len(client.calls) == 3
    assert len(rec.sleeps) == 2
    assert rec.failures == ["retries_exhausted"]


def test_pending_ids_include_chunks_not_tried_yet() -> None:
    down = TransportConnectionError("connection refused")
    client = FakeClient(respond(201, (400, MAPPING_ERROR)), *[down] * 10)
    rec = Recorder()
    indexer = make(client, rec, chunk_size=2, retry=RetryPolicy(base_delay_s=0.01, max_attempts=2))
    with pytest.raises(IndexingRetriesExhausted) as info:
        indexer.index_alerts([alert(i) for i in range(6)])
    # chunk 1 written (one permanent failure), chunk 2 gave up, chunk 3 never tried
    assert info.value.pending_ids == ["a-2", "a-3", "a-4", "a-5"]
    assert info.value.result is not None
    assert info.value.result.indexed == 1
    assert info.value.result.failed_ids == ["a-1"]


def test_unlimited_mode_waits_until_the_server_is_back() -> None:
    down = TransportConnectionError("connection refused")
    client, rec = FakeClient(*[down] * 40, all_ok), Recorder()
    indexer = make(client, rec, retry=RetryPolicy.until_back(base_delay_s=0.1, max_delay_s=1.5))
    result = indexer.index_alerts([alert(1)])

    assert result.indexed == 1 and result.retries == 40
    assert max(rec.sleeps) <= 1.5
    assert rec.sleeps[-1] >= 0.75, "delays should have reached the cap"


def test_stop_interrupts_a_waiting_indexer() -> None:
    down = TransportConnectionError("connection refused")
    client = FakeClient(*[down] * 1000)
    indexer = AlertIndexer(client, retry=RetryPolicy.until_back(base_delay_s=0.05, max_delay_s=60))
    threading.Timer(0.3, indexer.stop).start()
    started = time.monotonic()
    with pytest.raises(IndexerStopped) as info:
        indexer.index_alerts([alert(1)])
    assert time.monotonic() - started < 5
    assert info.value.pending_ids == ["a-1"]


# --- permanent failures ------------------------------------------------------------------------


def test_mapping_errors_are_returned_not_retried() -> None:
    client = FakeClient(respond(201, (400, MAPPING_ERROR), 201))
    rec = Recorder()
    result = make(client, rec).index_alerts([alert(0), alert(1), alert(2)])

    assert result.indexed == 2
    assert result.failed_ids == ["a-1"]
    reason = result.failed[0][1]
    assert reason.startswith("400 document_parsing_exception")
    assert "[content_bytes]" in reason, "the field name tells which mapping to fix"
    assert SECRET not in reason
    assert len(client.calls) == 1 and rec.sleeps == []
    assert rec.failures == ["document_parsing_exception"]


def test_permanent_and_transient_errors_in_one_response_are_separated() -> None:
    conflict = {"type": "illegal_argument_exception", "reason": "mapper [x] cannot be changed"}
    client = FakeClient(respond((400, conflict), 429, 201), respond(201))
    rec = Recorder()
    result = make(client, rec).index_alerts([alert(0), alert(1), alert(2)])

    assert result.indexed == 2
    assert result.failed_ids == ["a-0"]
    assert ids_of(client.calls[1]) == ["a-1"]
    assert rec.retries == ["item_429"]


def test_request_level_client_error_raises_without_retry() -> None:
    client = FakeClient(api_error(401, "security_exception", "missing authentication"))
    rec = Recorder()
    with pytest.raises(IndexingError) as info:
        make(client, rec).index_alerts([alert(1)])
    assert "401 security_exception" in str(info.value)
    assert info.value.pending_ids == ["a-1"]
    assert rec.sleeps == []
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_write_alias_raises_instead_of_dead_lettering() -> None:
    missing = {"type": "index_not_found_exception", "reason": "no such index [roriwatch-alerts]"}
    client, rec = FakeClient(respond((404, missing))), Recorder()
    with pytest.raises(IndexingError, match="setup_elasticsearch"):
        make(client, rec).index_alerts([alert(1)])


def test_oversized_request_is_split_until_the_culprit_is_alone() -> None:
    too_big = api_error(413, "request_entity_too_large")

    def only_small(call: dict[str, Any]) -> dict[str, Any]:
        if "a-2" in ids_of(call):
            raise too_big
        return all_ok(call)

    client, rec = FakeClient(*[only_small] * 10), Recorder()
    result = make(client, rec).index_alerts([alert(i) for i in range(4)])
    assert result.indexed == 3
    assert result.failed_ids == ["a-2"]
    assert rec.failures == ["request_entity_too_large"]


def test_documents_without_alert_id_fail_alone() -> None:
    client, rec = FakeClient(), Recorder()
    result = make(client, rec).index_alerts([alert(1), {"severity": "low"}, alert(3)])
    assert result.indexed == 2
    assert result.failed == [
        ("<missing alert_id at position 1>", "missing_alert_id: alert_id must be a string")
    ]


def test_unserializable_document_is_failed_and_the_rest_written() -> None:
    client, rec = FakeClient(serialize=True), Recorder()
    bad = alert(2, extra=object())
    result = make(client, rec).index_alerts([alert(1), bad, alert(3)])
    assert result.indexed == 2
    assert result.failed_ids == ["a-2"]
    assert result.failed[0][1].startswith("serialization_error")
    assert SECRET not in result.failed[0][1]


def test_broken_metrics_hooks_do_not_lose_alerts() -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("metrics backend down")

    client = FakeClient(TransportConnectionError("down"), respond(201, (400, MAPPING_ERROR)))
    indexer = AlertIndexer(
        client,
        sleep=lambda _: None,
        on_bulk=boom,
        on_retry=boom,
        on_failure=boom,
    )
    result = indexer.index_alerts([alert(0), alert(1)])
    assert result.indexed == 1 and result.failed_ids == ["a-1"]


# --- privacy -----------------------------------------------------------------------------------


def test_no_document_content_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages: list[str] = []
    scenarios: list[tuple[Any, ...]] = [
        (TransportConnectionError("down"), respond(201, (400, MAPPING_ERROR), 429), respond(201)),
        (api_error(400, "x_content_parse_exception", f"unexpected [{SECRET}]"),),
        (*[TransportConnectionError("down")] * 5,),
    ]
    for script in scenarios:
        client, rec = FakeClient(*script, serialize=True), Recorder()
        try:
            result = make(client, rec).index_alerts([alert(0), alert(1), alert(2)])
            messages.extend(reason for _, reason in result.failed)
        except IndexingError as exc:
            messages.append(str(exc))
            messages.append(repr(exc))
    client, rec = FakeClient(serialize=True), Recorder()
    messages.extend(r for _, r in make(client, rec).index_alerts([alert(9, x={SECRET})]).failed)
    messages.extend(record.getMessage() for record in caplog.records)
    assert messages
    leaked = [m for m in messages if SECRET in m]
    assert leaked == []


def test_safe_reason_keeps_field_names_and_drops_values() -> None:
    reason = safe_reason(400, MAPPING_ERROR)
    assert reason.startswith("400 document_parsing_exception: ")
    assert "[content_bytes]" in reason and "[long]" in reason
    assert "(caused by illegal_argument_exception)" in reason
    assert SECRET not in reason
    assert safe_reason(500, None) == "500 unknown_error"


@given(st.text(max_size=200))
def test_safe_reason_never_echoes_a_previewed_value(value: str) -> None:
    error = {
        "type": "document_parsing_exception",
        "reason": f"failed to parse field [x] of type [long]. Preview of field's value: '{value}'",
    }
    assert safe_reason(400, error) == (
        "400 document_parsing_exception: failed to parse field [x] of type [long]. [value redacted]"
    )


# --- retry policy ------------------------------------------------------------------------------


@given(
    base=st.floats(min_value=0.001, max_value=5),
    cap=st.floats(min_value=5, max_value=120),
    retry_number=st.integers(min_value=1, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delays_stay_between_half_and_full_capped_exponential(
    base: float, cap: float, retry_number: int, seed: int
) -> None:
    policy = RetryPolicy(base_delay_s=base, max_delay_s=cap, max_attempts=None)
    delay = policy.delay_s(retry_number, random.Random(seed))
    ceiling = min(cap, base * 2 ** min(retry_number - 1, 32))
    assert ceiling / 2 <= delay <= ceiling <= cap


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=5, max_delay_s=1)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    assert RetryPolicy.until_back().max_attempts is None
    assert not RetryPolicy.until_back().exhausted(10**9)


# --- asyncio variant ---------------------------------------------------------------------------


def test_async_indexer_retries_and_separates_errors() -> None:
    client = AsyncFakeClient(
        TransportConnectionError("down"), respond(201, (400, MAPPING_ERROR), 503), respond(201)
    )
    rec = Recorder()
    indexer = AsyncAlertIndexer(client, sleep=rec.async_sleep, rng=random.Random(1), **rec.hooks())
    result = asyncio.run(indexer.index_alerts([alert(0), alert(1), alert(2)]))
    assert result.indexed == 2 and result.failed_ids == ["a-1"]
    assert rec.retries == ["connection_error", "item_503"]
    assert ids_of(client.calls[-1]) == ["a-2"]


def test_async_indexer_stop_and_cancel_end_the_wait() -> None:
    async def scenario() -> None:
        down = TransportConnectionError("down")
        indexer = AsyncAlertIndexer(
            AsyncFakeClient(*[down] * 1000),
            retry=RetryPolicy.until_back(base_delay_s=0.05, max_delay_s=60),
        )
        task = asyncio.create_task(indexer.index_alerts([alert(1)]))
        await asyncio.sleep(0.3)
        indexer.stop()
        with pytest.raises(IndexerStopped):
            await asyncio.wait_for(task, timeout=5)

        other = AsyncAlertIndexer(
            AsyncFakeClient(*[down] * 1000),
            retry=RetryPolicy.until_back(base_delay_s=0.05, max_delay_s=60),
        )
        task = asyncio.create_task(other.index_alerts([alert(1)]))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    asyncio.run(scenario())
