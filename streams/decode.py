"""Raw Kafka record → something scannable, or a dead-letter reason; pure, no I/O.

Policy (docs/pipeline.md explains the why):

* paste and forum topics carry JSON feed envelopes only. Not UTF-8 → ``not_utf8``, not JSON →
  ``invalid_json``, JSON but not an envelope → ``invalid_envelope``.
* the log topic also accepts plain log lines: a value is an envelope when it is UTF-8 JSON
  *object with a "content" field*; anything else (plain text, a truncated JSON line, an
  application's own JSON log record) is scanned as the content of a synthetic envelope.
* text with some invalid UTF-8 (legacy apps, Windows-1258 fragments) is decoded with U+FFFD
  replacement, scanned, and the alert carries a ``not_utf8`` warning: identifiers are ASCII,
  so dropping the whole message for one bad byte would hide a leak. Text that is *mostly*
  not UTF-8 is dead-lettered as ``not_utf8`` because scanning it would be noise.
* NUL bytes (without a UTF-16/32 byte-order mark) or many control characters mean binary:
  dead-lettered as ``binary`` so a person can look at it, never silently dropped.
* content larger than ``max_content_bytes`` is dead-lettered as ``oversized``; a record larger
  than that limit base64-encoded plus the envelope is rejected before it is even parsed.

Detail strings name fields, sizes and offsets, never content: they go to the dead-letter topic
and to logs.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from streams import jsonio
from streams.envelope import EnvelopeError, FeedEnvelope

# JSON syntax and the envelope's own fields around the content.
ENVELOPE_OVERHEAD_BYTES = 64 * 1024
SNIFF_BYTES = 8192
# Above this share of invalid bytes the payload is another encoding or binary, not text.
MAX_INVALID_UTF8_RATIO = 0.30
MAX_CONTROL_RATIO = 0.10
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\x1b")  # ESC: ANSI colours in logs
PLAIN_TEXT_SITE = "raw-log"
# A dead-letter record must fit in one Kafka message (1 MiB by default) next to its fields.
MAX_RAW_IN_DEADLETTER = 512 * 1024
_SITE_FROM_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/\-]{0,127}")


@dataclass(frozen=True)
class DeadLetter:
    """Why a message cannot be processed: a reason from the fixed enum and a safe detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class DecodedDocument:
    """A message ready to scan: its envelope, its text and what decoding had to repair."""

    envelope: FeedEnvelope
    text: str
    content_sha256: str
    content_bytes: int
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class MessageInfo:
    """Where a record came from; what dead-letter records and synthetic envelopes need."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp_ms: int | None = None


def max_message_bytes(max_content_bytes: int) -> int:
    """Largest feed record worth parsing: the content limit base64-encoded, plus the envelope.

    Also the ``max.message.bytes`` given to the feed topics, so the broker refuses bigger
    records at produce time, where the collector still has the item and can cut it.
    """
    return max_content_bytes * 4 // 3 + ENVELOPE_OVERHEAD_BYTES


def utc_now_iso() -> str:
    """Current time as ISO-8601 UTC with milliseconds, the format Elasticsearch maps as date."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_from_ms(timestamp_ms: int | None) -> str:
    if not timestamp_ms or timestamp_ms < 0:
        return utc_now_iso()
    moment = datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bytes_to_text(data: bytes) -> tuple[str, tuple[str, ...]] | DeadLetter:
    """Decode payload bytes as text, or say why they are not text.

    UTF-16/32 with a byte-order mark is decoded as such (Windows tools write it); otherwise
    UTF-8 with replacement, and the number of replaced sequences becomes a warning.
    """
    head = data[:SNIFF_BYTES]
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        # A real UTF-16/32 text has NUL bytes (ASCII and Vietnamese letters have a zero high
        # byte) and decodes cleanly; "\xff\xfe" in front of UTF-8 is just two bad bytes.
        if head.startswith(bom) and b"\x00" in head[len(bom):]:
            try:
                return data.decode(encoding), (f"decoded as {encoding} (byte-order mark)",)
            except UnicodeDecodeError:
                break
    if b"\x00" in head:
        return DeadLetter("binary", f"payload of {len(data)} bytes has NUL bytes in its first "
                          f"{SNIFF_BYTES} bytes: binary data cannot be scanned as text; send "
                          "extracted text instead")
    if head:
        controls = sum(1 for byte in head if byte < 0x20 and byte not in _TEXT_CONTROLS)
        if controls / len(head) > MAX_CONTROL_RATIO:
            return DeadLetter("binary", f"payload of {len(data)} bytes is {controls} control "
                              f"characters in its first {len(head)} bytes: binary data cannot "
                              "be scanned as text")
    try:
        return data.decode("utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"), ()
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    # Each invalid sequence becomes one U+FFFD; genuine U+FFFD characters are EF BF BD.
    replaced = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    if replaced / max(len(data), 1) > MAX_INVALID_UTF8_RATIO:
        return DeadLetter("not_utf8", f"{replaced} of {len(data)} bytes are not valid UTF-8: "
                          "the producer writes another encoding; configure it to write UTF-8 "
                          "(or send the payload base64 with content_encoding)")
    return text, (f"not_utf8: {replaced} invalid byte sequence(s) replaced with U+FFFD",)


