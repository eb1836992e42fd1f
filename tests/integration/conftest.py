"""Fixtures for tests against the local Kafka + Elasticsearch (noida-db) and Prometheus.

The services are shared: one `bash scripts/services.sh up` serves every engineer's and CI's
tests, so a test never assumes an empty server: it names its topics, groups and indices with
`unique_name` and cleans up after itself. Ports follow the same environment variables as
scripts/services.sh.

Kafka and Elasticsearch missing is a failure, not a skip: a green run that silently skipped the
integration tests would hide that they never ran. Prometheus is optional (`up --with-prometheus`).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

HOST = "127.0.0.1"
_HERE = Path(__file__).resolve().parent


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


KAFKA_PORT = _port("RORIWATCH_KAFKA_PORT", 9092)
ES_PORT = _port("RORIWATCH_ES_PORT", 9200)
PROM_PORT = _port("RORIWATCH_PROM_PORT", 9090)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every test under tests/integration needs the services: mark them so `-m "not integration"`
    # gives the fast unit-only run.
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _unreachable(port: int, detail: str) -> str:
    return (
        f"Kafka/Elasticsearch not reachable on {HOST}:{port} — run "
        f"`bash scripts/services.sh up` first\n({detail})"
    )


def kafka_admin_config(bootstrap: str, timeout_ms: int = 5000) -> dict[str, object]:
    """Keyword arguments for KafkaAdminClient that fail fast on kafka-python 2.x and 3.x."""
    from kafka import KafkaAdminClient

    want: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "client_id": "roriwatch-tests",
        "request_timeout_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
        "api_version_auto_timeout_ms": timeout_ms,
    }
    return {k: v for k, v in want.items() if k in KafkaAdminClient.DEFAULT_CONFIG}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of the shared broker, checked with a real metadata request."""
    from kafka import KafkaAdminClient

    bootstrap = f"{HOST}:{KAFKA_PORT}"
    problem = None
    try:
        admin = KafkaAdminClient(**kafka_admin_config(bootstrap, timeout_ms=3000))
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:  # failed outside the except block: no chained traceback noise
        pytest.fail(_unreachable(KAFKA_PORT, problem), pytrace=False)
    return bootstrap


@pytest.fixture
def kafka_admin(kafka_bootstrap: str) -> Iterator[object]:
    """A connected KafkaAdminClient with fail-fast timeouts, closed after the test."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_admin_config(kafka_bootstrap))
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def es_url() -> str:
    """Base URL of the shared Elasticsearch, checked with GET /."""
    url = f"http://{HOST}:{ES_PORT}"
    version, problem = "", None
    try:
        with urllib.request.urlopen(url + "/", timeout=3) as resp:
            version = json.load(resp)["version"]["number"]
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        pytest.fail(_unreachable(ES_PORT, problem), pytrace=False)
    assert version.startswith("8."), f"expected an Elasticsearch 8.x API, got {version}"
    return url


@pytest.fixture(scope="session")
def es_client(es_url: str) -> Iterator[Elasticsearch]:
    """Client shared by the session; short timeouts so a dead server fails a test, not hangs it."""
    client = Elasticsearch(es_url, request_timeout=10, max_retries=1)
    yield client
    client.close()


@pytest.fixture(scope="session")
def prometheus_url() -> str:
    """Base URL of the local Prometheus; tests that need it skip when it is not running."""
    url = f"http://{HOST}:{PROM_PORT}"
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=3) as resp:
            ready = resp.status == 200
    except Exception as exc:
        ready = False
        detail = f"{type(exc).__name__}: {exc}"
    else:
        detail = "not ready"
    if not ready:
        pytest.skip(
            f"Prometheus not reachable on {HOST}:{PROM_PORT} ({detail}) — run "
            "`bash scripts/services.sh up --with-prometheus` to run this test"
        )
    return url


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test or run uses: valid as Kafka topic, group id and ES index name.

    Lowercase letters, digits and '-', starting with a letter; the test's own name is in it so
    leftovers on the shared server can be traced back.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    slug = slug.removeprefix("test-")[:32].strip("-") or "t"
    return f"t-{slug}-{uuid.uuid4().hex[:10]}"
