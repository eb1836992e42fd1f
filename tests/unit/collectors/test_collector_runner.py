"""run_collector, the collect subcommand, checkpoints and logging hygiene."""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.collectors import CollectorError, run_collector
from streams.collectors.__main__ import main as collectors_main
from streams.collectors.checkpoint import CheckpointError, CheckpointStore
from streams.collectors.cli import add_collect_subcommand
from streams.collectors.sinks import ListSink
from streams.envelope import FeedEnvelope

SECRET_LINE = "Nguyễn Văn Giả 0912345678 CCCD 079099000123"  # synthetic


def write_config(tmp_path, sources, **top):
    data = {
        "state_dir": "state",
        "http": {"rate_limit_per_second": 1000, "backoff_initial_seconds": 0.01},
    }
    data.update(top)
    data["sources"] = sources
    path = tmp_path / "collectors.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def tail_config(tmp_path, **extra):
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs" / "app.log").write_text(SECRET_LINE + "\nthu hai\n", encoding="utf-8")
    source = {
        "name": "app",
        "type": "file_tail",
        "paths": ["logs/*.log"],
        "poll_interval_seconds": 0.1,
    }
    source.update(extra)
    return write_config(tmp_path, [source])


def test_run_once_delivers_and_checkpoints(tmp_path):
    config = tail_config(tmp_path)
    sink = ListSink()
    report = run_collector("log", config, once=True, sink=sink, registry=CollectorRegistry())
    assert report.ok and report.delivered == 2
    assert [e.content for e in sink.envelopes] == [SECRET_LINE, "thu hai"]
    checkpoint = json.loads((tmp_path / "state" / "app.json").read_text())
    assert checkpoint["state"]["initialized"] is True
    again = run_collector("log", config, once=True, sink=sink, registry=CollectorRegistry())
    assert again.delivered == 0


def test_long_running_collector_stops_on_event(tmp_path):
    config = tail_config(tmp_path)
    sink = ListSink()
    stop = threading.Event()
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "r",
            run_collector("log", config, stop_event=stop, sink=sink, registry=CollectorRegistry()),
        )
    )
    thread.start()
    deadline = time.monotonic() + 15  # generous: a loaded CI machine is slow, never hangs
    while len(sink.envelopes) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(sink.envelopes) == 2, "the first poll cycle never delivered"
    with open(tmp_path / "logs" / "app.log", "a", encoding="utf-8") as handle:
        handle.write("dong moi\n")
    deadline = time.monotonic() + 15
    while len(sink.envelopes) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=3)
    assert not thread.is_alive()
    assert [e.content for e in sink.envelopes][-1] == "dong moi"
    assert result["r"].sources["app"].failed_cycles == 0  # the new line may join cycle 1


def test_kind_without_sources_and_missing_bootstrap_are_operator_errors(tmp_path):
    config = tail_config(tmp_path)
    with pytest.raises(CollectorError, match="defines no paste sources"):
        run_collector("paste", config, once=True, sink=ListSink())
    with pytest.raises(CollectorError, match="--bootstrap"):
        run_collector("log", config, once=True, registry=CollectorRegistry())
    with pytest.raises(CollectorError, match="no log source named nope"):
        run_collector("log", config, once=True, sink=ListSink(), sources=["nope"])


def test_dry_run_prints_json_lines_and_leaves_checkpoints_alone(tmp_path, capsys):
    config = tail_config(tmp_path)
    assert collectors_main(["collect", "log", "--config", str(config), "--once", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    envelopes = [FeedEnvelope.from_json(line.encode()) for line in lines]
    assert [e.content for e in envelopes] == [SECRET_LINE, "thu hai"]
    assert not (tmp_path / "state" / "app.json").exists()


def test_cli_reports_config_errors_with_exit_2(tmp_path, capsys):
    config = write_config(tmp_path, [{"name": "Bad Name", "type": "pastebin"}])
    assert (
        collectors_main(["collect", "paste", "--config", str(config), "--once", "--dry-run"]) == 2
    )
    assert "field 'name'" in capsys.readouterr().err


def test_help_explains_kinds_and_flags():
    parser = argparse.ArgumentParser(prog="roriwatch")
    add_collect_subcommand(parser.add_subparsers(dest="command"))
    collect = parser._subparsers._group_actions[0].choices["collect"]
    text = collect.format_help()
    for word in (
        "paste",
        "forum",
        "telegram",
        "log",
        "--once",
        "--dry-run",
        "--bootstrap",
        "--config",
    ):
        assert word in text
    args = parser.parse_args(["collect", "forum", "--config", "x.yaml", "--once"])
    assert args.func.__name__ == "run_collect_command" and args.kind == "forum" and args.once


def test_second_process_on_the_same_source_is_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    store.lock("app")
    other = CheckpointStore(tmp_path)
    with pytest.raises(CheckpointError, match="already being collected"):
        other.lock("app")
    store.release()
    other.lock("app")
    other.release()


def test_checkpoints_are_written_atomically_and_corruption_is_explained(tmp_path):
    config = tail_config(tmp_path)
    run_collector("log", config, once=True, sink=ListSink(), registry=CollectorRegistry())
    leftovers = [p.name for p in (tmp_path / "state").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    (tmp_path / "state" / "app.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CollectorError, match="move it away"):
        run_collector("log", config, once=True, sink=ListSink(), registry=CollectorRegistry())


def test_metric_labels_are_source_names_only(tmp_path):
    config = tail_config(tmp_path)
    registry = CollectorRegistry()
    run_collector("log", config, once=True, sink=ListSink(), registry=registry)
    names = set()
    for family in registry.collect():
        for sample in family.samples:
            names.add(sample.name)
            assert set(sample.labels) <= {"source", "kind"}
            assert sample.labels.get("source") in (None, "app")
    assert {
        "roriwatch_collector_items_total",
        "roriwatch_collector_bytes_total",
        "roriwatch_collector_last_success_timestamp_seconds",
    } <= names


def test_internal_errors_are_logged_without_content(tmp_path, caplog, monkeypatch):
    from streams.collectors.sources.logs import FileTailSource

    def broken(self, key, record, line):
        raise ValueError(f"cannot handle {line.data.decode()}")

    monkeypatch.setattr(FileTailSource, "_line_envelope", broken)
    registry = CollectorRegistry()
    with caplog.at_level(logging.DEBUG):
        report = run_collector(
            "log", tail_config(tmp_path), once=True, sink=ListSink(), registry=registry
        )
    assert not report.ok
    assert (
        registry.get_sample_value(
            "roriwatch_collector_errors_total", {"source": "app", "kind": "internal"}
        )
        == 1
    )
    assert "ValueError" in caplog.text
    assert "0912345678" not in caplog.text and "079099000123" not in caplog.text


def test_unreachable_kafka_is_reported_quickly(tmp_path):
    config = tail_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "kafka: {acks_timeout_seconds: 1}\n", encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(CollectorError, match=r"cannot connect to Kafka at 127\.0\.0\.1:9"):
        run_collector(
            "log", config, bootstrap="127.0.0.1:9", once=True, registry=CollectorRegistry()
        )
    assert time.monotonic() - started < 10