def _envelope_document(envelope: FeedEnvelope, max_content_bytes: int) -> DecodedDocument | \
        DeadLetter:
    if envelope.content_encoding == "base64":
        try:
            payload = base64.b64decode(envelope.content)
        except (binascii.Error, ValueError):
            return DeadLetter("invalid_envelope", "field 'content' is not valid base64")
        if len(payload) > max_content_bytes:
            return _oversized(len(payload), max_content_bytes, "decoded content")
        decoded = bytes_to_text(payload)
        if isinstance(decoded, DeadLetter):
            return decoded
        text, warnings = decoded
        return DecodedDocument(envelope, text, hashlib.sha256(payload).hexdigest(),
                               len(payload), warnings)
    payload = envelope.content.encode("utf-8", errors="surrogatepass")
    if len(payload) > max_content_bytes:
        return _oversized(len(payload), max_content_bytes, "content")
    return DecodedDocument(envelope, envelope.content, hashlib.sha256(payload).hexdigest(),
                           len(payload))


def _oversized(size: int, limit: int, what: str) -> DeadLetter:
    return DeadLetter("oversized", f"{what} is {size} bytes, over the limit of {limit} "
                      "(RORIWATCH_MAX_CONTENT_BYTES); collectors must cut items to the limit "
                      "and set meta.truncated")


def _site_from_key(key: bytes | None) -> str:
    if key:
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError:
            return PLAIN_TEXT_SITE
        if _SITE_FROM_KEY.fullmatch(text):
            return text
    return PLAIN_TEXT_SITE


def _plain_text_document(value: bytes, info: MessageInfo) -> DecodedDocument | DeadLetter:
    decoded = bytes_to_text(value)
    if isinstance(decoded, DeadLetter):
        return decoded
    text, warnings = decoded
    envelope = FeedEnvelope(
        feed="log",
        site=_site_from_key(info.key),
        # Stable across redeliveries of the same record, so the alert id is too.
        item_id=f"{info.topic}:{info.partition}:{info.offset}",
        url=None, author=None, title=None, published_at=None,
        fetched_at=_iso_from_ms(info.timestamp_ms),
        content="",  # the text lives in DecodedDocument; no second copy of a large line
        meta={"plain_text": True},
    )
    return DecodedDocument(envelope, text, hashlib.sha256(value).hexdigest(), len(value),
                           warnings)


def _parse_json(value: bytes) -> tuple[Any, DeadLetter | None]:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, DeadLetter("not_utf8", f"envelope is not UTF-8 (invalid byte at offset "
                                f"{exc.start}); producers must write UTF-8 JSON")
    try:
        return jsonio.loads(text), None
    except json.JSONDecodeError as exc:
        return None, DeadLetter("invalid_json", f"not valid JSON: {exc.msg} at line "
                                f"{exc.lineno} column {exc.colno}; paste and forum topics take "
                                "feed envelopes only (schemas/feed-envelope.schema.json)")
    except RecursionError:
        return None, DeadLetter("invalid_json", "JSON nested too deeply for the parser; feed "
                                "envelopes are flat objects (schemas/feed-envelope.schema.json)")
    except ValueError:
        # Python >= 3.11 refuses integers of more than 4,300 digits (a plain ValueError).
        return None, DeadLetter("invalid_json", "JSON holds a number too long to convert; "
                                "send long digit strings as JSON strings")


