"""Coverage-guided fuzzing of the feed and alert decoders (atheris / libFuzzer).

    python fuzz/fuzz_decode.py -max_total_time=60 [CORPUS_DIR ...]

Each input is tried raw on every feed kind, wrapped into an otherwise valid envelope (as the
content, the meta object and a stray field, so the fuzzer reaches the validation code behind
the JSON parser) and on the alerts topic. The decoders must return a document or a dead
letter with a documented reason and a detail that quotes nothing from the input; any
exception is a finding. Without atheris the same checks run on seeded random inputs.

Known findings that this harness reproduces within a minute until fixed: JSON numbers of more
than 4300 digits (ValueError from int conversion) and a ``meta`` object nested ~450+ levels
deep (RecursionError in FeedEnvelope.__post_init__); see docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the platform
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["streams.decode", "streams.envelope"]):
        from streams.decode import (
            DeadLetter,
            DecodedDocument,
            MessageInfo,
            decode_alert_message,
            decode_feed_message,
        )
else:
    from streams.decode import (
        DeadLetter,
        DecodedDocument,
        MessageInfo,
        decode_alert_message,
        decode_feed_message,
    )

from streams.metrics import DEADLETTER_REASONS

LIMIT = 256 * 1024
DECODE_REASONS = {"empty", "invalid_json", "invalid_envelope", "not_utf8", "binary", "oversized"}
MARKER = "0912000111"  # synthetic; planted in every wrapped input, must never be quoted
TEMPLATE = {"feed": "paste", "site": "fuzz", "item_id": "f-1", "url": None, "author": None,
            "title": "t", "published_at": None, "fetched_at": "2024-05-01T10:00:00Z",
            "content": MARKER}


class Finding(AssertionError):
    """A property violated by an input (the input itself is in libFuzzer's artifact)."""


def variants(data: bytes) -> list[bytes]:
    """The raw input plus envelopes that carry it where validation code looks."""
    text = data.decode("utf-8", errors="surrogateescape")
    out = [data, data + MARKER.encode()]
    for field in ("content", "meta", "title", "n"):
        wrapped = dict(TEMPLATE)
        if field == "content":
            wrapped["content"] = MARKER + " " + text
            out.append(json.dumps(wrapped, ensure_ascii=True).encode())
            continue
        body = json.dumps(wrapped, ensure_ascii=True)
        # Splice the raw input in as a JSON value: it may be valid JSON, or garbage.
        raw = data.decode("latin-1")
        out.append(body[:-1].encode() + f', "{field}": '.encode() + raw.encode("latin-1") + b"}")
    # Sizes libFuzzer would take long to grow to by mutation: the first bytes choose a nesting
    # depth and a digit-run length, so deep JSON and huge numbers are a few mutations away.
    if len(data) >= 4:
        depth = int.from_bytes(data[:2], "little") % 3000
        digits = int.from_bytes(data[2:4], "little") % 12000
        body = json.dumps(TEMPLATE)[:-1]
        out.append(f'{body}, "meta": {{"x": {"[" * depth}1{"]" * depth}}}}}'.encode())
        out.append(f'{body}, "n": 1{"0" * digits}}}'.encode())
    return out


def check_feed(value: bytes, feed: str) -> None:
    """Decode one value as a record of one feed topic and verify the contract."""
    info = MessageInfo(f"fuzz.{feed}", 0, 1, key=value[:16] or None, timestamp_ms=0)
    result = decode_feed_message(value, info, feed_kind=feed, max_content_bytes=LIMIT)
    if isinstance(result, DeadLetter):
        if result.reason not in DECODE_REASONS or result.reason not in DEADLETTER_REASONS:
            raise Finding(f"undocumented dead-letter reason {result.reason!r}")
        if not result.detail or MARKER in result.detail or MARKER[1:] in result.detail:
            raise Finding(f"{result.reason}: detail empty or quoting the input")
    elif not isinstance(result, DecodedDocument):
        raise Finding(f"decoder returned {type(result).__name__}")
    elif result.content_bytes > LIMIT:
        raise Finding("document over the content limit")


def test_one_input(data: bytes) -> None:
    """Entry point called by libFuzzer with each input."""
    for value in variants(data):
        for feed in ("paste", "forum", "log"):
            check_feed(value, feed)
        result = decode_alert_message(value)
        if isinstance(result, DeadLetter) and result.reason != "invalid_alert":
            raise Finding(f"alert decoder gave {result.reason!r}")


def fallback(argv: list[str]) -> int:
    """Random and structured inputs for -max_total_time seconds without atheris."""
    budget = 60.0
    for arg in argv[1:]:
        if arg.startswith("-max_total_time="):
            budget = float(arg.split("=", 1)[1])
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "1")))  # noqa: S311 - test inputs
    alphabet = b'{}[]":,0123456789.eE-+ \\u\x00\xff\xc3\xa9tnrfalse'
    deadline = time.monotonic() + budget
    runs = 0
    while time.monotonic() < deadline:
        size = rng.choice((4, 32, 256, 2048))
        pool = alphabet if rng.random() < 0.7 else bytes(range(256))
        test_one_input(bytes(rng.choice(pool) for _ in range(size)))
        runs += 1
    print(f"fuzz_decode (random fallback, atheris not installed): {runs} inputs, no finding")
    return 0


def main() -> int:
    """Run libFuzzer through atheris, or the fallback."""
    if atheris is None:
        return fallback(sys.argv)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
