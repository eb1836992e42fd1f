"""The feed envelope: the one record every collector and log shipper writes to the feed topics.

Kept deliberately small and dependency-free because collectors, the detection agents and
external shippers (Filebeat, Vector, Fluent Bit) all speak it; ``schemas/feed-envelope.schema.json``
documents the same shape for people who cannot read Python.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

FEED_KINDS: tuple[str, ...] = ("paste", "forum", "log")

FEED_TOPICS: dict[str, str] = {
    "paste": "roriwatch.feed.paste",
    "forum": "roriwatch.feed.forum",
    "log": "roriwatch.feed.log",
}

CONTENT_ENCODINGS: tuple[str, ...] = ("base64",)

# Long enough for "telegram:<chat>:<message>" or "<source>:<inode>-<gen>:<offset>", short enough
# to stay a sensible Kafka key.
MAX_ITEM_ID_LENGTH = 512

# `meta` holds a source's details (charset, file offset, syslog fields): a few levels at most.
# Without a fixed limit, a deeply nested `meta` failed wherever the interpreter's stack ran out
# (a RecursionError at a depth that depends on the caller), so the same record could be
# accepted by one process and refused by another.
MAX_META_DEPTH = 32

_REQUIRED = ("feed", "site", "item_id", "fetched_at", "content")
_OPTIONAL_STR = ("url", "author", "title", "published_at", "content_encoding")


class EnvelopeError(ValueError):
    """A byte string that is not a usable feed envelope.

    The reason names the field and what is expected, never the offending value, so it can be
    logged or sent to a dead-letter topic without leaking the personal data it may contain.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FeedEnvelope:
    """One collected item (a paste, a forum post, a chat message, a log line) with its provenance.

    ``content`` is text; binary payloads are carried base64-encoded with
    ``content_encoding="base64"`` so the record stays JSON.
    """

    feed: str
    site: str
    item_id: str
    url: str | None
    author: str | None
    title: str | None
    published_at: str | None
    fetched_at: str
    content: str
    content_encoding: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A shallow view: asdict() would copy `meta` recursively before its depth is checked.
        _validate({f.name: getattr(self, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict, the shape documented in the JSON Schema."""
        return asdict(self)

    def to_json(self) -> bytes:
        """Serialise as compact UTF-8 JSON, keeping Vietnamese text readable rather than escaped."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_dict(cls, data: Any) -> FeedEnvelope:
        """Build an envelope from decoded JSON, ignoring unknown top-level fields.

        Unknown fields are tolerated because log shippers add their own (``@timestamp``,
        ``host``, ``agent``) and refusing them would force every shipper config to strip them.
        """
        if not isinstance(data, dict):
            raise EnvelopeError("envelope must be a JSON object")
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise EnvelopeError(f"missing required field(s): {', '.join(missing)}")
        values = {name: data.get(name) for name in (*_REQUIRED, *_OPTIONAL_STR)}
        meta = data.get("meta")
        values["meta"] = {} if meta is None else meta
        _validate(values)
        return cls(**values)

    @classmethod
    def from_json(cls, raw: bytes | str) -> FeedEnvelope:
        """Decode a Kafka record value; raise :class:`EnvelopeError` with an actionable reason."""
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EnvelopeError(
                    f"envelope is not UTF-8 (invalid byte at offset {exc.start}); "
                    "producers must write UTF-8 JSON"
                ) from None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EnvelopeError(
                f"envelope is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        return cls.from_dict(data)

    def content_bytes(self) -> bytes:
        """Return the payload as bytes, undoing base64 when the payload was binary."""
        if self.content_encoding == "base64":
            return base64.b64decode(self.content)
        return self.content.encode("utf-8")

    def content_sha256(self) -> str:
        """Hex SHA-256 of the payload bytes: the key for dropping re-posted duplicates."""
        return hashlib.sha256(self.content_bytes()).hexdigest()


def _is_iso8601(value: str) -> bool:
    # Python 3.10's fromisoformat rejects a trailing "Z", which every shipper writes.
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _validate(values: dict[str, Any]) -> None:
    for name in ("feed", "site", "item_id", "fetched_at", "content"):
        if not isinstance(values.get(name), str):
            raise EnvelopeError(f"field '{name}' must be a string")
    for name in _OPTIONAL_STR:
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise EnvelopeError(f"field '{name}' must be a string or null")
    if values["feed"] not in FEED_KINDS:
        raise EnvelopeError(f"field 'feed' must be one of {', '.join(FEED_KINDS)}")
    if not values["site"]:
        raise EnvelopeError("field 'site' must not be empty")
    if not values["item_id"] or len(values["item_id"]) > MAX_ITEM_ID_LENGTH:
        raise EnvelopeError(f"field 'item_id' must be 1 to {MAX_ITEM_ID_LENGTH} characters")
    if not _is_iso8601(values["fetched_at"]):
        raise EnvelopeError("field 'fetched_at' must be an ISO-8601 timestamp")
    if values.get("published_at") is not None and not _is_iso8601(values["published_at"]):
        raise EnvelopeError("field 'published_at' must be an ISO-8601 timestamp or null")
    encoding = values.get("content_encoding")
    if encoding is not None:
        if encoding not in CONTENT_ENCODINGS:
            raise EnvelopeError("field 'content_encoding' must be null or 'base64'")
        try:
            base64.b64decode(values["content"], validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError(
                "field 'content' is not valid base64 although content_encoding is 'base64'"
            ) from None
    if not isinstance(values.get("meta"), dict):
        raise EnvelopeError("field 'meta' must be a JSON object")
    if _nesting_exceeds(values["meta"], MAX_META_DEPTH):
        raise EnvelopeError(
            f"field 'meta' is nested more than {MAX_META_DEPTH} levels deep; keep meta a "
            "flat object of source details and put documents in 'content'")


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``limit`` levels (``{}`` is 1).

    Iterative, so the answer never depends on how deep the caller's stack already is.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        container, depth = pending.pop()
        if depth > limit:
            return True
        children = container.values() if isinstance(container, dict) else container
        pending.extend((child, depth + 1) for child in children
                       if isinstance(child, (dict, list)))
    return False
