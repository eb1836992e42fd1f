"""The incidents agent: alerts in, incidents in Elasticsearch and notifications out.

Thin by design (STYLE.md §6): decode, look candidates up in tables, call the pure
:func:`streams.incidents.correlate.correlate`, store, index, route.

Partitioning, and its limit. Correlation needs every incident visible to every alert: a
repost on another site has another alert id, another key, and would land on another partition
of the alerts topic, where another worker's table shard could not see the incident it belongs
to. So a forwarding agent copies each alert (unchanged bytes) from the alerts topic onto a
**single-partition** correlation topic, and the correlating agent and its three tables
(incident by id, content hash → incident id, LSH band key → incident ids) all live on that one
partition; their changelog topics have one partition too, as Faust requires. The price is that
correlation runs on one worker at a time (others stand by and take over on failure). It is
cheap (a few table reads and one MinHash per alert, ~10 ms at 1,000 fingerprints), so one
worker keeps up with hundreds of alerts a second, far above the alert rate of a monitor whose
alerts are documents that crossed a severity threshold. Sharding by band key would lift the
limit but split one incident's state across workers; see docs/incidents.md.

Delivery is at-least-once. A redelivered alert is recognised by its alert id (``duplicate``)
and changes nothing; the incident document is written whole with ``_id = incident_id`` (an
``index`` operation, idempotent), and routes remember the severity they last announced inside
the incident's table value, so a replay neither duplicates the incident nor re-notifies.

Module without ``from __future__ import annotations`` on purpose, like streams/app.py: Faust
inspects agent annotations at runtime.
"""

import asyncio
import contextlib
import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from elasticsearch import ApiError, AsyncElasticsearch, Elasticsearch

from streams.decode import DeadLetter, decode_alert_message, utc_now_iso
from streams.es_schema import incidents_index
from streams.es_setup import setup_elasticsearch
from streams.es_sink import safe_reason
from streams.faust_config import connection_options
from streams.incidents.correlate import (
    DEFAULT_THRESHOLD,
    Correlation,
    IncidentState,
    alert_features,
    correlate,
    incident_document,
)
from streams.incidents.metrics import IncidentMetrics
from streams.routing.config import RoutesConfig, load_routes
from streams.routing.router import Router
from streams.settings import Settings
from streams.topics import TopicError, bootstrap_servers
from streams.watchlists import WatchlistIndex, watchlist_dir

log = logging.getLogger(__name__)

INCIDENTS_TABLE = "incidents"
CONTENT_TABLE = "incident_by_content"
BAND_TABLE = "incident_by_band"
MAX_INCIDENTS_PER_BAND = 8
CORRELATION_KEY = b"incidents"
ES_RETRY_MAX_S = 30.0
SEND_RETRY_MAX_S = 30.0
WATCHLIST_RELOAD_S = 60.0
# Elasticsearch answers with these when the document itself is the problem: retrying cannot
# help, so the incident is logged and counted instead of wedging the agent.
PERMANENT_ES_STATUSES = frozenset({400, 403, 404, 409, 413})


def correlation_topic_name(settings: Settings) -> str:
    """The single-partition topic the correlating agent reads (alerts copied as they are)."""
    configured = getattr(settings, "topic_incidents", None)
    return configured or f"{settings.topic_alerts}.correlation"


def changelog_topic_name(app_id: str, table: str) -> str:
    """Faust's changelog topic name for a table of app ``app_id``."""
    return f"{app_id}-{table}-changelog"


def incident_topics(settings: Settings, app_id: str) -> dict[str, int]:
    """Topic → partition count for what the incidents agent reads and its tables write."""
    topics = {settings.topic_alerts: settings.topic_partitions,
              correlation_topic_name(settings): 1}
    for table in (INCIDENTS_TABLE, CONTENT_TABLE, BAND_TABLE):
        topics[changelog_topic_name(app_id, table)] = 1
    return topics


