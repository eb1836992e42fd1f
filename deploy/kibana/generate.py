"""Generate deploy/kibana/roriwatch.ndjson: Kibana 8 saved objects for roriwatch's indices.

Import with Kibana's Saved Objects page (Stack Management → Saved Objects → Import) or
`POST /api/saved_objects/_import?overwrite=true` (docs/operations.md#kibana). Kibana 8.8 or later:
objects carry coreMigrationVersion 8.8.0 and Kibana refuses objects newer than itself.

Saved objects nest JSON inside JSON strings (visState, panelsJSON, searchSourceJSON), which is
unreviewable by hand; this script keeps them as Python data. tests/unit/test_kibana_objects.py
fails when the committed NDJSON differs from what this writes, and checks every field the
objects name against the index template in streams/es_schema.py.

    python deploy/kibana/generate.py           # rewrite roriwatch.ndjson
    python deploy/kibana/generate.py --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET = HERE / "roriwatch.ndjson"
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSIONS = {"index-pattern": "8.0.0", "search": "8.0.0",
                           "visualization": "8.5.0", "dashboard": "8.7.0"}
ALERTS_VIEW = "roriwatch-alerts"
INCIDENTS_VIEW = "roriwatch-incidents"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _saved_object(kind: str, object_id: str, attributes: dict[str, Any],
                  references: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "id": object_id,
        "type": kind,
        "attributes": attributes,
        "references": references,
        "managed": False,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSIONS[kind],
    }


def _search_source(query: str) -> dict[str, Any]:
    return {"kibanaSavedObjectMeta": {"searchSourceJSON": _compact({
        "query": {"query": query, "language": "kuery"},
        "filter": [],
        "indexRefName": INDEX_REF,
    })}}


def _view_ref(view: str) -> list[dict[str, str]]:
    return [{"name": INDEX_REF, "type": "index-pattern", "id": view}]


def data_views() -> list[dict[str, Any]]:
    """The two data views; field labels make Discover readable for analysts."""
    alerts_labels = {
        "severity_rank": "Severity (1 low … 4 critical)",
        "estimated_records": "Estimated records (people)",
        "findings_total": "Identifiers found",
        "distinct_fingerprints": "Distinct identifiers",
        "watchlists": "Watch-lists named",
        "detectors": "Identifier types",
    }
    return [
        _saved_object("index-pattern", ALERTS_VIEW, {
            "title": "roriwatch-alerts-*",
            "name": "roriwatch alerts",
            "timeFieldName": "@timestamp",
            # Finding offsets are for drill-down only; hide them from Discover's documents.
            "sourceFilters": _compact([{"value": "findings"}]),
            "fieldAttrs": _compact({f: {"customLabel": label}
                                    for f, label in alerts_labels.items()}),
            "fieldFormatMap": _compact({"url": {"id": "url"}}),
            "runtimeFieldMap": "{}",
            "allowNoIndex": True,
        }, []),
        _saved_object("index-pattern", INCIDENTS_VIEW, {
            "title": "roriwatch-incidents",
            "name": "roriwatch incidents",
            "timeFieldName": "last_seen",
            "sourceFilters": "[]",
            "fieldAttrs": _compact({"first_seen": {"customLabel": "First seen"},
                                    "last_seen": {"customLabel": "Last seen"}}),
            "fieldFormatMap": "{}",
            "runtimeFieldMap": "{}",
            "allowNoIndex": True,
        }, []),
    ]


@dataclass(frozen=True)
class SavedSearch:
    """A Discover search an analyst opens by name."""

    object_id: str
    title: str
    description: str
    view: str
    query: str
    columns: tuple[str, ...]
    sort: tuple[str, str]


SEARCHES = (
    SavedSearch(
        "roriwatch-critical-incidents-week", "Critical incidents this week",
        "Critical leaks (bulk identity records, card numbers, ID-card QR payloads, bank "
        "accounts with holders) still being seen in the last 7 days, newest first.",
        INCIDENTS_VIEW, 'severity : "critical" and last_seen >= "now-7d"',
        ("title", "severity", "estimated_records", "detectors", "watchlists", "first_seen"),
        ("last_seen", "desc")),
    SavedSearch(
        "roriwatch-watchlist-leaks", "Leaks of our watch-lists",
        "Alerts that name one of the organisation's watch-lists (brands, domains, internal "
        'systems). For one watch-list, change the query to watchlists : "<watch-list id>".',
        ALERTS_VIEW, "watchlists : *",
        ("watchlists", "site", "feed", "severity", "title", "url"), ("@timestamp", "desc")),
    SavedSearch(
        "roriwatch-one-site", "Everything from one site",
        "Every alert from one site, most severe first. Edit the site in the query "
        '(site : "<site>") or click a site in the dashboard\'s "Top sites" table.',
        ALERTS_VIEW, 'site : "forum.vi.example"',
        ("severity", "feed", "title", "url", "detectors", "estimated_records"),
        ("severity_rank", "desc")),
    SavedSearch(
        "roriwatch-critical-alerts", "Critical alerts",
        "Every critical alert, newest first: the SOC's triage queue.",
        ALERTS_VIEW, 'severity : "critical"',
        ("site", "feed", "title", "reasons", "estimated_records", "url"), ("@timestamp", "desc")),
    SavedSearch(
        "roriwatch-bulk-dumps", "Bulk dumps (100+ records)",
        "Documents with at least 100 records combining two identifier types: database dumps "
        "and customer lists, largest first.",
        ALERTS_VIEW, "estimated_records >= 100",
        ("site", "title", "estimated_records", "detectors", "severity", "url"),
        ("estimated_records", "desc")),
    SavedSearch(
        "roriwatch-payment-cards", "Payment card numbers",
        "Alerts with Luhn-valid card numbers (PCI DSS scope: notify the card issuers).",
        ALERTS_VIEW, 'detectors : "payment_card"',
        ("site", "feed", "title", "counts.payment_card", "severity", "url"),
        ("@timestamp", "desc")),
)


def saved_searches() -> list[dict[str, Any]]:
    """Discover searches for the analysts' common questions."""
    return [
        _saved_object("search", s.object_id, {
            "title": s.title,
            "description": s.description,
            "columns": list(s.columns),
            "sort": [list(s.sort)],
            "grid": {},
            "hideChart": False,
            "isTextBasedQuery": False,
            **_search_source(s.query),
        }, _view_ref(s.view))
        for s in SEARCHES
    ]


