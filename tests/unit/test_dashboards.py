"""Grafana dashboards: generated files in sync, valid against the dashboard schema, coherent.

Grafana cannot be installed here, so the JSON is checked against the dashboard JSON model
(dashboards/grafana/dashboard.schema.json) plus what Grafana would only show at run time:
overlapping panels, undefined variables, unknown metrics, a datasource uid nobody provisions.
Every query is evaluated against a real Prometheus in
tests/integration/test_dashboards_promql.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.collectors.metrics import collector_metrics
from streams.metrics import PipelineMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
SCHEMA = json.loads((GRAFANA / "dashboard.schema.json").read_text(encoding="utf-8"))
FUTURE_METRICS = {"roriwatch_incidents_total", "roriwatch_watchlist_hits_total"}
GRAFANA_VARIABLES = {"__rate_interval", "__range", "__interval", "__all"}

def _load_generator():
    name = "roriwatch_grafana_generate"  # a unique name: no clash with other generate.py files
    spec = importlib.util.spec_from_file_location(name, GRAFANA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def _dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted((GRAFANA / "dashboards").glob("*.json"))}


def _targets(dashboard: dict):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def _families() -> dict[str, str]:
    registry = CollectorRegistry()
    PipelineMetrics.create(registry, detectors=["vn_citizen_id"])
    collector_metrics(registry)
    return {family.name: family.type for family in registry.collect()}


def _sample_names() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",)}
    return {name + suffix for name, kind in _families().items() for suffix in suffixes[kind]}


def test_committed_json_is_what_the_generator_makes():
    for path, text in generate.render_all().items():
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.name} is stale: run python dashboards/grafana/generate.py"
    assert {p.name for p in (GRAFANA / "dashboards").glob("*.json")} == \
        {p.name for p in generate.render_all()}


@pytest.mark.parametrize("name", sorted(_dashboards()))
def test_dashboard_is_valid_against_the_schema(name):
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in validator.iter_errors(_dashboards()[name])]
    assert not errors, "\n".join(errors)


def test_schema_rejects_what_grafana_would_silently_drop():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    dashboard = copy.deepcopy(_dashboards()["roriwatch-pipeline.json"])
    dashboard["panels"][1]["gridpos"] = dashboard["panels"][1].pop("gridPos")
    assert list(validator.iter_errors(dashboard))
    dashboard = copy.deepcopy(_dashboards()["roriwatch-pipeline.json"])
    dashboard["panels"][1]["targets"][0].pop("refId")
    assert list(validator.iter_errors(dashboard))


@pytest.mark.parametrize("name", sorted(_dashboards()))
def test_panels_have_unique_ids_and_do_not_overlap(name):
    dashboard = _dashboards()[name]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("name", sorted(_dashboards()))
def test_queries_use_defined_variables_and_the_datasource_variable(name):
    dashboard = _dashboards()[name]
    defined = {v["name"] for v in dashboard["templating"]["list"]} | GRAFANA_VARIABLES
    for panel, target in _targets(dashboard):
        used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
        assert used <= defined, f"{panel['title']}: undefined {sorted(used - defined)}"
        assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["datasource"] == target["datasource"]
        assert "site" not in re.findall(r"(\w+)\s*=~?", target["expr"]), \
            "metrics have no site label"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            used = set(re.findall(r"\broriwatch_\w+", variable["definition"]))
            assert used <= _sample_names()


def test_queries_name_only_metrics_the_code_exports():
    known = _sample_names() | FUTURE_METRICS
    for dashboard in _dashboards().values():
        for panel, target in _targets(dashboard):
            used = set(re.findall(r"\broriwatch_\w+", target["expr"]))
            assert used, f"{panel['title']} queries no roriwatch metric"
            assert used <= known, f"{panel['title']}: unknown {sorted(used - known)}"


def test_every_exported_metric_is_on_a_dashboard():
    used = " ".join(target["expr"] for dashboard in _dashboards().values()
                    for _, target in _targets(dashboard))
    missing = {name for name in _families() if not re.search(rf"\b{name}(_\w+)?\b", used)}
    assert not missing, f"metrics no panel shows: {sorted(missing)}"


def test_the_panels_the_issue_asks_for_exist():
    titles = {name: " | ".join(p["title"].lower() for p in d["panels"])
              for name, d in _dashboards().items()}
    for words in ("documents per feed", "consumer lag", "scan latency", "elasticsearch",
                  "failures by reason", "dead letters"):
        assert words in titles["roriwatch-pipeline.json"], words
    for words in ("findings per detector", "alerts per severity", "incidents per severity",
                  "per feed", "watch-list hits", "per site"):
        assert words in titles["roriwatch-detections.json"], words


def test_provisioning_matches_the_dashboards():
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "roriwatch.yaml").read_text("utf-8"))
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == generate.DATASOURCE_UID
    for dashboard in _dashboards().values():
        [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
        assert variable["current"]["value"] == source["uid"]
    monitor = yaml.safe_load(
        (ROOT / "deploy/k8s/components/monitoring/servicemonitor.yaml").read_text("utf-8"))
    assert source["jsonData"]["timeInterval"] == monitor["spec"]["endpoints"][0]["interval"]
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "roriwatch.yaml").read_text("utf-8"))
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    uids = [d["uid"] for d in _dashboards().values()]
    assert len(uids) == len(set(uids))