def ensure_incident_topics(settings: Settings, app_id: str, *, timeout_s: float = 15.0) -> None:
    """Create the incident topics that are missing; a wrong partition count is an error.

    A changelog with more partitions than its table would make Faust restore the wrong state,
    so unlike the feed topics this refuses to start instead of warning.
    """
    import time

    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    wanted = incident_topics(settings, app_id)
    timeout_ms = int(timeout_s * 1000)
    options = {"bootstrap_servers": bootstrap_servers(settings.broker),
               "client_id": f"{app_id}-topics", "request_timeout_ms": timeout_ms,
               "bootstrap_timeout_ms": timeout_ms, "api_version_auto_timeout_ms": timeout_ms}
    try:
        admin = KafkaAdminClient(**{k: v for k, v in options.items()
                                    if k in KafkaAdminClient.DEFAULT_CONFIG})
    except KafkaError as exc:
        raise TopicError(f"cannot reach Kafka at {settings.broker} ({type(exc).__name__})"
                         ) from None
    try:
        present = set(admin.list_topics())
        for name, partitions in wanted.items():
            if name not in present:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics([NewTopic(name, num_partitions=partitions,
                                                  replication_factor=1)])
        deadline = time.monotonic() + timeout_s
        while True:
            counts = {d.get("topic") or d.get("name"): len(d.get("partitions") or [])
                      for d in admin.describe_topics(list(wanted))}
            if all(counts.get(n) for n in wanted) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for name, partitions in wanted.items():
            have = counts.get(name)
            if not have:
                raise TopicError(f"topic {name} still has no partitions after creation")
            if have != partitions and name != settings.topic_alerts:
                raise TopicError(f"topic {name} has {have} partitions, the incidents agent "
                                 f"needs {partitions}: delete it (its state is rebuilt from "
                                 "the alerts topic only if that is replayed) or rename the app")
    except KafkaError as exc:
        raise TopicError(f"Kafka refused topic setup ({type(exc).__name__}: {exc})") from None
    finally:
        admin.close()


class IncidentIndexer:
    """Writes incident documents whole, ``_id = incident_id``: a rewrite replaces, never adds."""

    def __init__(self, client: Any, index: str, *, on_permanent_failure: Any = None,
                 max_delay_s: float = ES_RETRY_MAX_S) -> None:
        self.client = client
        self.index = index
        self.on_permanent_failure = on_permanent_failure
        self.max_delay_s = max_delay_s

    async def write(self, document: Mapping[str, Any]) -> bool:
        """Index one incident, retrying transient failures until Elasticsearch takes it.

        Returns False when Elasticsearch refused the document for good (logged, counted).
        """
        attempt = 0
        while True:
            try:
                await self.client.index(index=self.index, id=document["incident_id"],
                                        document=dict(document))
                return True
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.meta.status in PERMANENT_ES_STATUSES:
                    body = exc.body if isinstance(exc.body, Mapping) else {}
                    log.error("elasticsearch refused incident %s: %s", document["incident_id"],
                              safe_reason(exc.meta.status, body.get("error")))
                    if self.on_permanent_failure is not None:
                        self.on_permanent_failure()
                    return False
                reason = f"HTTP {exc.meta.status}"
            except Exception as exc:
                reason = type(exc).__name__
            attempt += 1
            delay = min(self.max_delay_s, 0.2 * 2 ** min(attempt, 10))
            log.warning("indexing incident %s failed (%s); retrying in %.1fs",
                        document["incident_id"], reason, delay)
            await asyncio.sleep(delay)