def _count() -> dict[str, Any]:
    return {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}


def _terms(agg_id: str, field: str, size: int, schema: str, label: str) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema, "params": {
        "field": field, "size": size, "order": "desc", "orderBy": "1",
        "otherBucket": False, "missingBucket": False, "customLabel": label}}


def _over_time(field: str = "@timestamp") -> dict[str, Any]:
    return {"id": "2", "enabled": True, "type": "date_histogram", "schema": "segment",
            "params": {"field": field, "interval": "auto", "min_doc_count": 1,
                       "extended_bounds": {}, "customLabel": ""}}


def _xy_params(kind: str, label: str) -> dict[str, Any]:
    return {
        "type": kind,
        "grid": {"categoryLines": False},
        "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom",
                          "show": True, "scale": {"type": "linear"},
                          "labels": {"show": True, "filter": True, "truncate": 100},
                          "title": {}}],
        "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value",
                       "position": "left", "show": True,
                       "scale": {"type": "linear", "mode": "normal"},
                       "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                       "title": {"text": label}}],
        "seriesParams": [{"show": True, "type": "histogram", "mode": "stacked",
                          "data": {"label": label, "id": "1"}, "valueAxis": "ValueAxis-1",
                          "drawLinesBetweenPoints": True, "lineWidth": 2,
                          "showCircles": True}],
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "labels": {"show": False},
        "thresholdLine": {"show": False, "value": 10, "width": 1, "style": "full",
                          "color": "#E7664C"},
    }


_PIE_PARAMS = {"type": "pie", "addTooltip": True, "legendDisplay": "show",
               "legendPosition": "right", "isDonut": True, "nestedLegend": False,
               "distinctColors": True,
               "labels": {"show": True, "values": True, "last_level": True, "truncate": 100}}
_TABLE_PARAMS = {"perPage": 20, "showPartialRows": False, "showMetricsAtAllLevels": False,
                 "showTotal": False, "totalFunc": "sum", "percentageCol": "",
                 "showToolbar": True}


@dataclass(frozen=True)
class Visualization:
    """An aggregation-based visualization (the kind Kibana 8 still imports as-is)."""

    object_id: str
    title: str
    view: str
    vis_type: str
    aggs: tuple[dict[str, Any], ...]
    params: dict[str, Any]


