"""The ``collect`` subcommand, registered into the main ``roriwatch`` parser."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from streams.collectors.config import COLLECTOR_KINDS, CollectorConfigError
from streams.collectors.runner import CollectorError, run_collector
from streams.settings import SettingsError, load_settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
Run a feed collector: poll the sources of one KIND from a YAML config and produce feed
envelopes to the feed topics (roriwatch.feed.paste / .forum / .log).

kinds:
  paste     Pastebin scraping API and configurable paste listings (JSON, RSS, Atom)
  forum     board RSS/Atom feeds and XenForo/phpBB thread pages, one envelope per post
  telegram  Telegram Desktop exports (result.json), one envelope per message (forum topic)
  log       tailed log files and a syslog receiver (UDP/TCP, RFC 5424/3164)

Checkpoints in the config's state_dir make restarts resume where they stopped. Sample
configs: samples/collectors/*.yaml; documentation: docs/collectors.md.
"""

EPILOG = """\
examples:
  roriwatch collect paste --config samples/collectors/paste.yaml --dry-run --once
  roriwatch collect log --config /etc/roriwatch/logs.yaml --bootstrap 127.0.0.1:9092

exit status: 0 ok; 1 a --once cycle failed; 2 configuration or connection problem.
"""


def add_collect_subcommand(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``collect`` on the main CLI's subparsers; the handler is ``args.func(args)``."""
    parser = subparsers.add_parser(
        "collect",
        help="run a feed collector (paste, forum, telegram, log)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=COLLECTOR_KINDS, help="which sources to run")
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="collector YAML configuration"
    )
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT[,HOST:PORT]",
        help="Kafka bootstrap servers (overrides kafka.bootstrap in the config)",
    )
    parser.add_argument(
        "--once", action="store_true", help="run one poll cycle of each source, then exit"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print envelopes as JSON lines on stdout instead of producing to Kafka; "
        "checkpoints are read but never written",
    )
    parser.add_argument(
        "--source",
        action="append",
        metavar="NAME",
        dest="sources",
        help="only run this source (repeatable)",
    )
    parser.set_defaults(func=run_collect_command)
    return parser


def run_collect_command(args: argparse.Namespace) -> int:
    """Run the collector described by parsed arguments; SIGINT/SIGTERM stop it cleanly."""
    stop_event = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d received, stopping collectors", signum)
        stop_event.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    try:
        report = run_collector(
            args.kind,
            args.config,
            bootstrap=args.bootstrap,
            stop_event=stop_event,
            once=args.once,
            dry_run=args.dry_run,
            sources=args.sources,
            kafka_options=load_settings().kafka_client_options(),
        )
    except (CollectorConfigError, CollectorError, SettingsError) as exc:
        print(f"roriwatch collect: error: {exc}", file=sys.stderr)
        return 2
    for name, stats in report.sources.items():
        log.info(
            "source %s: %d delivered, %d duplicates dropped, %d errors",
            name,
            stats.delivered,
            stats.duplicates,
            stats.errors,
        )
    return 0 if report.ok else 1
