"""Hostile input against streams.decode: always a document or an actionable dead letter.

The envelope decoder is the first code that touches bytes from outside. Whatever arrives on a
feed or alerts topic (random bytes, broken UTF-8, NUL bytes, JSON nested thousands of levels
deep or cut in the middle, numbers with more digits than Python will convert, multi-megabyte
single lines, zero-width characters between digits, mixed scripts), the result must be a
``DecodedDocument`` or a ``DeadLetter`` whose reason is one of the documented decode reasons
and whose detail tells a person what to fix without quoting the message. An exception here
would reach the worker's catch-all and be dead-lettered as ``processing_error`` ("a bug"),
which is not an answer a producer can act on.

Complements tests/unit/test_decode.py (one example per rule) and
tests/unit/test_hostile_input.py (the scanner). Every identifier below comes from
``detectors.synthetic.Synth``.
"""

from __future__ import annotations

import base64
import json
import string
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import Fingerprinter, Scanner, load_rules
from detectors.synthetic import Synth
from streams.decode import (
    MAX_RAW_IN_DEADLETTER,
    DeadLetter,
    DecodedDocument,
    MessageInfo,
    deadletter_record,
    decode_alert_message,
    decode_feed_message,
)
from streams.envelope import FEED_KINDS
from streams.metrics import DEADLETTER_REASONS

LIMIT = 256 * 1024
FEEDS = st.sampled_from(FEED_KINDS)
_SYNTH = Synth(seed=20240501)
PHONE = _SYNTH.mobile()
CCCD = _SYNTH.citizen_id()
# Strings that must never appear in a dead-letter detail (they are the "leak").
MARKERS = (PHONE, CCCD, PHONE[1:], CCCD[2:])
SCANNER = Scanner(load_rules(), Fingerprinter(b"fuzz-key-0123456789abcdef"), min_confidence=0.5)

# Reasons the decoder may give; the rest of DEADLETTER_REASONS belong to later stages.
DECODE_REASONS = {"empty", "invalid_json", "invalid_envelope", "not_utf8", "binary", "oversized"}
# What a person reading the dead letter needs to see to act on each reason.
ACTIONABLE_HINTS = {
    "empty": ("envelope", "producer"),
    "invalid_json": ("JSON",),
    "invalid_envelope": ("field", "envelope", "schema"),
    "not_utf8": ("UTF-8",),
    "binary": ("binary",),
    "oversized": ("RORIWATCH_MAX_CONTENT_BYTES", "limit"),
}
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc3", b"\xe0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                b"\xc0\xaf", b"\x80", b"\xbf\xbf"]


def info(feed: str, key: bytes | None = None) -> MessageInfo:
    return MessageInfo(f"fuzz.feed.{feed}", 1, 7, key=key, timestamp_ms=1714532400000)


def envelope(**overrides: object) -> dict:
    data: dict = {
        "feed": "paste", "site": "fuzz-site", "item_id": "fuzz-1", "url": None, "author": None,
        "title": "t", "published_at": None, "fetched_at": "2024-05-01T10:00:00Z",
        "content": f"SĐT {PHONE}, CCCD {CCCD}",
    }
    data.update(overrides)
    return data


def encode(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def decode(value: bytes | None, feed: str, limit: int = LIMIT, key: bytes | None = None):
    """The call under test, with the invariants every result must satisfy."""
    result = decode_feed_message(value, info(feed, key), feed_kind=feed, max_content_bytes=limit)
    check(result, value, feed, limit)
    return result


def check(result: object, value: bytes | None, feed: str, limit: int) -> None:
    assert isinstance(result, DecodedDocument | DeadLetter), type(result)
    if isinstance(result, DeadLetter):
        assert result.reason in DECODE_REASONS, result.reason
        assert result.reason in DEADLETTER_REASONS
        assert isinstance(result.detail, str) and 20 <= len(result.detail) <= 1000
        assert any(h in result.detail for h in ACTIONABLE_HINTS[result.reason]), result.detail
        for marker in MARKERS:
            assert marker not in result.detail
        # The dead-letter record is what goes to Kafka: it must serialise and carry no content.
        record = deadletter_record(result, info(feed), value, stage="decode", key_text=None,
                                   keep_raw=False)
        dumped = json.dumps(record)
        assert record["raw_base64"] is None
        assert record["size_bytes"] == len(value or b"")
        for marker in MARKERS:
            assert marker not in dumped
        return
    assert isinstance(result.text, str)
    assert result.envelope.feed in FEED_KINDS
    assert 0 <= result.content_bytes <= limit
    assert len(result.content_sha256) == 64
    assert all(isinstance(w, str) for w in result.warnings)
    if feed != "log":  # only the log topic turns non-envelopes into synthetic envelopes
        assert not result.envelope.meta.get("plain_text")


# --- random and broken bytes ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), FEEDS)
def test_random_bytes(value: bytes, feed: str) -> None:
    decode(value, feed)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40).map(lambda t: t.encode("utf-8")),
                          st.sampled_from(INVALID_UTF8)), max_size=40), FEEDS)
