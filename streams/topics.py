"""Create the pipeline's Kafka topics explicitly, with the configured partition count.

Relying on broker auto-creation gives whatever partition count the broker defaults to (Tansu
uses 4, Kafka ``num.partitions``), and partitions are the unit of parallelism: a topic with one
partition can feed only one worker. Faust also requires that a table's changelog has as many
partitions as its source topic, which only explicit creation guarantees. Feed topics also get
``max.message.bytes`` to match RORIWATCH_MAX_CONTENT_BYTES. Existing topics are never altered
(that would reshuffle keys); a different count is reported so an operator decides.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from streams.decode import max_message_bytes
from streams.settings import Settings

log = logging.getLogger(__name__)


class TopicError(RuntimeError):
    """Topics could not be checked or created; the message says what to do."""


@dataclass
class TopicReport:
    """What :func:`ensure_topics` found and did."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    mismatched: dict[str, int] = field(default_factory=dict)


def pipeline_topics(settings: Settings) -> dict[str, int]:
    """Topic name → partition count for every topic the pipeline reads or writes."""
    names = [*settings.feed_topics().values(), settings.topic_alerts, settings.topic_deadletter]
    return dict.fromkeys(names, settings.topic_partitions)


def topic_configs(settings: Settings, name: str) -> dict[str, str]:
    """Per-topic configuration set at creation.

    Feed topics accept records up to the content limit (Kafka's default is 1 MiB, far below
    RORIWATCH_MAX_CONTENT_BYTES); alerts and dead letters are bounded well under the default.
    """
    if name in settings.feed_topics().values():
        return {"max.message.bytes": str(max_message_bytes(settings.max_content_bytes))}
    return {}


def bootstrap_servers(broker: str) -> list[str]:
    """``kafka://h1:9092;h2:9092`` (Faust's URL form) → ``["h1:9092", "h2:9092"]``."""
    servers = []
    for part in broker.replace(",", ";").split(";"):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            servers.append(part.rstrip("/"))
    if not servers:
        raise TopicError(f"RORIWATCH_BROKER={broker!r} names no host:port")
    return servers


def _admin_config(settings: Settings, timeout_s: float) -> dict[str, Any]:
    from kafka import KafkaAdminClient

    timeout_ms = int(timeout_s * 1000)
    want: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings.broker),
        "client_id": f"{settings.app_id}-topics",
        "request_timeout_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
        "api_version_auto_timeout_ms": timeout_ms,
        **settings.kafka_client_options(),
    }
    # kafka-python 2.x and 3.x accept different options: pass only the known ones.
    return {k: v for k, v in want.items() if k in KafkaAdminClient.DEFAULT_CONFIG}


def _partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for described in admin.describe_topics(names):
        partitions = described.get("partitions") or []
        if partitions:
            counts[described.get("topic") or described.get("name")] = len(partitions)
    return counts


def ensure_topics(settings: Settings, *, timeout_s: float = 15.0) -> TopicReport:
    """Create missing pipeline topics; report existing ones with another partition count.

    Safe to run from several processes at once: losing the creation race is fine.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    wanted = pipeline_topics(settings)
    report = TopicReport()
    try:
        admin = KafkaAdminClient(**_admin_config(settings, timeout_s))
    except KafkaError as exc:
        raise TopicError(f"cannot reach Kafka at {settings.broker} ({type(exc).__name__}); "
                         "start it (roriwatch up, or scripts/services.sh up) or fix "
                         "RORIWATCH_BROKER") from None
    try:
        present = set(admin.list_topics())
        missing = [name for name in wanted if name not in present]
        for name in missing:
            # One call per topic: a batch that loses a creation race for one topic would
            # leave the others to chance.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, num_partitions=wanted[name],
                                              replication_factor=1,
                                              topic_configs=topic_configs(settings, name))])
                report.created.append(name)
        report.existing.extend(name for name in wanted if name in present)
        # Metadata of fresh topics can lag a moment behind the create call.
        deadline = time.monotonic() + timeout_s
        while True:
            counts = _partition_counts(admin, list(wanted))
            if all(name in counts for name in wanted) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for name, partitions in wanted.items():
            have = counts.get(name)
            if have is None:
                raise TopicError(f"topic {name} still has no partitions after creation")
            if have != partitions:
                report.mismatched[name] = have
                log.warning("topic %s has %d partitions, RORIWATCH_TOPIC_PARTITIONS says %d; "
                            "left as is (changing it reshuffles keys)", name, have, partitions)
    except KafkaError as exc:
        raise TopicError(f"Kafka at {settings.broker} refused topic setup "
                         f"({type(exc).__name__}: {exc})") from None
    finally:
        admin.close()
    if report.created:
        log.info("created topics %s with %d partitions", ", ".join(report.created),
                 settings.topic_partitions)
    return report
