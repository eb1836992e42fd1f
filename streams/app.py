"""The Faust application: feed topics → scan → alerts topic → Elasticsearch.

Two agents, both thin (STYLE.md §6): decode, call a pure function, send.

* ``scan_documents`` reads all feed topics, decodes each record (``streams.decode``), scans it
  with the detection core and sends one alert per document over the threshold
  (``streams.alerts``), or a dead-letter record.
* ``index_alerts`` reads the alerts topic and bulk-writes to Elasticsearch with
  ``_id = alert_id`` (``streams.es_sink``), retrying until Elasticsearch accepts the batch.

Delivery is at-least-once and acknowledged by hand: a record's offset becomes committable only
after what it produced (an alert, a dead letter, an indexed document) is confirmed. On a crash,
a shutdown or a rebalance, unconfirmed records are simply read again; deterministic alert ids
make that harmless. Every per-message failure is caught, counted and dead-lettered; nothing
escapes an agent's loop.

Module deliberately without ``from __future__ import annotations``: Faust resolves record
field annotations when the class is created.
"""

import asyncio
import logging
import time
import traceback
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import faust
from elasticsearch import AsyncElasticsearch, Elasticsearch

from detectors import (
    DocumentAccumulator,
    DocumentSummary,
    Finding,
    Fingerprinter,
    Scanner,
    load_rules,
    summarize,
)
from detectors.summary import SEVERITY_RANK
from streams.alerts import (
    MAX_FINDINGS_IN_ALERT,
    build_alert,
    make_redactor,
)
from streams.decode import (
    DeadLetter,
    DecodedDocument,
    MessageInfo,
    deadletter_record,
    decode_alert_message,
    decode_feed_message,
    key_as_text,
    utc_now_iso,
)
from streams.es_schema import alerts_alias
from streams.es_setup import setup_elasticsearch
from streams.es_sink import AsyncAlertIndexer, IndexingError, IndexResult, RetryPolicy
from streams.faust_config import connection_options
from streams.jsonio import es_serializers
from streams.metrics import PipelineMetrics
from streams.settings import Settings
from streams.textsource import scan_chunks
from streams.watchlists import WatchlistError, WatchlistIndex, apply_watchlist_hits

log = logging.getLogger(__name__)

# Documents up to this many characters are scanned on the event loop (~20 ms at the slowest
# measured scan speed); larger ones go to a worker thread in windows of SCAN_WINDOW_CHARS, so
# the loop keeps heartbeating, committing and fetching. See docs/pipeline.md.
INLINE_SCAN_CHARS = 128 * 1024
SCAN_WINDOW_CHARS = 1_000_000
SCAN_BATCH = 64
SCAN_BATCH_WAIT_S = 0.05
INDEX_BATCH = 500
INDEX_BATCH_WAIT_S = 0.2
SEND_RETRY_MAX_S = 30.0
ES_UNAVAILABLE_RETRY_MAX_S = 30.0
LAG_INTERVAL_S = 5.0


class AlertRecord(faust.Record, serializer="json", include_metadata=False):
    """One alert on the alerts topic: a document's summary, never its content."""

    alert_id: str
    schema_version: int
    detected_at: str
    feed: str
    site: str
    item_id: str
    url: str | None
    title: str | None
    author: str | None
    collector_source: str | None
    published_at: str | None
    fetched_at: str
    content_sha256: str
    content_bytes: int
    content_truncated: bool
    key_id: str
    rules_version: str
    severity: str
    severity_rank: int
    reasons: list[str]
    detectors: list[str]
    counts: dict[str, int]
    findings_total: int
    distinct_fingerprints: int
    estimated_records: int
    fingerprints: list[str]
    fingerprints_truncated: bool
    samples: list[dict[str, Any]]
    findings: list[dict[str, Any]]
    findings_truncated: bool
    decode_warnings: list[str]
    source: dict[str, Any]
    watchlists: list[str]
    watchlist_hits: dict[str, int]
    keyword_watchlists: list[str]
    distinct_estimated: bool = False  # last: alerts written before it lack the field


