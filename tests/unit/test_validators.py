"""Validators alone: tables of known answers, and generated values."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.synthetic import Synth
from detectors.validators import (
    Verdict,
    canonical_phone,
    citizen_id,
    health_insurance,
    legacy_id,
    luhn_ok,
    passport,
    payment_card,
    phone,
    tax_code,
)

TODAY = dt.date(2026, 11, 24)


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("079203012345", Verdict.CONFIRMED),  # TP.HCM, male born 2003
        ("001099012345", Verdict.CONFIRMED),  # Hà Nội, male born 1999
        ("999203012345", Verdict.REJECTED),  # no such province
        ("003203012345", Verdict.REJECTED),  # 003 is not a province code
        ("079227012345", Verdict.REJECTED),  # born 2027: in the future
        ("079403012345", Verdict.REJECTED),  # born 2103
        ("079203000000", Verdict.REJECTED),  # placeholder serial
        ("07920301234", Verdict.REJECTED),  # 11 digits
    ],
)
def test_citizen_id_table(value, verdict):
    assert citizen_id(value, today=TODAY) is verdict


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("0912345678", "0912345678"),
        ("84912345678", "0912345678"),
        ("0084912345678", "0912345678"),
        ("01662345678", "0362345678"),  # pre-2019 Viettel 0166 -> 036
        ("02438123456", "02438123456"),  # Hà Nội landline
        ("0112345678", None),  # 011 is no mobile prefix
        ("19001234", None),  # hotline
        ("0212345678", None),  # landlines have 11 digits
    ],
)
def test_phone_canonical_forms(written, canonical):
    assert canonical_phone(written) == canonical


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("0106715921", Verdict.CONFIRMED),
        ("0106715922", Verdict.REJECTED),  # wrong check digit
        ("0315482678001", Verdict.CONFIRMED),  # branch 001
        ("0315482678000", Verdict.REJECTED),  # branch 000 is not a branch
        ("0100000000", Verdict.REJECTED),
    ],
)
def test_tax_code_table(value, verdict):
    assert tax_code(value) is verdict


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        ("9704365829147351", Verdict.CONFIRMED),  # NAPAS Vietcombank, 16
        ("9704182703194651235", Verdict.CONFIRMED),  # NAPAS, 19
        ("970436582914735", Verdict.REJECTED),  # NAPAS cannot be 15 digits
        ("4532014582736195", Verdict.CONFIRMED),
        ("4532014582736196", Verdict.REJECTED),  # Luhn fails
        ("1234567890123452", Verdict.REJECTED),  # no issuer starts with 1
        ("4111110000000000", Verdict.REJECTED),  # placeholder
    ],
)
def test_payment_card_table(value, verdict):
    assert payment_card(value) is verdict


@pytest.mark.parametrize(
    ("validator", "value", "verdict"),
    [
        (legacy_id, "024567891", Verdict.UNKNOWN),
        (legacy_id, "994567891", Verdict.REJECTED),
        (legacy_id, "111111111", Verdict.REJECTED),
        (passport, "C1234567", Verdict.UNKNOWN),
        (passport, "C0000000", Verdict.REJECTED),
        (health_insurance, "DN4010123456789", Verdict.CONFIRMED),
        (health_insurance, "DN9010123456789", Verdict.REJECTED),
        (phone, "0900000000", Verdict.REJECTED),
    ],
)
def test_other_validators(validator, value, verdict):
    assert validator(value) is verdict


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=2**32))
def test_generated_valid_identifiers_validate(seed):
    s = Synth(seed)
    assert citizen_id(s.citizen_id(), today=TODAY) is Verdict.CONFIRMED
    assert phone(s.mobile()) is Verdict.CONFIRMED
    assert phone(s.legacy_mobile()) is Verdict.CONFIRMED
    assert phone(s.landline()) is Verdict.CONFIRMED
    assert payment_card(s.card()) is Verdict.CONFIRMED
    assert tax_code(s.tax_code()) is Verdict.CONFIRMED
    assert health_insurance(s.health_insurance()) is Verdict.CONFIRMED


@given(st.text(alphabet="0123456789", min_size=13, max_size=19), st.integers(0, 18))
def test_any_single_digit_change_breaks_luhn(number, position):
    if not luhn_ok(number):
        return
    position %= len(number)
    changed = number[:position] + str((int(number[position]) + 1) % 10) + number[position + 1:]
    assert not luhn_ok(changed)


def _luhn_by_the_book(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char) * (2 if index % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


@given(st.text(alphabet="0123456789", max_size=25))
def test_luhn_agrees_with_the_textbook_definition(number):
    assert luhn_ok(number) is _luhn_by_the_book(number)


@pytest.mark.parametrize("number", ["4111111111111111", "5500005555555559", "9704000000000018",
                                    "79927398713"])
def test_luhn_accepts_known_valid_numbers(number):
    assert luhn_ok(number)
    assert not luhn_ok(number[:-1] + str((int(number[-1]) + 5) % 10))


def test_cards_in_other_scripts_digits_are_rejected():
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in "4111111111111111")
    assert payment_card(arabic_indic) is Verdict.REJECTED


@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.integers(0, 8))
def test_tax_check_digit_catches_single_digit_errors(first9, position):
    from detectors.validators import tax_code_check_digit

    check = tax_code_check_digit(first9)
    if check is None or first9[2:] == "0000000":
        return
    code = first9 + str(check)
    assert tax_code(code) is Verdict.CONFIRMED
    changed = code[:position] + str((int(code[position]) + 1) % 10) + code[position + 1:]
    assert tax_code(changed) is Verdict.REJECTED


def test_current_year_follows_the_clock(monkeypatch):
    from detectors import validators

    monkeypatch.setattr(validators, "_YEAR_READ", [0.0, 0.0])  # the test's own cache
    assert validators.current_year() == dt.date.today().year
    assert validators.citizen_id("079231012345") is Verdict.REJECTED  # born 2031: not yet

    class NewYear(dt.date):
        @classmethod
        def today(cls):
            return dt.date(2031, 1, 1)

    monkeypatch.setattr(validators._dt, "date", NewYear)
    monkeypatch.setattr(validators.time, "time", lambda: 4_000_000_000.0)  # past the cache
    assert validators.current_year() == 2031
    assert validators.citizen_id("079231012345") is Verdict.CONFIRMED
