from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.envelope import FEED_KINDS, FEED_TOPICS, EnvelopeError, FeedEnvelope

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "feed-envelope.schema.json"
SECRET = "CCCD 079099000123 0912345678"  # synthetic


def sample(**changes) -> FeedEnvelope:
    values = dict(
        feed="paste",
        site="pastebin",
        item_id="Qm7Xp2Lk",
        url="https://pastebin.example/Qm7Xp2Lk",
        author="nguoidung_gia",
        title="khach hang",
        published_at="2024-05-01T10:00:00+07:00",
        fetched_at="2024-05-01T03:00:07+00:00",
        content=f"Nguyễn Văn Giả {SECRET}",
        meta={"source": "pastebin"},
    )
    values.update(changes)
    return FeedEnvelope(**values)


def test_round_trip_keeps_vietnamese_readable():
    envelope = sample()
    raw = envelope.to_json()
    assert "Nguyễn Văn Giả".encode() in raw  # not \u-escaped
    assert FeedEnvelope.from_json(raw) == envelope


def test_optional_fields_default_and_unknown_fields_are_ignored():
    raw = json.dumps(
        {
            "feed": "log",
            "site": "filebeat:web-1",
            "item_id": "web-1:access.log:42",
            "fetched_at": "2024-05-01T03:00:07.123Z",
            "content": "GET /",
            "@timestamp": "2024-05-01T03:00:07.123Z",
            "host": {"name": "web-1"},
        }
    ).encode()
    envelope = FeedEnvelope.from_json(raw)
    assert envelope.url is None and envelope.meta == {} and envelope.content_encoding is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{", "not UTF-8"),
        (b'{"feed": ', "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"feed": "paste"}', "missing required field(s): site, item_id, fetched_at, content"),
    ],
)
def test_from_json_reasons_are_actionable(raw, reason):
    with pytest.raises(EnvelopeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        FeedEnvelope.from_json(raw)


@pytest.mark.parametrize(
    ("change", "field_name"),
    [
        ({"feed": "telegram"}, "feed"),
        ({"site": ""}, "site"),
        ({"item_id": ""}, "item_id"),
        ({"item_id": "x" * 513}, "item_id"),
        ({"fetched_at": "yesterday"}, "fetched_at"),
        ({"published_at": "02/05/2024"}, "published_at"),
        ({"content": 5}, "content"),
        ({"author": 5}, "author"),
        ({"content_encoding": "gzip"}, "content_encoding"),
        ({"content_encoding": "base64", "content": "not base64!"}, "content"),
        ({"meta": []}, "meta"),
    ],
)
def test_invalid_fields_are_named_without_echoing_content(change, field_name):
    data = sample().to_dict()
    data.update(change)
    with pytest.raises(EnvelopeError) as excinfo:
        FeedEnvelope.from_json(json.dumps(data).encode())
    assert f"'{field_name}'" in excinfo.value.reason
    assert "079099000123" not in str(excinfo.value)
    assert "0912345678" not in str(excinfo.value)


def test_content_sha256_hashes_the_payload_bytes():
    text = sample()
    assert text.content_sha256() == hashlib.sha256(text.content.encode()).hexdigest()
    payload = b"\x00\x01binary\xff"
    binary = sample(content=base64.b64encode(payload).decode(), content_encoding="base64")
    assert binary.content_bytes() == payload
    assert binary.content_sha256() == hashlib.sha256(payload).hexdigest()


def test_feed_topics_cover_every_feed_kind():
    assert set(FEED_TOPICS) == set(FEED_KINDS)
    assert FEED_TOPICS["log"] == "roriwatch.feed.log"


def test_json_schema_documents_the_dataclass():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {f.name for f in fields(FeedEnvelope)}
    assert schema["required"] == ["feed", "site", "item_id", "fetched_at", "content"]
    assert schema["properties"]["feed"]["enum"] == list(FEED_KINDS)
    for example in schema["examples"]:
        FeedEnvelope.from_dict(example)


@given(
    content=st.text(max_size=200),
    meta=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=4),
    item_id=st.text(min_size=1, max_size=40),
)
def test_any_text_round_trips(content, meta, item_id):
    envelope = sample(content=content, meta=meta, item_id=item_id)
    assert FeedEnvelope.from_json(envelope.to_json()) == envelope