def decode_feed_message(value: bytes | None, info: MessageInfo, *, feed_kind: str,
                        max_content_bytes: int) -> DecodedDocument | DeadLetter:
    """Turn one feed-topic record into a document to scan, or a dead-letter reason.

    ``feed_kind`` is the kind of the topic the record came from (paste, forum, log); it decides
    whether plain text is acceptable.
    """
    if not value:
        return DeadLetter("empty", "message has no value (tombstone or empty); producers must "
                          "send a feed envelope")
    if len(value) > max_message_bytes(max_content_bytes):
        return _oversized(len(value), max_message_bytes(max_content_bytes), "message")
    if feed_kind == "log":
        stripped = value.lstrip()
        if stripped[:1] == b"{":
            data, problem = _parse_json(value)
            if problem is None and isinstance(data, dict) and "content" in data:
                return _from_data(data, max_content_bytes)
        return _plain_text_document(value, info)
    data, problem = _parse_json(value)
    if problem is not None:
        return problem
    return _from_data(data, max_content_bytes)


def _from_data(data: Any, max_content_bytes: int) -> DecodedDocument | DeadLetter:
    try:
        envelope = FeedEnvelope.from_dict(data)
    except EnvelopeError as exc:
        return DeadLetter("invalid_envelope", f"{exc.reason} (schemas/feed-envelope.schema.json)")
    except RecursionError:
        # Not expected: validation is iterative and refuses a meta deeper than MAX_META_DEPTH
        # with an EnvelopeError above. Kept so that a recursive check added later still gives
        # the producer an answer rather than a processing_error ("a bug").
        return DeadLetter("invalid_envelope", "envelope nested too deeply; keep field 'meta' "
                          "a flat object (schemas/feed-envelope.schema.json)")
    return _envelope_document(envelope, max_content_bytes)


REQUIRED_ALERT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "alert_id": str, "feed": str, "site": str, "item_id": str, "severity": str,
    "counts": dict, "content_sha256": str,
}


def decode_alert_message(value: bytes | None) -> dict[str, Any] | DeadLetter:
    """Parse an alerts-topic record; anything but an alert object is a dead letter.

    Parsed by hand rather than by Faust's record deserialiser because a record that fails
    there is thrown into the agent's loop, where it would crash the indexer.
    """
    if not value:
        return DeadLetter("invalid_alert", "message has no value")
    try:
        data = jsonio.loads(value)
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, huge numbers, depth
        kind = type(exc).__name__
        return DeadLetter("invalid_alert", f"alert is not UTF-8 JSON the parser accepts ({kind})")
    if not isinstance(data, dict):
        return DeadLetter("invalid_alert", "alert must be a JSON object")
    for name, typ in REQUIRED_ALERT_FIELDS.items():
        if not isinstance(data.get(name), typ):
            return DeadLetter("invalid_alert", f"alert field '{name}' is missing or not a "
                              f"{typ.__name__ if isinstance(typ, type) else typ}")
    data.pop("__faust", None)
    return data


def deadletter_record(problem: DeadLetter, info: MessageInfo, value: bytes | None, *,
                      stage: str, key_text: str | None, keep_raw: bool,
                      alert_id: str | None = None) -> dict[str, Any]:
    """The dead-letter record: enough to find, understand and replay the message, no content.

    ``key_text`` is the record key already made safe by the caller (identifiers masked).
    The raw value is included only with ``keep_raw`` (RORIWATCH_DEADLETTER_KEEP_RAW), since
    it may be the very leak being monitored.
    """
    raw = value or b""
    keep = keep_raw and bool(value) and len(raw) <= MAX_RAW_IN_DEADLETTER
    record: dict[str, Any] = {
        "error": problem.reason,
        "detail": problem.detail,
        "stage": stage,
        "topic": info.topic,
        "partition": info.partition,
        "offset": info.offset,
        "key": key_text,
        "content_sha256": hashlib.sha256(raw).hexdigest(),
        "size_bytes": len(raw),
        "received_at": utc_now_iso(),
        "alert_id": alert_id,
        "raw_base64": base64.b64encode(raw).decode("ascii") if keep else None,
    }
    if keep_raw and value and not keep:
        record["detail"] += (f" [raw value not kept: over {MAX_RAW_IN_DEADLETTER} bytes; read it "
                             "from the original topic, partition and offset]")
    return record


def key_as_text(key: bytes | None, limit: int = 512) -> str | None:
    """A record key as text for reports; binary keys become a short hex hash."""
    if key is None:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return f"sha256:{hashlib.sha256(key).hexdigest()[:16]}"
    return text[:limit]
