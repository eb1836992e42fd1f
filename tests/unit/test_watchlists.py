from __future__ import annotations

import argparse
import json
import os
import stat

import pytest

from detectors import Fingerprinter, Scanner, load_rules, summarize
from detectors.synthetic import Synth
from streams.watchlist_command import add_watchlist_subcommand
from streams.watchlists import (
    ImportReport,
    Watchlist,
    WatchlistError,
    WatchlistIndex,
    apply_watchlist_hits,
    canonical_forms,
    import_csv,
    list_watchlists,
    load_watchlist,
    new_watchlist,
    remove_watchlist,
    save_watchlist,
)

KEY = Fingerprinter(b"watchlist-test-key-0123456789abc", key_id="w1")
RULES = load_rules()
IDENTIFIER_RULES = [r for r in RULES.rules if r.kind in ("number", "token", "email")]


@pytest.fixture(scope="module")
def people():
    synth = Synth(21)
    return [{"name": synth.name(), "cccd": synth.citizen_id(), "phone": synth.mobile(),
             "email": synth.email(), "passport": synth.passport()} for _ in range(12)]


def scanned_fingerprints(text: str) -> set[str]:
    return {f.fingerprint for f in Scanner(RULES, KEY).scan(text)}


# --- canonical forms: the same fingerprint as the scanner's ------------------------------


@pytest.mark.parametrize("written", ["{n}", "+84 {a} {b} {c}", "84{n1}", "{n4}.{n7}.{rest}"])
def test_phone_forms_fingerprint_like_the_scanner(written):
    n = Synth(3).mobile()
    value = written.format(n=n, a=n[1:4], b=n[4:7], c=n[7:], n1=n[1:], n4=n[:4], n7=n[4:7],
                           rest=n[7:])
    forms = canonical_forms(value, IDENTIFIER_RULES)
    assert n in forms
    assert KEY.fingerprint(n) in scanned_fingerprints(f"SĐT: {n}")


def test_excel_stripped_citizen_id_is_restored():
    synth = Synth(4)
    cid = next(c for c in iter(synth.citizen_id, None) if c.startswith("0"))
    assert cid in canonical_forms(cid.lstrip("0"), IDENTIFIER_RULES)


def test_case_of_emails_and_passports_does_not_matter(people):
    person = people[0]
    assert canonical_forms(person["email"].upper(), IDENTIFIER_RULES) == {person["email"]}
    assert person["passport"] in canonical_forms(person["passport"].lower(), IDENTIFIER_RULES)


@pytest.mark.parametrize("junk", ["", "   ", "hello", "12/03/1990", "1111111",
                                  "nobody@example.com", "12345"])
def test_values_that_are_no_identifier_are_rejected(junk):
    assert canonical_forms(junk, IDENTIFIER_RULES) == set()


# --- CSV import ---------------------------------------------------------------------------


def customers_csv(people, header="Họ và tên,Số CCCD,Số điện thoại,Email") -> str:
    lines = [header] + [f"{p['name']},{p['cccd']},{p['phone']},{p['email']}" for p in people]
    return "\n".join(lines) + "\nNguyễn Văn X,not-an-id,12,no-mail\n"


def test_import_detects_columns_by_header_and_counts(people):
    report = import_csv(customers_csv(people), KEY)
    assert report.columns == ["Số CCCD", "Số điện thoại", "Email"]
    assert (report.accepted, report.rejected, report.empty) == (36, 3, 0)
    assert report.rejected_rows == [14]
    text = "\n".join(f"{p['cccd']} sdt {p['phone']} {p['email']}" for p in people[:5])
    assert scanned_fingerprints(text) <= report.fingerprints


def test_import_report_never_shows_a_value(people):
    report = import_csv(customers_csv(people), KEY)
    shown = repr(report)
    assert not any(p["cccd"] in shown or p["phone"] in shown for p in people)


def test_column_by_name_number_and_type(people):
    text = customers_csv(people)
    by_name = import_csv(text, KEY, column="Số CCCD")
    by_number = import_csv(text, KEY, column="2")
    assert by_name.fingerprints == by_number.fingerprints
    assert by_name.accepted == 12
    phones_only = import_csv(text, KEY, column="3", detectors=["vn_phone"])
    assert phones_only.fingerprints == {KEY.fingerprint(p["phone"]) for p in people}
    with pytest.raises(WatchlistError, match="not a header"):
        import_csv(text, KEY, column="Passport")


