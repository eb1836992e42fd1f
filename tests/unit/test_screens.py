"""Screened scanning: skipping bare digit runs early must never change a finding.

The scanner drops most bare digit runs with a prefix test (the rules' ``screen``) and a
bisection over the places where a context-gated rule could have context. These tests hold
that path to the reference path (``screening=False``, every run through Python) and each
screen to its validator.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detectors import Fingerprinter, Scanner, context, engine, load_rules, normalize
from detectors.corpus import app_log, chat, csv_dump, forum_post, json_lines, sql_dump
from detectors.normalize import fold, fold_for_ascii_keywords
from detectors.ruleset import RuleError, parse_rule
from detectors.synthetic import Synth
from detectors.validators import CANONICALISERS, VALIDATORS, Verdict, luhn_ok

RULES = load_rules()
KEY = Fingerprinter(b"screen-test-key-0123456789abcdef")
FAST = Scanner(RULES, KEY)
REFERENCE = Scanner(RULES, KEY, screening=False)
SCREENED_RULES = [rule for rule in RULES.rules if rule.screen]


def findings(scanner: Scanner, text: str) -> list[dict]:
    return [finding.to_dict() for finding in scanner.scan(text)]


def test_the_shipped_rules_screen_the_ungated_identifiers():
    assert {rule.id for rule in SCREENED_RULES} == {"vn_phone", "vn_citizen_id", "payment_card"}


@pytest.mark.parametrize("rule", SCREENED_RULES, ids=lambda rule: rule.id)
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_every_value_a_screened_rule_accepts_passes_its_screen(rule, data):
    length = data.draw(st.sampled_from([n for n in rule.lengths if not n < rule.pad_to]))
    head = data.draw(st.sampled_from(["", "0", "84", "0084", "9704", "4", "5", "3", "6", "2",
                                      "01", "02", "03", "05", "07", "08", "09", "012", "016",
                                      "018", "019", "22", "27", "34", "35", "37", "51", "55",
                                      "62", "65", "6011"]))
    tail = data.draw(st.text("0123456789", min_size=max(0, length - len(head)),
                             max_size=max(0, length - len(head))))
    value = (head + tail)[:length]
    canonical = CANONICALISERS[rule.canonical](value)
    if VALIDATORS[rule.validator](canonical) is Verdict.REJECTED:
        return
    prefixes = [prefix for prefix, counts in rule.screen if length in counts]
    assert value.startswith(tuple(prefixes)), f"{rule.id}: {len(value)}-digit value off-screen"


def test_synthetic_identifiers_pass_their_screens():
    synth = Synth(3)
    makers = {"vn_phone": [synth.mobile, synth.landline, synth.legacy_mobile],
              "vn_citizen_id": [synth.citizen_id], "payment_card": [synth.card]}
    for rule in SCREENED_RULES:
        for make in makers[rule.id]:
            for _ in range(200):
                value = make()
                prefixes = [p for p, counts in rule.screen if len(value) in counts]
                assert value.startswith(tuple(prefixes)), rule.id


@pytest.mark.parametrize("generator", [app_log, chat, csv_dump, forum_post, json_lines, sql_dump],
                         ids=lambda g: g.__name__)
def test_screened_scan_equals_the_reference_on_the_corpus(generator):
    synth = Synth(11)
    for _ in range(15):
        text = generator(synth).text
        assert findings(FAST, text) == findings(REFERENCE, text)


_KEYWORDS = sorted({k for rule in RULES.rules for k in rule.keywords})[:200]
_PIECES = st.one_of(
    st.sampled_from(_KEYWORDS),
    st.sampled_from(["STK", "Số tài khoản", "CMND", "MST", "so-tai-khoan", "cccd", "SĐT"]),
    st.text("0123456789", min_size=6, max_size=20),
    st.builds(lambda s: Synth(s).citizen_id(), st.integers(0, 10_000)),
    st.builds(lambda s: Synth(s).mobile(), st.integers(0, 10_000)),
    st.builds(lambda s: Synth(s).bank_account(), st.integers(0, 10_000)),
    st.builds(lambda s: Synth(s).legacy_id(), st.integers(0, 10_000)),
    st.builds(lambda s: Synth(s).tax_code(), st.integers(0, 10_000)),
    st.builds(lambda s: Synth(s).card(), st.integers(0, 10_000)),
    st.sampled_from([" ", " ", ", ", ",", ";", "\t", "|", "\n", "\n\n", ": ", "=", "-", ".", "(",
                     ")", "+84 ", "x", "đ", "_"]),
    st.sampled_from(["ho_ten,stk,sdt\n", "name;so_cmnd;ma so thue\n", "INSERT INTO kh (`ten`, "
                     "`so_tai_khoan`) VALUES ('A', '", "');\n", "ma_so_thue\tcccd\n",
                     "CREATE TABLE `kh2` (`ten` text, `so_du` decimal(9,2), `stk` text);\n",
                     "INSERT INTO `kh2` VALUES ('B',1.50,'", "'),('C',2,'"]),
    st.text(st.characters(codec="utf-8"), max_size=6),
    st.sampled_from(["cua minh la ", "nhe ban ", "chuyen khoan giup minh vao tai khoan nay ",
                     "x" * 30 + " ", " " * 20]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join))
def test_screened_scan_equals_the_reference_on_any_text(text):
    assert findings(FAST, text) == findings(REFERENCE, text)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join))
def test_screened_scan_with_a_full_text_keyword_index_equals_the_reference(text):
    """Large ASCII texts get a keyword index up front, and with it the area bisection."""
    text = fold(text).encode("ascii", "ignore").decode()
    expected = findings(REFERENCE, text)  # small text: context from per-candidate windows
    eager = engine.EAGER_INDEX_CHARS
    engine.EAGER_INDEX_CHARS = 0
    try:
        assert findings(FAST, text) == expected
    finally:
        engine.EAGER_INDEX_CHARS = eager


@settings(max_examples=150, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join))
def test_screening_holds_at_other_confidence_thresholds(text):
    for threshold in (0.2, 0.7):
        fast = Scanner(RULES, KEY, min_confidence=threshold)
        reference = Scanner(RULES, KEY, min_confidence=threshold, screening=False)
        assert findings(fast, text) == findings(reference, text)


@pytest.mark.parametrize("gap", [0, 1, 20, 40, 45, 47, 48, 49, 60])
def test_keyword_distance_limits_hold_on_the_indexed_path(gap):
    """A bank account needs its keyword within 48 characters before or 24 after it."""
    account = Synth(8).bank_account()
    filler = "a" * 300_000 + "\n"  # large ASCII text: keyword index and area bisection
    before = filler + "stk" + " " * (gap + 1) + account + "\n"
    after = filler + account + " " * (gap // 2 + 1) + "stk\n"
    for text in (before, after):
        assert findings(FAST, text) == findings(REFERENCE, text)
    assert bool(findings(FAST, before)) == (len("stk") + gap + 1 <= 48)  # window reach


@pytest.mark.parametrize("lead", ["", "'x',", "'Nguyen Van A', 'ghi chu', "])
def test_every_row_of_an_insert_is_a_gated_area_on_the_indexed_path(lead):
    """Values right after VALUES, out of the column keyword's reach, still get its column.

    In large ASCII texts, bare runs that fail every screen are only looked at inside the
    gated areas; an INSERT naming a gated column is one from its rows to its end.
    """
    synth = Synth(21)
    names = "`ghi`, `chu`, " if lead.count(",") == 2 else "`ghi`, " if lead else ""
    accounts = [synth.bank_account() for _ in range(4)]
    rows = ",".join(f"({lead}'{account}')" for account in accounts)
    filler = "2026-01-01 INFO request ok user=alice path=/a\n" * 7000
    sql = f"INSERT INTO `t` ({names}`so_tai_khoan`) VALUES {rows};\n"
    text = filler + sql + filler
    assert len(text) >= engine.EAGER_INDEX_CHARS and text.isascii()
    found = findings(FAST, text)
    assert found == findings(REFERENCE, text)
    assert [f["detector"] for f in found] == ["vn_bank_account"] * len(accounts)


def test_a_carried_table_header_keeps_gated_columns_in_the_next_chunk():
    synth = Synth(5)
    first = f"ho_ten,stk\nB,{synth.bank_account()}\n"
    rows = "".join(f"A,{synth.bank_account()}\n" for _ in range(5))
    for scanner in (FAST, REFERENCE):
        columns = scanner.new_columns()
        assert len(scanner.scan(first, columns=columns)) == 1
        found = scanner.scan(rows, columns=columns, carry_header=True)
        assert [f.detector for f in found] == ["vn_bank_account"] * 5


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=80))
def test_fast_fold_agrees_with_fold_wherever_an_ascii_keyword_can_see(text):
    exact, fast = fold(text), fold_for_ascii_keywords(text)
    assert len(fast) == len(exact)
    for mine, theirs in zip(fast, exact, strict=True):
        if theirs.isascii():
            assert mine == theirs
        else:
            assert mine == theirs or (mine in ("\xff", "\x00")
                                      and mine.isalnum() == theirs.isalnum())


@pytest.mark.parametrize("screen", [{"0": [99]}, {"x1": [10]}, {0: [10]}, ["0"], {"0": []},
                                    {"0123456789": [10]}])
def test_a_bad_screen_names_the_rule_and_the_field(screen):
    rule = {"id": "my_numbers", "severity": "low", "base_score": 0.5, "pattern": r"\d{10}",
            "lengths": [10], "screen": screen}
    with pytest.raises(RuleError, match=r"rule 'my_numbers'.*field 'screen'"):
        parse_rule(rule, "my.yaml")


# -- the screens and token seeds applied in C -----------------------------------------------

_RUN_TEXT = st.lists(st.one_of(
    st.text("0123456789", min_size=1, max_size=20),
    st.sampled_from([" ", ".", "-", "(", ")", "+", "+84 ", "(028) ", "0084", "9704", "=", ":",
                     "/", "@", "_", "x", "A", "Đ", "\n", "2024-01-02", "10.0.0.1", "  "]),
), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=_RUN_TEXT, screens=st.dictionaries(
    st.integers(1, 24), st.lists(st.text("0123456789", max_size=5), max_size=4).map(tuple),
    max_size=6))
def test_the_screened_run_pattern_keeps_exactly_the_runs_python_must_see(text, screens):
    """Separated runs, and bare runs passing a screen; the bare runs failing every screen go."""
    unglued = re.compile(engine.NUMBER_RUN.pattern.replace(engine._RUN_NOT_GLUED, ""))
    for skip_glued, runs in ((True, engine.NUMBER_RUN), (False, unglued)):
        expected = [run.span() for run in runs.finditer(text)
                    if not run.group().isdigit()
                    or run.group().startswith(screens.get(len(run.group()), (".",)))]
        pattern = engine.screened_run_pattern(screens, skip_glued=skip_glued)
        assert [run.span() for run in pattern.finditer(text)] == expected


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.text("0123456789", min_size=1, max_size=15),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=3),
    st.sampled_from(["@", ".", "-", "/", "_", " ", "x", "É", "Ⅻ", "\U0001d400", "\ud800", "\n"]),
), max_size=30).map("".join))
def test_token_seeds_find_every_token_candidate(text):
    expected = [m.span() for m in engine.TOKEN_CANDIDATE.finditer(text)]
    assert [m.span() for m in engine.token_candidates(text)] == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join))
def test_the_prescreened_path_equals_the_reference(text):
    """Screens in C plus a second pass over the gated areas: forced on for every text."""
    text = fold(text).encode("ascii", "ignore").decode()
    expected = findings(REFERENCE, text)
    eager, share = engine.EAGER_INDEX_CHARS, engine.PRESCREEN_MAX_AREA_SHARE
    engine.EAGER_INDEX_CHARS, engine.PRESCREEN_MAX_AREA_SHARE = 0, float("inf")
    try:
        assert findings(FAST, text) == expected
    finally:
        engine.EAGER_INDEX_CHARS, engine.PRESCREEN_MAX_AREA_SHARE = eager, share


def test_the_prescreened_path_is_taken_on_large_logs(monkeypatch):
    """Logs hold mostly bare ids no rule screens in; the C screen must be the path they take."""
    synth = Synth(13)
    text = "".join(app_log(synth, lines=400).text for _ in range(20))
    assert len(text) >= engine.EAGER_INDEX_CHARS and text.isascii()
    taken = []
    monkeypatch.setattr(Scanner, "_screened_numbers",
                        lambda self, *args: taken.append("python screen"))
    Scanner(RULES, KEY).scan(text)
    assert taken == []


@settings(max_examples=400, deadline=None)
@given(text=_RUN_TEXT, cuts=st.lists(st.integers(0, 80), max_size=8), skip=st.integers(0, 4))
@example(text="1 2345678901 x", cuts=[2, 5], skip=0)  # an area starting on a run's tail
@example(text="x 1 2 3 4 5 6 7 8 9 0 x 0912345678", cuts=[4, 30], skip=0)
def test_off_screen_runs_in_areas_are_those_of_a_full_scan(text, cuts, skip):
    """An area may begin inside a longer run; its tail must not pass for a run of its own.

    ``start`` (where a scan switches paths) is a run start of the full scan.
    """
    bounds = sorted({min(cut, len(text)) for cut in cuts})
    areas = list(zip(bounds[::2], bounds[1::2], strict=False))
    screens, lengths = FAST._screens, frozenset(range(8, 25))
    run_starts = [0] + [run.start() for run in engine.NUMBER_RUN.finditer(text)]
    start = run_starts[min(skip, len(run_starts) - 1)]
    expected = [
        (run.start(), run.end(), run.group()) for run in engine.NUMBER_RUN.finditer(text)
        if run.group().isdigit() and len(run.group()) in lengths
        and not run.group().startswith(screens.get(len(run.group()), (".",)))
        and engine._stands_alone(text, run.start(), run.end())
        and run.start() >= start
        and any(low <= run.start() <= high for low, high in areas)]
    assert list(engine.off_screen_runs(text, areas, screens, lengths, start)) == expected


_GLUED_TEXT = st.lists(st.one_of(
    st.text("0123456789", min_size=1, max_size=6),
    st.sampled_from([".", "-", " ", "đ", "d", "k", "VND", "@", "_", "(", ")", "+", "x.", "..",
                     "15.990.000", "0912.345.678", "079.203.012.345", "\n", "/", "²"]),
), max_size=30).map("".join)


@settings(max_examples=500, deadline=None)
@given(_GLUED_TEXT)
@example("giá 15.990.000đ, sđt 0912.345.678x")
def test_runs_glued_to_a_word_are_dropped_only_when_no_candidate_fits_inside(text):
    """NUMBER_RUN skips "15.990.000đ"-shaped runs; the full run regex would have kept them."""
    unglued = re.compile(engine.NUMBER_RUN.pattern.replace(engine._RUN_NOT_GLUED, ""))
    kept = [run.span() for run in engine.NUMBER_RUN.finditer(text)]
    every = [run.span() for run in unglued.finditer(text)]
    assert set(kept) <= set(every)
    for begin, finish in set(every) - set(kept):
        assert not list(engine.NUMBER_CANDIDATE.finditer(text, begin, finish + 2))


_HEADER_FIELDS = st.one_of(
    st.sampled_from(["cccd", "so_cmnd", "sdt", "stk", "so_tai_khoan", "account_no", "Họ tên",
                     "email", "MST", '"cccd"', "`sdt`", "[stk]", " ngay_sinh ", "x" * 48]),
    st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=60),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_HEADER_FIELDS, min_size=1, max_size=8),
       st.lists(st.sampled_from([",", "\t", ";", "|"]), min_size=1, max_size=8))
@example(["cccd", '  "so_tai_khoan_' + "a" * 28 + '"  '], [","])  # a 47-character field
def test_the_header_shape_check_rejects_only_lines_that_are_no_header(fields, delimiters):
    """One C check first (every piece between delimiters <= 48 characters), same verdicts."""
    line = "".join(f + delimiters[i % len(delimiters)] for i, f in enumerate(fields))[:-1]
    _assert_header_prechecks_change_no_verdict(line)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from('{(["\'`_ \t,;|aĐ7²x:') | st.characters(), max_size=30),
       st.sampled_from(["", ",sdt", "\tcccd\tstk", ";so_tai_khoan"]))
def test_the_header_start_check_rejects_only_lines_that_are_no_header(head, rest):
    """A one-character check of the first field's opening ('{', '(' fail), same verdicts."""
    _assert_header_prechecks_change_no_verdict(head + rest)


def _assert_header_prechecks_change_no_verdict(line: str) -> None:
    """The header verdict with the cheap pre-checks equals the verdict without them."""
    columns = FAST.new_columns()
    checked = columns._try_header(line)
    shape, start = context._HEADER_SHAPE, context._HEADER_START
    context._HEADER_SHAPE, context._HEADER_START = re.compile(r"(?s:.*)"), re.compile("")
    try:
        reference = columns._try_header(line)
    finally:
        context._HEADER_SHAPE, context._HEADER_START = shape, start
    assert (checked is None) == (reference is None)
    if checked is not None and reference is not None:
        assert (checked.delimiter, checked.columns) == (reference.delimiter, reference.columns)


def _with_luhn_digit(body: str) -> str:
    """``body`` plus the check digit that makes it pass Luhn."""
    for digit in "0123456789":
        if luhn_ok(body + digit):
            return body + digit
    raise AssertionError("no Luhn digit")  # pragma: no cover: one always exists


@pytest.mark.parametrize("rule", SCREENED_RULES, ids=lambda rule: rule.id)
def test_every_four_digit_start_a_validator_accepts_is_on_screen(rule):
    """Each 4-digit start, each length: a value the validator accepts must pass the screen.

    Exhaustive over the leading digits (where screens look), with a varied tail and, for
    cards, the Luhn digit that makes the tail valid.
    """
    tail = "5820731946" * 2
    validate = VALIDATORS[rule.validator]
    canonical = CANONICALISERS[rule.canonical]
    for length in (n for n in rule.lengths if not n < rule.pad_to):
        prefixes = tuple(p for p, counts in rule.screen if length in counts)
        for start in range(10_000):
            body = f"{start:04d}" + tail[:length - 4]
            for value in (body, _with_luhn_digit(body[:-1])):
                if validate(canonical(value)) is not Verdict.REJECTED:
                    assert value.startswith(prefixes), f"{rule.id}: {value[:4]}… off-screen"


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join))
@example("Liên hệ: 0912345678, 0987654321; stk 0123456789012 nhé")
@example("sđt 0912 345 678\n0987654321 và 0356789012")
def test_switching_to_the_prescreened_path_mid_text_equals_the_reference(text):
    """Any text (Unicode too): the index is built at the first look-up, then the switch."""
    expected = findings(REFERENCE, text)
    saved = (engine.WINDOW_LOOKUPS_BEFORE_INDEX, engine.CHARS_PER_LOOKUP_INDEX_PAYS,
             engine.PRESCREEN_MAX_AREA_SHARE)
    engine.WINDOW_LOOKUPS_BEFORE_INDEX, engine.CHARS_PER_LOOKUP_INDEX_PAYS = 0, 10**9
    engine.PRESCREEN_MAX_AREA_SHARE = float("inf")
    try:
        assert findings(FAST, text) == expected
    finally:
        (engine.WINDOW_LOOKUPS_BEFORE_INDEX, engine.CHARS_PER_LOOKUP_INDEX_PAYS,
         engine.PRESCREEN_MAX_AREA_SHARE) = saved


