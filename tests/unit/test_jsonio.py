"""streams.jsonio: orjson speed with the standard library's answers."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import jsonio
from streams.app import AlertRecord
from streams.decode import MessageInfo, decode_alert_message, decode_feed_message

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans())
def test_loads_agrees_with_the_standard_library(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(text.encode("utf-8")) == json.loads(text)


# Pieces that build every context of a digit run LONG_INTEGER distinguishes.
_PIECES = st.sampled_from(["0", "7", "123456789", "1234567890123456789", "-", " ", "\t", "\n",
                           ":", "[", ",", "a", "f", '"', "{", "\u00e9"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, max_size=40))
def test_the_long_integer_check_answers_exactly_as_its_regex(pieces: list[str]) -> None:
    raw = "".join(pieces).encode("utf-8")
    assert jsonio.may_hold_long_integer(raw) == (jsonio.LONG_INTEGER.search(raw) is not None)


def test_hex_fingerprints_in_an_alert_do_not_take_the_slow_parser() -> None:
    fingerprint = "0123456789012345678901234567890123456789abcdef0123456789abcdef01"
    alert = json.dumps({"fingerprints": [fingerprint], "offsets": [[5, 17]], "n": 12})
    assert not jsonio.may_hold_long_integer(alert.encode())
    assert jsonio.may_hold_long_integer(b'{"n": -12345678901234567890}')
    # A run of exactly 19 that does not count, then one right after it that does.
    assert jsonio.may_hold_long_integer(b'"a1234567890123456789:1234567890123456789')


@pytest.mark.parametrize("text", ['{"a": ', "[1, 2", '{"a" 1}', "", "nul", '"\\x"'])
def test_invalid_json_raises_what_the_standard_library_raises(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonio.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert (ours.value.msg, ours.value.lineno, ours.value.colno) == (
        theirs.value.msg, theirs.value.lineno, theirs.value.colno)


def test_what_only_the_standard_library_accepts_still_parses() -> None:
    assert jsonio.loads("123456789012345678901234567890") == 123456789012345678901234567890
    assert math.isnan(jsonio.loads('{"x": NaN}')["x"])
    with pytest.raises(ValueError):  # over Python's 4,300-digit limit, as before
        jsonio.loads("9" * 5000)


def test_lone_surrogates_become_replacement_characters_in_keys_and_values() -> None:
    parsed = jsonio.loads('{"t\\ud800": ["a\\udc00b", {"k": "\\ud83d"}], "ok": "\\ud83d\\ude00"}')
    assert parsed == {"t\ufffd": ["a\ufffdb", {"k": "\ufffd"}], "ok": "\U0001f600"}
    assert jsonio.loads('"\\udfff"') == "\ufffd"


def test_an_envelope_with_a_lone_surrogate_in_its_title_still_gives_a_writable_alert() -> None:
    envelope = {"feed": "paste", "site": "pastebin", "item_id": "s1", "url": None,
                "author": None, "title": "dump \\ud800", "published_at": None,
                "fetched_at": "2024-05-01T10:00:00Z", "content": "CCCD 079203012345"}
    raw = json.dumps(envelope).replace("\\\\ud800", "\\ud800").encode()
    decoded = decode_feed_message(raw, MessageInfo("t", 0, 0, None), feed_kind="paste",
                                  max_content_bytes=1 << 20)
    assert decoded.envelope.title == "dump \ufffd"
    alert = {name: None for name in AlertRecord._options.fields}
    alert.update(title=decoded.envelope.title, alert_id="a", feed="paste", site="s",
                 item_id="i", severity="low", counts={}, content_sha256="0" * 64)
    assert decode_alert_message(AlertRecord(**alert).dumps())["title"] == "dump \ufffd"


def test_the_bulk_body_is_the_same_ndjson_the_client_wrote_before() -> None:
    from elasticsearch.serializer import NdjsonSerializer

    operations = [{"index": {"_index": "roriwatch-alerts", "_id": "x"}},
                  {"title": "Bán data khách hàng", "counts": {"vn_phone": 3}, "n": 1.5}]
    ours = jsonio.es_serializers()["application/x-ndjson"].dumps(operations)
    before = NdjsonSerializer().dumps(operations)
    assert ours.endswith(b"\n")
    assert [json.loads(line) for line in ours.splitlines()] == [
        json.loads(line) for line in before.splitlines()]
