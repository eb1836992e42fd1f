"""Elasticsearch layout for roriwatch: templates, mappings and the retention policy, as data.

Everything here is a plain dict so it can be reviewed, diffed and tested without a server;
`streams.es_setup` is what sends it. Mappings are explicit because Kibana builds its field list
(and so its filters, visualisations and sort options) from them: a field mapped dynamically as
`text` cannot be aggregated, and one guessed as `date` from a string breaks the index later.

Names follow the alert and incident documents that the pipeline writes; change them there and
here together.
"""

from __future__ import annotations

from typing import Any

DEFAULT_PREFIX = "roriwatch"
DEFAULT_RETENTION_DAYS = 90
DEFAULT_ROLLOVER_MAX_AGE = "7d"
DEFAULT_ROLLOVER_MAX_PRIMARY_SHARD_SIZE = "25gb"
SCHEMA_VERSION = 1

SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}

# Keyword values longer than this are kept in _source but not indexed: a Lucene term is limited
# to 32 KiB and one pathological URL or title must not make a whole alert unindexable.
_URL_IGNORE_ABOVE = 4096
_TITLE_IGNORE_ABOVE = 512
_REASON_IGNORE_ABOVE = 1024

JsonDict = dict[str, Any]


def alerts_alias(prefix: str = DEFAULT_PREFIX) -> str:
    """Name writers use; an alias so that rollover can move writes to a new index."""
    return f"{prefix}-alerts"


def alerts_first_index(prefix: str = DEFAULT_PREFIX) -> str:
    """First concrete index behind the alias; the numeric suffix is what rollover increments."""
    return f"{prefix}-alerts-000001"


def alerts_index_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """Pattern matching every generation of the alerts index (also the Kibana data view)."""
    return f"{prefix}-alerts-*"


def incidents_index(prefix: str = DEFAULT_PREFIX) -> str:
    """Incidents are updated in place (one document per incident), so one index, no rollover."""
    return f"{prefix}-incidents"


def ilm_policy_name(prefix: str = DEFAULT_PREFIX) -> str:
    """ILM policy shared by all alert indices."""
    return f"{prefix}-alerts"


def _keyword(ignore_above: int | None = None) -> JsonDict:
    mapping: JsonDict = {"type": "keyword"}
    if ignore_above is not None:
        mapping["ignore_above"] = ignore_above
    return mapping


def _text_with_keyword(ignore_above: int) -> JsonDict:
    # text for full-text search in Discover, .keyword for terms aggregations and exact filters.
    keyword = {"type": "keyword", "ignore_above": ignore_above}
    return {"type": "text", "fields": {"keyword": keyword}}


_DATE: JsonDict = {"type": "date"}

# counts is {detector_id: number}; detector ids come from the rule files and grow over time, so
# the keys cannot be listed here. The dynamic template pins every new key to long; without it a
# first value of 1.0 would map the field as float forever.
_COUNTS_DYNAMIC_TEMPLATE: JsonDict = {
    "counts_as_long": {"path_match": "counts.*", "mapping": {"type": "long"}}
}
_COUNTS: JsonDict = {"type": "object", "dynamic": True}


def alert_mappings() -> JsonDict:
    """Describe one alert document (one scanned item with findings) field by field."""
    return {
        "_meta": {"managed_by": "roriwatch", "schema_version": SCHEMA_VERSION},
        # Unknown top-level fields stay in _source but are not indexed: a new field in the
        # pipeline then cannot explode the mapping or reject documents, and is added here on
        # purpose when someone needs to search it.
        "dynamic": False,
        # Strings must never be guessed as dates (item ids like "2024-01-02" exist).
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": [_COUNTS_DYNAMIC_TEMPLATE],
        "properties": {
            "alert_id": _keyword(),
            "@timestamp": _DATE,
            "detected_at": _DATE,
            "published_at": _DATE,
            "fetched_at": _DATE,
            "indexed_at": _DATE,
            "feed": _keyword(),
            "site": _keyword(),
            "item_id": _keyword(),
            "author": _keyword(),
            "key_id": _keyword(),
            "rules_version": _keyword(),
            "content_sha256": _keyword(),
            "incident_id": _keyword(),
            "url": _keyword(_URL_IGNORE_ABOVE),
            "title": _text_with_keyword(_TITLE_IGNORE_ABOVE),
            "content_bytes": {"type": "long"},
            "severity": _keyword(),
            "severity_rank": {"type": "integer"},
            "reasons": _text_with_keyword(_REASON_IGNORE_ABOVE),
            "detectors": _keyword(),
            "counts": _COUNTS,
            "findings_total": {"type": "integer"},
            "distinct_fingerprints": {"type": "integer"},
            "distinct_estimated": {"type": "boolean"},
            "estimated_records": {"type": "integer"},
            "fingerprints": _keyword(),
            "watchlists": _keyword(),
            "samples": {
                "type": "object",
                "properties": {
                    "detector": _keyword(),
                    "masked": _keyword(),
                    "confidence": {"type": "float"},
                },
            },
            # Kept for drill-down in the document view only: thousands of offsets per alert
            # would cost more to index than they are worth to search.
            "findings": {"type": "object", "enabled": False},
        },
    }