def test_fast_fold_agrees_with_fold_for_every_code_point():
    """Exhaustive over Unicode (surrogates aside), each between an ASCII and a Vietnamese
    letter: capitals outside ASCII fold in the error handler, without str.lower()."""
    for code_point in range(0x80, 0x30000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        text = f"a{chr(code_point)}Đ"  # one at a time: a private-use one takes the exact path
        exact, fast = fold(text), fold_for_ascii_keywords(text)
        mine, theirs = fast[1], exact[1]
        assert (fast[0], fast[2], len(fast)) == ("a", "d", 3), hex(code_point)
        if theirs.isascii():
            assert mine == theirs, hex(code_point)
        else:
            assert mine == theirs or (mine in ("\xff", "\x00")
                                      and mine.isalnum() == theirs.isalnum()), hex(code_point)



_JOINED = st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=2, max_size=6).flatmap(
    lambda groups: st.lists(st.sampled_from(".-"), min_size=len(groups) - 1,
                            max_size=len(groups) - 1).map(
        lambda joins: groups[0] + "".join(j + g for j, g in zip(joins, groups[1:], strict=True))))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_JOINED, _JOINED.map(lambda run: run + " "), _PIECES,
                          st.sampled_from(["STK: ", "CMND ", "so tai khoan ", "sdt: "])),
                max_size=40).map("".join), st.booleans())
