"""streams.decode: every kind of record either becomes a document or a named dead letter."""

from __future__ import annotations

import base64
import codecs
import hashlib
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.decode import (
    MAX_RAW_IN_DEADLETTER,
    PLAIN_TEXT_SITE,
    DeadLetter,
    DecodedDocument,
    MessageInfo,
    bytes_to_text,
    deadletter_record,
    decode_alert_message,
    decode_feed_message,
    key_as_text,
    max_message_bytes,
)
from streams.envelope import MAX_META_DEPTH, EnvelopeError, FeedEnvelope
from streams.metrics import DEADLETTER_REASONS

LIMIT = 64 * 1024
INFO = MessageInfo("roriwatch.feed.log", 2, 41, key=None, timestamp_ms=1714532400000)
SECRET = "CCCD 079203012345 SĐT 0912345678"  # synthetic


def envelope(**overrides: object) -> dict:
    data = {
        "feed": "paste", "site": "pastebin", "item_id": "abc123", "url": "https://x.invalid/abc",
        "author": None, "title": "t", "published_at": None,
        "fetched_at": "2024-05-01T10:00:00Z", "content": SECRET,
    }
    data.update(overrides)
    return data


def encode(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def decode(value: bytes | None, feed: str = "paste", limit: int = LIMIT,
           info: MessageInfo = INFO):
    return decode_feed_message(value, info, feed_kind=feed, max_content_bytes=limit)


# --- envelopes -----------------------------------------------------------------------------


def test_valid_envelope_is_a_document_with_the_envelope_content_hash() -> None:
    result = decode(encode(envelope()))
    assert isinstance(result, DecodedDocument)
    assert result.text == SECRET
    expected = FeedEnvelope.from_dict(envelope()).content_sha256()
    assert result.content_sha256 == expected
    assert result.content_bytes == len(SECRET.encode())
    assert result.warnings == ()


def test_base64_text_content_is_decoded() -> None:
    raw = SECRET.encode("utf-8")
    data = envelope(content=base64.b64encode(raw).decode(), content_encoding="base64")
    result = decode(encode(data))
    assert isinstance(result, DecodedDocument)
    assert result.text == SECRET
    assert result.content_sha256 == hashlib.sha256(raw).hexdigest()


def test_base64_binary_content_is_dead_lettered_as_binary() -> None:
    payload = b"PK\x03\x04\x00\x00" + bytes(range(256)) * 4
    data = envelope(content=base64.b64encode(payload).decode(), content_encoding="base64")
    result = decode(encode(data))
    assert isinstance(result, DeadLetter)
    assert result.reason == "binary"


def test_base64_content_over_the_limit_is_oversized() -> None:
    payload = b"a" * (LIMIT + 1)
    data = envelope(content=base64.b64encode(payload).decode(), content_encoding="base64")
    result = decode(encode(data), limit=LIMIT)
    assert isinstance(result, DeadLetter) and result.reason == "oversized"


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty"),
    (b"", "empty"),
    (b"hello, not json", "invalid_json"),
    (b'{"feed": "paste", ', "invalid_json"),
    (b"[1, 2, 3]", "invalid_envelope"),
    (encode({"feed": "paste"}), "invalid_envelope"),
    (encode(envelope(feed="email")), "invalid_envelope"),
    (encode(envelope(fetched_at="yesterday")), "invalid_envelope"),
    (encode(envelope(content="!!", content_encoding="base64")), "invalid_envelope"),
    (b'{"feed": "paste", "content": "\xff\xfe"}', "not_utf8"),
])
def test_paste_topic_takes_envelopes_only(value: bytes | None, reason: str) -> None:
    result = decode(value, feed="paste")
    assert isinstance(result, DeadLetter)
    assert result.reason == reason
    assert reason in DEADLETTER_REASONS


def test_message_over_the_limit_is_rejected_before_parsing() -> None:
    value = b"x" * (max_message_bytes(LIMIT) + 1)
    result = decode(value, feed="log")
    assert isinstance(result, DeadLetter) and result.reason == "oversized"
    assert str(len(value)) in result.detail and "RORIWATCH_MAX_CONTENT_BYTES" in result.detail


