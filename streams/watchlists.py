"""Watch-lists: an organisation's own identifiers, held as keyed fingerprints only.

A bank wants to hear "412 of our customers' citizen IDs appear in this paste", but must not
hand its customer list to a monitoring system. ``roriwatch watchlist add`` reads its CSV once,
turns every value into the canonical form the scanner fingerprints (phones to the national
0-prefixed form, IDs as digits, passports upper-case, e-mails lower-case, Excel-stripped leading
zeros restored), keeps the HMAC fingerprints under the same key as the findings and discards the
values. A finding then matches a watch-list exactly when its fingerprint is in the list.

A list is one JSON file under ``<data_dir>/watchlists/``: name, key id, creation time, count and
the sorted fingerprints. Fingerprints made with one key are useless under another, so a list
records its key id and the index ignores lists made with a different key.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from detectors.normalize import fold
from detectors.privacy import Fingerprinter
from detectors.ruleset import Rule, RuleSet, load_rules
from detectors.validators import CANONICALISERS, VALIDATORS, Verdict

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
WATCHLIST_DIR = "watchlists"
FORMAT_VERSION = 1
SNIFF_ROWS = 200
# A column without a recognised header is taken as identifiers when most of its values are.
AUTO_COLUMN_SHARE = 0.5
MAX_REPORTED_ROWS = 10
_SEPARATORS = str.maketrans("", "", " .-()+")
_TOKEN = re.compile(r"^[A-Z]{1,2}[0-9]{7,13}$")

# Folded header words → the detectors whose canonical form the column's values take.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "cccd": ("vn_citizen_id",), "can cuoc": ("vn_citizen_id",),
    "can cuoc cong dan": ("vn_citizen_id",), "so cccd": ("vn_citizen_id",),
    "citizen id": ("vn_citizen_id",), "citizen_id": ("vn_citizen_id",),
    "national id": ("vn_citizen_id", "vn_legacy_id"),
    "id number": ("vn_citizen_id", "vn_legacy_id"),
    "cmnd": ("vn_legacy_id", "vn_citizen_id"), "so cmnd": ("vn_legacy_id", "vn_citizen_id"),
    "cmnd cccd": ("vn_legacy_id", "vn_citizen_id"), "cccd cmnd": ("vn_citizen_id", "vn_legacy_id"),
    "so giay to": ("vn_citizen_id", "vn_legacy_id", "vn_passport"),
    "phone": ("vn_phone",), "mobile": ("vn_phone",), "sdt": ("vn_phone",), "so dt": ("vn_phone",),
    "so dien thoai": ("vn_phone",), "dien thoai": ("vn_phone",), "tel": ("vn_phone",),
    "msisdn": ("vn_phone",), "phone number": ("vn_phone",),
    "email": ("email",), "e mail": ("email",), "mail": ("email",), "thu dien tu": ("email",),
    "passport": ("vn_passport",), "ho chieu": ("vn_passport",), "so ho chieu": ("vn_passport",),
    "bhyt": ("vn_health_insurance",), "so bhyt": ("vn_health_insurance",),
    "the bhyt": ("vn_health_insurance",),
    "stk": ("vn_bank_account",), "so tai khoan": ("vn_bank_account",),
    "account": ("vn_bank_account",), "account number": ("vn_bank_account",),
    "bank account": ("vn_bank_account",),
    "card": ("payment_card",), "card number": ("payment_card",), "so the": ("payment_card",),
    "pan": ("payment_card",),
    "mst": ("vn_tax_code",), "ma so thue": ("vn_tax_code",), "tax code": ("vn_tax_code",),
}  # fmt: skip


class WatchlistError(ValueError):
    """A watch-list cannot be created, read or used; the message says how to fix it."""


def watchlist_dir(data_dir: str | Path) -> Path:
    """Folder holding the watch-list files."""
    return Path(data_dir) / WATCHLIST_DIR


def check_name(name: str) -> str:
    """Validate a list name: it becomes a file name and a bounded metric label."""
    if not NAME_RE.match(name):
        raise WatchlistError(f"watch-list name {name!r} must be 1-64 characters of a-z, 0-9, _ "
                             "and -, starting with a letter or digit")
    return name


# --- canonical forms ----------------------------------------------------------------------


def _identifier_rules(rules: RuleSet, detectors: Sequence[str] | None) -> list[Rule]:
    chosen = [r for r in rules.rules if r.kind in ("number", "token", "email")]
    if detectors:
        wanted = set(detectors)
        unknown = wanted - {r.id for r in chosen}
        if unknown:
            raise WatchlistError(f"unknown identifier type(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(r.id for r in chosen)}")
        chosen = [r for r in chosen if r.id in wanted]
    return chosen


def canonical_forms(value: str, rules: Sequence[Rule]) -> set[str]:
    """Every canonical form under which the scanner could fingerprint ``value``.

    The scanner decides per finding which rule a number is (a 10-digit value may be a phone or
    a tax code); a watch-list value has no context, so it keeps the form of every rule that
    would not reject it. For phones and most IDs the forms coincide; ``84912345678`` gives the
    national phone form and the plain digits.
    """
    text = value.strip()
    if not text:
        return set()
    forms: set[str] = set()
    if "@" in text:
        for rule in rules:
            if rule.kind == "email":
                canonical = CANONICALISERS[rule.canonical](text)
                if VALIDATORS[rule.validator](canonical.lower()) is not Verdict.REJECTED:
                    forms.add(canonical)
        return forms
    compact = text.translate(_SEPARATORS)
    if compact.isdigit():
        for rule in rules:
            if rule.kind != "number":
                continue
            candidate = compact
            if rule.pad_to and len(candidate) < rule.pad_to and len(candidate) in rule.lengths:
                # Spreadsheets drop the leading zero of IDs such as 001...: restore it, as the
                # scanner does for padded rules.
                candidate = candidate.zfill(rule.pad_to)
            elif len(candidate) not in rule.lengths:
                continue
            canonical = CANONICALISERS[rule.canonical](candidate)
            if VALIDATORS[rule.validator](canonical) is not Verdict.REJECTED:
                forms.add(canonical)
        return forms
    token = compact.upper()
    if _TOKEN.match(token):
        for rule in rules:
            if rule.kind == "token" and len(token) in rule.lengths:
                canonical = CANONICALISERS[rule.canonical](token)
                if VALIDATORS[rule.validator](canonical) is not Verdict.REJECTED:
                    forms.add(canonical)
    return forms


# --- CSV import ---------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import accepted and rejected: counts and row numbers only, never values."""

    accepted: int = 0
    rejected: int = 0
    empty: int = 0
    columns: list[str] = field(default_factory=list)
    rejected_rows: list[int] = field(default_factory=list)
    fingerprints: set[str] = field(default_factory=set, repr=False)

    @property
    def distinct(self) -> int:
        """Distinct fingerprints kept (a value may give two forms; duplicates give none)."""
        return len(self.fingerprints)


