"""Detector rules as data: YAML files validated when they load.

One file per rule (``detectors/rules/*.yaml``); users add their own with ``--rules FILE``
(one rule, or ``rules: [...]`` for several). A bad file fails at load time with the rule id
and the field in the message, never later in the middle of a stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import regex
import yaml

from detectors.normalize import fold
from detectors.validators import CANONICALISERS, VALIDATORS

KINDS = ("number", "token", "email", "keyword")
SEVERITIES = ("low", "medium", "high", "critical")
CATEGORIES = ("basic", "sensitive", "watchlist")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


class RuleError(ValueError):
    """A rule file is invalid; the message names the source, the rule and the field."""


@dataclass(frozen=True)
class Rule:
    """One detector: how its values are written, validated, scored and explained."""

    id: str
    name: str
    kind: str
    severity: str
    category: str
    base_score: float
    context_score: float
    requires_context: bool = False
    validator: str = "none"
    canonical: str = "digits"
    lengths: tuple[int, ...] = ()
    patterns: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    pad_to: int = 0
    priority: int = 50
    # Bare digit runs this rule can accept without context, as (leading digits, digit counts);
    # empty means any run of its lengths. Lets the scanner drop other runs inside the regex
    # engine (see Scanner); tests/unit/test_screens.py checks each against its validator.
    screen: tuple[tuple[str, tuple[int, ...]], ...] = ()
    examples_match: tuple[str, ...] = ()
    examples_no_match: tuple[str, ...] = ()
    source: str = ""
    compiled: tuple[Any, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class RuleSet:
    """All rules in force; the scanner compiles its automaton from this once."""

    rules: tuple[Rule, ...]

    def by_id(self, rule_id: str) -> Rule:
        """Look up a rule; KeyError names the missing id."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @property
    def ids(self) -> tuple[str, ...]:
        """Rule ids in load order (built-ins first)."""
        return tuple(rule.id for rule in self.rules)

    def version(self) -> str:
        """Short stable digest of the rules, recorded on alerts so results can be traced."""
        import hashlib

        digest = hashlib.sha256()
        for rule in self.rules:
            digest.update(repr((rule.id, rule.patterns, rule.keywords, rule.base_score,
                                rule.context_score, rule.lengths)).encode())
        return digest.hexdigest()[:12]


