"""setup_elasticsearch against the local server: idempotent, and the mappings really apply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from streams import es_schema
from streams.es_setup import (
    ILM_UNSUPPORTED_PREFIX,
    SetupError,
    SetupReport,
    setup_elasticsearch,
)

ALERT_FIELD_TYPES = {
    "alert_id": "keyword",
    "@timestamp": "date",
    "detected_at": "date",
    "published_at": "date",
    "fetched_at": "date",
    "indexed_at": "date",
    "feed": "keyword",
    "site": "keyword",
    "item_id": "keyword",
    "author": "keyword",
    "key_id": "keyword",
    "rules_version": "keyword",
    "content_sha256": "keyword",
    "incident_id": "keyword",
    "url": "keyword",
    "title": "text",
    "content_bytes": "long",
    "severity": "keyword",
    "severity_rank": "integer",
    "reasons": "text",
    "detectors": "keyword",
    "findings_total": "integer",
    "distinct_fingerprints": "integer",
    "estimated_records": "integer",
    "fingerprints": "keyword",
    "watchlists": "keyword",
}

INCIDENT_FIELD_TYPES = {
    "incident_id": "keyword",
    "first_seen": "date",
    "last_seen": "date",
    "severity": "keyword",
    "severity_rank": "integer",
    "sightings": "nested",
    "alert_ids": "keyword",
    "estimated_records": "integer",
    "fingerprints_count": "integer",
    "watchlists": "keyword",
    "detectors": "keyword",
    "title": "text",
}


@pytest.fixture
def prefix(es_client: Elasticsearch, unique_name: str) -> Iterator[str]:
    """A private prefix, so templates and indices of parallel runs never meet; removed after."""
    yield unique_name
    indices = es_client.indices.get(index=f"{unique_name}-*", ignore_unavailable=True).body
    if indices:
        es_client.indices.delete(index=",".join(indices), ignore_unavailable=True)
    tolerant = es_client.options(ignore_status=404)
    for name in es_schema.index_templates(unique_name):
        tolerant.indices.delete_index_template(name=name)
    for name in es_schema.component_templates(unique_name):
        tolerant.cluster.delete_component_template(name=name)


def _properties(es_client: Elasticsearch, index: str) -> dict:
    return es_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]


def _ilm_handled(report: SetupReport, prefix: str) -> bool:
    # Real Elasticsearch installs the policy; noida-db has no ILM and that must be reported.
    if report.ilm_supported:
        return report.ilm_policy == es_schema.ilm_policy_name(prefix)
    return any(note.startswith(f"{ILM_UNSUPPORTED_PREFIX}: ") for note in report.notes)


def test_setup_twice_is_idempotent(es_client: Elasticsearch, prefix: str) -> None:
    first = setup_elasticsearch(es_client, retention_days=30, prefix=prefix)
    second = setup_elasticsearch(es_client, retention_days=30, prefix=prefix)

    alias = f"{prefix}-alerts"
    first_index = f"{prefix}-alerts-000001"
    assert first.created == [first_index, f"{prefix}-incidents"]
    assert second.created == []
    assert first.write_index == second.write_index == first_index
    assert first.component_templates == second.component_templates
    assert len(first.component_templates) == 4 and len(first.index_templates) == 2
    assert _ilm_handled(first, prefix) and _ilm_handled(second, prefix)

    aliases = es_client.indices.get_alias(name=alias).body
    assert aliases == {first_index: {"aliases": {alias: {"is_write_index": True}}}}
    templates = es_client.indices.get_index_template(name=f"{prefix}-alerts").body
    (template,) = templates["index_templates"]
    assert template["index_template"]["index_patterns"] == [f"{prefix}-alerts-*"]


def test_template_mappings_apply_to_every_new_alerts_index(
    es_client: Elasticsearch, prefix: str
) -> None:
    setup_elasticsearch(es_client, retention_days=90, prefix=prefix)
    # The first index from setup, and one created later as a rollover would.
    later = f"{prefix}-alerts-000002"
    es_client.indices.create(index=later)
    for index in (f"{prefix}-alerts-000001", later):
        props = _properties(es_client, index)
        for name, expected in ALERT_FIELD_TYPES.items():
            assert props[name]["type"] == expected, (index, name)
        assert props["title"]["fields"]["keyword"]["type"] == "keyword"
        assert props["reasons"]["fields"]["keyword"]["type"] == "keyword"
        assert props["findings"]["enabled"] is False
        samples = props["samples"]["properties"]
        assert {k: v["type"] for k, v in samples.items()} == {
            "detector": "keyword",
            "masked": "keyword",
            "confidence": "float",
        }
        mappings = es_client.indices.get_mapping(index=index)[index]["mappings"]
        assert str(mappings["dynamic"]).lower() == "false"


def test_counts_become_long_and_findings_stay_unindexed(
    es_client: Elasticsearch, prefix: str
) -> None:
    report = setup_elasticsearch(es_client, retention_days=90, prefix=prefix)
    es_client.index(
        index=report.write_alias,
        id="alert-1",
        document={
            "alert_id": "alert-1",
            "@timestamp": "2024-05-01T10:00:00Z",
            "counts": {"vn_phone": 3, "vn_citizen_id": 2.0},
            "findings": [{"detector": "vn_phone", "start": 10, "end": 20, "masked": "09******78"}],
            "not_in_mapping": "ignored",
        },
        refresh="wait_for",
    )
    props = _properties(es_client, report.write_index)
    counts = props["counts"]["properties"]
    assert counts["vn_phone"]["type"] == "long"
    assert counts["vn_citizen_id"]["type"] == "long", "2.0 must not turn the field into float"
    assert "not_in_mapping" not in props
    assert "properties" not in props["findings"]
    hit = es_client.get(index=report.write_alias, id="alert-1")["_source"]
    assert hit["findings"][0]["masked"] == "09******78", "kept in _source for the document view"


def test_incidents_index_gets_its_own_mapping(es_client: Elasticsearch, prefix: str) -> None:
    report = setup_elasticsearch(es_client, retention_days=90, prefix=prefix)
    props = _properties(es_client, report.incidents_index)
    for name, expected in INCIDENT_FIELD_TYPES.items():
        assert props[name]["type"] == expected, name
    sightings = props["sightings"]["properties"]
    assert {k: v["type"] for k, v in sightings.items()} == {
        "site": "keyword",
        "feed": "keyword",
        "url": "keyword",
        "seen_at": "date",
        "alert_id": "keyword",
    }
    es_client.index(
        index=report.incidents_index,
        id="inc-1",
        document={
            "incident_id": "inc-1",
            "counts": {"email": 4},
            "sightings": [
                {"site": "paste.example", "seen_at": "2024-05-01T10:00:00Z", "alert_id": "a-1"},
                {"site": "forum.example", "seen_at": "2024-05-02T10:00:00Z", "alert_id": "a-2"},
            ],
        },
        refresh="wait_for",
    )
    assert _properties(es_client, report.incidents_index)["counts"]["properties"]["email"] == {
        "type": "long"
    }
    # nested: site and alert_id must match within the same sighting.
    crossed = {
        "nested": {
            "path": "sightings",
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"sightings.site": "paste.example"}},
                        {"term": {"sightings.alert_id": "a-2"}},
                    ]
                }
            },
        }
    }
    assert es_client.count(index=report.incidents_index, query=crossed)["count"] == 0


def test_setup_keeps_the_write_index_after_a_rollover(
    es_client: Elasticsearch, prefix: str
) -> None:
    report = setup_elasticsearch(es_client, retention_days=90, prefix=prefix)
    rolled = es_client.indices.rollover(alias=report.write_alias)
    assert rolled["rolled_over"] is True
    again = setup_elasticsearch(es_client, retention_days=90, prefix=prefix)
    assert again.write_index == rolled["new_index"] == f"{prefix}-alerts-000002"
    assert again.created == []
    assert _properties(es_client, again.write_index)["severity_rank"]["type"] == "integer"


def test_reattaches_the_alias_to_a_surviving_first_index(
    es_client: Elasticsearch, prefix: str
) -> None:
    es_client.indices.create(index=f"{prefix}-alerts-000001")
    report = setup_elasticsearch(es_client, retention_days=90, prefix=prefix)
    assert report.write_index == f"{prefix}-alerts-000001"
    assert f"alias {prefix}-alerts -> {prefix}-alerts-000001" in report.created


def test_refuses_a_concrete_index_where_the_alias_belongs(
    es_client: Elasticsearch, prefix: str
) -> None:
    es_client.indices.create(index=f"{prefix}-alerts")
    with pytest.raises(SetupError, match="concrete index, not an alias"):
        setup_elasticsearch(es_client, retention_days=90, prefix=prefix)


def test_ilm_policy_body_follows_retention() -> None:
    policy = es_schema.ilm_policy(45, rollover_max_age="1d", rollover_max_primary_shard_size="5gb")
    assert policy["phases"]["delete"] == {"min_age": "45d", "actions": {"delete": {}}}
    rollover = policy["phases"]["hot"]["actions"]["rollover"]
    assert rollover == {"max_age": "1d", "max_primary_shard_size": "5gb"}
    with pytest.raises(ValueError):
        es_schema.ilm_policy(0)


class _WithIlm:
    """The real client, except that ILM calls succeed: exercises the real-Elasticsearch path."""

    def __init__(self, client: Elasticsearch) -> None:
        self._client = client
        self.policies: dict[str, dict] = {}
        self.ilm = self

    def put_lifecycle(self, *, name: str, policy: dict) -> None:
        self.policies[name] = policy

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)


def test_indices_reference_the_policy_when_the_server_has_ilm(
    es_client: Elasticsearch, prefix: str
) -> None:
    without = setup_elasticsearch(es_client, retention_days=30, prefix=prefix)
    assert without.write_index == f"{prefix}-alerts-000001"

    with_ilm = _WithIlm(es_client)
    report = setup_elasticsearch(with_ilm, retention_days=30, prefix=prefix)
    policy_name = es_schema.ilm_policy_name(prefix)
    assert report.ilm_supported and report.ilm_policy == policy_name
    assert with_ilm.policies[policy_name]["phases"]["delete"]["min_age"] == "30d"
    # the index created while ILM was missing gets the policy attached, once
    assert report.notes == [
        f"attached ILM policy {policy_name} to existing index {prefix}-alerts-000001"
    ]
    assert setup_elasticsearch(with_ilm, retention_days=30, prefix=prefix).notes == []

    es_client.indices.create(index=f"{prefix}-alerts-000002")
    for index in (f"{prefix}-alerts-000001", f"{prefix}-alerts-000002"):
        settings = es_client.indices.get_settings(index=index, name="index.lifecycle.*")
        lifecycle = settings[index]["settings"]["index"]["lifecycle"]
        assert lifecycle == {"name": policy_name, "rollover_alias": f"{prefix}-alerts"}