def _header_detectors(cell: str) -> tuple[str, ...] | None:
    key = re.sub(r"[^a-z0-9_]+", " ", fold(cell)).strip()
    return HEADER_ALIASES.get(key)


def _read_rows(text: str) -> list[list[str]]:
    sample = text[:64 * 1024]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    return [row for row in csv.reader(io.StringIO(text), dialect) if row]


def _pick_columns(rows: list[list[str]], column: str | None, rules: Sequence[Rule],
                  detectors: Sequence[str] | None) -> tuple[int, list[tuple[int, list[Rule]]],
                                                         list[str]]:
    """Return (first data row, [(column index, rules)], column labels)."""
    header = rows[0] if rows else []
    typed = [(i, _header_detectors(cell)) for i, cell in enumerate(header)]
    has_header = any(found for _, found in typed) or (
        column is not None and not column.isdigit() and column in header)
    start = 1 if has_header else 0

    def rules_for(found: tuple[str, ...] | None) -> list[Rule]:
        if detectors:  # --type wins over the header
            return list(rules)
        if found:
            return [r for r in rules if r.id in found]
        return list(rules)

    if column is not None:
        if column.isdigit():
            index = int(column) - 1
            if index < 0:
                raise WatchlistError("--column numbers start at 1")
        else:
            names = [cell.strip() for cell in header]
            if column.strip() not in names:
                # The first row is not listed: in a file without a header it is data.
                raise WatchlistError(f"--column {column!r} is not a header of this file (its "
                                     f"first row has {len(names)} column(s)); give the header "
                                     "exactly, or a 1-based column number")
            index = names.index(column.strip())
        found = typed[index][1] if has_header and index < len(typed) else None
        label = header[index].strip() if has_header and index < len(header) else f"#{index + 1}"
        return start, [(index, rules_for(found))], [label]
    if has_header:
        chosen = [(i, rules_for(found)) for i, found in typed if found]
        return start, chosen, [header[i].strip() for i, _ in chosen]
    # No header: a column is an identifier column when most sampled values canonicalise.
    width = max(len(row) for row in rows)
    chosen = []
    for index in range(width):
        values = [row[index] for row in rows[:SNIFF_ROWS] if index < len(row) and row[index]
                  .strip()]
        good = sum(1 for v in values if canonical_forms(v, rules))
        if values and good / len(values) >= AUTO_COLUMN_SHARE:
            chosen.append((index, list(rules)))
    return 0, chosen, [f"#{i + 1}" for i, _ in chosen]


