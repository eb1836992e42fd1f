"""Write alerts to Elasticsearch so that nothing is lost and nothing is duplicated.

Kafka redelivers (at-least-once, Faust issue #502 after rebalances), so every alert is written
with `_id = alert_id` and `op_type=index`: a redelivery overwrites the same document. Transient
failures (server down, 429, 5xx) are retried with exponential backoff and jitter, either a
bounded number of times or, as the pipeline runs it, until the server is back. Per-document
errors that no retry can fix (mapping conflicts, 400) go back to the caller as
(alert_id, reason) pairs for the dead-letter topic.

Alerts carry masked personal data, so document bodies never reach a log line or an exception
message: only alert ids, counts, HTTP statuses and Elasticsearch error types and reasons, the
latter with echoed field values redacted. Metrics go through hook callables so this module
imports no Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, SerializationError, TlsError
from elasticsearch import ApiError, AsyncElasticsearch, Elasticsearch

from streams.es_schema import alerts_alias

log = logging.getLogger(__name__)

DEFAULT_ALIAS = alerts_alias()
DEFAULT_CHUNK_SIZE = 500

# Per-document statuses that mean "the cluster is busy or a shard is moving", not "this
# document is bad". A per-item 500 is left out on purpose: it is deterministic for the document
# far more often than not, and retrying it forever would wedge the pipeline.
TRANSIENT_ITEM_STATUSES = frozenset({408, 429, 502, 503, 504})
# Whole-request statuses worth retrying: overload, and anything a proxy or a restarting node
# answers with.
TRANSIENT_REQUEST_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))

_RESPONSE_FILTER = "errors,items.*._id,items.*.status,items.*.error"
_REASON_LIMIT = 300

OnBulk = Callable[[float, int], None]
OnReason = Callable[[str], None]


class IndexingError(RuntimeError):
    """Indexing cannot go on and the documents are not the problem (auth, missing alias, ...).

    Nothing should be dead-lettered: fix the cause and redeliver; ids make that harmless.
    """

    def __init__(
        self,
        message: str,
        *,
        pending_ids: Sequence[str] = (),
        result: IndexResult | None = None,
    ) -> None:
        super().__init__(message)
        # Every id of the call that may not be written, so the caller can redeliver them all;
        # `result` still holds the permanent failures found before, to dead-letter them.
        self.pending_ids = list(pending_ids)
        self.result = result


class IndexingRetriesExhausted(IndexingError):
    """Transient failures outlasted the retry budget; `pending_ids` were not written."""


class IndexerStopped(IndexingError):
    """`stop()` was called while waiting for the server; `pending_ids` were not written."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying; `max_attempts=None` waits for the server however long it takes.

    Delays grow as base * 2**(n-1) up to max_delay_s, and each is drawn from the upper half of
    that range ("equal jitter") so that many workers recovering together do not hit the server
    in lockstep, while every retry still waits a meaningful time.
    """

    base_delay_s: float = 0.2
    max_delay_s: float = 30.0
    max_attempts: int | None = 5

    def __post_init__(self) -> None:
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for no limit)")

    @classmethod
    def until_back(cls, base_delay_s: float = 0.2, max_delay_s: float = 30.0) -> RetryPolicy:
        """Retry transient failures forever: the pipeline's mode, where dropping is not allowed."""
        return cls(base_delay_s=base_delay_s, max_delay_s=max_delay_s, max_attempts=None)

    def delay_s(self, retry_number: int, rng: random.Random) -> float:
        """Pick the wait before retry `retry_number` (1-based) with jitter from `rng`."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** min(retry_number - 1, 32))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)

    def exhausted(self, attempts: int) -> bool:
        """Tell whether `attempts` requests already used up the budget."""
        return self.max_attempts is not None and attempts >= self.max_attempts


@dataclass
class IndexResult:
    """Outcome of one `index_alerts` call."""

    indexed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    retries: int = 0

    @property
    def failed_ids(self) -> list[str]:
        """Ids to dead-letter, in input order."""
        return [alert_id for alert_id, _ in self.failed]


_Pending = list[tuple[str, dict[str, Any]]]

_VALUE_ECHOES = (
    # Elasticsearch quotes the start of a bad value in mapping errors; drop everything after.
    re.compile(r"Preview of field's value:.*", re.S),
    re.compile(r"(?i)the prefix of the first immense term is:.*", re.S),
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# Identifiers we hunt for are digit runs (ids, phones, accounts); positions like [1:15] are short.
_LONG_DIGITS = re.compile(r"\d{6,}")


def safe_reason(status: int, error: Any) -> str:
    """Describe an Elasticsearch item error without any document value in it.

    Field names (in [brackets]) stay, as they tell the reader which mapping to fix; quoted
    strings, value previews and long digit runs go, since they can be pieces of personal data.
    """
    if isinstance(error, Mapping):
        error_type = str(error.get("type") or "unknown_error")
        reason = str(error.get("reason") or "")
        caused = error.get("caused_by")
        cause_types = []
        while isinstance(caused, Mapping) and len(cause_types) < 3:
            cause_types.append(str(caused.get("type") or "?"))
            caused = caused.get("caused_by")
    else:
        error_type, reason, cause_types = "unknown_error", "", []
    for pattern in _VALUE_ECHOES:
        reason = pattern.sub("[value redacted]", reason)
    reason = _LONG_DIGITS.sub("…", _QUOTED.sub("'…'", reason))[:_REASON_LIMIT]
    text = f"{status} {error_type}"
    if reason:
        text += f": {reason}"
    if cause_types:
        text += f" (caused by {' > '.join(cause_types)})"
    return text


def _error_type(error: Any) -> str:
    if isinstance(error, Mapping) and error.get("type"):
        return str(error["type"])
    return "unknown_error"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _IndexerCore:
    """Everything but the I/O, shared by the sync and the asyncio indexer."""

    def __init__(
        self,
        client: Any,
        *,
        alias: str = DEFAULT_ALIAS,
        retry: RetryPolicy | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        refresh: bool | str | None = None,
        request_timeout_s: float | None = 30.0,
        stamp_indexed_at: bool = True,
        on_bulk: OnBulk | None = None,
        on_retry: OnReason | None = None,
        on_failure: OnReason | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._client = client
        self.alias = alias
        self.retry = retry or RetryPolicy()
        self.chunk_size = chunk_size
        self.refresh = refresh
        self.request_timeout_s = request_timeout_s
        self.stamp_indexed_at = stamp_indexed_at
        self._on_bulk = on_bulk
        self._on_retry = on_retry
        self._on_failure = on_failure
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    # --- hooks: a broken metrics callback must never lose an alert ---

    def _emit_bulk(self, duration_s: float, n_docs: int) -> None:
        if self._on_bulk is not None:
            try:
                self._on_bulk(duration_s, n_docs)
            except Exception:
                log.exception("on_bulk hook failed; ignored")

    def _emit(self, hook: OnReason | None, reason: str) -> None:
        if hook is not None:
            try:
                hook(reason)
            except Exception:
                log.exception("metrics hook failed for %s; ignored", reason)

    # --- request building and response reading ---

    def _prepare(self, alerts: Iterable[Mapping[str, Any]], result: IndexResult) -> _Pending:
        pending: _Pending = []
        now = _now_iso() if self.stamp_indexed_at else None
        for position, alert in enumerate(alerts):
            alert_id = alert.get("alert_id") if isinstance(alert, Mapping) else None
            if not isinstance(alert_id, str) or not alert_id:
                placeholder = f"<missing alert_id at position {position}>"
                result.failed.append((placeholder, "missing_alert_id: alert_id must be a string"))
                self._emit(self._on_failure, "missing_alert_id")
                continue
            doc = dict(alert)  # the caller's dict stays untouched
            if now is not None and not doc.get("indexed_at"):
                doc["indexed_at"] = now
            if "@timestamp" not in doc and doc.get("detected_at"):
                doc["@timestamp"] = doc["detected_at"]
            pending.append((alert_id, doc))
        return pending

    def _chunks(self, pending: _Pending) -> Iterable[_Pending]:
        for start in range(0, len(pending), self.chunk_size):
            yield pending[start : start + self.chunk_size]

    def _bulk_kwargs(self, chunk: _Pending) -> dict[str, Any]:
        operations: list[Any] = []
        for alert_id, doc in chunk:
            operations.append({"index": {"_index": self.alias, "_id": alert_id}})
            operations.append(doc)
        kwargs: dict[str, Any] = {
            "operations": operations,
            # Without it a missing alias makes Elasticsearch auto-create a concrete index with
            # guessed mappings, which blocks the alias for good.
            "require_alias": True,
            "filter_path": _RESPONSE_FILTER,
        }
        if self.refresh is not None:
            kwargs["refresh"] = self.refresh
        return kwargs

    def _target(self) -> Any:
        if self.request_timeout_s is None:
            return self._client
        return self._client.options(request_timeout=self.request_timeout_s)

    def _absorb(self, chunk: _Pending, response: Any, result: IndexResult) -> tuple[_Pending, str]:
        """Count successes and permanent failures; return what to retry and why."""
        body = getattr(response, "body", response)
        items = (body.get("items") or []) if isinstance(body, Mapping) else []
        if len(items) != len(chunk):
            raise IndexingError(
                f"bulk response has {len(items)} items for {len(chunk)} documents",
                pending_ids=[alert_id for alert_id, _ in chunk],
            )
        retry: _Pending = []
        retry_reason = ""
        for (alert_id, doc), item in zip(chunk, items, strict=True):
            info = next(iter(item.values()), {}) if isinstance(item, Mapping) else {}
            status = int(info.get("status", 0))
            error = info.get("error")
            if 200 <= status < 300:
                result.indexed += 1
            elif status in TRANSIENT_ITEM_STATUSES:
                retry.append((alert_id, doc))
                retry_reason = f"item_{status}"
            elif status == 404 and _error_type(error) == "index_not_found_exception":
                raise IndexingError(
                    f"write alias {self.alias!r} does not exist; run "
                    "streams.es_setup.setup_elasticsearch() before indexing",
                    pending_ids=[alert_id for alert_id, _ in chunk],
                )
            else:
                reason = safe_reason(status, error)
                result.failed.append((alert_id, reason))
                self._emit(self._on_failure, _error_type(error))
                log.warning("alert %s rejected by elasticsearch: %s", alert_id, reason)
        return retry, retry_reason

    def _transient_reason(self, exc: BaseException, chunk: _Pending) -> str:
        """Name a retryable request failure, or raise IndexingError for a permanent one."""
        ids = [alert_id for alert_id, _ in chunk]
        if isinstance(exc, TlsError):
            raise IndexingError(
                "TLS error talking to elasticsearch (certificate or protocol); fix the client "
                "configuration",
                pending_ids=ids,
            ) from None
        if isinstance(exc, ConnectionTimeout):
            return "timeout"
        if isinstance(exc, TransportConnectionError):
            return "connection_error"
        if isinstance(exc, ApiError):
            status = exc.meta.status
            if status in TRANSIENT_REQUEST_STATUSES:
                return f"http_{status}"
            # No chaining: the original exception's text is not ours to vet.
            raise IndexingError(
                f"elasticsearch rejected the bulk request: {safe_reason(status, _api_error(exc))}",
                pending_ids=ids,
            ) from None
        raise exc

    def _backoff(self, attempts: int, reason: str, chunk: _Pending, result: IndexResult) -> float:
        ids = [alert_id for alert_id, _ in chunk]
        if self.retry.exhausted(attempts):
            self._emit(self._on_failure, "retries_exhausted")
            raise IndexingRetriesExhausted(
                f"gave up on {len(ids)} alerts after {attempts} attempts (last: {reason})",
                pending_ids=ids,
                result=result,
            )
        delay = self.retry.delay_s(attempts, self._rng)
        result.retries += 1
        self._emit(self._on_retry, reason)
        log.warning(
            "elasticsearch bulk of %d alerts failed (%s); retry %d in %.2fs",
            len(chunk),
            reason,
            attempts,
            delay,
        )
        return delay

    def _drop_unserializable(self, chunk: _Pending, result: IndexResult) -> _Pending:
        # The serializer's own message quotes the whole document, so only the type is kept.
        serializer = self._client.transport.serializers.get_serializer("application/json")
        keep: _Pending = []
        for alert_id, doc in chunk:
            try:
                serializer.dumps(doc)
            except SerializationError as exc:
                cause = type(exc.errors[0]).__name__ if exc.errors else "error"
                result.failed.append((alert_id, f"serialization_error: {cause}"))
                self._emit(self._on_failure, "serialization_error")
                log.warning("alert %s cannot be encoded as JSON (%s)", alert_id, cause)
            else:
                keep.append((alert_id, doc))
        if len(keep) == len(chunk):
            raise IndexingError(
                "bulk request could not be serialized but every document can",
                pending_ids=[alert_id for alert_id, _ in chunk],
            ) from None
        return keep

    def _too_large(self, exc: BaseException) -> bool:
        return isinstance(exc, ApiError) and exc.meta.status == 413

    def _reject_oversized(self, chunk: _Pending, result: IndexResult) -> None:
        alert_id = chunk[0][0]
        result.failed.append((alert_id, "413 request_entity_too_large: document too large"))
        self._emit(self._on_failure, "request_entity_too_large")
        log.warning("alert %s is larger than the server accepts in one request", alert_id)


def _annotate(exc: IndexingError, result: IndexResult, later: Sequence[_Pending]) -> None:
    # Parts not tried yet are pending too: without them a caller would ack alerts never written.
    exc.pending_ids.extend(alert_id for part in later for alert_id, _ in part)
    exc.result = result


def _api_error(exc: ApiError) -> Any:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    error = body.get("error")
    if isinstance(error, Mapping):
        return error
    return {"type": str(exc.message)}


class AlertIndexer(_IndexerCore):
    """Blocking indexer for `elasticsearch.Elasticsearch`; run it from a thread in async code."""

    def __init__(
        self,
        client: Elasticsearch,
        *,
        sleep: Callable[[float], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(client, **options)
        self._stopped = threading.Event()
        self._sleep = sleep

    def stop(self) -> None:
        """Make a call that is waiting for the server give up now (used at shutdown)."""
        self._stopped.set()

    def index_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> IndexResult:
        """Write `alerts`; return the permanent failures for the dead-letter topic.

        Raises IndexingError when nothing the documents did can explain the failure, and
        IndexingRetriesExhausted / IndexerStopped when transient failures outlast the budget
        or a shutdown; in every case the pending ids are on the exception.
        """
        result = IndexResult()
        parts = list(self._chunks(self._prepare(alerts, result)))
        for number, chunk in enumerate(parts):
            try:
                self._index_chunk(chunk, result)
            except IndexingError as exc:
                _annotate(exc, result, parts[number + 1 :])
                raise
        return result

    def _index_chunk(self, chunk: _Pending, result: IndexResult) -> None:
        attempts = 0
        while chunk:
            attempts += 1
            started = time.perf_counter()
            try:
                response = self._target().bulk(**self._bulk_kwargs(chunk))
            except SerializationError:
                chunk = self._drop_unserializable(chunk, result)
                attempts -= 1
                continue
            except Exception as exc:
                if self._too_large(exc):
                    self._split(chunk, result)
                    return
                reason = self._transient_reason(exc, chunk)
                self._wait(self._backoff(attempts, reason, chunk, result), chunk)
                continue
            self._emit_bulk(time.perf_counter() - started, len(chunk))
            chunk, reason = self._absorb(chunk, response, result)
            if chunk:
                self._wait(self._backoff(attempts, reason, chunk, result), chunk)

    def _split(self, chunk: _Pending, result: IndexResult) -> None:
        if len(chunk) == 1:
            self._reject_oversized(chunk, result)
            return
        middle = len(chunk) // 2
        halves = [chunk[:middle], chunk[middle:]]
        for number, half in enumerate(halves):
            try:
                self._index_chunk(half, result)
            except IndexingError as exc:
                _annotate(exc, result, halves[number + 1 :])
                raise

    def _wait(self, delay: float, chunk: _Pending) -> None:
        if self._sleep is not None:
            self._sleep(delay)
            stopped = self._stopped.is_set()
        else:
            stopped = self._stopped.wait(delay)
        if stopped:
            raise IndexerStopped(
                "indexer stopped while waiting for elasticsearch",
                pending_ids=[alert_id for alert_id, _ in chunk],
            )


class AsyncAlertIndexer(_IndexerCore):
    """Indexer for `elasticsearch.AsyncElasticsearch` (needs aiohttp), for Faust agents.

    Waiting between retries is `asyncio.sleep`, so cancelling the task stops it at once.
    """

    def __init__(
        self,
        client: AsyncElasticsearch,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(client, **options)
        self._sleep = sleep
        self._stopped = False
        self._wakeup: asyncio.Event | None = None

    def stop(self) -> None:
        """Make a call that is waiting for the server give up now; call from the event loop."""
        self._stopped = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def index_alerts(self, alerts: Iterable[Mapping[str, Any]]) -> IndexResult:
        """Write `alerts`; same contract as `AlertIndexer.index_alerts`."""
        result = IndexResult()
        parts = list(self._chunks(self._prepare(alerts, result)))
        for number, chunk in enumerate(parts):
            try:
                await self._index_chunk(chunk, result)
            except IndexingError as exc:
                _annotate(exc, result, parts[number + 1 :])
                raise
        return result

    async def _index_chunk(self, chunk: _Pending, result: IndexResult) -> None:
        attempts = 0
        while chunk:
            attempts += 1
            started = time.perf_counter()
            try:
                response = await self._target().bulk(**self._bulk_kwargs(chunk))
            except SerializationError:
                chunk = self._drop_unserializable(chunk, result)
                attempts -= 1
                continue
            except Exception as exc:
                if self._too_large(exc):
                    await self._split(chunk, result)
                    return
                reason = self._transient_reason(exc, chunk)
                await self._wait(self._backoff(attempts, reason, chunk, result), chunk)
                continue
            self._emit_bulk(time.perf_counter() - started, len(chunk))
            chunk, reason = self._absorb(chunk, response, result)
            if chunk:
                await self._wait(self._backoff(attempts, reason, chunk, result), chunk)

    async def _split(self, chunk: _Pending, result: IndexResult) -> None:
        if len(chunk) == 1:
            self._reject_oversized(chunk, result)
            return
        middle = len(chunk) // 2
        halves = [chunk[:middle], chunk[middle:]]
        for number, half in enumerate(halves):
            try:
                await self._index_chunk(half, result)
            except IndexingError as exc:
                _annotate(exc, result, halves[number + 1 :])
                raise

    async def _wait(self, delay: float, chunk: _Pending) -> None:
        if self._sleep is not None:
            await self._sleep(delay)
        elif not self._stopped:
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
        if self._stopped:
            raise IndexerStopped(
                "indexer stopped while waiting for elasticsearch",
                pending_ids=[alert_id for alert_id, _ in chunk],
            )
