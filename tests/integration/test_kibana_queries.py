"""Kibana's searches, run as Elasticsearch queries on alerts the real pipeline indexed.

A worker of this module's own (topics, consumer group, index prefix) scans the samples, sent
with one site per folder plus a synthetic post naming a watch-list; the alerts it indexes are
what the searches run on. Incidents come from the project's correlation code
(streams.incidents.correlate) applied to those alerts, unless the worker already wrote them.

Kibana cannot run here, so each KQL query (the saved searches in deploy/kibana/roriwatch.ndjson
and the ten searches of docs/analyst-guide.md) is translated to the Elasticsearch query Kibana
sends for it, by a translator for the KQL this project uses (below), and run on the local
search server. The same KQL is also evaluated in Python over every indexed document; the two
answers must be equal and not empty, so neither the translator nor the server can quietly
return the wrong documents. Visualizations run as the aggregations they describe.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from streams import es_schema
from streams.incidents.correlate import correlate, incident_document
from streams.pipeline_commands import (
    expected_alert_ids,
    replay_messages,
    send_messages,
    start_worker_process,
    stop_worker_process,
)
from streams.settings import load_settings
from streams.watchlists import import_csv, new_watchlist, save_watchlist

from .conftest import HOST, KAFKA_PORT, kafka_admin_config

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "deploy" / "kibana" / "roriwatch.ndjson"
GUIDE = ROOT / "docs" / "analyst-guide.md"
WAIT_S = 90
# Folder → (feed, site, one message per line): several sites, so "one site" means something.
REPLAYS = (
    ("samples/feeds/paste", "paste", "paste.vi.example", False),
    ("samples/paste", "paste", "dan.vi.example", False),
    ("samples/feeds/forum", "forum", "forum.vi.example", False),
    ("samples/forum", "forum", "forum.vi.example", False),
    ("samples/chat", "forum", "t.me.example", False),
    ("samples/feeds/log", "log", "app.noi-bo.example", True),
)
WATCHLIST = "customers_example"
# Synthetic post naming the example keyword watch-list (deploy/k8s/base/config/).
WATCHLIST_POST = ("Bán data khách hàng ngân hàng ví dụ, đăng nhập qua "
                  "intranet.examplebank.example (dữ liệu giả lập)\n")


# --------------------------------------------------------------------------- KQL


class KqlError(ValueError):
    """The query uses KQL this translator does not implement."""


_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|[<>:(){}])|'
                    r'(?P<word>[^\s"<>:(){}]+))')


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise KqlError(f"cannot tokenise {text[pos:]!r}")
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "word" and value.lower() in ("and", "or", "not"):
            kind, value = "kw", value.lower()
        tokens.append((kind, value))
        pos = match.end()
    return tokens


@dataclass
class Match:
    """``field : value`` or ``field : (v1 or v2)``; quoted values are phrases."""

    field: str
    values: list[tuple[str, bool]]


@dataclass
class Range:
    """``field >= value``."""

    field: str
    op: str
    value: str


@dataclass
class Nested:
    """``path : { query }`` on a nested field."""

    path: str
    query: Any


@dataclass
class Bool:
    """and / or / not."""

    op: str
    items: list[Any]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise KqlError(f"expected {value or 'more'} at token {self.pos}: {token}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        node = self.expr()
        if self.peek() is not None:
            raise KqlError(f"unexpected {self.peek()}")
        return node

    def expr(self) -> Any:
        items = [self.conjunction()]
        while self.peek() == ("kw", "or"):
            self.take()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Bool("or", items)

    def conjunction(self) -> Any:
        items = [self.negation()]
        while self.peek() == ("kw", "and"):
            self.take()
            items.append(self.negation())
        return items[0] if len(items) == 1 else Bool("and", items)

    def negation(self) -> Any:
        if self.peek() == ("kw", "not"):
            self.take()
            return Bool("not", [self.negation()])
        if self.peek() == ("op", "("):
            self.take()
            node = self.expr()
            self.take(")")
            return node
        return self.clause()

    def value(self) -> tuple[str, bool]:
        kind, value = self.take()
        if kind == "str":
            return json.loads(value), True
        if kind == "word":
            return value, False
        raise KqlError(f"expected a value, got {value}")

    def clause(self) -> Any:
        kind, field = self.take()
        if kind != "word":
            raise KqlError(f"expected a field name, got {field}")
        _, op = self.take()
        if op in (">=", "<=", ">", "<"):
            return Range(field, op, self.value()[0])
        if op != ":":
            raise KqlError(f"expected ':' after {field}")
        if self.peek() == ("op", "{"):
            self.take()
            inner = self.expr()
            self.take("}")
            return Nested(field, inner)
        if self.peek() == ("op", "("):
            self.take()
            values = [self.value()]
            while self.peek() == ("kw", "or"):
                self.take()
                values.append(self.value())
            self.take(")")
            return Match(field, values)
        return Match(field, [self.value()])


def parse_kql(text: str) -> Any:
    """Parse the KQL subset: field:value, field:(a or b), ranges, and/or/not, (), nested {}."""
    return _Parser(text).parse()


_RANGE_OPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}


def to_query(node: Any, types: dict[str, str], prefix: str = "") -> dict[str, Any]:
    """The Elasticsearch query Kibana builds for the KQL (field types decide term/match)."""
    if isinstance(node, Bool):
        parts = [to_query(item, types, prefix) for item in node.items]
        if node.op == "and":
            return {"bool": {"filter": parts}}
        if node.op == "or":
            return {"bool": {"should": parts, "minimum_should_match": 1}}
        return {"bool": {"must_not": parts}}
    if isinstance(node, Nested):
        path = prefix + node.path
        return {"nested": {"path": path, "score_mode": "none",
                           "query": to_query(node.query, types, path + ".")}}
    field = prefix + node.field
    kind = _type(types, field)
    if isinstance(node, Range):
        return {"range": {field: {_RANGE_OPS[node.op]: node.value}}}
    clauses = []
    for value, quoted in node.values:
        if value == "*" and not quoted:
            clauses.append({"exists": {"field": field}})
        elif kind == "text":
            clauses.append({"match_phrase" if quoted else "match": {field: value}})
        elif "*" in value and not quoted:
            clauses.append({"wildcard": {field: {"value": value}}})
        else:
            clauses.append({"term": {field: value}})
    if len(clauses) == 1:
        return clauses[0]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def _type(types: dict[str, str], field: str) -> str:
    if field in types:
        return types[field]
    if field.startswith("counts."):
        return "long"  # the counts.* dynamic template
    raise KqlError(f"field {field} is not in the index template")


def _values(doc: Any, path: str) -> list[Any]:
    current = [doc]
    for part in path.split("."):
        found = []
        for item in current:
            if isinstance(item, dict) and part in item:
                value = item[part]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return [v for v in current if v is not None]


def _date(value: str, now: datetime) -> datetime:
    relative = re.fullmatch(r"now(?:-(\d+)([dhm]))?", value)
    if relative:
        amount = int(relative.group(1) or 0)
        unit = {"d": "days", "h": "hours", "m": "minutes", None: "days"}[relative.group(2)]
        return now - timedelta(**{unit: amount})
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def matches(node: Any, doc: dict[str, Any], types: dict[str, str], now: datetime,
            prefix: str = "") -> bool:
    """Evaluate the KQL on one document in Python: the reference answer for the server's."""
    if isinstance(node, Bool):
        results = [matches(item, doc, types, now, prefix) for item in node.items]
        return {"and": all, "or": any}.get(node.op, lambda r: not r[0])(results)
    if isinstance(node, Nested):
        path = prefix + node.path
        return any(matches(node.query, item, types, now, path + ".")
                   for item in _values(doc, node.path) if isinstance(item, dict))
    field = prefix + node.field
    kind = _type(types, field)
    present = _values(doc, node.field)
    if isinstance(node, Range):
        def compare(value: Any) -> bool:
            if kind == "date":
                left, right = _date(str(value), now), _date(node.value, now)
            else:
                left, right = float(value), float(node.value)
            return {">=": left >= right, "<=": left <= right, ">": left > right,
                    "<": left < right}[node.op]
        return any(compare(v) for v in present)
    for value, quoted in node.values:
        if value == "*" and not quoted:
            if present:
                return True
        elif kind == "text":
            wanted = _words(value)
            for text in present:
                words = _words(str(text))
                if quoted and any(words[i:i + len(wanted)] == wanted
                                  for i in range(len(words))):
                    return True
                if not quoted and set(wanted) & set(words):
                    return True
        elif kind in ("long", "integer", "float"):
            if any(float(v) == float(value) for v in present):
                return True
        elif any(fnmatch.fnmatchcase(str(v), value) if ("*" in value and not quoted)
                 else str(v) == value for v in present):
            return True
    return False