def import_csv(text: str, fingerprinter: Fingerprinter, *, column: str | None = None,
               detectors: Sequence[str] | None = None, rules: RuleSet | None = None
               ) -> ImportReport:
    """Fingerprint the identifiers of a CSV text; the values themselves are not kept.

    Columns: ``column`` (a header name or a 1-based number), else every column whose header
    names an identifier type (``cccd``, ``sdt``, ``email``, ``so tai khoan``...), else every
    column where most values are identifiers. ``detectors`` forces the identifier types.
    """
    if fingerprinter.ephemeral:
        raise WatchlistError(
            "RORIWATCH_HMAC_KEY is not set: fingerprints made with a random per-run key would "
            "never match a finding. Set RORIWATCH_HMAC_KEY (or RORIWATCH_HMAC_KEY_FILE) to the "
            "key the workers use, then import again")
    ruleset = rules or load_rules()
    candidates = _identifier_rules(ruleset, detectors)
    rows = _read_rows(text)
    report = ImportReport()
    if not rows:
        return report
    start, columns, labels = _pick_columns(rows, column, candidates, detectors)
    if not columns:
        raise WatchlistError("no identifier column found: name one with --column (header or "
                             "1-based number), or give it a header such as cccd, sdt, email")
    report.columns = labels
    for number, row in enumerate(rows[start:], start=start + 1):
        for index, column_rules in columns:
            value = row[index] if index < len(row) else ""
            if not value.strip():
                report.empty += 1
                continue
            forms = canonical_forms(value, column_rules)
            if not forms:
                report.rejected += 1
                if len(report.rejected_rows) < MAX_REPORTED_ROWS and \
                        number not in report.rejected_rows:
                    report.rejected_rows.append(number)
                continue
            report.accepted += 1
            report.fingerprints.update(fingerprinter.fingerprint(form) for form in forms)
    return report


# --- storage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watchlist:
    """One stored list: its name, key id and fingerprints (never values)."""

    name: str
    key_id: str
    created: str
    fingerprints: frozenset[str]
    columns: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """Number of fingerprints."""
        return len(self.fingerprints)

    def to_json(self) -> dict[str, Any]:
        """The file's content."""
        return {"format": FORMAT_VERSION, "name": self.name, "key_id": self.key_id,
                "created": self.created, "count": self.count, "columns": list(self.columns),
                "fingerprints": sorted(self.fingerprints)}


def _path(data_dir: str | Path, name: str) -> Path:
    return watchlist_dir(data_dir) / f"{check_name(name)}.json"


def save_watchlist(data_dir: str | Path, watchlist: Watchlist, *, replace: bool = False) -> Path:
    """Write a list atomically (readers never see half a file), readable by its owner only."""
    path = _path(data_dir, watchlist.name)
    if path.exists() and not replace:
        raise WatchlistError(f"watch-list '{watchlist.name}' already exists: add --replace to "
                             "overwrite it, or remove it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{watchlist.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(watchlist.to_json(), handle, separators=(",", ":"))
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_watchlist(path: str | Path) -> Watchlist:
    """Read one list file; a malformed file is an error naming the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WatchlistError(f"{path}: cannot read watch-list ({type(exc).__name__})") from None
    if not isinstance(data, Mapping):
        raise WatchlistError(f"{path}: a watch-list file must hold a JSON object")
    fingerprints = data.get("fingerprints")
    if not isinstance(fingerprints, list) or not all(isinstance(f, str) for f in fingerprints):
        raise WatchlistError(f"{path}: field 'fingerprints' must be a list of hex strings")
    for key in ("name", "key_id", "created"):
        if not isinstance(data.get(key), str):
            raise WatchlistError(f"{path}: field '{key}' is missing or not a string")
    return Watchlist(name=check_name(data["name"]), key_id=data["key_id"],
                     created=data["created"], fingerprints=frozenset(fingerprints),
                     columns=tuple(data.get("columns") or ()))


def list_watchlists(data_dir: str | Path) -> list[Watchlist]:
    """Every stored list, by name."""
    folder = watchlist_dir(data_dir)
    if not folder.is_dir():
        return []
    return [load_watchlist(p) for p in sorted(folder.glob("*.json"))]


def remove_watchlist(data_dir: str | Path, name: str) -> None:
    """Delete a list; an unknown name is an error (a typo must not look like success)."""
    path = _path(data_dir, name)
    if not path.exists():
        raise WatchlistError(f"no watch-list named '{name}'")
    path.unlink()


def new_watchlist(name: str, report: ImportReport, fingerprinter: Fingerprinter) -> Watchlist:
    """A list from an import report, stamped with the key id and the time."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Watchlist(name=check_name(name), key_id=fingerprinter.key_id, created=created,
                     fingerprints=frozenset(report.fingerprints), columns=tuple(report.columns))


