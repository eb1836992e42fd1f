"""JSON in and out of the worker: orjson where it can, the standard library where it must.

A worker parses every envelope and every alert and writes every alert twice (to Kafka and in
the Elasticsearch bulk body). With the standard library that was about a tenth of a loaded
worker's time (py-spy, BENCHMARKS.md); orjson does the same work 3-10 times faster. Faust
picks orjson up on its own once it is installed, for the records it writes.

orjson is stricter than the standard library: it refuses escapes of lone UTF-16 surrogates
and ``NaN``, and reads integers beyond 64 bits as floats. Such documents are parsed by the
standard library, so callers keep their error messages for what neither accepts, and lone
surrogates become U+FFFD: otherwise an alert quoting such a title could not be written by
Faust or the Elasticsearch client, and would be dead-lettered as a bug.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from elasticsearch.serializer import JsonSerializer, NdjsonSerializer

# orjson reads an integer beyond 64 bits as a float, silently: where one may stand (19 digits
# or more after "[", ":", "," or at the start; strings that look so only cost the slow path),
# the standard parser reads it exactly, or refuses it past Python's 4,300-digit limit.
LONG_INTEGER = re.compile(rb"(?:^|[\[:,])\s*-?[0-9]{19}")  # the definition; see below
# The same test in C string operations: the regex tried every digit of an alert (offsets,
# hex fingerprints) and took ~20 ns per byte, a tenth of a loaded worker (py-spy,
# BENCHMARKS.md); one translate to a shape (digits "9", "[:," ":", blanks " ") and a find
# of 19 nines take ~1 ns per byte, and Python looks only at runs of 19 digits or more.
_SHAPE = bytes(57 if 48 <= i <= 57 else 58 if i in b"[:," else 32 if i in b" \t\n\r\f\v"
               else 45 if i == 45 else 46 for i in range(256))
_NINETEEN = b"9" * 19
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def may_hold_long_integer(raw: bytes) -> bool:
    """Whether LONG_INTEGER matches ``raw``.

    Its 19 digits start a run (after "-", blanks, and "[", ":" or "," or the start), so only
    the start of each run of 19 digits or more needs a look back.
    """
    shape = raw.translate(_SHAPE)
    at = shape.find(_NINETEEN)
    while at >= 0:
        before = at - 1
        if before >= 0 and shape[before] == 45:  # "-"
            before -= 1
        while before >= 0 and shape[before] == 32:
            before -= 1
        if before < 0 or shape[before] == 58:
            return True
        at = shape.find(_NINETEEN, at + 19)  # later windows of this run follow a digit
    return False


def loads(data: bytes | str) -> Any:
    """Parse JSON as ``json.loads`` does; raises what it raises for input it refuses."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if not may_hold_long_integer(raw):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return _without_lone_surrogates(json.loads(data))


def _repaired(text: str) -> str:
    # The standard parser pairs valid surrogate escapes into one character: any left is lone.
    return _SURROGATE.sub("\ufffd", text)


def _without_lone_surrogates(value: Any) -> Any:
    """The same value with every string that holds a lone surrogate repaired.

    Iterative: the standard parser already bounded the depth; this walk adds no recursion.
    """
    root = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = _repaired(item)
        elif isinstance(item, list):
            stack.extend((item, index) for index in range(len(item)))
        elif isinstance(item, dict):
            for name in list(item):
                fixed = _repaired(name)
                if fixed != name:
                    item[fixed] = item.pop(name)
                stack.append((item, fixed))
    return root[0]


class _Orjson:
    """orjson for the Elasticsearch serializers below (``default`` comes from the base)."""

    default: Any

    def json_dumps(self, data: Any) -> bytes:
        return orjson.dumps(data, default=self.default)

    def json_loads(self, data: bytes) -> Any:
        return loads(data)


class _OrjsonJsonSerializer(_Orjson, JsonSerializer):
    pass


class _OrjsonNdjsonSerializer(_Orjson, NdjsonSerializer):
    pass


def es_serializers() -> dict[str, Any]:
    """``serializers=`` for the Elasticsearch clients (the bulk body is NDJSON).

    The client maps the compatibility-mode mimetypes to these too.
    """
    return {"application/json": _OrjsonJsonSerializer(),
            "application/x-ndjson": _OrjsonNdjsonSerializer()}