def test_joined_runs_skipped_early_change_no_finding(text, indexed):
    """Digit groups joined by "." or "-" (prices, UUIDs) are dropped by digit count alone."""
    if indexed:
        text = fold(text).encode("ascii", "ignore").decode()
    expected = findings(REFERENCE, text)
    eager = engine.EAGER_INDEX_CHARS
    engine.EAGER_INDEX_CHARS = 0 if indexed else eager
    try:
        assert findings(FAST, text) == expected
    finally:
        engine.EAGER_INDEX_CHARS = eager


def _grouped(value: str, sizes: tuple[int, ...], joiner: str) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(value[at:at + size])
        at += size
    return joiner.join(parts)


def _napas_19(seed: int) -> str:
    synth = Synth(seed)
    return next(card for card in iter(lambda: synth.card(napas=True), None) if len(card) == 19)


@pytest.mark.parametrize(("detector", "written"), [
    ("vn_phone", _grouped(Synth(1).mobile(), (4, 3, 3), "-")),
    ("vn_phone", _grouped(Synth(2).mobile(), (4, 3, 3), ".")),
    ("vn_citizen_id", _grouped(Synth(3).citizen_id(), (4, 4, 4), ".")),
    ("vn_tax_code", "MST " + Synth(4).tax_code(branch=True)),
    ("payment_card", _grouped(_napas_19(5), (4, 4, 4, 4, 3), "-")),
    ("vn_legacy_id", "CMND " + _grouped(Synth(6).legacy_id(), (3, 3, 3), ".")),
    ("vn_bank_account", "STK: " + _grouped("190366558880", (4, 4, 4), "-")),
], ids=lambda value: value if value.startswith(("vn_", "payment")) else "")
@pytest.mark.parametrize("indexed", [False, True], ids=["windows", "indexed"])
def test_joined_written_forms_are_still_found(detector, written, indexed):
    """The digit count of a joined run leaves its joiners out: every joined form stays found."""
    text = f"ghi chu: {written} nhe\n"
    eager = engine.EAGER_INDEX_CHARS
    engine.EAGER_INDEX_CHARS = 0 if indexed else eager
    try:
        found = findings(FAST, text)
    finally:
        engine.EAGER_INDEX_CHARS = eager
    assert [f["detector"] for f in found] == [detector]
    assert found == findings(REFERENCE, text)


