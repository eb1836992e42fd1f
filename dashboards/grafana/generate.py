"""Generate roriwatch's Grafana dashboards as JSON (the files Grafana provisions).

The dashboards are code so that every panel's query is a reviewable string with one place to
change it, and tests can evaluate each one against a real Prometheus
(tests/integration/test_dashboards_promql.py). The JSON in dashboards/grafana/dashboards/ is
committed and provisioned as-is; tests/unit/test_dashboards.py fails when it is out of date.

    python dashboards/grafana/generate.py           # rewrite the JSON files
    python dashboards/grafana/generate.py --check   # exit 1 if they are stale

Metrics carry no site label on purpose (unbounded cardinality): per-site views live in Kibana.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"
DATASOURCE_UID = "roriwatch-prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
GRID_WIDTH = 24
KIBANA_NOTE = (
    "Metrics have no `site` label: a site is an unbounded value, and one label per site would "
    "grow Prometheus without limit. Per-site views are in Kibana: dashboard **roriwatch — "
    "leaks**, saved search **Everything from one site** (deploy/kibana/roriwatch.ndjson)."
)


@dataclass
class Query:
    """One PromQL target of a panel; `legend` uses Grafana's {{label}} syntax."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    """A panel and its layout size; position is assigned by the row it is placed in."""

    title: str
    kind: str
    queries: list[Query] = field(default_factory=list)
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8
    stack: bool = False
    content: str = ""
    thresholds: tuple[tuple[float, str], ...] = ()


RATE = "$__rate_interval"


def _rate(metric: str, by: str = "", selector: str = "") -> str:
    grouping = f"sum by ({by}) " if by else "sum"
    return f"{grouping}(rate({metric}{{{selector}}}[{RATE}]))".replace("{}", "")


