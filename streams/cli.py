"""The ``roriwatch`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from detectors import CORE_BUILD
from streams.collectors.cli import add_collect_subcommand
from streams.gc_policy import apply_scan_gc_policy
from streams.incidents.command import add_incidents_subcommand
from streams.pipeline_commands import add_pipeline_subcommands
from streams.scan_command import add_scan_subcommand
from streams.watchlist_command import add_watchlist_subcommand

DESCRIPTION = """\
roriwatch — find leaks of Vietnamese personal data (citizen IDs, phones, bank accounts,
cards...) in paste sites, forums, chat exports and logs, without becoming a second copy of
the leak: every output carries masked values and keyed fingerprints only."""


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked: package metadata costs ~40 ms to read."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the release, which build of the detection core runs "
                              "(pure Python or mypyc-compiled) and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            release = version("roriwatch")
        except PackageNotFoundError:  # a source tree that was never installed
            release = "(source tree)"
        print(f"roriwatch {release}, detection core: {CORE_BUILD}, "
              f"Python {sys.version.split()[0]}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The full command tree; each subcommand registers itself from its own module."""
    parser = argparse.ArgumentParser(
        prog="roriwatch", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'roriwatch COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_scan_subcommand(subparsers)
    add_pipeline_subcommands(subparsers)
    add_collect_subcommand(subparsers)
    add_watchlist_subcommand(subparsers)
    add_incidents_subcommand(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen command; never shows a traceback for user errors."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None) or getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("roriwatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def entry() -> int:
    """The ``roriwatch`` program: ``main`` plus the scan GC policy.

    The policy is process-wide, so it is not in ``main``, which tests call in-process.
    """
    apply_scan_gc_policy()
    return main()


if __name__ == "__main__":
    sys.exit(entry())