def test_headerless_file_uses_columns_that_hold_identifiers(people):
    text = "\n".join(f"{p['name']};{p['phone']};khách VIP" for p in people)
    report = import_csv(text, KEY)
    assert report.columns == ["#2"]
    assert report.fingerprints == {KEY.fingerprint(p["phone"]) for p in people}


def test_no_identifier_column_is_an_error():
    with pytest.raises(WatchlistError, match="--column"):
        import_csv("a,b\nx,y\n", KEY)


def test_ephemeral_key_is_refused(people):
    with pytest.raises(WatchlistError, match="RORIWATCH_HMAC_KEY"):
        import_csv(customers_csv(people), Fingerprinter.ephemeral_key())


def test_unknown_type_is_an_error(people):
    with pytest.raises(WatchlistError, match="unknown identifier type"):
        import_csv(customers_csv(people), KEY, detectors=["vn_shoe_size"])


# --- storage and matching -----------------------------------------------------------------


def test_store_round_trip_holds_fingerprints_only(tmp_path, people):
    report = import_csv(customers_csv(people), KEY)
    path = save_watchlist(tmp_path, new_watchlist("customers", report, KEY))
    raw = path.read_text()
    assert not any(p["cccd"] in raw or p["phone"] in raw or p["email"] in raw for p in people)
    data = json.loads(raw)
    assert data["fingerprints"] == sorted(data["fingerprints"])
    assert data["count"] == report.distinct and data["key_id"] == "w1"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_watchlist(path).fingerprints == report.fingerprints
    with pytest.raises(WatchlistError, match="already exists"):
        save_watchlist(tmp_path, new_watchlist("customers", report, KEY))
    save_watchlist(tmp_path, new_watchlist("customers", report, KEY), replace=True)
    assert [w.name for w in list_watchlists(tmp_path)] == ["customers"]
    remove_watchlist(tmp_path, "customers")
    assert list_watchlists(tmp_path) == []
    with pytest.raises(WatchlistError, match="no watch-list"):
        remove_watchlist(tmp_path, "customers")


@pytest.mark.parametrize("name", ["", "Customers", "../x", "a b", "x" * 65])
def test_bad_names_are_refused(name):
    with pytest.raises(WatchlistError):
        new_watchlist(name, ImportReport(), KEY)


def test_index_matches_scanner_findings_and_skips_other_keys(people):
    report = import_csv(customers_csv(people), KEY)
    mine = new_watchlist("customers", report, KEY)
    foreign = Watchlist("old", "k0", "2020-01-01T00:00:00Z", mine.fingerprints)
    index = WatchlistIndex.from_watchlists([mine, foreign], key_id="w1")
    assert index.names == ["customers"] and "old" in index.skipped
    paste = "\n".join(f"{p['name']} CCCD {p['cccd']} SĐT {p['phone']}" for p in people[:7])
    stranger = Synth(99)
    paste += f"\nNgười lạ CCCD {stranger.citizen_id()} SĐT {stranger.mobile()}"
    assert index.match(scanned_fingerprints(paste)) == {"customers": 14}
    assert index.match([]) == {}


def test_lists_under_a_retired_key_match_through_that_keys_fingerprints(people):
    """Key rotation: a list made with k0 keeps matching while k0 is a previous key."""
    old_key = Fingerprinter(b"retired-test-key-0123456789abcdef", key_id="k0")
    report = import_csv(customers_csv(people), old_key)
    old_list = new_watchlist("customers", report, old_key)
    index = WatchlistIndex.from_watchlists([old_list], key_id="w1", previous_key_ids=["k0"])
    assert index.names == ["customers"] and not index.skipped
    assert index.previous_key_ids == {"k0"}
    scanner = Scanner(RULES, KEY, previous_fingerprinters=[old_key])
    paste = "\n".join(f"{p['name']} CCCD {p['cccd']} SĐT {p['phone']}" for p in people[:5])
    summary = summarize(paste, scanner.scan(paste))
    assert summary.fingerprints and set(summary.previous_fingerprints) == {"k0"}
    # The current key's prints do not match an old-key list; the old key's prints do.
    assert index.match(summary.fingerprints) == {}
    assert index.match(summary.fingerprints, summary.previous_fingerprints) == {"customers": 10}
    assert "previous_fingerprints" not in summary.to_dict(), "alerts carry current prints only"