class DeadLetterRecord(faust.Record, serializer="json", include_metadata=False):
    """A message that could not be processed: where it is, why, and no content by default."""

    error: str
    detail: str
    stage: str
    topic: str
    partition: int
    offset: int
    key: str | None
    content_sha256: str
    size_bytes: int
    received_at: str
    alert_id: str | None = None
    raw_base64: str | None = None


Outgoing = tuple[Any, bytes | None, bytes]


def es_client_options(settings: Settings) -> dict[str, Any]:
    """Client options (hosts, auth, CA) for the sync setup client and the async indexer."""
    return {**settings.es_client_options(), "request_timeout": 30,
            "serializers": es_serializers()}


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    text = iso[:-1] + "+00:00" if iso.endswith(("Z", "z")) else iso
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def _safe_traceback(exc: BaseException) -> str:
    # Frames only: the exception's message may quote the document that caused it.
    return "".join(traceback.format_tb(exc.__traceback__))


class Pipeline:
    """Everything the agents share: settings, scanners, metrics, topics, the ES indexer."""

    def __init__(self, settings: Settings, app: faust.App, metrics: PipelineMetrics,
                 rules: Any, *, fingerprints: bool = True) -> None:
        self.settings = settings
        self.app = app
        self.metrics = metrics
        if fingerprints or settings.hmac_key:
            fingerprinter = settings.fingerprinter()
        else:  # index role without a key: nothing it writes carries a fingerprint
            fingerprinter = Fingerprinter.ephemeral_key()
        if fingerprinter.ephemeral and fingerprints:
            log.warning("no RORIWATCH_HMAC_KEY set: fingerprints use a random per-process key "
                        "and will not correlate across workers or restarts")
        self.key_id = fingerprinter.key_id
        self.rules_version = rules.version()
        self.watchlist_detectors = frozenset(r.id for r in rules.rules if r.kind == "keyword")
        try:
            self.watchlists = WatchlistIndex.load(
                settings.data_dir, self.key_id,
                [key_id for key_id, _ in settings.previous_hmac_keys])
        except (WatchlistError, OSError, ValueError) as exc:
            log.error("watch-lists under %s not loaded (%s); alerts carry no watch-list hits",
                      settings.data_dir, exc)
            self.watchlists = WatchlistIndex()
        for name, why in self.watchlists.skipped.items():
            log.warning("watch-list %s skipped: %s", name, why)
        # During a key rotation, findings are also fingerprinted under the retired keys that
        # some watch-list still uses (and only those: each costs one HMAC per finding).
        previous = [old for old in settings.previous_fingerprinters()
                    if old.key_id in self.watchlists.previous_key_ids]
        if previous:
            log.info("watch-lists under retired key id(s) %s also match until re-imported",
                     ", ".join(sorted(old.key_id for old in previous)))
        self.scanner = Scanner(rules, fingerprinter, min_confidence=settings.min_confidence,
                               previous_fingerprinters=previous)
        # Scanner keeps per-call state: the worker thread gets its own instance.
        self._thread_scanner = Scanner(rules, fingerprinter,
                                       min_confidence=settings.min_confidence,
                                       previous_fingerprinters=previous)
        self.redact = make_redactor(self.scanner)
        self.min_severity_rank = SEVERITY_RANK[settings.alert_min_severity]
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roriwatch-scan")
        self.topic_kinds = {topic: kind for kind, topic in settings.feed_topics().items()}
        self.feed_topic = app.topic(*settings.feed_topics().values(), key_type=bytes,
                                    value_type=bytes, key_serializer="raw",
                                    value_serializer="raw")
        self.alerts_topic = app.topic(settings.topic_alerts, key_type=bytes, value_type=bytes,
                                      key_serializer="raw", value_serializer="raw")
        self.deadletter_topic = app.topic(settings.topic_deadletter, key_type=bytes,
                                          value_type=bytes, key_serializer="raw",
                                          value_serializer="raw")
        self._lag_labels: set = set()
        self.indexer: AsyncAlertIndexer | None = None
        self._es: AsyncElasticsearch | None = None

    # --- scanning -------------------------------------------------------------------------

    async def run_scan_agent(self, stream: faust.StreamT) -> None:
        """Scan feed records in small batches; ack each batch once its outputs are confirmed."""
        async for events in stream.noack_take(SCAN_BATCH, within=SCAN_BATCH_WAIT_S):
            outgoing: list[Outgoing] = []
            for event in events:
                outgoing.extend(await self.process_feed_event(event))
                await asyncio.sleep(0)  # let the loop breathe between inline scans
            await self._deliver(outgoing)
            for event in events:
                await stream.ack(event)

    async def process_feed_event(self, event: faust.EventT) -> list[Outgoing]:
        """Decode, scan and judge one record; returns what to send. Never raises."""
        message = event.message
        info = MessageInfo(message.topic, message.partition, message.offset, message.key,
                           int(message.timestamp * 1000) if message.timestamp else None)
        value: bytes | None = message.value
        feed = self.topic_kinds.get(message.topic, "paste")
        self.metrics.documents.labels(feed=feed).inc()
        self.metrics.bytes.labels(feed=feed).inc(len(value or b""))
        started = time.perf_counter()
        try:
            decoded = decode_feed_message(value, info, feed_kind=feed,
                                          max_content_bytes=self.settings.max_content_bytes)
            if isinstance(decoded, DeadLetter):
                return [self._deadletter(decoded, info, value, stage="decode")]
            try:
                findings, summary = await self.scan(decoded.text)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("scan failed on %s[%d]@%d: %s\n%s", info.topic, info.partition,
                          info.offset, type(exc).__name__, _safe_traceback(exc))
                problem = DeadLetter("scan_error", f"the detection core raised "
                                     f"{type(exc).__name__} on this document; see the worker "
                                     "log at the same time for the traceback")
                return [self._deadletter(problem, info, value, stage="scan")]
            self.metrics.scan_duration.labels(feed=feed).observe(time.perf_counter() - started)
            for detector, count in summary.counts.items():
                self.metrics.findings.labels(detector=detector).inc(count)
            if not summary.findings_total:
                return []
            alert = self.alert_for(decoded, summary, findings, info)
            # Watch-list hits can raise the severity, so they count before the threshold.
            hits = (self.watchlists.match(summary.fingerprints, summary.previous_fingerprints)
                    if self.watchlists.lists else {})
            if hits:
                alert = apply_watchlist_hits(alert, hits)
            if alert["severity_rank"] < self.min_severity_rank:
                return []
            self.metrics.alerts.labels(severity=alert["severity"]).inc()
            record = AlertRecord(**alert)
            return [(self.alerts_topic, alert["alert_id"].encode("ascii"), record.dumps())]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("processing failed on %s[%d]@%d: %s\n%s", info.topic, info.partition,
                      info.offset, type(exc).__name__, _safe_traceback(exc))
            problem = DeadLetter("processing_error", f"{type(exc).__name__} while processing; "
                                 "a bug: see the worker log at the same time")
            return [self._deadletter(problem, info, value, stage="scan")]

    def alert_for(self, decoded: DecodedDocument, summary: DocumentSummary,
                  findings: Sequence[Finding], info: MessageInfo) -> dict[str, Any]:
        """The alert dict for a scanned document (pure apart from the clock)."""
        return build_alert(
            decoded.envelope, summary, findings,
            content_sha256=decoded.content_sha256, content_bytes=decoded.content_bytes,
            detected_at=utc_now_iso(), rules_version=self.rules_version, key_id=self.key_id,
            redact=self.redact, warnings=decoded.warnings,
            source={"topic": info.topic, "partition": info.partition, "offset": info.offset},
            watchlist_detectors=self.watchlist_detectors,
        )

    async def scan(self, text: str) -> tuple[list[Finding], DocumentSummary]:
        """Scan one document; large ones in a worker thread so the event loop stays live."""
        if len(text) <= INLINE_SCAN_CHARS:
            findings = self.scanner.scan(text)
            return findings[:MAX_FINDINGS_IN_ALERT], summarize(text, findings)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._scan_large, text)

    def _scan_large(self, text: str) -> tuple[list[Finding], DocumentSummary]:
        accumulator = DocumentAccumulator()
        kept: list[Finding] = []
        pieces = (text[i:i + SCAN_WINDOW_CHARS] for i in range(0, len(text), SCAN_WINDOW_CHARS))
        for chunk in scan_chunks(self._thread_scanner, pieces, accumulator,
                                 chunk_chars=SCAN_WINDOW_CHARS):
            room = MAX_FINDINGS_IN_ALERT - len(kept)
            if room > 0:
                kept.extend(chunk.findings[:room])
        return kept, accumulator.summary()

    # --- dead letters and delivery --------------------------------------------------------

    def safe_key(self, key: bytes | None) -> str | None:
        """The record key as text with identifiers masked (keys are often item ids)."""
        text = key_as_text(key)
        if text is None:
            return None
        try:
            return self.redact(text)
        except Exception:  # the dead letter must still go out: fall back to a hash
            return key_as_text(b"\xff" + (key or b""))

    def _deadletter(self, problem: DeadLetter, info: MessageInfo, value: bytes | None, *,
                    stage: str, alert_id: str | None = None) -> Outgoing:
        self.metrics.count_deadletter(problem.reason)
        log.warning("dead-letter %s: %s[%d]@%d (%s)", problem.reason, info.topic,
                    info.partition, info.offset, problem.detail)
        record = deadletter_record(problem, info, value, stage=stage,
                                   key_text=self.safe_key(info.key),
                                   keep_raw=self.settings.deadletter_keep_raw, alert_id=alert_id)
        key = f"{info.topic}:{info.partition}:{info.offset}".encode()
        return (self.deadletter_topic, key, DeadLetterRecord(**record).dumps())

    async def _deliver(self, outgoing: Sequence[Outgoing]) -> None:
        """Send and wait for the broker's acknowledgement, retrying until it comes.

        Acking the source records before this returns could commit offsets whose alert was
        never written; when Kafka itself is down, waiting is the only safe move.
        """
        pending = list(outgoing)
        attempt = 0
        while pending:
            try:
                futures = [await topic.send(key=key, value=value)
                           for topic, key, value in pending]
                results = await asyncio.gather(*futures, return_exceptions=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                results = [exc] * len(pending)
            failed = [item for item, result in zip(pending, results, strict=True)
                      if isinstance(result, BaseException)]
            if not failed:
                return
            errors = {type(r).__name__ for r in results if isinstance(r, BaseException)}
            attempt += 1
            delay = min(SEND_RETRY_MAX_S, 0.5 * 2 ** min(attempt, 10))
            log.error("%d of %d records not acknowledged by Kafka (%s); retrying in %.1fs",
                      len(failed), len(pending), ", ".join(sorted(errors)), delay)
            pending = failed
            await asyncio.sleep(delay)

    # --- indexing -------------------------------------------------------------------------

    def _new_indexer(self) -> AsyncAlertIndexer:
        self._es = AsyncElasticsearch(**es_client_options(self.settings))
        return AsyncAlertIndexer(
            self._es, alias=alerts_alias(self.settings.es_index_prefix),
            retry=RetryPolicy.until_back(base_delay_s=0.2, max_delay_s=10.0),
            on_bulk=self.metrics.observe_bulk, on_retry=self.metrics.count_es_retry,
            on_failure=self.metrics.count_es_failure,
        )

    async def ensure_elasticsearch(self) -> None:
        """Install templates and the write alias, retrying until Elasticsearch answers."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                await loop.run_in_executor(None, self._setup_elasticsearch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                delay = min(ES_UNAVAILABLE_RETRY_MAX_S, 0.5 * 2 ** min(attempt, 10))
                log.warning("elasticsearch setup failed (%s: %s); alerts wait in Kafka, "
                            "retrying in %.1fs", type(exc).__name__, str(exc)[:300], delay)
                await asyncio.sleep(delay)

    def _setup_elasticsearch(self) -> None:
        client = Elasticsearch(**es_client_options(self.settings))
        try:
            setup_elasticsearch(client, retention_days=self.settings.es_retention_days,
                                prefix=self.settings.es_index_prefix)
        finally:
            client.close()

    async def run_index_agent(self, stream: faust.StreamT) -> None:
        """Bulk-index alerts; offsets advance only after Elasticsearch has them."""
        self.indexer = self._new_indexer()
        try:
            await self.ensure_elasticsearch()
            async for events in stream.noack_take(INDEX_BATCH, within=INDEX_BATCH_WAIT_S):
                outgoing = await self.index_events(events)
                await self._deliver(outgoing)
                for event in events:
                    await stream.ack(event)
        finally:
            if self._es is not None:
                await self._es.close()

    async def index_events(self, events: Sequence[faust.EventT]) -> list[Outgoing]:
        """Index one batch; returns dead letters for records that are not (or never will be)."""
        outgoing: list[Outgoing] = []
        owners: dict[str, list[tuple[MessageInfo, bytes]]] = {}
        alerts: list[dict[str, Any]] = []
        for event in events:
            message = event.message
            info = MessageInfo(message.topic, message.partition, message.offset, message.key)
            try:
                decoded = decode_alert_message(message.value)
            except Exception as exc:  # decode is pure and total; this is belt and braces
                decoded = DeadLetter("invalid_alert", f"{type(exc).__name__} while decoding")
            if isinstance(decoded, DeadLetter):
                outgoing.append(self._deadletter(decoded, info, message.value, stage="index"))
                continue
            owners.setdefault(decoded["alert_id"], []).append((info, message.value))
            alerts.append(decoded)
        if not alerts:
            return outgoing
        try:
            result = await self._index_until_accepted(alerts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("indexing raised %s\n%s", type(exc).__name__, _safe_traceback(exc))
            problem = DeadLetter("processing_error", f"{type(exc).__name__} while indexing; a "
                                 "bug: see the worker log. Replay from the dead-letter "
                                 "coordinates once fixed")
            for alert_id, sources in owners.items():
                for info, value in sources:
                    outgoing.append(self._deadletter(problem, info, value, stage="index",
                                                     alert_id=alert_id))
            return outgoing
        failed = dict(result.failed)
        for alert_id, reason in failed.items():
            for info, value in owners.get(alert_id, []):
                problem = DeadLetter("index_rejected", f"elasticsearch rejected the alert: "
                                     f"{reason}")
                outgoing.append(self._deadletter(problem, info, value, stage="index",
                                                 alert_id=alert_id))
        now = time.time()
        for alert in alerts:
            if alert["alert_id"] in failed:
                continue
            fetched = _epoch(alert.get("fetched_at"))
            if fetched is not None:
                self.metrics.end_to_end_lag.observe(max(0.0, now - fetched))
        return outgoing

    async def _index_until_accepted(self, alerts: list[dict[str, Any]]) -> IndexResult:
        # The sink already retries transient failures forever; what reaches here is a failure
        # no document explains (missing alias, auth). Keep the alerts in Kafka and retry.
        assert self.indexer is not None
        attempt = 0
        while True:
            try:
                return await self.indexer.index_alerts(alerts)
            except IndexingError as exc:
                attempt += 1
                self.metrics.count_es_failure("unavailable")
                delay = min(ES_UNAVAILABLE_RETRY_MAX_S, 0.5 * 2 ** min(attempt, 10))
                log.error("elasticsearch cannot take alerts (%s); they stay in Kafka, retrying "
                          "in %.1fs", exc, delay)
                if "does not exist" in str(exc):
                    await self.ensure_elasticsearch()
                await asyncio.sleep(delay)

    # --- consumer lag ---------------------------------------------------------------------

    async def update_consumer_lag(self) -> None:
        """Set roriwatch_consumer_lag{topic,partition} = end offset - committed offset."""
        consumer = self.app.consumer
        assigned = set(consumer.assignment())
        seen = set()
        if assigned:
            highwaters = await consumer.highwaters(*assigned)
            committed_map = getattr(consumer, "_committed_offset", {})
            for tp in assigned:
                end = highwaters.get(tp)
                if end is None:
                    continue
                committed = committed_map.get(tp) or 0
                labels = (tp.topic, str(tp.partition))
                self.metrics.consumer_lag.labels(*labels).set(max(0, end - committed))
                seen.add(labels)
        for labels in self._lag_labels - seen:  # partitions moved to another worker
            self.metrics.consumer_lag.remove(*labels)
        self._lag_labels = seen

    def close(self) -> None:
        """Release the scan thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)