def test_base64_of_the_largest_allowed_content_is_accepted() -> None:
    payload = b"SDT 0912345678\n" * (LIMIT // 15)
    data = envelope(content=base64.b64encode(payload).decode(), content_encoding="base64")
    value = encode(data)
    assert len(value) > LIMIT  # base64 makes the record bigger than the content limit
    assert len(value) <= max_message_bytes(LIMIT)
    assert isinstance(decode(value), DecodedDocument)


def test_text_content_over_the_limit_is_oversized() -> None:
    result = decode(encode(envelope(content="a" * (LIMIT + 1))), limit=LIMIT)
    assert isinstance(result, DeadLetter) and result.reason == "oversized"


# --- the log topic -------------------------------------------------------------------------


def test_plain_log_line_becomes_a_synthetic_log_envelope() -> None:
    line = b"2024-05-01 10:00:00 INFO sent OTP to phone=0912345678"
    result = decode(line, feed="log")
    assert isinstance(result, DecodedDocument)
    assert result.text == line.decode()
    assert result.envelope.feed == "log"
    assert result.envelope.site == PLAIN_TEXT_SITE
    # Stable across redeliveries: the alert id depends on it.
    assert result.envelope.item_id == "roriwatch.feed.log:2:41"
    assert result.envelope.fetched_at == "2024-05-01T03:00:00.000Z"
    assert result.content_sha256 == hashlib.sha256(line).hexdigest()


def test_log_line_key_names_the_site_when_it_looks_like_a_host() -> None:
    info = MessageInfo("roriwatch.feed.log", 0, 1, key=b"api-01.prod", timestamp_ms=None)
    result = decode(b"some line", feed="log", info=info)
    assert isinstance(result, DecodedDocument) and result.envelope.site == "api-01.prod"
    info = MessageInfo("roriwatch.feed.log", 0, 1, key=b"has spaces in it", timestamp_ms=None)
    result = decode(b"some line", feed="log", info=info)
    assert isinstance(result, DecodedDocument) and result.envelope.site == PLAIN_TEXT_SITE


@pytest.mark.parametrize("line", [
    b'{"level": "info", "msg": "user phone 0912345678"}',  # an app's own JSON log record
    b'{"level": "info", "msg": "truncated',  # a cut JSON line
    b"[1, 2]",
])
def test_log_topic_scans_json_that_is_not_an_envelope_as_text(line: bytes) -> None:
    result = decode(line, feed="log")
    assert isinstance(result, DecodedDocument)
    assert result.text == line.decode()
    assert result.envelope.meta == {"plain_text": True}


def test_log_topic_still_validates_things_that_claim_to_be_envelopes() -> None:
    result = decode(encode({"content": "x", "feed": "log"}), feed="log")
    assert isinstance(result, DeadLetter) and result.reason == "invalid_envelope"
    good = decode(encode(envelope(feed="log", site="syslog")), feed="log")
    assert isinstance(good, DecodedDocument) and good.envelope.site == "syslog"


def nested_meta(depth: int, kind: str = "dict") -> object:
    """A meta of exactly ``depth`` levels of objects (or arrays inside the top object)."""
    value: object = SECRET
    for _ in range(depth - 1):
        value = {"a": value} if kind == "dict" else [value]
    return {"a": value}


def at_stack_depth(frames: int, call):
    """Run ``call`` with ``frames`` more Python frames on the stack than the caller has."""
    return call() if frames <= 0 else at_stack_depth(frames - 1, call)


@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("feed", ["paste", "log"])
def test_meta_up_to_the_depth_limit_is_accepted(kind: str, feed: str) -> None:
    result = decode(encode(envelope(feed=feed, meta=nested_meta(MAX_META_DEPTH, kind))), feed)
    assert isinstance(result, DecodedDocument)


@pytest.mark.parametrize("depth", [MAX_META_DEPTH + 1, 300, 500])
@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("feed", ["paste", "log"])
def test_meta_deeper_than_the_limit_is_an_invalid_envelope_naming_the_limit(
        depth: int, kind: str, feed: str) -> None:
    result = decode(encode(envelope(feed=feed, meta=nested_meta(depth, kind))), feed)
    assert isinstance(result, DeadLetter) and result.reason == "invalid_envelope"
    assert f"more than {MAX_META_DEPTH} levels" in result.detail
    assert "'meta'" in result.detail and "flat object" in result.detail  # what to fix
    for value in SECRET.split()[1::2]:
        assert value not in result.detail


def test_meta_depth_verdict_does_not_depend_on_the_callers_stack() -> None:
    # The old failure was a RecursionError whose threshold moved with the caller's stack: the
    # same record passed near the top of the stack and failed deep in it.
    deep = sys.getrecursionlimit() - 200
    for depth, accepted in ((MAX_META_DEPTH, True), (MAX_META_DEPTH + 1, False)):
        value = encode(envelope(meta=nested_meta(depth)))
        shallow_result = decode(value)
        deep_result = at_stack_depth(deep, lambda value=value: decode(value))
        assert shallow_result == deep_result
        assert isinstance(deep_result, DecodedDocument) is accepted


def test_envelopes_built_in_code_get_the_same_meta_limit() -> None:
    # Collectors build FeedEnvelope directly: the limit is in validation, not in the decoder.
    fields = {k: v for k, v in envelope().items()}
    FeedEnvelope(**fields, meta=nested_meta(MAX_META_DEPTH))
    with pytest.raises(EnvelopeError, match=f"more than {MAX_META_DEPTH} levels"):
        FeedEnvelope(**fields, meta=nested_meta(2000))


def test_log_line_with_some_invalid_utf8_is_scanned_with_a_warning() -> None:
    line = "khách hàng SĐT 0912345678 ".encode() + b"\xe0\xff caf\xe9"
    result = decode(line, feed="log")
    assert isinstance(result, DecodedDocument)
    assert "0912345678" in result.text
    assert result.warnings and result.warnings[0].startswith("not_utf8: 3 invalid")


def test_log_line_that_is_mostly_not_utf8_is_dead_lettered() -> None:
    result = decode(bytes(range(0x80, 0x100)) * 4, feed="log")
    assert isinstance(result, DeadLetter) and result.reason == "not_utf8"


@pytest.mark.parametrize("payload", [b"abc\x00def", b"\x01\x02\x03\x04\x05 abc"])
def test_binary_payloads_are_dead_lettered(payload: bytes) -> None:
    result = decode(payload, feed="log")
    assert isinstance(result, DeadLetter) and result.reason == "binary"


def test_utf16_with_bom_is_decoded() -> None:
    text = "SĐT 0912345678"
    decoded = bytes_to_text(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert not isinstance(decoded, DeadLetter)
    assert decoded[0] == text


def test_ansi_colours_and_tabs_are_text() -> None:
    decoded = bytes_to_text(b"\x1b[32mINFO\x1b[0m\tok\r\n")
    assert not isinstance(decoded, DeadLetter)


# --- privacy of details --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["paste", "forum", "log"]))
def test_no_detail_ever_quotes_the_message(noise: bytes, feed: str) -> None:
    marker = b"0912345678"
    for value in (marker + noise, noise + marker, b'{"content": "' + marker + b'"' + noise):
        result = decode(value, feed=feed)
        if isinstance(result, DeadLetter):
            assert result.reason in DEADLETTER_REASONS
            assert "0912345678" not in result.detail
            assert "912345678" not in result.detail


# --- dead-letter records -------------------------------------------------------------------


def test_deadletter_record_has_the_documented_fields_and_no_raw_by_default() -> None:
    value = b"not json 0912345678"
    problem = DeadLetter("invalid_json", "not valid JSON")
    record = deadletter_record(problem, INFO, value, stage="decode", key_text="k",
                               keep_raw=False)
    assert record["error"] == "invalid_json"
    assert (record["topic"], record["partition"], record["offset"]) == (INFO.topic, 2, 41)
    assert record["content_sha256"] == hashlib.sha256(value).hexdigest()
    assert record["size_bytes"] == len(value)
    assert record["received_at"].endswith("Z")
    assert record["raw_base64"] is None
    assert "0912345678" not in json.dumps(record)


def test_deadletter_record_keeps_raw_only_when_asked_and_when_it_fits() -> None:
    problem = DeadLetter("invalid_json", "not valid JSON")
    small = deadletter_record(problem, INFO, b"abc", stage="decode", key_text=None,
                              keep_raw=True)
    assert base64.b64decode(small["raw_base64"]) == b"abc"
    big = deadletter_record(problem, INFO, b"a" * (MAX_RAW_IN_DEADLETTER + 1), stage="decode",
                            key_text=None, keep_raw=True)
    assert big["raw_base64"] is None
    assert "raw value not kept" in big["detail"]


def test_key_as_text() -> None:
    assert key_as_text(None) is None
    assert key_as_text(b"abc") == "abc"
    assert key_as_text(b"\xff\xfe").startswith("sha256:")


# --- alerts topic --------------------------------------------------------------------------


def test_alert_message_round_trip() -> None:
    alert = {"alert_id": "a" * 32, "feed": "paste", "site": "s", "item_id": "i",
             "severity": "high", "counts": {"vn_phone": 1}, "content_sha256": "0" * 64}
    decoded = decode_alert_message(encode(alert))
    assert decoded == alert


@pytest.mark.parametrize("value", [None, b"", b"nope", b"[1]", encode({"alert_id": 1}),
                                   b"\xff\xfe"])
def test_bad_alert_messages_are_dead_letters(value: bytes | None) -> None:
    result = decode_alert_message(value)
    assert isinstance(result, DeadLetter) and result.reason == "invalid_alert"
