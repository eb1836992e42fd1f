"""Every Grafana panel query, evaluated by a real Prometheus scraping a real pipeline.

The module starts, on 127.0.0.1 and with names no other test uses:
  * `roriwatch worker` (topics, consumer group and Elasticsearch indices of its own),
  * `roriwatch collect log` tailing a copy of samples/logs/app.log into the worker's log topic,
  * Debian's `prometheus` on a free port with its own data directory, scraping both every second,
then replays samples/feeds/ through `roriwatch replay`'s code path and, once the worker has
processed them, sends every dashboard query through Prometheus' HTTP API. A query must parse
and return data; the only exception is a query whose metrics the code does not export yet
(incidents, watch-list hits), which must still parse.

The shared Prometheus of scripts/services.sh is left alone: its targets are not ours.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from streams.pipeline_commands import replay_samples, start_worker_process, stop_worker_process
from streams.settings import load_settings

from .conftest import HOST, KAFKA_PORT, kafka_admin_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards" / "grafana" / "dashboards"
FUTURE_METRICS = {"roriwatch_incidents_total", "roriwatch_watchlist_hits_total"}
# What Grafana substitutes before sending a query; $feed is "All".
SUBSTITUTIONS = {"$__rate_interval": "1m", "$__range": "10m", "$__interval": "15s",
                 "${feed}": ".*", "$feed": ".*"}
SCRAPE_INTERVAL_S = 1
WAIT_S = 90


@dataclass
class Stack:
    """What the fixture started: the Prometheus URL and the names it used."""

    prometheus: str
    sent: int
    worker_log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path:
        return path
    message = ("prometheus is not installed: `apt-get install -y --no-install-recommends "
               "prometheus` (scripts/services.sh up --with-prometheus does it)")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def _query(base: str, expr: str, path: str = "query", **params: str) -> dict:
    qs = urllib.parse.urlencode({"query": expr, **params})
    try:
        return _get_json(f"{base}/api/v1/{path}?{qs}")
    except urllib.error.HTTPError as exc:  # 400 carries Prometheus' parse error
        return json.load(exc)


def _wait(what: str, check: Callable[[], bool], timeout_s: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name} ---\n" + p.read_text(errors="replace")[-3000:]
                      for p in logs if p.exists())
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{tails}", pytrace=False)


def _metric_sum(base: str, expr: str) -> float:
    result = _query(base, f"sum({expr})")["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _targets() -> list[tuple[str, str, str, bool]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((path.stem, panel["title"], target["expr"], target["instant"]))
    return found


def _grafana_expr(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, es_url: str, tmp_path_factory) -> Iterator[Stack]:
    """A worker, a collector and a Prometheus of this module's own, stopped afterwards."""
    prometheus_bin = _prometheus_binary()
    tmp = tmp_path_factory.mktemp("promql")
    name = f"t-dash-{uuid.uuid4().hex[:10]}"
    worker_port, collector_port, prom_port = _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RORIWATCH_")}
    env.update({
        "RORIWATCH_BROKER": f"kafka://{HOST}:{KAFKA_PORT}",
        "RORIWATCH_ES_URL": es_url,
        "RORIWATCH_APP_ID": name,
        "RORIWATCH_TOPIC_PASTE": f"{name}.feed.paste",
        "RORIWATCH_TOPIC_FORUM": f"{name}.feed.forum",
        "RORIWATCH_TOPIC_LOG": f"{name}.feed.log",
        "RORIWATCH_TOPIC_ALERTS": f"{name}.alerts",
        "RORIWATCH_TOPIC_DEADLETTER": f"{name}.deadletter",
        "RORIWATCH_TOPIC_PARTITIONS": "1",
        "RORIWATCH_ES_INDEX_PREFIX": name,
        "RORIWATCH_DATA_DIR": str(tmp / "data"),
        "RORIWATCH_HMAC_KEY": "synthetic-dashboard-test-key-0123456789",
        "RORIWATCH_METRICS_PORT": str(worker_port),
        "RORIWATCH_RULES_FILES": str(ROOT / "deploy/k8s/base/config/keyword-watchlists.yaml"),
    })
    settings = load_settings(env)
    logs = [tmp / "worker.log", tmp / "collector.log", tmp / "prometheus.log"]
    processes: list[subprocess.Popen] = []
    worker = None
    try:
        setup = subprocess.run(
            [sys.executable, "-m", "streams.cli", "es-setup"], env=env, cwd=ROOT,
            capture_output=True, text=True, timeout=60, check=False)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        worker = start_worker_process(env, logs[0], worker_port)

        log_copy = tmp / "logs" / "app.log"
        log_copy.parent.mkdir()
        shutil.copy(ROOT / "samples" / "logs" / "app.log", log_copy)
        collector_config = tmp / "collector.yaml"
        collector_config.write_text(yaml.safe_dump({
            "state_dir": str(tmp / "collector-state"),
            "kafka": {"topics": {"log": settings.topic_log}, "client_id": name},
            "metrics": {"port": collector_port, "address": HOST},
            "poll_interval_seconds": 1,
            "sources": [{"name": "app-logs", "type": "file_tail", "site": "app.example",
                         "paths": [str(log_copy)], "start_at": "beginning"}],
        }))
        with logs[1].open("wb") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "collect", "log", "--config",
                 str(collector_config), "--bootstrap", kafka_bootstrap],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True))

        prom_config = tmp / "prometheus.yml"
        prom_config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s",
                       "evaluation_interval": f"{SCRAPE_INTERVAL_S}s"},
            "scrape_configs": [
                {"job_name": "roriwatch-worker",
                 "static_configs": [{"targets": [f"{HOST}:{worker_port}"]}]},
                {"job_name": "roriwatch-collectors",
                 "static_configs": [{"targets": [f"{HOST}:{collector_port}"]}]},
            ],
        }))
        with logs[2].open("wb") as out:
            processes.append(subprocess.Popen(
                [prometheus_bin, f"--config.file={prom_config}",
                 f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                 f"--web.listen-address={HOST}:{prom_port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True))
        prometheus = f"http://{HOST}:{prom_port}"

        def scraped(job: str, metric: str) -> bool:
            return bool(_query(prometheus, f'{metric}{{job="{job}"}}')["data"]["result"])

        _wait("Prometheus to scrape the worker (roriwatch_worker_up)",
              lambda: _metric_sum(prometheus, 'roriwatch_worker_up{job="roriwatch-worker"}') >= 1,
              WAIT_S, logs)
        _wait("Prometheus to scrape the collector",
              lambda: scraped("roriwatch-collectors", "roriwatch_collector_items_total"),
              WAIT_S, logs)
        # Send the samples only now, so that rate() windows see the counters move.
        sent = replay_samples(settings, ROOT / "samples" / "feeds")
        assert sent, "samples/feeds/ sent nothing"
        _wait("the worker to scan every replayed message and index alerts", lambda: (
            _metric_sum(prometheus, "roriwatch_documents_total") >= len(sent)
            and _metric_sum(prometheus, "roriwatch_es_bulk_duration_seconds_count") > 0
            and _metric_sum(prometheus, "roriwatch_end_to_end_lag_seconds_count") > 0
        ), WAIT_S, logs)
        time.sleep(3 * SCRAPE_INTERVAL_S)  # a few more samples after the last increase
        yield Stack(prometheus=prometheus, sent=len(sent), worker_log=logs[0])
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
        if worker is not None:
            stop_worker_process(worker, timeout_s=20)
        _cleanup(settings, es_url, name)


def _cleanup(settings, es_url: str, prefix: str) -> None:
    """Drop this module's topics, indices and templates from the shared servers."""
    from elasticsearch import Elasticsearch
    from kafka import KafkaAdminClient

    client = Elasticsearch(es_url, request_timeout=10, max_retries=1)
    try:
        # Wildcard deletes are refused (action.destructive_requires_name): list, then name.
        indices = client.options(ignore_status=404).indices.get(index=f"{prefix}-*")
        for index in indices.body if indices.meta.status == 200 else {}:
            client.indices.delete(index=index)
        for template in client.indices.get_index_template().get("index_templates", []):
            if template["name"].startswith(prefix):
                client.indices.delete_index_template(name=template["name"])
        components = client.cluster.get_component_template().get("component_templates", [])
        for template in components:
            if template["name"].startswith(prefix):
                client.cluster.delete_component_template(name=template["name"])
    except Exception as exc:  # cleanup must not hide the test's own result
        print(f"cleanup of Elasticsearch objects {prefix}-* failed: {exc}")
    finally:
        client.close()
    try:
        admin = KafkaAdminClient(**kafka_admin_config(f"{HOST}:{KAFKA_PORT}"))
        try:
            mine = [t for t in admin.list_topics() if t.startswith(prefix)]
            if mine:
                admin.delete_topics(mine)
        finally:
            admin.close()
    except Exception as exc:
        print(f"cleanup of Kafka topics {prefix}.* failed: {exc}")


TARGETS = _targets()


def test_dashboards_have_queries():
    assert len(TARGETS) >= 30


@pytest.mark.parametrize(("dashboard", "panel", "expr", "instant"), TARGETS,
                         ids=[f"{d}:{p}:{i}" for i, (d, p, _, _) in enumerate(TARGETS)])
def test_panel_query_parses_and_returns_data(stack, dashboard, panel, expr, instant):
    query = _grafana_expr(expr)
    response = _query(stack.prometheus, query)
    assert response["status"] == "success", f"{panel}: {response.get('error')}"
    if not instant:  # Grafana sends time-series panels as range queries
        end = time.time()
        ranged = _query(stack.prometheus, query, path="query_range", start=str(end - 120),
                        end=str(end), step="5")
        assert ranged["status"] == "success", f"{panel}: {ranged.get('error')}"
        assert ranged["data"]["result"] or not response["data"]["result"]
    if response["data"]["result"]:
        return
    future = set(re.findall(r"\broriwatch_\w+", expr)) & FUTURE_METRICS
    exported = any(_query(stack.prometheus, f'count({{__name__="{m}"}})')["data"]["result"]
                   for m in future)
    assert future and not exported, (
        f"{dashboard} / {panel}: no data for {query} after {stack.sent} replayed messages "
        f"(worker log: {stack.worker_log})")


def test_the_pipeline_really_ran(stack):
    # Guard against a vacuous pass: the numbers behind the panels are not zero.
    for expr in ("roriwatch_documents_total", "roriwatch_findings_total",
                 "roriwatch_alerts_total", "roriwatch_collector_items_total",
                 "roriwatch_scan_duration_seconds_count"):
        assert _metric_sum(stack.prometheus, expr) > 0, expr