def incident_mappings() -> JsonDict:
    """Describe one incident document (the same leak seen in several places) field by field."""
    return {
        "_meta": {"managed_by": "roriwatch", "schema_version": SCHEMA_VERSION},
        "dynamic": False,
        "date_detection": False,
        "numeric_detection": False,
        "dynamic_templates": [_COUNTS_DYNAMIC_TEMPLATE],
        "properties": {
            "incident_id": _keyword(),
            "first_seen": _DATE,
            "last_seen": _DATE,
            "severity": _keyword(),
            "severity_rank": {"type": "integer"},
            # nested: "seen on site X at time T" must match within one sighting, not across two.
            "sightings": {
                "type": "nested",
                "properties": {
                    "site": _keyword(),
                    "feed": _keyword(),
                    "url": _keyword(_URL_IGNORE_ABOVE),
                    "seen_at": _DATE,
                    "alert_id": _keyword(),
                },
            },
            "alert_ids": _keyword(),
            "counts": _COUNTS,
            "estimated_records": {"type": "integer"},
            "fingerprints_count": {"type": "integer"},
            "watchlists": _keyword(),
            "detectors": _keyword(),
            "title": _text_with_keyword(_TITLE_IGNORE_ABOVE),
        },
    }


def index_settings(*, ilm_policy: str | None = None, rollover_alias: str | None = None) -> JsonDict:
    """Index settings; the lifecycle part only when the server has accepted the ILM policy.

    One primary shard: alert volume is small (thousands a day), and Elasticsearch's guidance is
    shards of tens of GB. auto_expand_replicas keeps a single-node cluster green and gives a
    replica as soon as a second node joins.
    """
    index: JsonDict = {
        "number_of_shards": 1,
        "auto_expand_replicas": "0-1",
        "refresh_interval": "1s",
    }
    if ilm_policy:
        lifecycle: JsonDict = {"name": ilm_policy}
        if rollover_alias:
            lifecycle["rollover_alias"] = rollover_alias
        index["lifecycle"] = lifecycle
    return {"index": index}


def ilm_policy(
    retention_days: int = DEFAULT_RETENTION_DAYS,
    *,
    rollover_max_age: str = DEFAULT_ROLLOVER_MAX_AGE,
    rollover_max_primary_shard_size: str = DEFAULT_ROLLOVER_MAX_PRIMARY_SHARD_SIZE,
) -> JsonDict:
    """ILM policy body (the `policy` argument of `ilm.put_lifecycle`).

    The delete phase's min_age counts from rollover, so an alert lives between retention_days
    and retention_days + rollover_max_age: whoever sets the retention should know it is a lower
    bound, and that the personal data in samples is gone one rollover period after it.
    """
    if retention_days < 1:
        raise ValueError(f"retention_days must be at least 1, got {retention_days}")
    return {
        "_meta": {"managed_by": "roriwatch", "schema_version": SCHEMA_VERSION},
        "phases": {
            "hot": {
                "min_age": "0ms",
                "actions": {
                    "rollover": {
                        "max_age": rollover_max_age,
                        "max_primary_shard_size": rollover_max_primary_shard_size,
                    },
                    "set_priority": {"priority": 100},
                },
            },
            "delete": {
                "min_age": f"{retention_days}d",
                "actions": {"delete": {}},
            },
        },
    }


def component_templates(
    prefix: str = DEFAULT_PREFIX, *, lifecycle_policy: str | None = None
) -> dict[str, JsonDict]:
    """Component templates by name: the `template` body of `cluster.put_component_template`.

    Mappings and settings are separate components so a deployment can override settings
    (replicas, refresh) with its own component without copying the mappings.
    """
    return {
        f"{prefix}-alerts-mappings": {"mappings": alert_mappings()},
        f"{prefix}-alerts-settings": {
            "settings": index_settings(
                ilm_policy=lifecycle_policy, rollover_alias=alerts_alias(prefix)
            )
        },
        f"{prefix}-incidents-mappings": {"mappings": incident_mappings()},
        f"{prefix}-incidents-settings": {"settings": index_settings()},
    }


def index_templates(prefix: str = DEFAULT_PREFIX) -> dict[str, JsonDict]:
    """Composable index templates by name: keyword arguments of `indices.put_index_template`.

    Priority 200 puts them above Elasticsearch's built-in templates (100 and below); the two
    patterns do not overlap, which Elasticsearch requires at equal priority.
    """
    meta = {"managed_by": "roriwatch", "schema_version": SCHEMA_VERSION}
    return {
        f"{prefix}-alerts": {
            "index_patterns": [alerts_index_pattern(prefix)],
            "composed_of": [f"{prefix}-alerts-mappings", f"{prefix}-alerts-settings"],
            "priority": 200,
            "meta": meta,
        },
        f"{prefix}-incidents": {
            "index_patterns": [incidents_index(prefix)],
            "composed_of": [f"{prefix}-incidents-mappings", f"{prefix}-incidents-settings"],
            "priority": 200,
            "meta": meta,
        },
    }