class _Forced(engine.AsciiRunFinder):
    def __init__(self, pattern, preceded: bool) -> None:
        super().__init__(pattern)
        self.forced = preceded

    def prefers_preceded(self, text: str, start: int) -> bool:
        return self.forced


_ASCII_RUN_TEXT = st.text(st.sampled_from("0123456789 .-()+@/_=:,x\n"), max_size=80) | st.lists(
    st.sampled_from(["0912345678", "079203012345", "+84 912 345 678", "(028) 3822 1234", "x",
                     " ", "=", ".", "-", "(", "+", "@", "_", "/", "2026-11-05T18:10:00Z",
                     "10.3.4.5", "4111111111111111", "\n", "19", "0"]), max_size=30).map("".join)


@pytest.mark.parametrize("preceded", [True, False], ids=["preceded", "plain"])
@pytest.mark.parametrize("pattern", [FAST._screened_ascii_runs.pattern, engine.NUMBER_RUN],
                         ids=["screened", "number_run"])
@settings(max_examples=300, deadline=None)
@given(text=_ASCII_RUN_TEXT)
def test_ascii_run_finder_finds_what_the_pattern_finds(pattern, preceded, text):
    """From the text's start and from any run start (where a scan may resume)."""
    finder = _Forced(pattern, preceded)
    expected = [m.span() for m in pattern.finditer(text)]
    for start in [0] + [begin for begin, _ in expected]:
        assert [m.span(1) for m in finder.matches(text, start)] == [
            span for span in expected if span[0] >= start]


