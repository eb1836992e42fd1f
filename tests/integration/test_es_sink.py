"""AlertIndexer against the local Elasticsearch: idempotent writes, error separation, outages.

The outage test stops and restarts a server, so it runs its own private noida-db (own data dir,
own free ports) and never touches the shared one on 9092/9200 that other tests use.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch, Elasticsearch

from streams import es_schema
from streams.es_setup import setup_elasticsearch
from streams.es_sink import AlertIndexer, AsyncAlertIndexer, RetryPolicy

BOUND_S = 30  # no wait in this file may exceed this


def make_alert(n: int, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "alert_id": f"alert-{n:05d}",
        "detected_at": "2024-05-01T10:00:00Z",
        "fetched_at": "2024-05-01T09:59:58Z",
        "feed": "paste",
        "site": "paste.example",
        "item_id": f"item-{n}",
        "url": f"https://paste.example/{n}",
        "title": f"dump {n}",
        "content_bytes": 1000 + n,
        "severity": "high",
        "severity_rank": 3,
        "reasons": ["12 citizen ID(s)"],
        "detectors": ["vn_citizen_id"],
        "counts": {"vn_citizen_id": 12},
        "findings_total": 12,
        "distinct_fingerprints": 12,
        "estimated_records": 12,
        "fingerprints": [f"fp{n}"],
        "samples": [{"detector": "vn_citizen_id", "masked": "0792******34", "confidence": 0.9}],
        "findings": [
            {
                "detector": "vn_citizen_id",
                "start": 1,
                "end": 13,
                "confidence": 0.9,
                "masked": "0792******34",
            }
        ],
    }
    doc.update(extra)
    return doc


def _cleanup(client: Elasticsearch, prefix: str) -> None:
    indices = client.indices.get(index=f"{prefix}-*", ignore_unavailable=True).body
    if indices:
        client.indices.delete(index=",".join(indices), ignore_unavailable=True)
    tolerant = client.options(ignore_status=404)
    for name in es_schema.index_templates(prefix):
        tolerant.indices.delete_index_template(name=name)
    for name in es_schema.component_templates(prefix):
        tolerant.cluster.delete_component_template(name=name)


@pytest.fixture
def alias(es_client: Elasticsearch, unique_name: str) -> Iterator[str]:
    report = setup_elasticsearch(es_client, retention_days=90, prefix=unique_name)
    yield report.write_alias
    _cleanup(es_client, unique_name)


def test_indexing_the_same_alerts_twice_keeps_one_doc_each(
    es_client: Elasticsearch, alias: str
) -> None:
    alerts = [make_alert(i) for i in range(300)]
    indexer = AlertIndexer(es_client, alias=alias, refresh="wait_for", chunk_size=128)

    first = indexer.index_alerts(alerts)
    second = indexer.index_alerts(alerts)  # a redelivery after a rebalance

    assert first.indexed == second.indexed == 300
    assert first.failed == second.failed == []
    assert es_client.count(index=alias)["count"] == 300
    doc = es_client.get(index=alias, id="alert-00007")
    assert doc["_version"] == 2
    assert doc["_source"]["@timestamp"] == "2024-05-01T10:00:00Z"
    assert doc["_source"]["indexed_at"]


def test_mapping_errors_come_back_for_dead_lettering(es_client: Elasticsearch, alias: str) -> None:
    bulks: list[int] = []
    failures: list[str] = []
    indexer = AlertIndexer(
        es_client,
        alias=alias,
        refresh="wait_for",
        on_bulk=lambda _duration, n: bulks.append(n),
        on_failure=failures.append,
    )
    alerts = [
        make_alert(1),
        make_alert(2, content_bytes="0912345678 not a number"),
        make_alert(3, detected_at="sometime last week"),
        make_alert(4),
    ]
    result = indexer.index_alerts(alerts)

    assert result.indexed == 2
    assert result.failed_ids == ["alert-00002", "alert-00003"]
    for _, reason in result.failed:
        assert reason.startswith("400 ")
        assert "0912345678" not in reason and "last week" not in reason
    assert "[content_bytes]" in result.failed[0][1]
    assert bulks == [4]
    assert len(failures) == 2
    assert es_client.count(index=alias)["count"] == 2


def test_async_indexer_writes_through_async_client(es_url: str, alias: str) -> None:
    async def run() -> Any:
        client = AsyncElasticsearch(es_url, request_timeout=10)
        try:
            indexer = AsyncAlertIndexer(client, alias=alias, refresh="wait_for")
            first = await indexer.index_alerts(make_alert(i) for i in range(120))
            again = await indexer.index_alerts(make_alert(i) for i in range(60))
            count = (await client.count(index=alias))["count"]
        finally:
            await client.close()
        return first, again, count

    first, again, count = asyncio.run(asyncio.wait_for(run(), timeout=BOUND_S))
    assert first.indexed == 120 and again.indexed == 60
    assert count == 120


# --- outage: a private server that the test may stop ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _noida_binary() -> str:
    beside_python = Path(sys.executable).with_name("noida-db")
    found = str(beside_python) if beside_python.exists() else shutil.which("noida-db")
    if not found:
        pytest.skip("noida-db is not installed; `bash scripts/services.sh up` installs it")
    return found


class PrivateServer:
    """A noida-db Elasticsearch only this test uses: stop/start must not hit anyone else."""

    def __init__(self, data_dir: Path) -> None:
        self.binary = _noida_binary()
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / "private-noida.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "start",
                    "--only",
                    "elasticsearch",
                    "--host",
                    "127.0.0.1",
                    "--elasticsearch-port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"private noida-db exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"private noida-db not ready within {BOUND_S}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # noida-db's own `down` saves data; it returns before the process has exited.
        subprocess.run(
            [self.binary, "down", "--data-dir", str(self.data_dir)],
            capture_output=True,
            timeout=BOUND_S,
            check=False,
        )
        try:
            self.process.wait(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)
        pytest.fail(f"port {self.port} still open after stopping the private server")


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[PrivateServer]:
    server = PrivateServer(tmp_path / "noida")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_waits_through_an_outage_and_loses_nothing(private_server: PrivateServer) -> None:
    client = Elasticsearch(private_server.url, request_timeout=5, max_retries=0)
    report = setup_elasticsearch(client, retention_days=90, prefix="outage")
    retries: list[str] = []
    indexer = AlertIndexer(
        client,
        alias=report.write_alias,
        retry=RetryPolicy.until_back(base_delay_s=0.1, max_delay_s=1.0),
        on_retry=retries.append,
        refresh="wait_for",
    )
    before = indexer.index_alerts([make_alert(i) for i in range(50)])
    assert before.indexed == 50

    private_server.stop()
    outcome: dict[str, Any] = {}

    def index_during_outage() -> None:
        try:
            outcome["result"] = indexer.index_alerts([make_alert(i) for i in range(50, 150)])
        except BaseException as exc:  # surfaced by the assertion below
            outcome["error"] = exc

    worker = threading.Thread(target=index_during_outage, daemon=True)
    worker.start()
    deadline = time.monotonic() + BOUND_S
    while len(retries) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(retries) >= 3, "indexer should be retrying while the server is down"
    assert worker.is_alive(), "indexer must wait, not give up"

    private_server.start()
    worker.join(timeout=BOUND_S)
    if worker.is_alive():
        indexer.stop()
        worker.join(timeout=5)
        pytest.fail("indexer did not finish after the server came back")
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.indexed == 100 and result.failed == []
    assert set(retries) <= {"connection_error", "timeout", "http_503"}

    client.indices.refresh(index=report.write_alias)
    assert client.count(index=report.write_alias)["count"] == 150
    ids = {
        hit["_id"]
        for hit in client.search(index=report.write_alias, size=200, source=False)["hits"]["hits"]
    }
    assert ids == {f"alert-{i:05d}" for i in range(150)}
    client.close()
