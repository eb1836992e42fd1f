"""``roriwatch incidents``: run the incidents worker, or check a routes file.

The worker correlates alerts into incidents, indexes them into ``<prefix>-incidents`` and
notifies the configured routes. It is its own Faust app (``<app id>-incidents``: its own
consumer group and changelogs), so it scales and restarts independently of the scan workers.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from streams.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from streams.routing.config import RoutesConfig

EXIT_OK, EXIT_ERROR = 0, 2


def add_incidents_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Register ``incidents`` on the top-level parser."""
    parser = subparsers.add_parser(
        "incidents", help="run the incidents worker (correlate alerts, notify routes)",
        description="Correlate alerts into incidents (same content or >= 80% of the same "
                    "identifiers), index them into Elasticsearch and notify the routes of "
                    "--routes / RORIWATCH_ROUTES_FILE. Stops cleanly on SIGTERM/Ctrl-C.")
    parser.add_argument("--routes", default=None, metavar="FILE",
                        help="routes YAML (default RORIWATCH_ROUTES_FILE; none: no "
                             "notifications, incidents are still indexed)")
    parser.add_argument("--check-routes", action="store_true",
                        help="validate the routes file, list its routes and exit")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="port of /metrics (default RORIWATCH_METRICS_PORT + 1; 0 disables)")
    parser.add_argument("--metrics-addr", default="0.0.0.0", metavar="ADDR",  # noqa: S104
                        help="address /metrics binds (default 0.0.0.0)")
    parser.add_argument("--loglevel", default="info",
                        choices=("debug", "info", "warning", "error"))
    parser.set_defaults(handler=run_incidents)


def run_incidents(args: argparse.Namespace) -> int:
    """Validate configuration, create topics, then run the worker until a signal stops it."""
    from streams.routing.config import RouteConfigError, load_routes

    try:
        settings = load_settings()
        routes = load_routes(args.routes or getattr(settings, "routes_file", None))
    except (SettingsError, RouteConfigError) as exc:
        print(f"roriwatch: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.check_routes:
        for route in routes.routes:
            criteria = route.criteria
            print(f"{route.name}: {route.target.describe()}; min severity "
                  f"{criteria.min_severity}; detectors {list(criteria.detectors) or 'any'}; "
                  f"watch-lists {list(criteria.watchlists) or 'any'}; feeds "
                  f"{list(criteria.feeds) or 'any'}; sites {list(criteria.sites) or 'any'}; "
                  f"{route.rate_limit.burst} burst, {route.rate_limit.per_minute:g}/min; "
                  f"{route.retry.attempts} attempt(s)")
        print(f"{len(routes.routes)} route(s) OK")
        return EXIT_OK
    return _run_worker(args, settings, routes)


def _run_worker(args: argparse.Namespace, settings: Settings, routes: RoutesConfig) -> int:
    import faust
    from prometheus_client import CollectorRegistry, start_http_server

    from streams.incidents.agent import (
        create_incident_app,
        ensure_incident_topics,
        incident_app_id,
    )
    from streams.topics import TopicError

    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    try:
        ensure_incident_topics(settings, incident_app_id(settings))
    except TopicError as exc:
        print(f"roriwatch: {exc}", file=sys.stderr)
        return EXIT_ERROR
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    app = create_incident_app(settings, routes=routes, registry=registry)
    port = args.metrics_port
    if port is None:
        port = settings.metrics_port + 1
    if port:
        try:
            start_http_server(port, addr=args.metrics_addr, registry=registry)
        except OSError as exc:
            print(f"roriwatch: cannot serve /metrics on {args.metrics_addr}:{port} "
                  f"({exc.strerror}); choose another with --metrics-port (0 disables)",
                  file=sys.stderr)
            return EXIT_ERROR
    worker = faust.Worker(app, loglevel=args.loglevel.upper(), quiet=True,
                          redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m streams.incidents.command`` (before CLI registration)."""
    parser = argparse.ArgumentParser(prog="roriwatch")
    add_incidents_subcommand(parser.add_subparsers())
    args = parser.parse_args(["incidents", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