def test_ascii_run_finder_looks_for_the_preceding_character_in_logs_only():
    finder = FAST._screened_ascii_runs
    log = "2026-11-05T18:10:00Z INFO api 10.32.130.31 user_id=776317066 req=4743915000806368\n"
    prose = "The order ships on Monday; call the shop if it is late, or write to us.\n"
    assert finder.prefers_preceded(log * 100, 0)
    assert not finder.prefers_preceded(prose * 100, 0)


def test_a_run_start_asked_past_the_end_of_the_text_returns():
    """An area reaching past the text must not spin the search for a run's start."""
    assert engine._run_start("ab 123", 50, 0) == 2
    assert engine._run_start("12345", 9, 0) == 0
    assert engine._run_start("", 3, 0) == 0


_CAPITALS = "ÁÀẢÃẠĂẮẰẲẴẶÂẤẦẨẪẬĐÉÈẺẼẸÊẾỀỂỄỆÍÌỈĨỊÓÒỎÕỌÔỐỒỔỖỘƠỚỜỞỠỢÚÙỦŨỤƯỨỪỬỮỰÝỲỶỸỴ"


def _fold_with_stand_ins_before_lower(text, limit, monkeypatch):
    monkeypatch.setattr(normalize, "STAND_INS_BEFORE_LOWER", limit)
    return fold_for_ascii_keywords(text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.one_of(st.sampled_from(_CAPITALS + "İΣσÆǅẞﬀK😀中 .,"),
                         st.characters(codec="utf-8")), max_size=120))
