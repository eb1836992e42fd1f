"""``python -m streams.collectors collect KIND --config FILE``, same as ``roriwatch collect``."""

import argparse
import logging
import sys

from streams.collectors.cli import add_collect_subcommand


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the collect command."""
    parser = argparse.ArgumentParser(prog="python -m streams.collectors")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_collect_subcommand(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