def _flat_types(mappings: dict[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            flat[prefix + name] = spec.get("type", "object")
            walk(spec.get("properties", {}), prefix + name + ".")
            for sub, sub_spec in spec.get("fields", {}).items():
                flat[f"{prefix}{name}.{sub}"] = sub_spec["type"]

    walk(mappings["properties"], "")
    return flat


@pytest.mark.parametrize(("kql", "expected"), [
    ('severity : "critical"', {"term": {"severity": "critical"}}),
    ("watchlists : *", {"exists": {"field": "watchlists"}}),
    ('title : "khach hang"', {"match_phrase": {"title": "khach hang"}}),
    ("counts.vn_phone > 0", {"range": {"counts.vn_phone": {"gt": "0"}}}),
    ('sightings : { site : "a" }', {"nested": {"path": "sightings", "score_mode": "none",
                                               "query": {"term": {"sightings.site": "a"}}}}),
    ("severity : (high or critical) and not feed : log", {"bool": {"filter": [
        {"bool": {"should": [{"term": {"severity": "high"}},
                             {"term": {"severity": "critical"}}],
                  "minimum_should_match": 1}},
        {"bool": {"must_not": [{"term": {"feed": "log"}}]}}]}}),
])
def test_kql_translation(kql, expected):
    types = _flat_types(es_schema.alert_mappings()) | _flat_types(es_schema.incident_mappings())
    assert to_query(parse_kql(kql), types) == expected


# --------------------------------------------------------------------------- the data


@dataclass
class Indexed:
    """The indices the module filled, their documents, and what to substitute in queries."""

    client: Elasticsearch
    prefix: str
    alerts: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    old_incident_id: str
    incidents_from_worker: bool

    def index_for(self, data_view_title: str) -> str:
        """The test's own index for a data view title (roriwatch-... → prefix-...)."""
        return self.prefix + data_view_title.removeprefix(es_schema.DEFAULT_PREFIX)

    def docs_for(self, data_view_title: str) -> list[dict[str, Any]]:
        """The documents a data view sees."""
        if data_view_title == es_schema.alerts_index_pattern():
            return self.alerts
        return self.incidents


def _wait(what: str, check, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{tail}", pytrace=False)


def _all_docs(client: Elasticsearch, index: str) -> list[dict[str, Any]]:
    response = client.search(index=index, query={"match_all": {}}, size=1000,
                             ignore_unavailable=True)
    return [hit["_source"] | {"_id": hit["_id"]} for hit in response["hits"]["hits"]]


def _build_incidents(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the project's correlation over the alerts in detection order, as the agent would."""
    incidents: dict[str, Any] = {}
    for alert in sorted(alerts, key=lambda a: (a["detected_at"], a["alert_id"])):
        result = correlate(alert, list(incidents.values()))
        incidents[result.incident.incident_id] = result.incident
    return [incident_document(state) for state in incidents.values()]


@pytest.fixture(scope="module")
def indexed(kafka_bootstrap: str, es_client: Elasticsearch, es_url: str,
            tmp_path_factory) -> Indexed:
    """Alerts from a real worker run over the samples, and incidents correlated from them."""
    tmp = tmp_path_factory.mktemp("kibana")
    prefix = f"t-kibana-{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RORIWATCH_")}
    env.update({
        "RORIWATCH_BROKER": f"kafka://{HOST}:{KAFKA_PORT}",
        "RORIWATCH_ES_URL": es_url,
        "RORIWATCH_APP_ID": prefix,
        "RORIWATCH_TOPIC_PASTE": f"{prefix}.feed.paste",
        "RORIWATCH_TOPIC_FORUM": f"{prefix}.feed.forum",
        "RORIWATCH_TOPIC_LOG": f"{prefix}.feed.log",
        "RORIWATCH_TOPIC_ALERTS": f"{prefix}.alerts",
        "RORIWATCH_TOPIC_DEADLETTER": f"{prefix}.deadletter",
        "RORIWATCH_TOPIC_PARTITIONS": "1",
        "RORIWATCH_ES_INDEX_PREFIX": prefix,
        "RORIWATCH_DATA_DIR": str(tmp / "data"),
        "RORIWATCH_HMAC_KEY": "synthetic-kibana-test-key-0123456789ab",
        "RORIWATCH_RULES_FILES": str(ROOT / "deploy/k8s/base/config/keyword-watchlists.yaml"),
    })
    settings = load_settings(env)
    # A fingerprint watch-list of "our customers", as `roriwatch watchlist add` makes it: the
    # header and first rows of a synthetic customer file that the samples also leak.
    customers = (ROOT / "samples/feeds/paste/khach-hang-2024.csv").read_text(encoding="utf-8")
    report = import_csv("\n".join(customers.splitlines()[1:6]), settings.fingerprinter())
    assert report.fingerprints, "the watch-list import found no identifiers"
    save_watchlist(settings.data_dir, new_watchlist(WATCHLIST, report, settings.fingerprinter()))
    log = tmp / "worker.log"
    worker = None
    try:
        setup = subprocess.run(
            [sys.executable, "-m", "streams.cli", "es-setup"], env=env, cwd=ROOT,
            capture_output=True, text=True, timeout=60, check=False)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        worker = start_worker_process(env, log, 0)
        watch_dir = tmp / "watchlist"
        watch_dir.mkdir()
        (watch_dir / "ban-data-ngan-hang.txt").write_text(WATCHLIST_POST, encoding="utf-8")
        sent = []
        for folder, feed, site, lines in (*REPLAYS, (str(watch_dir), "paste",
                                                     "paste.vi.example", False)):
            path = Path(folder) if Path(folder).is_absolute() else ROOT / folder
            messages = [(k, v) for k, v, _ in replay_messages([str(path)], feed, site, lines)]
            sent += send_messages(settings, settings.feed_topics()[feed], messages)
        expected = expected_alert_ids(settings, sent)
        alias = es_schema.alerts_alias(prefix)

        def all_indexed() -> bool:
            es_client.indices.refresh(index=alias, ignore_unavailable=True)
            found = es_client.search(index=alias, query={"ids": {"values": list(expected)}},
                                     size=0, ignore_unavailable=True)
            return found["hits"]["total"]["value"] >= len(expected)

        _wait(f"{len(expected)} alerts in {alias}", all_indexed, WAIT_S, log)
    finally:
        if worker is not None:
            stop_worker_process(worker, timeout_s=20)
    alerts = _all_docs(es_client, alias)
    incidents_index = es_schema.incidents_index(prefix)
    es_client.indices.refresh(index=incidents_index, ignore_unavailable=True)
    incidents = _all_docs(es_client, incidents_index)
    from_worker = bool(incidents)
    if not incidents:
        incidents = _build_incidents(alerts)
    # One critical incident last seen a month ago: "this week" must leave it out.
    old = dict(max(incidents, key=lambda i: i["severity_rank"]))
    month_ago = (datetime.now(timezone.utc) - timedelta(days=30)).isoformat()
    old.update(incident_id=f"{prefix}-old", first_seen=month_ago, last_seen=month_ago,
               severity="critical", severity_rank=4)
    old.pop("_id", None)
    incidents = [i for i in incidents if i["incident_id"] != old["incident_id"]] + [old]
    for incident in incidents:
        body = {k: v for k, v in incident.items() if k != "_id"}
        es_client.index(index=incidents_index, id=incident["incident_id"], document=body)
    es_client.indices.refresh(index=incidents_index)
    incidents = _all_docs(es_client, incidents_index)
    return Indexed(es_client, prefix, alerts, incidents, old["incident_id"], from_worker)


@pytest.fixture(scope="module", autouse=True)
def _cleanup(es_client: Elasticsearch):
    yield
    prefix = "t-kibana-"
    indices = es_client.options(ignore_status=404).indices.get(index=f"{prefix}*")
    for index in indices.body if indices.meta.status == 200 else {}:
        es_client.indices.delete(index=index)
    for template in es_client.indices.get_index_template().get("index_templates", []):
        if template["name"].startswith(prefix):
            es_client.indices.delete_index_template(name=template["name"])
    for template in es_client.cluster.get_component_template().get("component_templates", []):
        if template["name"].startswith(prefix):
            es_client.cluster.delete_component_template(name=template["name"])
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_admin_config(f"{HOST}:{KAFKA_PORT}"))
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


# --------------------------------------------------------------------------- the searches


def _saved_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects = [json.loads(line) for line in NDJSON.read_text(encoding="utf-8").splitlines()]
    return {(o["type"], o["id"]): o for o in objects}


def _view_title(obj: dict[str, Any]) -> str:
    [ref] = [r for r in obj["references"] if r["type"] == "index-pattern"]
    return _saved_objects()[("index-pattern", ref["id"])]["attributes"]["title"]


def _types(view_title: str) -> dict[str, str]:
    if view_title == es_schema.alerts_index_pattern():
        return _flat_types(es_schema.alert_mappings())
    return _flat_types(es_schema.incident_mappings())


def _run(indexed: Indexed, view_title: str, kql: str, sort: list | None = None) -> set[str]:
    """Ids the server returns for the KQL; asserted equal to the Python evaluation."""
    types = _types(view_title)
    node = parse_kql(kql)
    body: dict[str, Any] = {"query": to_query(node, types), "size": 1000}
    if sort:
        body["sort"] = [{field: {"order": order}} for field, order in sort]
    response = indexed.client.search(index=indexed.index_for(view_title), **body)
    got = {hit["_id"] for hit in response["hits"]["hits"]}
    now = datetime.now(timezone.utc)
    expected = {doc["_id"] for doc in indexed.docs_for(view_title)
                if matches(node, doc, types, now)}
    assert got == expected, f"{kql}: server {sorted(got)} != KQL semantics {sorted(expected)}"
    return got


SEARCHES = sorted(key[1] for key in _saved_objects() if key[0] == "search")


@pytest.mark.parametrize("search_id", SEARCHES)
def test_saved_search_finds_the_right_documents(indexed, search_id):
    search = _saved_objects()[("search", search_id)]
    source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    view = _view_title(search)
    hits = _run(indexed, view, source["query"]["query"], search["attributes"]["sort"])
    assert hits, f"{search['attributes']['title']}: nothing in the indexed samples"
    if search_id == "roriwatch-critical-incidents-week":
        assert indexed.old_incident_id not in hits


VISUALIZATIONS = sorted(key[1] for key in _saved_objects() if key[0] == "visualization")


def _es_aggs(aggs: list[dict[str, Any]]) -> dict[str, Any]:
    """Nest the visualization's bucket aggregations (in order) with its metrics innermost."""
    metrics = {a["id"]: {a["type"]: {"field": a["params"]["field"]}}
               for a in aggs if a["type"] not in ("count", "terms", "date_histogram")}
    tree: dict[str, Any] = metrics
    for agg in reversed([a for a in aggs if a["type"] in ("terms", "date_histogram")]):
        params = agg["params"]
        if agg["type"] == "terms":
            body = {"terms": {"field": params["field"], "size": params["size"]}}
        else:
            body = {"date_histogram": {"field": params["field"], "fixed_interval": "1h",
                                       "min_doc_count": 1}}
        if tree:
            body["aggs"] = tree
        tree = {agg["id"]: body}
    return tree


@pytest.mark.parametrize("vis_id", VISUALIZATIONS)
def test_visualization_aggregations_return_buckets(indexed, vis_id):
    vis = _saved_objects()[("visualization", vis_id)]
    state = json.loads(vis["attributes"]["visState"])
    view = _view_title(vis)
    response = indexed.client.search(index=indexed.index_for(view), size=0,
                                     aggs=_es_aggs(state["aggs"]))
    [(outer_id, outer)] = [(k, v) for k, v in response["aggregations"].items()]
    assert outer["buckets"], f"{state['title']}: no buckets"
    assert sum(b["doc_count"] for b in outer["buckets"]) > 0
    [first_bucket_agg] = [a for a in state["aggs"] if a["id"] == outer_id]
    if first_bucket_agg["type"] == "terms":
        field = first_bucket_agg["params"]["field"]
        values = {str(v) for d in indexed.docs_for(view) for v in _values(d, field)}
        assert {str(b["key"]) for b in outer["buckets"]} <= values


# --------------------------------------------------------------------------- analyst guide


def _guide_searches() -> list[tuple[str, str, str]]:
    text = GUIDE.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^### (.+?)\n(.*?)^```kql (alerts|incidents)\n(.+?)\n```",
                             text, re.M | re.S):
        found.append((match.group(1).strip(), match.group(3), match.group(4).strip()))
    return found