@dataclass
class IncidentService:
    """Everything the correlating agent does per alert, with the tables passed in.

    Tables are plain mappings here, so unit tests run it with dicts; in the worker they are
    Faust tables (changelog-backed), which is what makes the state survive restarts.
    """

    settings: Settings
    metrics: IncidentMetrics
    router: Router | None = None
    watchlists: WatchlistIndex = field(default_factory=WatchlistIndex)
    indexer: IncidentIndexer | None = None
    threshold: float = DEFAULT_THRESHOLD
    _watchlist_stamp: tuple[Any, ...] = field(default=(), init=False)

    # -- watch-lists -------------------------------------------------------------------------

    def reload_watchlists(self, *, force: bool = False) -> bool:
        """Reload watch-list files when they changed (cheap stat check); True on reload."""
        folder = watchlist_dir(self.settings.data_dir)
        try:
            stamp = tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                                 for p in folder.glob("*.json")))
        except OSError:
            stamp = ()
        if stamp == self._watchlist_stamp and not force:
            return False
        try:
            # Lists under a retired key match in the scan stage (alerts arrive marked with
            # their hits); loading them here keeps their names and metrics in force.
            index = WatchlistIndex.load(self.settings.data_dir, self.settings.hmac_key_id,
                                        [key_id for key_id, _ in
                                         self.settings.previous_hmac_keys])
        except Exception as exc:  # a bad file must not stop correlation: keep the old lists
            log.error("watch-lists not reloaded: %s", exc)
            return False
        for name, why in index.skipped.items():
            log.warning("watch-list %s ignored: %s", name, why)
        self.watchlists = index
        self._watchlist_stamp = stamp
        self.metrics.declare_watchlists(index.names)
        log.info("watch-lists in force: %s", ", ".join(index.names) or "none")
        return True

    # -- one alert -----------------------------------------------------------------------------

    async def handle(self, alert: Mapping[str, Any], incidents: MutableMapping[str, Any],
                     by_content: MutableMapping[str, Any], by_band: MutableMapping[str, Any]
                     ) -> Correlation:
        """Correlate one alert, store the incident, index it, notify; returns the outcome."""
        features = alert_features(alert)
        ids: list[str] = []
        if features.content_sha256:
            found = by_content.get(features.content_sha256)
            if found:
                ids.append(found)
        for key in features.band_keys:
            ids.extend(by_band.get(key) or ())
        candidates = []
        for incident_id in dict.fromkeys(ids):
            value = incidents.get(incident_id)
            if value:
                candidates.append(IncidentState.from_dict(value))
        hits = self.watchlists.match(alert.get("fingerprints") or ())
        result = correlate(alert, candidates, features=features, watchlist_hits=hits,
                           threshold=self.threshold)
        state = result.incident
        if result.matched_by != "duplicate":
            incidents[state.incident_id] = state.to_dict()
            if features.content_sha256:
                by_content[features.content_sha256] = state.incident_id
            for key in features.band_keys:
                members = list(by_band.get(key) or ())
                if state.incident_id not in members:
                    members.append(state.incident_id)
                    by_band[key] = members[-MAX_INCIDENTS_PER_BAND:]
            for name, count in hits.items():
                self.metrics.watchlist_hits.labels(watchlist=name).inc(count)
            if result.is_new:
                self.metrics.incidents.labels(severity=state.severity).inc()
            elif result.escalated:
                self.metrics.escalations.labels(severity=state.severity).inc()
        log.info("alert %s → incident %s (%s, %s%s)", alert.get("alert_id"), state.incident_id,
                 result.matched_by, state.severity, ", escalated" if result.escalated else "")
        # Indexed and routed on duplicates too: the first delivery may have died in between.
        if self.indexer is not None:
            await self.indexer.write(incident_document(state, updated_at=utc_now_iso()))
        if self.router is not None:
            notified = dict(state.notified)
            try:
                await self.router.notify(state.to_dict(), notified)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.count_error("route")
                log.error("routing incident %s raised %s", state.incident_id,
                          type(exc).__name__)
            if notified != state.notified:
                state.notified = notified
                incidents[state.incident_id] = state.to_dict()
        return result

    async def process(self, value: bytes | None, incidents: MutableMapping[str, Any],
                      by_content: MutableMapping[str, Any],
                      by_band: MutableMapping[str, Any]) -> Correlation | None:
        """Decode and handle one message; every failure is caught, logged and counted."""
        decoded = decode_alert_message(value)
        if isinstance(decoded, DeadLetter):
            self.metrics.count_error("decode")
            log.warning("not an alert on the correlation topic: %s", decoded.detail)
            return None
        try:
            return await self.handle(decoded, incidents, by_content, by_band)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Names only: an exception message could quote alert fields.
            self.metrics.count_error("correlate")
            log.error("correlating alert %s raised %s", decoded.get("alert_id"),
                      type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
            return None


def _es_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"request_timeout": 30}
    if settings.es_api_key:
        options["api_key"] = settings.es_api_key
    elif settings.es_username:
        options["basic_auth"] = (settings.es_username, settings.es_password or "")
    if settings.es_ca_certs:
        options["ca_certs"] = settings.es_ca_certs
    return options


