"""Install roriwatch's Elasticsearch layout: templates, retention policy, write alias, indices.

Safe to run on every start of the pipeline and from several processes at once: every step is a
PUT of the same body or a "create if missing" that tolerates losing the race. It is written for
real Elasticsearch 8.x and degrades where a compatible server lacks a feature (noida-db and
OpenSearch have no ILM): the gap is recorded in the report instead of failing the start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from streams import es_schema

log = logging.getLogger(__name__)

ILM_UNSUPPORTED_PREFIX = "ILM not supported by this server"


class SetupError(RuntimeError):
    """The cluster is in a state setup must not repair on its own (it would lose data)."""


@dataclass
class SetupReport:
    """What setup found and did, for the start-up log and for tests."""

    component_templates: list[str] = field(default_factory=list)
    index_templates: list[str] = field(default_factory=list)
    ilm_policy: str | None = None
    ilm_supported: bool = True
    write_alias: str = ""
    write_index: str | None = None
    incidents_index: str = ""
    created: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def setup_elasticsearch(
    client: Elasticsearch,
    *,
    retention_days: int = es_schema.DEFAULT_RETENTION_DAYS,
    prefix: str = es_schema.DEFAULT_PREFIX,
    rollover_max_age: str = es_schema.DEFAULT_ROLLOVER_MAX_AGE,
    rollover_max_primary_shard_size: str = es_schema.DEFAULT_ROLLOVER_MAX_PRIMARY_SHARD_SIZE,
) -> SetupReport:
    """Bring the cluster to the layout in `es_schema`; idempotent, so call it on every start.

    Order matters: the ILM policy must exist before templates name it, and templates must exist
    before the first index is created, or that index would get dynamic mappings for good.
    """
    report = SetupReport(
        write_alias=es_schema.alerts_alias(prefix),
        incidents_index=es_schema.incidents_index(prefix),
    )

    policy_name = _install_ilm_policy(
        client,
        report,
        prefix=prefix,
        body=es_schema.ilm_policy(
            retention_days,
            rollover_max_age=rollover_max_age,
            rollover_max_primary_shard_size=rollover_max_primary_shard_size,
        ),
    )

    for name, template in es_schema.component_templates(
        prefix, lifecycle_policy=policy_name
    ).items():
        client.cluster.put_component_template(
            name=name, template=template, meta={"managed_by": "roriwatch"}
        )
        report.component_templates.append(name)

    for name, kwargs in es_schema.index_templates(prefix).items():
        client.indices.put_index_template(name=name, **kwargs)
        report.index_templates.append(name)

    _ensure_write_alias(client, report, prefix=prefix, policy_name=policy_name)
    _ensure_index(client, report, report.incidents_index)
    log.info(
        "elasticsearch ready: alias %s -> %s, ilm=%s, created=%s",
        report.write_alias,
        report.write_index,
        report.ilm_policy or "unsupported",
        report.created or "nothing",
    )
    for note in report.notes:
        log.warning("elasticsearch setup: %s", note)
    return report


def _ilm_unsupported(exc: ApiError) -> bool:
    # Elasticsearch answers 400 "no handler found for uri" for a REST path it does not serve;
    # proxies and other servers answer 404/405. A real policy error is a 400 with a typed error.
    if exc.meta.status in (404, 405, 410, 501):
        return True
    return exc.meta.status == 400 and "no handler found" in str(exc.message) + str(exc.body)


def _install_ilm_policy(
    client: Elasticsearch, report: SetupReport, *, prefix: str, body: dict[str, Any]
) -> str | None:
    name = es_schema.ilm_policy_name(prefix)
    try:
        client.ilm.put_lifecycle(name=name, policy=body)
    except ApiError as exc:
        if not _ilm_unsupported(exc):
            raise
        report.ilm_supported = False
        report.notes.append(
            f"{ILM_UNSUPPORTED_PREFIX}: {exc.meta.status} {exc.message}; "
            "alerts are neither rolled over nor deleted by the server"
        )
        return None
    report.ilm_policy = name
    return name


def _alias_indices(client: Elasticsearch, alias: str) -> dict[str, Any]:
    # {index: alias settings}; {} when the alias does not exist.
    if not client.indices.exists_alias(name=alias):
        return {}
    body = client.indices.get_alias(name=alias).body
    return {index: info.get("aliases", {}).get(alias, {}) for index, info in body.items()}


def _ensure_write_alias(
    client: Elasticsearch, report: SetupReport, *, prefix: str, policy_name: str | None
) -> None:
    alias = report.write_alias
    if client.indices.exists(index=alias) and not client.indices.exists_alias(name=alias):
        # Someone wrote to "roriwatch-alerts" before setup ran and Elasticsearch auto-created
        # a concrete index with dynamic mappings. Deleting it would lose alerts: a person decides.
        first = es_schema.alerts_first_index(prefix)
        raise SetupError(
            f"{alias!r} is a concrete index, not an alias, so rollover and the mappings in "
            f"the template cannot apply. Fix: reindex it into {first} (POST _reindex), "
            f"delete {alias!r}, and run setup again."
        )

    indices = _alias_indices(client, alias)
    if not indices:
        first = es_schema.alerts_first_index(prefix)
        if client.indices.exists(index=first):
            # The index survived but its alias did not (manual cleanup): re-attach, keep data.
            client.indices.update_aliases(
                actions=[{"add": {"index": first, "alias": alias, "is_write_index": True}}]
            )
            report.created.append(f"alias {alias} -> {first}")
        else:
            try:
                client.indices.create(index=first, aliases={alias: {"is_write_index": True}})
                report.created.append(first)
            except ApiError as exc:
                # Another process won the race: fine, as long as the alias exists afterwards.
                if _error_type(exc) != "resource_already_exists_exception":
                    raise
        indices = _alias_indices(client, alias)

    writers = [index for index, conf in indices.items() if conf.get("is_write_index")]
    if not writers and len(indices) == 1:
        # An alias over a single index writes there even without the flag.
        writers = list(indices)
    if len(writers) != 1:
        raise SetupError(
            f"alias {alias!r} points to {sorted(indices)} with no single write index, so "
            f"writes would fail. Fix: POST _aliases with "
            f'{{"add": {{"index": "<newest>", "alias": "{alias}", "is_write_index": true}}}}'
        )
    report.write_index = writers[0]

    if policy_name:
        _attach_policy(client, report, writers[0], policy_name, alias)


def _attach_policy(
    client: Elasticsearch, report: SetupReport, index: str, policy_name: str, alias: str
) -> None:
    # An index created while ILM was unavailable (or before the policy existed) keeps its
    # settings; without this it would never roll over or expire.
    settings = client.indices.get_settings(index=index, name="index.lifecycle.*").body
    lifecycle = settings.get(index, {}).get("settings", {}).get("index", {}).get("lifecycle", {})
    if lifecycle.get("name") == policy_name:
        return
    client.indices.put_settings(
        index=index,
        settings={"index.lifecycle.name": policy_name, "index.lifecycle.rollover_alias": alias},
    )
    report.notes.append(f"attached ILM policy {policy_name} to existing index {index}")


def _ensure_index(client: Elasticsearch, report: SetupReport, index: str) -> None:
    if client.indices.exists(index=index):
        return
    try:
        client.indices.create(index=index)
        report.created.append(index)
    except ApiError as exc:
        if _error_type(exc) != "resource_already_exists_exception":
            raise


def _error_type(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("type", ""))
    return str(exc.message)
