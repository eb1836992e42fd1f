"""``roriwatch watchlist``: register, list and remove fingerprint watch-lists.

Output is counts and names only: an import says how many values it accepted and rejected and
which row numbers were rejected, never a value, so its terminal log is not a copy of the list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from detectors import RuleError, load_rules
from streams.settings import Settings, SettingsError, load_settings
from streams.watchlists import (
    WatchlistError,
    check_name,
    import_csv,
    list_watchlists,
    new_watchlist,
    remove_watchlist,
    save_watchlist,
    watchlist_dir,
)

EXIT_OK, EXIT_ERROR = 0, 2

DESCRIPTION = """\
Watch-lists let an organisation be told when its own customers' or staff's identifiers leak,
without giving the monitor their data: 'add' reads a CSV, keeps only keyed HMAC fingerprints
(the same RORIWATCH_HMAC_KEY as the workers) and discards the values. Findings whose
fingerprint is on a list mark the alert and incident with the list's name and raise severity.

Keyword watch-lists (brand names, internal domains, project code names) are rules of kind
'keyword' in a rules file (--rules / RORIWATCH_RULES_FILES); see docs/incidents.md."""

ADD_EPILOG = """\
columns: --column NAME|N, else every column whose header names an identifier type (cccd, cmnd,
sdt, so dien thoai, email, ho chieu, bhyt, so tai khoan, so the, mst...), else every column
where most values are identifiers. --type forces the identifier type(s) of the values.

examples:
  roriwatch watchlist add --name customers customers.csv
  roriwatch watchlist add --name staff --column 3 --type vn_phone staff.csv
  roriwatch watchlist list
  roriwatch watchlist remove staff"""


def add_watchlist_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Register ``watchlist add|list|remove`` on the top-level parser."""
    parser = subparsers.add_parser(
        "watchlist", help="manage fingerprint watch-lists (customers, staff...)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="where lists are kept (default: RORIWATCH_DATA_DIR)")
    commands = parser.add_subparsers(title="watchlist commands", metavar="ACTION")
    add = commands.add_parser("add", help="fingerprint a CSV of identifiers into a list",
                              epilog=ADD_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add.add_argument("file", metavar="FILE", help="CSV file, or - for stdin")
    add.add_argument("--name", required=True, help="list name (a-z, 0-9, _ and -)")
    add.add_argument("--column", default=None, metavar="C",
                     help="header name or 1-based column number of the identifiers")
    add.add_argument("--type", dest="types", action="append", default=None, metavar="DETECTOR",
                     help="identifier type of the values, e.g. vn_citizen_id (repeatable)")
    add.add_argument("--replace", action="store_true", help="overwrite an existing list")
    add.add_argument("--rules", action="append", default=[], metavar="FILE",
                     help="extra rule file, as for scan")
    add.set_defaults(handler=run_add)
    show = commands.add_parser("list", help="show lists: name, count, key id, created")
    show.set_defaults(handler=run_list)
    remove = commands.add_parser("remove", help="delete a list")
    remove.add_argument("name", help="list name")
    remove.set_defaults(handler=run_remove)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_ERROR


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings()
    return settings.with_overrides(data_dir=getattr(args, "data_dir", None))


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise WatchlistError(f"{path}: cannot read ({exc.strerror})") from None
    # Excel writes UTF-8 with a BOM; Vietnamese exports are sometimes UTF-16.
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise WatchlistError(f"{path}: not UTF-8 or UTF-16 text; save the CSV as UTF-8")


def run_add(args: argparse.Namespace, out: TextIO | None = None,
            err: TextIO | None = None) -> int:
    """Import a CSV as a list; prints counts and rejected row numbers, never a value."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        check_name(args.name)
        settings = _settings(args)
        fingerprinter = settings.fingerprinter()
        rules = load_rules([*settings.rules_files, *args.rules])
        report = import_csv(_read_input(args.file), fingerprinter, column=args.column,
                            detectors=args.types, rules=rules)
        if not report.fingerprints:
            raise WatchlistError(f"no valid identifier in {args.file} ({report.rejected} "
                                 "rejected): nothing saved. Check --column and --type")
        path = save_watchlist(settings.data_dir, new_watchlist(args.name, report, fingerprinter),
                              replace=args.replace)
    except (WatchlistError, SettingsError, RuleError) as exc:
        print(f"roriwatch: error: {exc}", file=err)
        return EXIT_ERROR
    print(f"watch-list '{args.name}': {report.accepted} value(s) accepted, {report.rejected} "
          f"rejected, {report.empty} empty cell(s); {report.distinct} fingerprint(s) saved to "
          f"{path} (key id {fingerprinter.key_id}); columns: {', '.join(report.columns)}",
          file=out)
    if report.rejected_rows:
        more = " ..." if report.rejected > len(report.rejected_rows) else ""
        print("rejected rows (not valid identifiers of the chosen types): "
              + ", ".join(map(str, report.rejected_rows)) + more, file=out)
    print("the CSV itself was not copied; delete it if it is no longer needed", file=out)
    return EXIT_OK


def run_list(args: argparse.Namespace, out: TextIO | None = None,
             err: TextIO | None = None) -> int:
    """Show every list; flags lists made with another key id (they cannot match)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        settings = _settings(args)
        lists = list_watchlists(settings.data_dir)
    except (WatchlistError, SettingsError) as exc:
        print(f"roriwatch: error: {exc}", file=err)
        return EXIT_ERROR
    if not lists:
        print(f"no watch-lists in {watchlist_dir(settings.data_dir)}", file=out)
        return EXIT_OK
    current = settings.hmac_key_id if settings.hmac_key else None
    print(f"{'NAME':<24} {'COUNT':>9}  {'KEY ID':<12} CREATED", file=out)
    for watchlist in lists:
        note = "" if current in (None, watchlist.key_id) else "  (other key: will not match)"
        print(f"{watchlist.name:<24} {watchlist.count:>9}  {watchlist.key_id:<12} "
              f"{watchlist.created}{note}", file=out)
    return EXIT_OK


def run_remove(args: argparse.Namespace, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    """Delete one list."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        settings = _settings(args)
        remove_watchlist(settings.data_dir, args.name)
    except (WatchlistError, SettingsError) as exc:
        print(f"roriwatch: error: {exc}", file=err)
        return EXIT_ERROR
    print(f"watch-list '{args.name}' removed (workers drop it at their next reload)", file=out)
    return EXIT_OK