def _need(data: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise RuleError(f"{where}: missing field '{key}'")
    value = data[key]
    if not isinstance(value, typ):
        name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise RuleError(f"{where}: field '{key}' must be {name}, got {type(value).__name__}")
    return value


def _score(data: Mapping[str, Any], key: str, default: float | None, where: str) -> float:
    if key not in data and default is not None:
        return default
    value = _need(data, key, (int, float), where)
    if not 0.0 <= float(value) <= 1.0:
        raise RuleError(f"{where}: field '{key}' must be between 0 and 1, got {value}")
    return float(value)


def _str_list(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleError(f"{where}: field '{key}' must be a list of non-empty strings")
    return tuple(value)


def _screen(data: Mapping[str, Any], lengths: list[int], where: str
            ) -> tuple[tuple[str, tuple[int, ...]], ...]:
    value = data.get("screen", {}) or {}
    problem = (f"{where}: field 'screen' must map leading digits (a quoted string such as "
               "\"0\") to a list of digit counts from 'lengths'")
    if not isinstance(value, Mapping):
        raise RuleError(problem)
    screen = []
    for prefix, counts in value.items():
        if not isinstance(prefix, str) or not prefix.isdigit() or not prefix.isascii():
            raise RuleError(problem)
        if not isinstance(counts, list) or not counts or not all(
                isinstance(n, int) and n in lengths and n > len(prefix) for n in counts):
            raise RuleError(problem)
        screen.append((prefix, tuple(sorted(set(counts)))))
    return tuple(screen)


def parse_rule(data: Any, source: str) -> Rule:
    """Validate one rule mapping and build a Rule; errors name the rule and the field."""
    if not isinstance(data, Mapping):
        raise RuleError(f"{source}: a rule must be a mapping, got {type(data).__name__}")
    raw_id = data.get("id")
    where = f"{source}: rule '{raw_id}'" if raw_id else f"{source}: rule (no id)"
    rule_id = _need(data, "id", str, where)
    if not _ID_RE.match(rule_id):
        raise RuleError(f"{where}: field 'id' must match {_ID_RE.pattern}")
    known = {"id", "name", "kind", "severity", "category", "base_score", "context_score",
             "requires_context", "validator", "canonical", "lengths", "pattern", "patterns",
             "keywords", "pad_to", "priority", "examples", "description", "screen"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RuleError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kind = data.get("kind", "number")
    if kind not in KINDS:
        raise RuleError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}")
    severity = _need(data, "severity", str, where)
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: field 'severity' must be one of {', '.join(SEVERITIES)}")
    category = data.get("category", "basic")
    if category not in CATEGORIES:
        raise RuleError(f"{where}: field 'category' must be one of {', '.join(CATEGORIES)}")
    validator = data.get("validator", "none")
    if validator not in VALIDATORS:
        raise RuleError(f"{where}: field 'validator' names unknown validator '{validator}'"
                        f" (known: {', '.join(sorted(VALIDATORS))})")
    default_canonical = {"number": "digits", "token": "upper", "email": "lower",
                         "keyword": "lower"}[kind]
    canonical = data.get("canonical", default_canonical)
    if canonical not in CANONICALISERS:
        raise RuleError(f"{where}: field 'canonical' must be one of {', '.join(CANONICALISERS)}")
    patterns = _str_list(data, "patterns", where) + _str_list(data, "pattern", where)
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(regex.compile(pattern))
        except regex.error as exc:
            raise RuleError(f"{where}: field 'pattern' does not compile: {exc}") from None
    keywords = _str_list(data, "keywords", where)
    if kind == "keyword" and not keywords:
        raise RuleError(f"{where}: a keyword rule needs field 'keywords'")
    if kind in ("number", "token") and not patterns:
        raise RuleError(f"{where}: a {kind} rule needs field 'pattern'")
    lengths = data.get("lengths", [])
    if not isinstance(lengths, list) or not all(isinstance(n, int) and 1 <= n <= 40
                                                for n in lengths):
        raise RuleError(f"{where}: field 'lengths' must be a list of integers 1..40")
    if kind in ("number", "token") and not lengths:
        raise RuleError(f"{where}: a {kind} rule needs field 'lengths' (digit/character counts)")
    requires_context = data.get("requires_context", False)
    if not isinstance(requires_context, bool):
        raise RuleError(f"{where}: field 'requires_context' must be true or false")
    if requires_context and not keywords:
        raise RuleError(f"{where}: requires_context is true but field 'keywords' is empty")
    examples = data.get("examples", {}) or {}
    if not isinstance(examples, Mapping):
        raise RuleError(f"{where}: field 'examples' must be a mapping with match/no_match")
    base_score = _score(data, "base_score", None, where)
    context_score = _score(data, "context_score", base_score, where)
    pad_to = data.get("pad_to", 0)
    priority = data.get("priority", 50)
    if not isinstance(pad_to, int) or not isinstance(priority, int):
        raise RuleError(f"{where}: fields 'pad_to' and 'priority' must be integers")
    screen = _screen(data, lengths, where)
    return Rule(
        id=rule_id,
        name=str(data.get("name", rule_id)),
        kind=kind,
        severity=severity,
        category=category,
        base_score=base_score,
        context_score=context_score,
        requires_context=requires_context,
        validator=validator,
        canonical=canonical,
        lengths=tuple(sorted(set(lengths))),
        patterns=patterns,
        keywords=tuple(dict.fromkeys(fold(k).strip() for k in keywords)),
        pad_to=pad_to,
        priority=priority,
        screen=screen,
        examples_match=_str_list(examples, "match", where),
        examples_no_match=_str_list(examples, "no_match", where),
        source=source,
        compiled=tuple(compiled),
    )


def _rules_in_document(document: Any, source: str) -> list[Rule]:
    if isinstance(document, Mapping) and "rules" in document:
        items = document["rules"]
        if not isinstance(items, list):
            raise RuleError(f"{source}: field 'rules' must be a list")
        return [parse_rule(item, source) for item in items]
    return [parse_rule(document, source)]


def load_rule_file(path: str | Path) -> list[Rule]:
    """Load a user rule file; YAML syntax errors are reported with the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{path}: cannot read rules file: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: invalid YAML: {exc}") from None
    return _rules_in_document(document, str(path))


def builtin_rules() -> list[Rule]:
    """The shipped rules, one YAML file each, in file-name order for stable output."""
    folder = resources.files("detectors") / "rules"
    rules: list[Rule] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith((".yaml", ".yml")):
            document = yaml.safe_load(entry.read_text(encoding="utf-8"))
            rules.extend(_rules_in_document(document, f"rules/{entry.name}"))
    return rules


def load_rules(extra_files: Iterable[str | Path] = ()) -> RuleSet:
    """Built-in rules plus user files; a user rule with a built-in id replaces it."""
    rules = {rule.id: rule for rule in builtin_rules()}
    for path in extra_files:
        for rule in load_rule_file(path):
            rules[rule.id] = rule
    return RuleSet(tuple(rules.values()))