async def _setup_es_until_ready(settings: Settings) -> None:
    """Templates first, or the first incident would create its index with guessed mappings."""
    loop = asyncio.get_running_loop()
    attempt = 0

    def setup() -> None:
        client = Elasticsearch(settings.es_url, **_es_options(settings))
        try:
            setup_elasticsearch(client, retention_days=settings.es_retention_days,
                                prefix=settings.es_index_prefix)
        finally:
            client.close()

    while True:
        try:
            await loop.run_in_executor(None, setup)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt += 1
            delay = min(ES_RETRY_MAX_S, 0.5 * 2 ** min(attempt, 10))
            log.warning("elasticsearch setup failed (%s); alerts wait in Kafka, retrying in "
                        "%.1fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)


def register_incident_agents(
    app: faust.App,
    settings: Settings,
    *,
    metrics: IncidentMetrics | None = None,
    registry: Any = None,
    routes: RoutesConfig | None = None,
    routes_file: str | None = None,
    router: Router | None = None,
) -> IncidentService:
    """Add the forwarding and correlating agents, their tables and timers to ``app``.

    ``routes`` (or ``routes_file``, default ``settings.routes_file``) configures notifications;
    ``registry`` is the Prometheus registry to share (the pipeline's). Topics must exist with
    the partition counts of :func:`incident_topics` (``app.conf.id`` as app id). The service is
    returned and also reachable as ``app.incidents``.
    """
    if routes is None:
        routes = load_routes(routes_file or getattr(settings, "routes_file", None))
    metrics = metrics or IncidentMetrics.create(registry, routes=routes.names)
    router = router or Router(routes, metrics)
    threshold = float(getattr(settings, "incident_jaccard", DEFAULT_THRESHOLD))
    service = IncidentService(settings, metrics, router=router if routes.routes else None,
                              threshold=threshold)
    service.reload_watchlists(force=True)
    app.incidents = service  # type: ignore[attr-defined]

    alerts_topic = app.topic(settings.topic_alerts, key_serializer="raw",
                             value_serializer="raw")
    correlation_topic = app.topic(correlation_topic_name(settings), partitions=1,
                                  key_serializer="raw", value_serializer="raw")
    # Without a key/value type Faust serialises table keys and values as JSON (not the app's
    # raw default), which is what the plain-dict state needs.
    table_options: dict[str, Any] = {"default": None, "partitions": 1}
    incidents = app.Table(INCIDENTS_TABLE, help="incident id → incident state",
                          **table_options)
    by_content = app.Table(CONTENT_TABLE, help="content sha256 → incident id", **table_options)
    by_band = app.Table(BAND_TABLE, help="MinHash LSH band key → incident ids", **table_options)

    @app.agent(alerts_topic, name="forward_alerts_to_correlation")
    async def forward_alerts_to_correlation(stream: faust.StreamT) -> None:
        async for event in stream.events():
            value = event.message.value
            if value:
                await _send_until_acked(correlation_topic, value, metrics)

    @app.agent(correlation_topic, name="correlate_incidents")
    async def correlate_incidents(stream: faust.StreamT) -> None:
        es = AsyncElasticsearch(settings.es_url, **_es_options(settings))
        service.indexer = IncidentIndexer(
            es, incidents_index(settings.es_index_prefix),
            on_permanent_failure=lambda: metrics.count_error("index"))
        try:
            await _setup_es_until_ready(settings)
            async for event in stream.events():
                await service.process(event.message.value, incidents, by_content, by_band)
        finally:
            await es.close()

    @app.timer(interval=WATCHLIST_RELOAD_S)
    async def reload_watchlists() -> None:
        service.reload_watchlists()

    return service


async def _send_until_acked(topic: Any, value: bytes, metrics: IncidentMetrics) -> None:
    """Copy one alert to the correlation topic; wait for the broker, as the offset commits after."""
    attempt = 0
    while True:
        try:
            future = await topic.send(key=CORRELATION_KEY, value=value)
            await future
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt += 1
            metrics.count_error("forward")
            delay = min(SEND_RETRY_MAX_S, 0.5 * 2 ** min(attempt, 10))
            log.error("forwarding an alert to correlation failed (%s); retrying in %.1fs",
                      type(exc).__name__, delay)
            await asyncio.sleep(delay)


def incident_app_id(settings: Settings) -> str:
    """App id (consumer group, changelog prefix) of the standalone incidents worker."""
    return f"{settings.app_id}-incidents"


def create_incident_app(settings: Settings, *, routes: RoutesConfig | None = None,
                        routes_file: str | None = None, registry: Any = None) -> faust.App:
    """A Faust app running only the incidents agents, in its own consumer group.

    For deployments that run correlation as its own worker (``roriwatch incidents``); the scan
    pipeline can instead host the same agents with :func:`register_incident_agents`.
    """
    app_id = incident_app_id(settings)
    app = faust.App(
        app_id,
        **connection_options(settings),
        autodiscover=False,
        datadir=str(Path(settings.data_dir) / f"faust-{app_id}"),
        store="memory://",
        web_enabled=False,
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        topic_allow_declare=False,  # ensure_incident_topics creates them with 1 partition
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Indexing waits for Elasticsearch and routing for receivers; neither should get the
        # worker thrown out of its group.
        broker_max_poll_interval=24 * 3600.0,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    register_incident_agents(app, settings, routes=routes, routes_file=routes_file,
                             registry=registry)
    return app