def _quantile(q: float, metric: str, by: str = "", selector: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return (f"histogram_quantile({q}, sum by ({labels}) "
            f"(rate({metric}_bucket{{{selector}}}[{RATE}])))").replace("{}", "")


def _zero_filled(expr: str, by: str, **labels: str) -> str:
    """`expr`, or 0 for every source that collects: counters born on the first event.

    The duplicates and errors counters get a series only when the first duplicate or error
    happens; without this a healthy collector shows "No data" instead of a flat zero.
    """
    alive = f"sum by ({by}) (rate(roriwatch_collector_items_total[{RATE}])) * 0"
    for label, value in labels.items():
        alive = f'label_replace({alive}, "{label}", "{value}", "", "")'
    return f"{expr} or {alive}"


FEED = 'feed=~"$feed"'


def pipeline_panels() -> list[tuple[str, list[Panel]]]:
    """Rows of the pipeline health dashboard: is data flowing, how fast, what fails."""
    return [
        ("Overview", [
            Panel("Workers up", "stat", [Query("sum(roriwatch_worker_up)", instant=True)],
                  description="Workers reporting roriwatch_worker_up = 1 (joined and consuming).",
                  width=4, height=4, thresholds=((0, "red"), (1, "green"))),
            Panel("Documents / s", "stat",
                  [Query(_rate("roriwatch_documents_total", selector=FEED), instant=True)],
                  unit="ops", width=5, height=4),
            Panel("Consumer lag", "stat",
                  [Query("sum(roriwatch_consumer_lag)", instant=True)],
                  description="Messages on the feed and alert topics not yet committed.",
                  width=5, height=4, thresholds=((0, "green"), (1000, "orange"),
                                                 (10000, "red"))),
            Panel("Dead letters (1h)", "stat",
                  [Query("sum(increase(roriwatch_deadletter_total[1h]))", instant=True)],
                  width=5, height=4, thresholds=((0, "green"), (1, "orange"))),
            Panel("Elasticsearch failures (1h)", "stat",
                  [Query("sum(increase(roriwatch_es_bulk_failures_total[1h]))", instant=True)],
                  width=5, height=4, thresholds=((0, "green"), (1, "red"))),
        ]),
        ("Throughput", [
            Panel("Documents per feed", "timeseries",
                  [Query(_rate("roriwatch_documents_total", "feed", FEED), "{{feed}}")],
                  unit="ops", stack=True),
            Panel("Bytes per feed", "timeseries",
                  [Query(_rate("roriwatch_bytes_total", "feed", FEED), "{{feed}}")],
                  unit="Bps", stack=True),
        ]),
        ("Lag and latency", [
            Panel("Consumer lag per topic", "timeseries",
                  [Query("sum by (topic) (roriwatch_consumer_lag)", "{{topic}}")],
                  description="Growing lag means the workers fall behind the feeds: see the "
                              "RoriwatchConsumerLagGrowing alert.", width=8),
            Panel("Scan latency per feed (p50 / p95 / p99)", "timeseries", [
                Query(_quantile(0.5, "roriwatch_scan_duration_seconds", "feed", FEED),
                      "p50 {{feed}}"),
                Query(_quantile(0.95, "roriwatch_scan_duration_seconds", "feed", FEED),
                      "p95 {{feed}}"),
                Query(_quantile(0.99, "roriwatch_scan_duration_seconds", "feed", FEED),
                      "p99 {{feed}}"),
            ], unit="s", width=8),
            Panel("End-to-end lag (fetched → indexed)", "timeseries", [
                Query(_quantile(0.5, "roriwatch_end_to_end_lag_seconds"), "p50"),
                Query(_quantile(0.95, "roriwatch_end_to_end_lag_seconds"), "p95"),
            ], unit="s", width=8),
        ]),
        ("Elasticsearch", [
            Panel("Bulk requests / s", "timeseries",
                  [Query("sum(rate(roriwatch_es_bulk_duration_seconds_count[$__rate_interval]))",
                         "bulk requests")], unit="reqps", width=6),
            Panel("Bulk latency (p50 / p95)", "timeseries", [
                Query(_quantile(0.5, "roriwatch_es_bulk_duration_seconds"), "p50"),
                Query(_quantile(0.95, "roriwatch_es_bulk_duration_seconds"), "p95"),
            ], unit="s", width=6),
            Panel("Failures by reason", "timeseries",
                  [Query(_rate("roriwatch_es_bulk_failures_total", "reason"), "{{reason}}")],
                  unit="ops", width=6, stack=True),
            Panel("Retries / s", "timeseries",
                  [Query("sum(rate(roriwatch_es_retries_total[$__rate_interval]))", "retries")],
                  unit="ops", width=6),
        ]),
        ("Dead letters", [
            Panel("Dead letters by reason", "timeseries",
                  [Query(_rate("roriwatch_deadletter_total", "reason"), "{{reason}}")],
                  unit="ops", width=16, stack=True),
            Panel("Dead letters by reason (range)", "bargauge",
                  [Query("sort_desc(sum by (reason) "
                         "(increase(roriwatch_deadletter_total[$__range])))",
                         "{{reason}}", instant=True)], width=8),
        ]),
        ("Collectors", [
            Panel("Items collected per source", "timeseries", [
                Query(_rate("roriwatch_collector_items_total", "source"), "{{source}}"),
                Query(_zero_filled(_rate("roriwatch_collector_duplicates_total", "source"),
                                   "source"), "{{source}} duplicates dropped"),
            ], unit="ops", width=6),
            Panel("Bytes collected per source", "timeseries",
                  [Query(_rate("roriwatch_collector_bytes_total", "source"), "{{source}}")],
                  unit="Bps", width=6, stack=True),
            Panel("Collector errors by source and kind", "timeseries",
                  [Query(_zero_filled(_rate("roriwatch_collector_errors_total",
                                            "source, kind"), "source", kind="none"),
                         "{{source}} {{kind}}")], unit="ops", width=6),
            Panel("Time since last successful poll", "bargauge",
                  [Query("time() - max by (source) "
                         "(roriwatch_collector_last_success_timestamp_seconds)",
                         "{{source}}", instant=True)],
                  unit="s", width=6, thresholds=((0, "green"), (900, "orange"),
                                                 (3600, "red"))),
        ]),
    ]


def detection_panels() -> list[tuple[str, list[Panel]]]:
    """Rows of the detections dashboard: what was found, how bad, where (by feed)."""
    return [
        ("Overview", [
            Panel("Critical alerts (24h)", "stat",
                  [Query('sum(increase(roriwatch_alerts_total{severity="critical"}[24h]))',
                         instant=True)],
                  width=6, height=4, thresholds=((0, "green"), (1, "red"))),
            Panel("Alerts (24h)", "stat",
                  [Query("sum(increase(roriwatch_alerts_total[24h]))", instant=True)],
                  width=6, height=4),
            Panel("Findings (24h)", "stat",
                  [Query("sum(increase(roriwatch_findings_total[24h]))", instant=True)],
                  width=6, height=4),
            Panel("Critical incidents (24h)", "stat",
                  [Query('sum(increase(roriwatch_incidents_total{severity="critical"}[24h]))',
                         instant=True)],
                  width=6, height=4, thresholds=((0, "green"), (1, "red"))),
        ]),
        ("Findings", [
            Panel("Findings per detector", "timeseries",
                  [Query(_rate("roriwatch_findings_total", "detector"), "{{detector}}")],
                  unit="ops", width=16, stack=True),
            Panel("Findings per detector (range)", "bargauge",
                  [Query("sort_desc(sum by (detector) "
                         "(increase(roriwatch_findings_total[$__range])))",
                         "{{detector}}", instant=True)], width=8),
        ]),
        ("Alerts and incidents", [
            Panel("Alerts per severity", "timeseries",
                  [Query("sum by (severity) "
                         "(increase(roriwatch_alerts_total[$__rate_interval]))", "{{severity}}")],
                  width=12, stack=True),
            Panel("Incidents per severity", "timeseries",
                  [Query("sum by (severity) "
                         "(increase(roriwatch_incidents_total[$__rate_interval]))",
                         "{{severity}}")],
                  description="An incident groups the alerts of one leak seen in several "
                              "places.", width=12, stack=True),
        ]),
        ("Per feed", [
            Panel("Documents scanned per feed", "timeseries",
                  [Query("sum by (feed) (increase(roriwatch_documents_total{feed=~\"$feed\"}"
                         "[$__rate_interval]))", "{{feed}}")], width=12, stack=True),
            Panel("Scan time spent per feed", "timeseries",
                  [Query(_rate("roriwatch_scan_duration_seconds_sum", "feed", FEED),
                         "{{feed}}")],
                  description="Seconds of scanning per second: which feed costs the most CPU.",
                  unit="s", width=12, stack=True),
        ]),
        ("Watch-lists and sites", [
            Panel("Watch-list hits", "timeseries",
                  [Query("sum by (watchlist) "
                         "(increase(roriwatch_watchlist_hits_total[$__rate_interval]))",
                         "{{watchlist}}")],
                  description="Leaks naming the organisation's own brands, domains or systems "
                              "(watch-list rules).", width=12),
            Panel("Per site", "text", content=KIBANA_NOTE, width=12),
        ]),
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
    }
    if panel.description:
        body["description"] = panel.description
    if panel.kind == "text":
        body["options"] = {"mode": "markdown", "content": panel.content}
        return body
    body["datasource"] = DATASOURCE
    body["targets"] = [
        {
            "refId": chr(ord("A") + index),
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "range": not query.instant,
            "instant": query.instant,
        }
        for index, query in enumerate(panel.queries)
    ]
    steps = [{"color": color, "value": None if i == 0 else value}
             for i, (value, color) in enumerate(panel.thresholds or ((0, "green"),))]
    body["fieldConfig"] = {
        "defaults": {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}},
        "overrides": [],
    }
    if panel.kind == "timeseries":
        body["fieldConfig"]["defaults"]["custom"] = {
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "fillOpacity": 20 if panel.stack else 0,
        }
        body["options"] = {"legend": {"displayMode": "list", "placement": "bottom",
                                      "showLegend": True},
                           "tooltip": {"mode": "multi", "sort": "desc"}}
    elif panel.kind == "stat":
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                             "values": False},
                           "colorMode": "value", "graphMode": "area", "textMode": "auto"}
    elif panel.kind == "bargauge":
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                             "values": False},
                           "orientation": "horizontal", "displayMode": "gradient"}
    return body