VISUALIZATIONS = (
    Visualization("roriwatch-vis-severity", "Alerts by severity", ALERTS_VIEW, "pie",
                  (_count(), _terms("2", "severity", 4, "segment", "Severity")), _PIE_PARAMS),
    Visualization("roriwatch-vis-sites-over-time", "Alerts per site over time", ALERTS_VIEW,
                  "histogram",
                  (_count(), _over_time(), _terms("3", "site", 10, "group", "Site")),
                  _xy_params("histogram", "Alerts")),
    Visualization("roriwatch-vis-feeds-over-time", "Alerts per feed over time", ALERTS_VIEW,
                  "histogram",
                  (_count(), _over_time(), _terms("3", "feed", 5, "group", "Feed")),
                  _xy_params("histogram", "Alerts")),
    Visualization("roriwatch-vis-top-sites", "Top sites", ALERTS_VIEW, "table",
                  (_count(),
                   {"id": "3", "enabled": True, "type": "max", "schema": "metric",
                    "params": {"field": "severity_rank", "customLabel": "Worst severity"}},
                   {"id": "4", "enabled": True, "type": "sum", "schema": "metric",
                    "params": {"field": "estimated_records", "customLabel": "Records"}},
                   _terms("2", "site", 20, "bucket", "Site")), _TABLE_PARAMS),
    Visualization("roriwatch-vis-detectors", "Alerts per identifier type", ALERTS_VIEW,
                  "horizontal_bar",
                  (_count(), _terms("2", "detectors", 15, "segment", "Identifier type")),
                  _xy_params("histogram", "Alerts")),
    Visualization("roriwatch-vis-incidents-severity", "Incidents by severity", INCIDENTS_VIEW,
                  "pie", (_count(), _terms("2", "severity", 4, "segment", "Severity")),
                  _PIE_PARAMS),
)


def visualizations() -> list[dict[str, Any]]:
    """Charts for the dashboard; per-site views live here, not in Grafana (no site label)."""
    return [
        _saved_object("visualization", v.object_id, {
            "title": v.title,
            "description": "",
            "version": 1,
            "uiStateJSON": "{}",
            "visState": _compact({"title": v.title, "type": v.vis_type,
                                  "aggs": list(v.aggs), "params": v.params}),
            **_search_source(""),
        }, _view_ref(v.view))
        for v in VISUALIZATIONS
    ]


# (object id, saved object type, x, y, w, h) on Kibana's 48-column grid.
DASHBOARD_LAYOUT = (
    ("roriwatch-vis-severity", "visualization", 0, 0, 12, 12),
    ("roriwatch-vis-incidents-severity", "visualization", 12, 0, 12, 12),
    ("roriwatch-vis-top-sites", "visualization", 24, 0, 24, 12),
    ("roriwatch-vis-sites-over-time", "visualization", 0, 12, 24, 14),
    ("roriwatch-vis-feeds-over-time", "visualization", 24, 12, 24, 14),
    ("roriwatch-vis-detectors", "visualization", 0, 26, 16, 15),
    ("roriwatch-critical-alerts", "search", 16, 26, 32, 15),
    ("roriwatch-critical-incidents-week", "search", 0, 41, 24, 15),
    ("roriwatch-watchlist-leaks", "search", 24, 41, 24, 15),
)


def dashboard() -> dict[str, Any]:
    """The analysts' landing page: severity, sites and feeds over time, triage lists."""
    panels, references = [], []
    for index, (object_id, kind, x, y, w, h) in enumerate(DASHBOARD_LAYOUT, start=1):
        panel_index = str(index)
        panels.append({
            "version": CORE_MIGRATION_VERSION,
            "type": kind,
            "gridData": {"x": x, "y": y, "w": w, "h": h, "i": panel_index},
            "panelIndex": panel_index,
            "embeddableConfig": {"enhancements": {}},
            "panelRefName": f"panel_{panel_index}",
        })
        references.append({"name": f"{panel_index}:panel_{panel_index}", "type": kind,
                           "id": object_id})
    return _saved_object("dashboard", "roriwatch-leaks", {
        "title": "roriwatch — leaks",
        "description": "Leaks of Vietnamese personal data found by roriwatch: severity, sites "
                       "and feeds over time, and the triage lists. Values are masked; "
                       "fingerprints allow pivoting without the raw identifiers.",
        "panelsJSON": _compact(panels),
        "optionsJSON": _compact({"useMargins": True, "syncColors": False,
                                 "syncCursor": True, "syncTooltips": False,
                                 "hidePanelTitles": False}),
        "version": 1,
        "timeRestore": True,
        "timeFrom": "now-7d",
        "timeTo": "now",
        "refreshInterval": {"pause": False, "value": 60000},
        "kibanaSavedObjectMeta": {"searchSourceJSON": _compact({
            "query": {"query": "", "language": "kuery"}, "filter": []})},
    }, references)


def saved_objects() -> list[dict[str, Any]]:
    """Every object, referenced objects before the objects that reference them."""
    return [*data_views(), *saved_searches(), *visualizations(), dashboard()]


def render() -> str:
    """NDJSON text as Kibana exports it: one compact object per line, keys sorted."""
    return "".join(json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
                   + "\n" for obj in saved_objects())


def main(argv: list[str] | None = None) -> int:
    """Write the NDJSON, or with --check report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if args.check:
        if current != text:
            print(f"{TARGET.name} is out of date: run {Path(__file__).name}")
            return 1
        return 0
    if current != text:
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