def test_invalid_utf8_mixed_into_text(parts: list[bytes], feed: str) -> None:
    value = b"".join(parts) + f" sdt {PHONE}".encode()
    result = decode(value, feed)
    if feed == "log" and isinstance(result, DecodedDocument):
        assert PHONE in result.text  # a few bad bytes must not hide the identifier


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(0, 400), FEEDS)
def test_nul_bytes_anywhere(noise: bytes, position: int, feed: str) -> None:
    text = f"khach hang {PHONE} ".encode() + noise
    position = min(position, len(text))
    decode(text[:position] + b"\x00" + text[position:], feed)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=600), FEEDS)
def test_base64_content_with_hostile_payload(payload: bytes, feed: str) -> None:
    content = base64.b64encode(payload).decode("ascii")
    decode(encode(envelope(feed=feed, content=content, content_encoding="base64")), feed)


# --- JSON: wrong shapes, truncation, nesting, huge numbers ---------------------------------

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
                | st.text(max_size=30))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=10), children, max_size=4),
                           max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["feed", "site", "item_id", "url", "author", "title",
                                        "published_at", "fetched_at", "content",
                                        "content_encoding", "meta", "@timestamp"]),
                       JSON_VALUES, max_size=8),
       st.booleans(), FEEDS)
def test_envelope_fields_of_any_type(overrides: dict, drop_some: bool, feed: str) -> None:
    data = envelope(feed=feed)
    data.update(overrides)
    if drop_some:
        data = {k: v for k, v in data.items() if k not in overrides}
    # allow_nan: NaN/Infinity are not JSON but Python writes them; producers in the wild do too.
    decode(json.dumps(data).encode(), feed)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES, FEEDS)
def test_any_json_document(data: object, feed: str) -> None:
    decode(json.dumps(data).encode(), feed)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), FEEDS)
def test_truncated_envelopes(cut: int, feed: str) -> None:
    whole = encode(envelope(feed=feed, title="Bán data " * 20, meta={"a": [1, 2, {"b": "c"}]}))
    cut = min(cut, len(whole))
    result = decode(whole[:cut], feed)
    if 0 < cut < len(whole) and feed != "log":
        assert isinstance(result, DeadLetter)
    if 0 < cut < len(whole) and feed == "log":
        # A cut JSON log line is still a log line: scanned as text, never dropped.
        assert isinstance(result, DecodedDocument)


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5000), st.sampled_from(["list", "dict"]), FEEDS,
       st.sampled_from(["top", "meta", "title", "content"]))
def test_deeply_nested_json(depth: int, kind: str, feed: str, where: str) -> None:
    inner = nested(depth, kind)
    if where == "top":
        value = inner
    else:
        text = json.dumps(envelope(feed=feed, meta={}))
        value = text.replace('"meta": {}', f'"meta": {{"x": {inner}}}') if where == "meta" \
            else text.replace('"title": "t"', f'"title": {inner}') if where == "title" \
            else text.replace(f'"content": {json.dumps(envelope()["content"])}',
                              f'"content": {inner}')
    decode(value.encode(), feed)


@pytest.mark.parametrize("depth", [450, 600, 900])
@pytest.mark.parametrize("feed", ["paste", "log"])
def test_envelope_with_deeply_nested_meta_is_a_dead_letter_not_an_exception(
        depth: int, feed: str) -> None:
    # Regression (found by this file): json.loads accepts ~990 levels, but FeedEnvelope's
    # __post_init__ calls dataclasses.asdict(), which recurses twice per level and raises
    # RecursionError from about 450 levels down. In the worker that became a
    # "processing_error ... a bug" dead letter instead of an invalid_envelope one. Since meta
    # has a fixed depth limit (MAX_META_DEPTH), every one of these depths is refused.
    value = encode(envelope(feed=feed)).replace(b'"title": "t"',
                                                b'"title": "t", "meta": ' +
                                                nested(depth, "dict").encode())
    result = decode(value, feed)
    if feed == "log" and isinstance(result, DecodedDocument):
        # Only if the JSON parser itself gave up: then it is a log line, scanned as text.
        assert result.envelope.meta.get("plain_text")
    else:
        assert isinstance(result, DeadLetter) and result.reason == "invalid_envelope"