ROLES = ("all", "scan", "index")


def consumer_group(settings: Settings, role: str = "all") -> str:
    """The Faust app id (= Kafka consumer group) of a worker role.

    Split roles need groups of their own: members of one group must subscribe to the same
    topics, or the assignor hands alert partitions to a worker with no agent for them.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return settings.app_id if role == "all" else f"{settings.app_id}-{role}"


def create_app(settings: Settings, *, metrics: PipelineMetrics | None = None,
               rules_files: Iterable[str] = (), role: str = "all") -> faust.App:
    """Build the Faust app with its topics, agents and timers from ``settings``.

    ``role`` "all" runs both agents in one consumer group; "scan" and "index" run one each in
    groups of their own, so scanning (CPU) and indexing (I/O) scale apart and a backlog or an
    Elasticsearch outage on one side does not hold up the other (one Faust consumer feeds all
    agents of a process, and a full stream buffer stalls its dispatch).

    Nothing here reads the environment or touches the network; the worker command starts it.
    The pipeline object is reachable as ``app.pipeline`` for tests and the CLI.
    """
    group = consumer_group(settings, role)
    # The index role only moves finished alerts into Elasticsearch: it needs neither the
    # user's rule files nor the fingerprint key, so index pods mount neither (least privilege).
    # The built-in rules still mask identifiers in the keys of its dead letters.
    rules = load_rules([] if role == "index" else [*settings.rules_files, *rules_files])
    metrics = metrics or PipelineMetrics.create(detectors=rules.ids)
    app = faust.App(
        group,
        **connection_options(settings),
        autodiscover=False,
        datadir=str(Path(settings.data_dir) / f"faust-{group}"),
        store="memory://",
        web_enabled=False,
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        topic_allow_declare=False,  # streams.topics creates them, with the right partitions
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # The indexer may wait hours for Elasticsearch while the fetcher is back-pressured;
        # being thrown out of the group for it would only move the wait to another worker.
        broker_max_poll_interval=24 * 3600.0,
        broker_commit_interval=1.0,
        # A rebalance must not wait for a batch that waits for Elasticsearch: unacked records
        # are re-read by the new owner, and alert ids make that idempotent.
        stream_wait_empty=False,
        stream_buffer_maxsize=1024,
        stream_processing_timeout=3600.0,
        key_serializer="raw",
        value_serializer="raw",
    )
    pipeline = Pipeline(settings, app, metrics, rules, fingerprints=role != "index")
    app.pipeline = pipeline  # type: ignore[attr-defined]

    if role in ("all", "scan"):
        @app.agent(pipeline.feed_topic, name="scan_documents")
        async def scan_documents(stream: faust.StreamT) -> None:
            await pipeline.run_scan_agent(stream)

    if role in ("all", "index"):
        @app.agent(pipeline.alerts_topic, name="index_alerts")
        async def index_alerts(stream: faust.StreamT) -> None:
            await pipeline.run_index_agent(stream)

    @app.timer(interval=LAG_INTERVAL_S)
    async def report_consumer_lag() -> None:
        try:
            await pipeline.update_consumer_lag()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a metrics glitch must never stop the worker
            log.debug("consumer lag update failed: %s", type(exc).__name__)

    @app.task
    async def mark_worker_up() -> None:
        metrics.worker_up.set(1)

    return app