GUIDE_SEARCHES = _guide_searches()


def test_the_guide_has_ten_searches():
    assert len(GUIDE_SEARCHES) == 10, [title for title, _, _ in GUIDE_SEARCHES]


@pytest.mark.parametrize(("title", "view", "kql"), GUIDE_SEARCHES,
                         ids=[t for t, _, _ in GUIDE_SEARCHES])
def test_guide_search_works_on_the_indexed_samples(indexed, title, view, kql):
    view_title = {"alerts": es_schema.alerts_index_pattern(),
                  "incidents": es_schema.incidents_index()}[view]
    if "<fingerprint>" in kql:
        # The pivot search: take a fingerprint from a critical alert, as an analyst would.
        critical = next(a for a in indexed.alerts if a["severity"] == "critical")
        kql = kql.replace("<fingerprint>", critical["fingerprints"][0])
    hits = _run(indexed, view_title, kql)
    assert hits, f"{title}: {kql} finds nothing in the indexed samples"


def test_the_data_is_what_the_searches_need(indexed):
    # Guard against vacuous passes: several sites, every severity the guide talks about.
    assert len({a["site"] for a in indexed.alerts}) >= 4
    assert {"critical", "high", "medium"} <= {a["severity"] for a in indexed.alerts}
    assert any(a["watchlists"] for a in indexed.alerts)
    assert len(indexed.incidents) >= 2
