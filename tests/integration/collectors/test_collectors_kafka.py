"""Collectors producing to a real Kafka topic (the shared noida-db broker), read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from streams.collectors import run_collector
from streams.collectors.testing import Reply
from streams.envelope import FeedEnvelope

ROOT = Path(__file__).resolve().parents[3]
PASTEBIN_KEYS = ["Hd3Rc9Vy", "Zt4Wb8Ns", "Qm7Xp2Lk"]


def write_config(tmp_path, topics, sources):
    data = {
        "state_dir": "state",
        "kafka": {
            "topics": topics,
            "client_id": "roriwatch-collector-tests",
            "acks_timeout_seconds": 10,
        },
        "http": {
            "rate_limit_per_second": 1000,
            "backoff_initial_seconds": 0.01,
            "timeout_seconds": 5,
        },
        "sources": sources,
    }
    path = tmp_path / "collectors.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def serve_pastebin(server, listing=None):
    for key in PASTEBIN_KEYS:
        body = (server.root / "pastes" / f"{key}.txt").read_bytes()
        server.script(
            f"/api_scrape_item.php?i={key}",
            Reply(200, body, {"Content-Type": "text/plain; charset=utf-8"}),
        )
    if listing is not None:
        server.script("/pastes/pastebin_listing.json", Reply(200, json.dumps(listing).encode()))


def envelopes(records):
    return [FeedEnvelope.from_json(r.value) for r in records]


def test_pastes_reach_the_topic_once_across_restarts(
    tmp_path, fixture_http, kafka_bootstrap, unique_name, read_topic
):
    serve_pastebin(fixture_http)
    config = write_config(
        tmp_path,
        {"paste": unique_name},
        [
            {
                "name": "pastebin",
                "type": "pastebin",
                "listing_url": fixture_http.url("/pastes/pastebin_listing.json"),
            }
        ],
    )
    report = run_collector(
        "paste", config, bootstrap=kafka_bootstrap, once=True, registry=CollectorRegistry()
    )
    assert report.ok and report.delivered == 3
    records = read_topic(unique_name, 3)
    assert [r.key.decode() for r in records] == PASTEBIN_KEYS
    first = envelopes(records)[2]
    assert first.feed == "paste" and "CCCD 079099000123" in first.content

    # Restart: nothing re-sent. Then a new paste appears while stopped: only it is sent.
    run_collector(
        "paste", config, bootstrap=kafka_bootstrap, once=True, registry=CollectorRegistry()
    )
    listing = json.loads(
        (fixture_http.root / "pastes" / "pastebin_listing.json")
        .read_text()
        .replace("{base}", fixture_http.base)
    )
    newer = dict(
        listing[0],
        key="Nw1Pst22",
        date="1714560000",
        scrape_url=fixture_http.base + "/api_scrape_item.php?i=Nw1Pst22",
    )
    fixture_http.script(
        "/api_scrape_item.php?i=Nw1Pst22", Reply(200, "Lê Văn Thử 0933111222".encode())
    )
    serve_pastebin(fixture_http, [newer, *listing])
    report = run_collector(
        "paste", config, bootstrap=kafka_bootstrap, once=True, registry=CollectorRegistry()
    )
    assert report.delivered == 1
    records = read_topic(unique_name, 4, settle=0.5)
    assert [r.key.decode() for r in records] == [*PASTEBIN_KEYS, "Nw1Pst22"]


def test_429_then_success_lands_on_the_topic(
    tmp_path, fixture_http, kafka_bootstrap, unique_name, read_topic
):
    serve_pastebin(fixture_http)
    body = (fixture_http.root / "pastes" / "Qm7Xp2Lk.txt").read_bytes()
    fixture_http.script(
        "/api_scrape_item.php?i=Qm7Xp2Lk", Reply(429, b"", {"Retry-After": "1"}), Reply(200, body)
    )
    config = write_config(
        tmp_path,
        {"paste": unique_name},
        [
            {
                "name": "pastebin",
                "type": "pastebin",
                "listing_url": fixture_http.url("/pastes/pastebin_listing.json"),
                "max_content_bytes": 1024,
            }
        ],
    )
    report = run_collector(
        "paste", config, bootstrap=kafka_bootstrap, once=True, registry=CollectorRegistry()
    )
    assert report.ok
    keys = [r.key.decode() for r in read_topic(unique_name, 3)]
    assert keys == PASTEBIN_KEYS
    assert fixture_http.hits("/api_scrape_item.php?i=Qm7Xp2Lk") == 2


def test_log_rotation_is_followed_without_loss_or_duplicates(
    tmp_path, kafka_bootstrap, unique_name, read_topic
):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("dong 1\ndong 2\n", encoding="utf-8")
    config = write_config(
        tmp_path,
        {"log": unique_name},
        [{"name": "app", "type": "file_tail", "paths": ["logs/*.log"]}],
    )
    run_collector("log", config, bootstrap=kafka_bootstrap, once=True, registry=CollectorRegistry())
    with open(logs / "app.log", "a", encoding="utf-8") as handle:
        handle.write("dong 3 truoc khi xoay\n")
    os.rename(logs / "app.log", logs / "app.log.1")
    (logs / "app.log").write_text("dong 4 sau khi xoay\n", encoding="utf-8")
    run_collector("log", config, bootstrap=kafka_bootstrap, once=True, registry=CollectorRegistry())
    run_collector("log", config, bootstrap=kafka_bootstrap, once=True, registry=CollectorRegistry())
    records = read_topic(unique_name, 4, settle=0.5)
    assert [e.content for e in envelopes(records)] == [
        "dong 1",
        "dong 2",
        "dong 3 truoc khi xoay",
        "dong 4 sau khi xoay",
    ]
    assert all(e.feed == "log" for e in envelopes(records))


def test_cli_subprocess_collects_a_forum_and_telegram_export(
    tmp_path, fixture_http, kafka_bootstrap, unique_name, read_topic
):
    config = write_config(
        tmp_path,
        {"forum": unique_name},
        [
            {
                "name": "board",
                "type": "forum_feed",
                "feed_url": fixture_http.url("/forum/board.atom"),
            },
            {
                "name": "tg",
                "type": "telegram_export",
                "path": str(ROOT / "samples/collectors/fixtures/telegram/channel/result.json"),
            },
        ],
    )
    for kind in ("forum", "telegram"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "streams.collectors",
                "collect",
                kind,
                "--config",
                str(config),
                "--once",
                "--bootstrap",
                kafka_bootstrap,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    records = read_topic(unique_name, 6, settle=0.3)
    sites = sorted({e.site for e in envelopes(records)})
    assert sites == ["board", "telegram:Kênh Dữ Liệu Giả"]
    assert len(records) == 6