# --- matching -----------------------------------------------------------------------------


@dataclass
class WatchlistIndex:
    """Fingerprint → list names, for matching findings.

    Lists made with the current key match the findings' fingerprints; lists made with a
    previous key (``RORIWATCH_HMAC_PREVIOUS_KEYS``, during a rotation) match the findings'
    fingerprints under that key; lists under any other key are skipped with a reason.
    """

    lists: dict[str, frozenset[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    current_key_id: str = ""

    @classmethod
    def from_watchlists(cls, watchlists: Iterable[Watchlist], key_id: str,
                        previous_key_ids: Iterable[str] = ()) -> WatchlistIndex:
        """Index the lists made with ``key_id`` or a previous key; the rest go to ``skipped``."""
        index = cls(current_key_id=key_id)
        usable = {key_id, *previous_key_ids}
        for watchlist in watchlists:
            if watchlist.key_id not in usable:
                index.skipped[watchlist.name] = (
                    f"made with key id '{watchlist.key_id}', the workers use '{key_id}' and "
                    f"'{watchlist.key_id}' is not in RORIWATCH_HMAC_PREVIOUS_KEYS; re-import "
                    "it with the current key")
                continue
            index.lists[watchlist.name] = watchlist.fingerprints
            index.key_ids[watchlist.name] = watchlist.key_id
        return index

    @classmethod
    def load(cls, data_dir: str | Path, key_id: str,
             previous_key_ids: Iterable[str] = ()) -> WatchlistIndex:
        """Load every list under ``data_dir``."""
        return cls.from_watchlists(list_watchlists(data_dir), key_id, previous_key_ids)

    @property
    def names(self) -> list[str]:
        """Names of the lists in force (bounded: they become metric labels)."""
        return sorted(self.lists)

    @property
    def previous_key_ids(self) -> frozenset[str]:
        """Retired key ids some list still needs: the scanner fingerprints under these too."""
        return frozenset(k for k in self.key_ids.values() if k != self.current_key_id)

    def match(self, fingerprints: Iterable[str],
              previous: Mapping[str, Iterable[str]] | None = None) -> dict[str, int]:
        """How many distinct fingerprints are on each list; lists without a hit are left out.

        ``fingerprints`` are under the current key, ``previous`` maps a retired key id to
        the same document's fingerprints under that key.
        """
        if not self.lists:
            return {}
        by_key = {self.current_key_id: set(fingerprints)}
        for key_id, values in (previous or {}).items():
            by_key[key_id] = set(values)
        hits = {}
        for name, members in self.lists.items():
            key_id = self.key_ids.get(name, self.current_key_id)
            hits[name] = len(by_key.get(key_id, set()) & members)
        return {name: n for name, n in sorted(hits.items()) if n}

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)


def apply_watchlist_hits(alert: Mapping[str, Any], hits: Mapping[str, int]) -> dict[str, Any]:
    """A copy of ``alert`` marked with its watch-list hits and its severity raised.

    For the scan pipeline (before the alert is sent): any watched identifier makes the alert at
    least high, 100 or more critical, with a reason that says how many and from which list.
    """
    from detectors.summary import SEVERITY_RANK

    marked = dict(alert)
    if not hits:
        return marked
    marked["watchlists"] = sorted({*alert.get("watchlists", ()), *hits})
    marked["watchlist_hits"] = dict(sorted(hits.items()))
    total = sum(hits.values())
    rank = max(int(alert.get("severity_rank") or 1), 4 if total >= 100 else 3)
    by_rank = {v: k for k, v in SEVERITY_RANK.items()}
    marked["severity_rank"] = rank
    marked["severity"] = by_rank[rank]
    marked["reasons"] = [*alert.get("reasons", ()),
                         *(f"{n} identifier(s) on watch-list '{name}'"
                           for name, n in sorted(hits.items()))]
    return marked
