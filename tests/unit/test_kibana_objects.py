"""Kibana saved objects: importable shape, resolvable references, and only fields that exist.

Kibana cannot run here. What Kibana would reject on import (bad JSON in a JSON string, a
reference to an object that is not in the file, a version newer than Kibana) and what it would
accept but break on use (a column, sort or aggregation on a field the index template does not
map, or maps as text) is checked against streams/es_schema.py, the one source of the mappings.
The searches themselves run against the local search server in
tests/integration/test_kibana_queries.py.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from streams import es_schema

ROOT = Path(__file__).resolve().parents[2]
KIBANA = ROOT / "deploy" / "kibana"
NDJSON = KIBANA / "roriwatch.ndjson"
JSON_STRING_ATTRIBUTES = ("visState", "uiStateJSON", "panelsJSON", "optionsJSON", "fieldAttrs",
                          "fieldFormatMap", "sourceFilters", "runtimeFieldMap")
AGGREGATABLE = {"keyword", "long", "integer", "float", "double", "date", "boolean"}
KQL_FIELD = re.compile(r"([@\w][\w.@]*)\s*(?::|>=|<=|>|<)")


@functools.cache
def _generator():
    name = "roriwatch_kibana_generate"  # a unique name: no clash with other generate.py files
    spec = importlib.util.spec_from_file_location(name, KIBANA / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def _objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in NDJSON.read_text(encoding="utf-8").splitlines()]


def _by_key() -> dict[tuple[str, str], dict[str, Any]]:
    return {(obj["type"], obj["id"]): obj for obj in _objects()}


def _fields(mappings: dict[str, Any]) -> dict[str, str]:
    """Flatten a mapping into {dotted path: type}, sub-fields included (title.keyword)."""
    flat: dict[str, str] = {}

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            path = prefix + name
            flat[path] = spec.get("type", "object")
            walk(spec.get("properties", {}), path + ".")
            for sub, sub_spec in spec.get("fields", {}).items():
                flat[f"{path}.{sub}"] = sub_spec["type"]

    walk(mappings["properties"], "")
    return flat


def _dynamic_type(mappings: dict[str, Any], path: str) -> str | None:
    for template in mappings.get("dynamic_templates", []):
        for rule in template.values():
            pattern = re.escape(rule["path_match"]).replace(r"\*", r"[\w.]+")
            if re.fullmatch(pattern, path):
                return rule["mapping"]["type"]
    return None


def _mapping_for(view: dict[str, Any]) -> dict[str, Any]:
    title = view["attributes"]["title"]
    if title == es_schema.alerts_index_pattern():
        return es_schema.alert_mappings()
    if title == es_schema.incidents_index():
        return es_schema.incident_mappings()
    raise AssertionError(f"data view {title} matches no index in streams/es_schema.py")


def _field_type(view: dict[str, Any], path: str) -> str:
    mappings = _mapping_for(view)
    found = _fields(mappings).get(path) or _dynamic_type(mappings, path)
    assert found, f"{view['attributes']['title']}: no field {path} in the index template"
    return found


def _view_of(obj: dict[str, Any]) -> dict[str, Any]:
    [ref] = [r for r in obj["references"] if r["type"] == "index-pattern"]
    return _by_key()[("index-pattern", ref["id"])]


def _kql_fields(query: str) -> set[str]:
    """Field names a KQL query uses; `nested : { inner : x }` yields nested.inner."""
    fields = set()
    for nested, inner in re.findall(r"([\w.]+)\s*:\s*\{([^}]*)\}", query):
        fields |= {f"{nested}.{name}" for name in KQL_FIELD.findall(inner)}
    flat = re.sub(r"[\w.]+\s*:\s*\{[^}]*\}", "", query)
    flat = re.sub(r'"[^"]*"', '""', flat)
    return fields | {f for f in KQL_FIELD.findall(flat) if f not in ("and", "or", "not")}


def _search_source(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])


def test_ndjson_is_what_the_generator_writes():
    assert NDJSON.read_text(encoding="utf-8") == _generator().render(), \
        "stale: run python deploy/kibana/generate.py"


def test_every_line_is_a_saved_object_kibana_8_imports():
    objects = _objects()
    assert len(_by_key()) == len(objects), "duplicate type/id"
    generator = _generator()
    for obj in objects:
        assert set(obj) >= {"id", "type", "attributes", "references", "coreMigrationVersion",
                            "typeMigrationVersion"}
        assert obj["coreMigrationVersion"] == generator.CORE_MIGRATION_VERSION
        major_minor = tuple(int(p) for p in obj["typeMigrationVersion"].split(".")[:2])
        assert (8, 0) <= major_minor <= (8, 8), "Kibana refuses objects newer than itself"
        assert obj["attributes"]["title"], obj["id"]
        for name in JSON_STRING_ATTRIBUTES:
            if name in obj["attributes"]:
                json.loads(obj["attributes"][name])
        if "kibanaSavedObjectMeta" in obj["attributes"]:
            _search_source(obj)


def test_the_issue_asks_for_these_objects():
    objects = _objects()
    titles = {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    assert titles == {"roriwatch-alerts-*", "roriwatch-incidents"}
    searches = {o["attributes"]["title"] for o in objects if o["type"] == "search"}
    assert {"Critical incidents this week", "Leaks of our watch-lists",
            "Everything from one site"} <= searches
    assert [o for o in objects if o["type"] == "dashboard"]


def test_references_resolve_inside_the_file():
    objects = _by_key()
    for obj in objects.values():
        names = {ref["name"] for ref in obj["references"]}
        assert len(names) == len(obj["references"]), f"{obj['id']}: duplicate reference names"
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in objects, f"{obj['id']} -> missing {ref}"
        if "kibanaSavedObjectMeta" in obj["attributes"] and obj["type"] != "dashboard":
            assert _search_source(obj)["indexRefName"] in names
        if obj["type"] == "dashboard":
            for panel in json.loads(obj["attributes"]["panelsJSON"]):
                [ref] = [r for r in obj["references"]
                         if r["name"] == f"{panel['panelIndex']}:{panel['panelRefName']}"]
                assert ref["type"] == panel["type"]


def test_dashboard_panels_fit_the_grid_without_overlapping():
    [board] = [o for o in _objects() if o["type"] == "dashboard"]
    cells: dict[tuple[int, int], str] = {}
    panels = json.loads(board["attributes"]["panelsJSON"])
    assert len({p["panelIndex"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridData"]
        assert grid["i"] == panel["panelIndex"]
        assert grid["x"] + grid["w"] <= 48, panel
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['panelIndex']} overlaps"
                cells[(x, y)] = panel["panelIndex"]


def test_data_view_fields_exist_in_the_index_template():
    for view in (o for o in _objects() if o["type"] == "index-pattern"):
        attributes = view["attributes"]
        assert _field_type(view, attributes["timeFieldName"]) == "date"
        for name in ("fieldAttrs", "fieldFormatMap"):
            for field in json.loads(attributes[name]):
                _field_type(view, field)


def test_saved_search_fields_exist_and_sort_fields_are_sortable():
    for search in (o for o in _objects() if o["type"] == "search"):
        view = _view_of(search)
        for column in search["attributes"]["columns"]:
            _field_type(view, column)
        for field, direction in search["attributes"]["sort"]:
            assert direction in ("asc", "desc")
            assert _field_type(view, field) in AGGREGATABLE, f"cannot sort on text {field}"
        query = _search_source(search)["query"]
        assert query["language"] == "kuery"
        used = _kql_fields(query["query"])
        assert used, search["id"]
        for field in used:
            _field_type(view, field)


def test_visualization_aggregations_use_aggregatable_fields():
    for vis in (o for o in _objects() if o["type"] == "visualization"):
        view = _view_of(vis)
        state = json.loads(vis["attributes"]["visState"])
        assert state["title"] == vis["attributes"]["title"]
        for agg in state["aggs"]:
            field = agg["params"].get("field")
            if field:
                assert _field_type(view, field) in AGGREGATABLE, \
                    f"{vis['id']}: {field} is not aggregatable"
        if state["type"] != "table":
            assert any(a["type"] == "count" for a in state["aggs"])


@pytest.mark.parametrize(("query", "expected"), [
    ('severity : "critical" and last_seen >= "now-7d"', {"severity", "last_seen"}),
    ('sightings : { site : "a" and feed : paste } or not title : "x: y"',
     {"sightings.site", "sightings.feed", "title"}),
    ("counts.vn_phone > 0", {"counts.vn_phone"}),
])
def test_kql_field_extraction(query, expected):
    assert _kql_fields(query) == expected
