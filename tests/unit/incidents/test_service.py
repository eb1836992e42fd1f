"""The incidents agent's per-alert work with dict tables, a fake ES client and a fake sender."""

from __future__ import annotations

import asyncio
import json

from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError
from elasticsearch import ConnectionError as EsConnectionError

from streams.incidents.agent import (
    IncidentIndexer,
    IncidentService,
    correlation_topic_name,
    incident_topics,
)
from streams.incidents.metrics import IncidentMetrics
from streams.routing.config import parse_routes
from streams.routing.router import Router
from streams.settings import Settings
from streams.watchlists import import_csv, new_watchlist, save_watchlist


class FakeEs:
    def __init__(self, failures=()):
        self.failures = list(failures)
        self.docs: dict[str, dict] = {}
        self.calls = 0

    async def index(self, *, index, id, document):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.docs[id] = json.loads(json.dumps(document))


class FakeSender:
    def __init__(self):
        self.sent = []

    async def __call__(self, route, summary):
        self.sent.append((route.name, summary["event"], summary["incident_id"]))


def api_error(status):
    meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(),
                           duration=0.0, node=NodeConfig("http", "127.0.0.1", 9200))
    reason = "failed to parse field [x] value 0912345678"
    return ApiError("boom", meta, {"error": {"type": "mapper_parsing_exception",
                                             "reason": reason}})


def make_service(tmp_path, sender=None):
    settings = Settings(hmac_key=b"unit-test-key-0123456789abcdef!!", hmac_key_id="t1",
                        data_dir=str(tmp_path))
    metrics = IncidentMetrics.create()
    routes = parse_routes({"routes": [{"name": "soc", "target": {
        "type": "webhook", "url": "http://127.0.0.1:9"}}]}, "r")
    router = Router(routes, metrics, sender=sender or FakeSender())
    service = IncidentService(settings, metrics, router=router)
    es = FakeEs()
    service.indexer = IncidentIndexer(es, "t-incidents")
    return service, es, metrics


def handle(service, alert, tables):
    return asyncio.run(service.handle(alert, *tables))


def test_repost_joins_indexes_idempotently_and_notifies_once(tmp_path, make_alert, dumps):
    sender = FakeSender()
    service, es, metrics = make_service(tmp_path, sender)
    tables = ({}, {}, {})
    text = dumps.text(dumps.rows(31, 20))
    first = handle(service, make_alert(text, site="a.vn", item_id="1"), tables)
    repost = make_alert(text, site="b.vn", item_id="2")
    second = handle(service, repost, tables)
    replay = handle(service, repost, tables)
    incident_id = first.incident.incident_id
    assert second.incident.incident_id == incident_id and replay.matched_by == "duplicate"
    assert list(es.docs) == [incident_id]
    assert es.docs[incident_id]["sites"] == ["a.vn", "b.vn"]
    assert len(es.docs[incident_id]["alert_ids"]) == 2
    incidents, by_content, by_band = tables
    assert by_content[first.incident.content_hashes[0]] == incident_id
    assert all(ids == [incident_id] for ids in by_band.values()) and len(by_band) == 16
    # one "new"; an "escalated" only if spreading raised the severity; nothing on the replay
    events = [event for _, event, _ in sender.sent]
    assert events[0] == "new" and events.count("new") == 1 and len(events) <= 2
    assert incidents[incident_id]["notified"] == {"soc": second.incident.severity_rank}
    assert metrics.registry.get_sample_value("roriwatch_incidents_total",
                                             {"severity": first.incident.severity}) == 1


def test_watchlist_hit_is_counted_and_marks_the_incident(tmp_path, make_alert, dumps, key):
    rows = dumps.rows(32, 30)
    csv_text = "cccd,sdt\n" + "\n".join(f"{cid},{phone}" for _, cid, phone in rows[:10])
    report = import_csv(csv_text, key)
    save_watchlist(tmp_path, new_watchlist("customers", report, key))
    service, es, metrics = make_service(tmp_path)
    assert service.reload_watchlists(force=True)
    result = handle(service, make_alert(dumps.text(rows)), ({}, {}, {}))
    assert result.incident.watchlist_hits == {"customers": 20}
    assert result.incident.severity_rank >= 3
    assert metrics.registry.get_sample_value("roriwatch_watchlist_hits_total",
                                             {"watchlist": "customers"}) == 20
    doc = es.docs[result.incident.incident_id]
    assert doc["watchlists"] == ["customers"]
    assert not service.reload_watchlists()  # nothing changed on disk


def test_bad_messages_are_counted_not_raised(tmp_path):
    service, _, metrics = make_service(tmp_path)
    for value in (None, b"", b"not json", b'{"alert_id": 1}'):
        assert asyncio.run(service.process(value, {}, {}, {})) is None
    assert metrics.registry.get_sample_value("roriwatch_incident_errors_total",
                                             {"stage": "decode"}) == 4


def test_indexer_retries_transient_errors_and_gives_up_on_bad_documents(monkeypatch, caplog):
    async def no_sleep(_):
        return None
    monkeypatch.setattr("streams.incidents.agent.asyncio.sleep", no_sleep)
    es = FakeEs([EsConnectionError("down"), api_error(503)])
    refused = []
    indexer = IncidentIndexer(es, "t", on_permanent_failure=lambda: refused.append(1))
    assert asyncio.run(indexer.write({"incident_id": "i1"})) and es.calls == 3
    es.failures = [api_error(400)]
    assert not asyncio.run(indexer.write({"incident_id": "i2"})) and refused == [1]
    assert "0912345678" not in caplog.text


def test_topics_single_partition_for_correlation_state():
    settings = Settings(topic_alerts="t.alerts", topic_partitions=3)
    topics = incident_topics(settings, "app-incidents")
    assert topics == {"t.alerts": 3, "t.alerts.correlation": 1,
                      "app-incidents-incidents-changelog": 1,
                      "app-incidents-incident_by_content-changelog": 1,
                      "app-incidents-incident_by_band-changelog": 1}
    assert correlation_topic_name(settings) == "t.alerts.correlation"