def test_folding_the_lower_cased_text_gives_what_the_handler_gives(text):
    """Past many capitals the fold restarts on str.lower(): the output must not change."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        handler = _fold_with_stand_ins_before_lower(text, 10**9, monkeypatch)
        restarted = _fold_with_stand_ins_before_lower(text, 0, monkeypatch)
    assert restarted == handler


def test_every_code_point_folds_the_same_after_a_restart(monkeypatch):
    """Exhaustive, as above: each code point, with and without enough capitals before it."""
    lead = "ĐÁ ỐẾ a"  # four handler calls: past a limit of 2, the fold restarts on lower()
    for code_point in range(0x80, 0x30000):
        if 0xD800 <= code_point <= 0xDFFF or 0xE000 <= code_point <= 0xF8FF:
            continue  # surrogates; private use takes the exact path either way
        text = f"{lead}{chr(code_point)}Đ"
        handler = _fold_with_stand_ins_before_lower(text, 10**9, monkeypatch)
        assert _fold_with_stand_ins_before_lower(text, 2, monkeypatch) == handler, (
            hex(code_point))


def test_all_capitals_fold_like_lower_case():
    text = ("BÁN DATA KHÁCH HÀNG SỐ TÀI KHOẢN ĐẦY ĐỦ " * 200).strip()
    assert fold_for_ascii_keywords(text) == fold_for_ascii_keywords(text.lower())
    assert fold_for_ascii_keywords(text).startswith("ban data khach hang so tai khoan day du")
