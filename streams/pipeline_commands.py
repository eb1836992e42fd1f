"""``roriwatch worker | replay | es-setup | up``: run and try the streaming pipeline.

* ``worker``: the Faust worker (scan agent + indexing agent) and its /metrics endpoint.
* ``replay``: send files as feed envelopes (or raw lines) to a feed topic.
* ``es-setup``: install the Elasticsearch templates, write alias and retention policy.
* ``up``: local services + setup + a worker + the sample feeds, then a table of the alerts
  that reached Elasticsearch; the quickest way to see the whole pipeline work.

Nothing printed here carries a raw identifier: tables show counts, severities and redacted
titles only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from streams.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = ROOT / "samples" / "feeds"
SERVICES_SCRIPT = ROOT / "scripts" / "services.sh"
FEEDS = ("paste", "forum", "log")
SEVERITY_ORDER = {"critical": 4, "high": 3, "medium": 2, "low": 1}
UP_WAIT_S = 90.0
WORKER_STOP_WAIT_S = 30.0


def add_pipeline_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register the pipeline commands on the top-level parser (called by streams.cli)."""
    worker = subparsers.add_parser(
        "worker", help="run the stream worker (scan feeds, index alerts, /metrics)",
        description="Run the Faust worker: scans roriwatch.feed.* and indexes roriwatch.alerts "
                    "into Elasticsearch. Configured by RORIWATCH_* variables; stops cleanly on "
                    "SIGTERM/Ctrl-C (unindexed alerts stay in Kafka).")
    worker.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="port of the Prometheus /metrics endpoint (default "
                             "RORIWATCH_METRICS_PORT or 9108; 0 disables it)")
    worker.add_argument("--metrics-addr", default="0.0.0.0", metavar="ADDR",  # noqa: S104
                        help="address the /metrics endpoint binds (default 0.0.0.0)")
    worker.add_argument("--loglevel", default="info",
                        choices=("debug", "info", "warning", "error"))
    worker.add_argument("--rules", action="append", default=[], metavar="FILE",
                        help="extra YAML rule file (repeatable)")
    worker.add_argument("--role", choices=("all", "scan", "index"), default="all",
                        help="all (default): scan and index in one consumer group; scan or "
                             "index: one agent, in consumer group <APP_ID>-scan / -index, to "
                             "scale scanning and indexing apart (pick a layout and keep it: a "
                             "new group re-reads what the topics retain)")
    worker.set_defaults(handler=run_worker)

    replay = subparsers.add_parser(
        "replay", help="send files to a feed topic as envelopes",
        description="Send each file as one feed envelope (site, item id = path) to the feed's "
                    "topic; with --lines, send each line as its own raw message instead (plain "
                    "log lines on the log feed, or JSONL envelope files).")
    replay.add_argument("paths", nargs="+", metavar="PATH", help="file or directory")
    replay.add_argument("--feed", required=True, choices=FEEDS)
    replay.add_argument("--site", default="replay", help="site name in the envelopes")
    replay.add_argument("--lines", action="store_true",
                        help="send every non-empty line as a separate raw message")
    replay.add_argument("--topic", default=None, help="override the feed's topic name")
    replay.set_defaults(handler=run_replay)

    es_setup = subparsers.add_parser(
        "es-setup", help="install Elasticsearch templates, alias and retention",
        description="Idempotent: safe on every deploy and from several hosts at once.")
    es_setup.set_defaults(handler=run_es_setup)

    up = subparsers.add_parser(
        "up", help="local demo: services, a worker, the sample feeds, a table of alerts",
        description="Start local Kafka/Elasticsearch (scripts/services.sh up), set up topics "
                    "and indices, start a worker, replay samples/feeds/ and print the alerts "
                    "that reach Elasticsearch; then stop the worker (or keep it with --follow).")
    up.add_argument("--follow", action="store_true",
                    help="keep the worker running and print new alerts until Ctrl-C")
    up.add_argument("--no-services", action="store_true",
                    help="do not run scripts/services.sh (Kafka/Elasticsearch already running)")
    up.add_argument("--samples", default=str(SAMPLES_DIR), metavar="DIR",
                    help="directory with paste/, forum/, log/ sample files")
    up.add_argument("--timeout", type=float, default=UP_WAIT_S, metavar="S",
                    help=f"seconds to wait for the alerts (default {UP_WAIT_S:.0f})")
    up.set_defaults(handler=run_up)


