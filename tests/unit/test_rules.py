"""Every rule's own examples, and the loader's error messages."""

from pathlib import Path

import pytest

from detectors import Fingerprinter, RuleError, Scanner, load_rules
from detectors.ruleset import load_rule_file

RULES = load_rules()
SCANNER = Scanner(RULES, Fingerprinter(b"test-key-0123456789abcdef"))

MATCH = [(rule.id, text) for rule in RULES.rules for text in rule.examples_match]
NO_MATCH = [(rule.id, text) for rule in RULES.rules for text in rule.examples_no_match]


def test_public_detector_ids_are_exactly_the_contract():
    assert set(RULES.ids) == {
        "vn_citizen_id", "vn_legacy_id", "vn_phone", "vn_bank_account", "payment_card",
        "vn_passport", "vn_tax_code", "vn_health_insurance", "email",
    }


def test_every_rule_has_examples_both_ways():
    for rule in RULES.rules:
        assert rule.examples_match, rule.id
        assert rule.examples_no_match, rule.id


@pytest.mark.parametrize(("rule_id", "text"), MATCH)
def test_rule_matches_its_examples(rule_id, text):
    assert rule_id in {f.detector for f in SCANNER.scan(text)}


@pytest.mark.parametrize(("rule_id", "text"), NO_MATCH)
def test_rule_rejects_its_counter_examples(rule_id, text):
    assert rule_id not in {f.detector for f in SCANNER.scan(text)}


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rule.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("id: my_rule\nkind: number\nseverity: high\nbase_score: 2\npattern: '\\d+'\n"
         "lengths: [8]\n", "rule 'my_rule': field 'base_score' must be between 0 and 1"),
        ("id: my_rule\nseverity: urgent\nbase_score: 0.5\n", "rule 'my_rule': field 'severity'"),
        ("id: my_rule\nseverity: low\nbase_score: 0.5\nvalidator: nope\npattern: 'x'\n"
         "lengths: [1]\n", "field 'validator' names unknown validator 'nope'"),
        ("id: my_rule\nseverity: low\nbase_score: 0.5\npattern: '(('\nlengths: [1]\n",
         "rule 'my_rule': field 'pattern' does not compile"),
        ("id: my_rule\nseverity: low\nbase_score: 0.5\nkind: keyword\n",
         "rule 'my_rule': a keyword rule needs field 'keywords'"),
        ("id: my_rule\nseverity: low\nbase_score: 0.5\ncolour: red\nkind: keyword\n"
         "keywords: [x]\n", "unknown field(s) colour"),
        ("severity: low\n", "missing field 'id'"),
        ("id: [unclosed\n", "invalid YAML"),
    ],
)
def test_config_errors_name_the_rule_and_the_field(tmp_path, body, expected):
    with pytest.raises(RuleError) as error:
        load_rule_file(_write(tmp_path, body))
    assert expected in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_user_keyword_rules_become_watchlist_findings(tmp_path):
    path = _write(tmp_path, (
        "rules:\n"
        "  - id: brand_acme\n    kind: keyword\n    category: watchlist\n    severity: high\n"
        "    base_score: 0.9\n    keywords: [acmebank, 'ngân hàng acme', intranet.acme.vn]\n"
    ))
    scanner = Scanner(load_rules([path]), Fingerprinter(b"test-key-0123456789abcdef"))
    text = "Dump from NGAN HANG ACME and intranet.acme.vn, not acmebanking"
    found = [(f.detector, text[f.start:f.end]) for f in scanner.scan(text)]
    assert found == [("brand_acme", "NGAN HANG ACME"), ("brand_acme", "intranet.acme.vn")]


def test_user_rule_with_builtin_id_replaces_it(tmp_path):
    path = _write(tmp_path, "id: email\nkind: email\nseverity: high\nbase_score: 0.1\n"
                            "validator: email\n")
    rules = load_rules([path])
    assert rules.by_id("email").base_score == 0.1
    assert len(rules.rules) == len(RULES.rules)
