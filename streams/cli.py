"""The ``roriwatch`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streams.scan_command import add_scan_subcommand

DESCRIPTION = """\
roriwatch — find leaks of Vietnamese personal data (citizen IDs, phones, bank accounts,
cards...) in paste sites, forums, chat exports and logs, without becoming a second copy of
the leak: every output carries masked values and keyed fingerprints only."""


def build_parser() -> argparse.ArgumentParser:
    """The full command tree; subcommands register themselves from their own modules."""
    parser = argparse.ArgumentParser(
        prog="roriwatch", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'roriwatch COMMAND --help' for the options of each command.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_scan_subcommand(subparsers)
    for module_name, function_name in _OPTIONAL_COMMANDS:
        try:
            module = __import__(module_name, fromlist=[function_name])
        except ImportError:
            continue
        getattr(module, function_name)(subparsers)
    return parser


# Commands that live in their own modules (pipeline, collectors); registered when present.
_OPTIONAL_COMMANDS: tuple[tuple[str, str], ...] = (
    ("streams.pipeline_commands", "add_pipeline_subcommands"),
    ("streams.collectors.cli", "add_collect_subcommand"),
)


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


if __name__ == "__main__":
    sys.exit(main())