# --- worker -------------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> int:
    """Create topics, start /metrics, then run the Faust worker until a signal stops it."""
    import faust

    from streams.app import create_app
    from streams.metrics import start_metrics_server
    from streams.topics import TopicError, ensure_topics

    try:
        settings = load_settings()
        if args.role != "index":  # indexing never fingerprints: index pods hold no key
            settings.fingerprinter()  # fail now, not in the middle of Faust's start-up
    except SettingsError as exc:
        print(f"roriwatch: {exc}", file=sys.stderr)
        return 2
    _quiet_kafka_python()
    try:
        ensure_topics(settings)
    except TopicError as exc:
        print(f"roriwatch: {exc}", file=sys.stderr)
        return 2
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app = create_app(settings, rules_files=args.rules, role=args.role)
    port = settings.metrics_port if args.metrics_port is None else args.metrics_port
    if port:
        try:
            start_metrics_server(app.pipeline.metrics, port, args.metrics_addr)
        except OSError as exc:
            print(f"roriwatch: cannot serve /metrics on {args.metrics_addr}:{port} "
                  f"({exc.strerror}); choose another with --metrics-port or "
                  "RORIWATCH_METRICS_PORT (0 disables)", file=sys.stderr)
            return 2
    worker = faust.Worker(app, loglevel=args.loglevel.upper(), quiet=True,
                          redirect_stdouts=False)
    # Faust's terminal spinner sets the root logger to DEBUG (filtering in the handler) when
    # the level is WARNING or above, so every aiokafka debug call builds a log record: about a
    # sixth of an idle worker's CPU. A service has no terminal to spin in.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        app.pipeline.close()
    return 0


def _quiet_kafka_python() -> None:
    # kafka-python logs every connection and the Elasticsearch transport every request at
    # INFO: noise that buries the worker's own messages.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)


# --- replay -------------------------------------------------------------------------------