@pytest.mark.parametrize("digits", [4301, 20_000, 200_000])
@pytest.mark.parametrize("feed", FEED_KINDS)
def test_numbers_with_more_digits_than_python_converts(digits: int, feed: str) -> None:
    # Regression (found by this file): Python >= 3.11 refuses to convert integers of more
    # than 4300 digits and json.loads raises a plain ValueError (not JSONDecodeError), which
    # escaped decode_feed_message. On the log topic that meant a JSON log line with a long
    # number was not scanned at all.
    number = "9" * digits
    value = encode(envelope(feed=feed)).replace(b'"url": null', b'"url": null, "n": ' +
                                                number.encode())
    result = decode(value, feed)
    if feed == "log":
        assert isinstance(result, DecodedDocument)
        assert PHONE in result.text
    else:
        assert isinstance(result, DeadLetter) and result.reason == "invalid_json"


@pytest.mark.parametrize("digits", [4301, 100_000])
def test_alert_message_with_a_huge_number_is_invalid_alert(digits: int) -> None:
    value = b'{"alert_id": "a", "n": ' + b"1" * digits + b"}"
    result = decode_alert_message(value)
    assert isinstance(result, DeadLetter) and result.reason == "invalid_alert"


def test_huge_digit_runs_inside_strings_are_just_text() -> None:
    run = "0123456789" * 100_000  # 1 MB of digits, a classic regex worst case
    for feed in FEED_KINDS:
        result = decode(encode(envelope(feed=feed, content=run)), feed, limit=2 * 1024 * 1024)
        assert isinstance(result, DecodedDocument)
        started = time.perf_counter()
        SCANNER.scan(result.text)
        assert time.perf_counter() - started < 30


# --- text tricks: zero-width characters, mixed scripts -------------------------------------

MIXED = st.text(alphabet=st.sampled_from(list(string.digits + " .-+()") + ZERO_WIDTH +
                                         list("ĐđặễưởỹАБВαβγ中文한국어٠١٢٣۰۱۲０１２３𝟎𝟏")),
                max_size=200)


@settings(max_examples=200, deadline=None)
@given(MIXED, FEEDS)
def test_zero_width_and_mixed_scripts_round_trip_and_scan(noise: str, feed: str) -> None:
    spaced = "".join(d + ZERO_WIDTH[i % len(ZERO_WIDTH)] for i, d in enumerate(PHONE))
    content = f"{noise} SĐT {spaced} {noise}"
    result = decode(encode(envelope(feed=feed, content=content)), feed)
    assert isinstance(result, DecodedDocument)
    assert result.text == content  # decoding never rewrites the text it hands to the scanner
    for finding in SCANNER.scan(result.text):
        assert 0 <= finding.start < finding.end <= len(result.text)


@settings(max_examples=100, deadline=None)
@given(MIXED)
def test_plain_log_lines_of_mixed_scripts(noise: str) -> None:
    result = decode(f"{noise} phone={PHONE}".encode(), "log")
    assert isinstance(result, DecodedDocument)


# --- size ----------------------------------------------------------------------------------


def test_fifty_megabyte_single_line() -> None:
    line = (f"user={PHONE} " + "x" * 90 + " ").encode() * (50 * 1024 * 1024 // 102)
    assert len(line) >= 49 * 1024 * 1024 and b"\n" not in line
    started = time.perf_counter()
    # Over the default 20 MiB limit: refused before parsing, on every topic.
    for feed in FEED_KINDS:
        result = decode(line, feed, limit=20 * 1024 * 1024)
        assert isinstance(result, DeadLetter) and result.reason == "oversized"
    # Under a limit that admits it, the log topic takes it as one plain-text document.
    result = decode(line, "log", limit=64 * 1024 * 1024)
    assert isinstance(result, DecodedDocument) and result.content_bytes == len(line)
    # The same line as an envelope's content.
    wrapped = encode(envelope(feed="paste", content=line.decode()))
    result = decode(wrapped, "paste", limit=64 * 1024 * 1024)
    assert isinstance(result, DecodedDocument)
    assert time.perf_counter() - started < 60


def test_raw_kept_in_dead_letters_only_when_it_fits() -> None:
    problem = DeadLetter("invalid_json", "not valid JSON at line 1 column 1")
    small = b"not json " + PHONE.encode()
    kept = deadletter_record(problem, info("paste"), small, stage="decode", key_text=None,
                             keep_raw=True)
    assert base64.b64decode(kept["raw_base64"]) == small
    big = b"x" * (MAX_RAW_IN_DEADLETTER + 1)
    dropped = deadletter_record(problem, info("paste"), big, stage="decode", key_text=None,
                                keep_raw=True)
    assert dropped["raw_base64"] is None and "not kept" in dropped["detail"]


# --- the alerts topic ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=1024), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                 st.integers(0, 3000).map(lambda d: nested(d, "dict").encode())))
def test_alert_decoder_is_total(value: bytes) -> None:
    result = decode_alert_message(value)
    if isinstance(result, DeadLetter):
        assert result.reason == "invalid_alert" and result.detail
    else:
        assert isinstance(result, dict) and isinstance(result["alert_id"], str)