def _layout(rows: Iterable[tuple[str, list[Panel]]]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, row_panels in rows:
        panels.append({"id": next_id, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row_panels:
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel_json(panel, next_id, x, y))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


def _templating(with_feed: bool) -> dict[str, Any]:
    variables: list[dict[str, Any]] = [{
        "name": "datasource",
        "label": "Prometheus",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": "Prometheus", "value": DATASOURCE_UID},
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }]
    if with_feed:
        variables.append({
            "name": "feed",
            "label": "Feed",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": "label_values(roriwatch_documents_total, feed)",
                      "refId": "feed"},
            "definition": "label_values(roriwatch_documents_total, feed)",
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"text": "All", "value": "$__all"},
            "refresh": 2,
            "sort": 1,
            "hide": 0,
            "regex": "",
        })
    return {"list": variables}


def dashboard(uid: str, title: str, description: str, rows, tags: list[str]) -> dict[str, Any]:
    """One dashboard JSON model, as Grafana exports it for provisioning (no numeric id)."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["roriwatch", *tags],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [{"title": "roriwatch dashboards", "type": "dashboards", "tags": ["roriwatch"],
                   "asDropdown": True, "includeVars": False, "keepTime": True,
                   "targetBlank": False, "icon": "external link", "tooltip": "", "url": ""}],
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "templating": _templating(with_feed=True),
        "panels": _layout(rows),
    }


def dashboards() -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON model."""
    return {
        "roriwatch-pipeline.json": dashboard(
            "roriwatch-pipeline", "roriwatch — pipeline health",
            "Is data flowing through the workers, how fast, and what fails: throughput per "
            "feed, consumer lag, scan latency, Elasticsearch errors, dead letters, collectors.",
            pipeline_panels(), ["pipeline"]),
        "roriwatch-detections.json": dashboard(
            "roriwatch-detections", "roriwatch — detections",
            "What the detectors find: findings per detector, alerts and incidents per severity, "
            "per feed over time, watch-list hits. Per-site views are in Kibana.",
            detection_panels(), ["detections", "soc"]),
    }


def render_all() -> dict[Path, str]:
    """Path → file text, stable (sorted keys, trailing newline) so diffs stay readable."""
    return {OUT_DIR / name: json.dumps(model, indent=2, ensure_ascii=False) + "\n"
            for name, model in dashboards().items()}


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with --check report the stale ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    args = parser.parse_args(argv)
    stale = [path for path, text in render_all().items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(HERE)} is out of date: run {Path(__file__).name}")
        return 1 if stale else 0
    OUT_DIR.mkdir(exist_ok=True)
    for path, text in render_all().items():
        if path in stale:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