def test_findings_carry_previous_key_prints_only_when_asked():
    phone = Synth(5).mobile()
    old_key = Fingerprinter(b"retired-test-key-0123456789abcdef", key_id="k0")
    [plain] = Scanner(RULES, KEY).scan(f"SĐT {phone}")
    [rotating] = Scanner(RULES, KEY, previous_fingerprinters=[old_key]).scan(f"SĐT {phone}")
    assert plain.previous_fingerprints == () and "previous_fingerprints" not in plain.to_dict()
    assert rotating.fingerprint == plain.fingerprint
    assert rotating.previous_fingerprints == (("k0", old_key.fingerprint(phone)),)
    assert rotating.shifted(3).previous_fingerprints == rotating.previous_fingerprints


def test_apply_watchlist_hits_marks_and_raises():
    alert = {"severity": "medium", "severity_rank": 2, "reasons": ["x"], "watchlists": []}
    marked = apply_watchlist_hits(alert, {"customers": 412})
    assert marked["severity"] == "critical" and marked["watchlists"] == ["customers"]
    assert "412 identifier(s) on watch-list 'customers'" in marked["reasons"]
    assert apply_watchlist_hits(alert, {"staff": 2})["severity"] == "high"
    assert apply_watchlist_hits(alert, {}) == alert


# --- CLI ----------------------------------------------------------------------------------


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser()
    add_watchlist_subcommand(parser.add_subparsers())
    args = parser.parse_args(argv)
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_add_list_remove_without_printing_values(tmp_path, monkeypatch, capsys, people):
    monkeypatch.setenv("RORIWATCH_HMAC_KEY", "cli-test-key-0123456789abcdef")
    monkeypatch.setenv("RORIWATCH_HMAC_KEY_ID", "c1")
    monkeypatch.setenv("RORIWATCH_DATA_DIR", str(tmp_path / "data"))
    csv_path = tmp_path / "customers.csv"
    csv_path.write_text(customers_csv(people), encoding="utf-8-sig")
    code, out, err = run_cli(["watchlist", "add", "--name", "customers", str(csv_path)], capsys)
    assert code == 0, err
    assert "36 value(s) accepted, 3 rejected" in out and "rejected rows" in out
    assert not any(p["cccd"] in out + err or p["phone"] in out + err for p in people)
    code, out, _ = run_cli(["watchlist", "list"], capsys)
    assert code == 0 and "customers" in out and "c1" in out
    code, _, err = run_cli(["watchlist", "add", "--name", "customers", str(csv_path)], capsys)
    assert code == 2 and "--replace" in err
    code, out, _ = run_cli(["watchlist", "remove", "customers"], capsys)
    assert code == 0 and "removed" in out


def test_cli_refuses_without_a_key(tmp_path, monkeypatch, capsys, people):
    monkeypatch.delenv("RORIWATCH_HMAC_KEY", raising=False)
    monkeypatch.delenv("RORIWATCH_HMAC_KEY_FILE", raising=False)
    monkeypatch.setenv("RORIWATCH_DATA_DIR", str(tmp_path))
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(customers_csv(people))
    code, out, err = run_cli(["watchlist", "add", "--name", "c", str(csv_path)], capsys)
    assert code == 2 and "RORIWATCH_HMAC_KEY" in err and out == ""
    assert list_watchlists(tmp_path) == []


def test_a_wrong_column_name_does_not_echo_the_first_row(people):
    headerless = "\n".join(f"{p['cccd']},{p['phone']}" for p in people)
    with pytest.raises(WatchlistError) as info:
        import_csv(headerless, KEY, column="cccd")
    assert people[0]["cccd"] not in str(info.value) and "2 column(s)" in str(info.value)