@dataclass
class SentMessage:
    """Where one replayed message landed; `up` uses it to predict the alert ids."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_envelope(path: Path, label: str, feed: str, site: str) -> bytes:
    """One file as a feed envelope: text when it is UTF-8, base64 otherwise."""
    from streams.envelope import FeedEnvelope

    data = path.read_bytes()
    try:
        content, encoding = data.decode("utf-8"), None
    except UnicodeDecodeError:
        content, encoding = base64.b64encode(data).decode("ascii"), "base64"
    envelope = FeedEnvelope(
        feed=feed, site=site, item_id=label, url=path.resolve().as_uri(), author=None,
        title=path.name, published_at=None, fetched_at=_now_iso(), content=content,
        content_encoding=encoding, meta={"source": "replay"},
    )
    return envelope.to_json()


def _line_key(line: bytes, site: str) -> bytes:
    """An envelope's item id, else the site: the worker names a plain line's site after it."""
    if line.lstrip().startswith(b"{"):
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            data = None
        item_id = data.get("item_id") if isinstance(data, dict) else None
        if isinstance(item_id, str):
            return item_id.encode("utf-8")
    return site.encode("utf-8")


def replay_messages(paths: Sequence[str], feed: str, site: str, lines: bool) -> Iterator[
        tuple[bytes | None, bytes, str]]:
    """(key, value, source label) for every message the replay would send."""
    from streams.textsource import iter_paths

    for label, path, problem in iter_paths(paths):
        if problem or path is None:
            raise FileNotFoundError(f"{label}: {problem or 'stdin is not supported'}")
        if lines:
            for number, line in enumerate(path.read_bytes().splitlines(), start=1):
                if line.strip():
                    yield _line_key(line, site), line, f"{label}:{number}"
        else:
            yield label.encode("utf-8"), file_envelope(path, label, feed, site), label


def send_messages(settings: Settings, topic: str,
                  messages: Sequence[tuple[bytes | None, bytes]]) -> list[SentMessage]:
    """Produce and wait for every acknowledgement; returns where each message landed."""
    from kafka import KafkaProducer

    from streams.decode import max_message_bytes
    from streams.topics import bootstrap_servers

    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers(settings.broker), acks="all", linger_ms=5,
        max_request_size=max_message_bytes(settings.max_content_bytes) + 1024, retries=5,
        **settings.kafka_client_options(),
    )
    try:
        futures = [(producer.send(topic, key=key, value=value), key, value)
                   for key, value in messages]
        producer.flush(timeout=60)
        sent = []
        for future, key, value in futures:
            meta = future.get(timeout=60)
            sent.append(SentMessage(meta.topic, meta.partition, meta.offset,
                                    meta.timestamp, key, value))
        return sent
    finally:
        producer.close(timeout=10)


def run_replay(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Send the files; print how many messages went to which topic."""
    from streams.topics import TopicError, ensure_topics

    try:
        settings = load_settings()
        _quiet_kafka_python()
        ensure_topics(settings)
        topic = args.topic or settings.feed_topics()[args.feed]
        messages = [(k, v) for k, v, _ in replay_messages(args.paths, args.feed, args.site,
                                                          args.lines)]
        sent = send_messages(settings, topic, messages)
    except (SettingsError, TopicError, FileNotFoundError) as exc:
        print(f"roriwatch: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # Kafka errors: name the type, not the payload
        print(f"roriwatch: replay failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    size = sum(len(m.value) for m in sent)
    print(f"sent {len(sent)} message(s), {size} bytes, to {topic}", file=out)
    return 0


# --- es-setup -----------------------------------------------------------------------------


def run_es_setup(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Install the Elasticsearch layout and print what was done."""
    del args
    from elasticsearch import Elasticsearch

    from streams.app import es_client_options
    from streams.es_setup import setup_elasticsearch

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"roriwatch: {exc}", file=sys.stderr)
        return 2
    client = Elasticsearch(**es_client_options(settings))
    # Its notes are printed below; the logger would print them a second time.
    logging.getLogger("streams.es_setup").setLevel(logging.ERROR)
    try:
        report = setup_elasticsearch(client, retention_days=settings.es_retention_days,
                                     prefix=settings.es_index_prefix)
    except Exception as exc:
        print(f"roriwatch: elasticsearch setup at {settings.es_url} failed: "
              f"{type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(f"write alias {report.write_alias} -> {report.write_index}; incidents index "
          f"{report.incidents_index}; ILM policy {report.ilm_policy or 'unsupported'}", file=out)
    for created in report.created:
        print(f"  created {created}", file=out)
    for note in report.notes:
        print(f"  note: {note}", file=out)
    return 0


# --- up -----------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_worker_process(env: dict[str, str], log_path: Path, metrics_port: int,
                         extra: Sequence[str] = ()) -> subprocess.Popen:
    """``roriwatch worker`` as a child process in its own process group, logging to a file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "streams.cli", "worker", "--metrics-port", str(metrics_port),
             *extra],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(ROOT), start_new_session=True,
        )


def stop_worker_process(process: subprocess.Popen, timeout_s: float = WORKER_STOP_WAIT_S) -> int:
    """SIGTERM (Faust stops cleanly and leaves the group), SIGKILL if it does not exit."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def expected_alert_ids(settings: Settings, sent: Sequence[SentMessage]) -> set[str]:
    """Alert ids the worker will produce for these messages, computed with the same code."""
    from detectors import Scanner, load_rules, summarize
    from detectors.summary import SEVERITY_RANK
    from streams.alerts import alert_id_for
    from streams.decode import DeadLetter, MessageInfo, decode_feed_message
    from streams.watchlists import WatchlistIndex, apply_watchlist_hits

    fingerprinter = settings.fingerprinter()
    watchlists = WatchlistIndex.load(settings.data_dir, fingerprinter.key_id,
                                     [key_id for key_id, _ in settings.previous_hmac_keys])
    scanner = Scanner(load_rules(settings.rules_files), fingerprinter,
                      min_confidence=settings.min_confidence,
                      previous_fingerprinters=[old for old in settings.previous_fingerprinters()
                                               if old.key_id in watchlists.previous_key_ids])
    min_rank = SEVERITY_RANK[settings.alert_min_severity]
    kinds = {topic: kind for kind, topic in settings.feed_topics().items()}
    expected = set()
    for message in sent:
        info = MessageInfo(message.topic, message.partition, message.offset, message.key,
                           message.timestamp_ms)
        decoded = decode_feed_message(message.value, info, feed_kind=kinds[message.topic],
                                      max_content_bytes=settings.max_content_bytes)
        if isinstance(decoded, DeadLetter):
            continue
        summary = summarize(decoded.text, scanner.scan(decoded.text))
        if not summary.findings_total:
            continue
        hits = watchlists.match(summary.fingerprints, summary.previous_fingerprints)
        rank = apply_watchlist_hits({"severity_rank": summary.severity_rank}, hits)[
            "severity_rank"] if hits else summary.severity_rank
        if rank >= min_rank:
            envelope = decoded.envelope
            expected.add(alert_id_for(envelope.feed, envelope.site, envelope.item_id,
                                      decoded.content_sha256))
    return expected


def fetch_alerts(client: Any, alias: str, ids: Sequence[str] | None = None,
                 since: str | None = None, size: int = 500) -> list[dict[str, Any]]:
    """Alerts from Elasticsearch by id or by detection time; [] while the alias is missing."""
    from elasticsearch import ApiError, TransportError

    if ids is not None:
        query: dict[str, Any] = {"ids": {"values": list(ids)}}
    elif since is not None:
        query = {"range": {"detected_at": {"gt": since}}}
    else:
        query = {"match_all": {}}
    try:
        response = client.search(index=alias, query=query, size=size,
                                 sort=[{"detected_at": "asc"}], ignore_unavailable=True)
    except (ApiError, TransportError):
        return []
    return [hit["_source"] for hit in response["hits"]["hits"]]


def alerts_table(alerts: Sequence[dict[str, Any]]) -> str:
    """SEVERITY / FEED / SITE / COUNTS / TITLE, most severe first; counts only, no values."""
    rows = sorted(alerts, key=lambda a: (-SEVERITY_ORDER.get(a.get("severity", ""), 0),
                                         a.get("feed", ""), a.get("site", ""),
                                         a.get("item_id", "")))
    lines = [f"{'SEVERITY':<9} {'FEED':<6} {'SITE':<16} {'COUNTS':<52} TITLE / ITEM"]
    for alert in rows:
        counts = ", ".join(f"{d}={n}" for d, n in sorted(alert.get("counts", {}).items()))
        label = alert.get("title") or alert.get("item_id") or ""
        lines.append(f"{alert.get('severity', '?'):<9} {alert.get('feed', '?'):<6} "
                     f"{str(alert.get('site', '?'))[:16]:<16} {counts[:52]:<52} {label[:40]}")
    return "\n".join(lines)


def replay_samples(settings: Settings, samples: Path) -> list[SentMessage]:
    """Send samples/feeds/{paste,forum}/* as envelopes and log/* as plain lines."""
    sent: list[SentMessage] = []
    for feed in FEEDS:
        folder = samples / feed
        if not folder.is_dir():
            continue
        lines = feed == "log"
        messages = [(k, v) for k, v, _ in replay_messages([str(folder)], feed, "samples",
                                                          lines)]
        if messages:
            sent.extend(send_messages(settings, settings.feed_topics()[feed], messages))
    return sent


def run_up(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """The guided demo; every wait is bounded and the worker is stopped on every exit path."""
    from elasticsearch import Elasticsearch

    from streams.app import es_client_options
    from streams.es_schema import alerts_alias
    from streams.topics import TopicError, ensure_topics

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"roriwatch: {exc}", file=sys.stderr)
        return 2
    _quiet_kafka_python()
    if not args.no_services:
        print("starting local Kafka + Elasticsearch (scripts/services.sh up) ...", file=out)
        out.flush()
        result = subprocess.run(["bash", str(SERVICES_SCRIPT), "up"], check=False,  # noqa: S603, S607
                                cwd=str(ROOT))
        if result.returncode != 0:
            print("roriwatch: services did not start; see the messages above", file=sys.stderr)
            return 2
    try:
        ensure_topics(settings)
    except TopicError as exc:
        print(f"roriwatch: {exc}", file=sys.stderr)
        return 2
    if run_es_setup(args, out) != 0:
        return 2
    env = dict(os.environ)
    key_note = ""
    if not settings.hmac_key:
        # One key for the worker and for this process, so predicted alert ids and fingerprints
        # agree; a demo key, never used outside `up`.
        env["RORIWATCH_HMAC_KEY"] = base64.b64encode(os.urandom(32)).decode("ascii")
        settings = settings.with_overrides(hmac_key=env["RORIWATCH_HMAC_KEY"].encode("ascii"))
        key_note = " (demo HMAC key for this run; set RORIWATCH_HMAC_KEY for real use)"
    metrics_port = settings.metrics_port if _port_free(settings.metrics_port) else 0
    log_path = Path(settings.data_dir) / "worker.log"
    print(f"starting a worker (log {log_path}, metrics "
          f"{f'http://127.0.0.1:{metrics_port}/metrics' if metrics_port else 'off: port busy'})"
          f"{key_note}", file=out)
    worker = start_worker_process(env, log_path, metrics_port)
    client = Elasticsearch(**es_client_options(settings))
    try:
        samples = Path(args.samples)
        sent = replay_samples(settings, samples)
        expected = expected_alert_ids(settings, sent)
        print(f"replayed {len(sent)} sample message(s) from {samples}; expecting "
              f"{len(expected)} alert(s) ...", file=out)
        out.flush()
        alias = alerts_alias(settings.es_index_prefix)
        found = _wait_for_alerts(client, alias, expected, worker, args.timeout)
        if worker.poll() is not None:
            print(f"roriwatch: the worker exited with code {worker.returncode}; see {log_path}",
                  file=sys.stderr)
            return 2
        print(alerts_table(found), file=out)
        print(f"{len(found)} of {len(expected)} expected alert(s) in Elasticsearch "
              f"(alias {alias})", file=out)
        if len(found) < len(expected):
            print(f"roriwatch: timed out after {args.timeout:.0f}s; see {log_path}",
                  file=sys.stderr)
            return 1
        if args.follow:
            _follow(client, alias, worker, out)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
        print("stopping the worker ...", file=out)
        stop_worker_process(worker)


def _wait_for_alerts(client: Any, alias: str, expected: set[str], worker: subprocess.Popen,
                     timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline and worker.poll() is None:
        found = fetch_alerts(client, alias, ids=sorted(expected)) if expected else []
        if len(found) >= len(expected):
            break
        time.sleep(1.0)
    return found


def _follow(client: Any, alias: str, worker: subprocess.Popen, out: TextIO) -> None:
    print("following new alerts (Ctrl-C to stop) ...", file=out)
    out.flush()
    since = _now_iso()
    with contextlib.suppress(KeyboardInterrupt):
        while worker.poll() is None:
            fresh = fetch_alerts(client, alias, since=since)
            if fresh:
                since = max(a.get("detected_at", since) for a in fresh)
                print(alerts_table(fresh), file=out)
                out.flush()
            time.sleep(2.0)
