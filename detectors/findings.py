"""The finding record: what the scanner reports, without the raw value."""

from __future__ import annotations

from typing import Any, NamedTuple


class Finding(NamedTuple):
    """One identifier found in a text.

    ``start``/``end`` are code-point offsets into the original text, so ``text[start:end]``
    is the written match; the value itself is only ever present as ``masked`` and the keyed
    ``fingerprint``. A named tuple rather than a frozen dataclass: just as immutable, and
    built in a quarter of the time (0.3 µs against 1.2), which counts in dumps with ~40,000
    findings per MB.
    """

    detector: str
    start: int
    end: int
    confidence: float
    masked: str
    fingerprint: str
    key_id: str
    severity: str
    context: tuple[str, ...] = ()
    # (key id, fingerprint) under each previous HMAC key the scanner was given: during a key
    # rotation, watch-lists made with the old key still match. Empty outside a rotation.
    previous_fingerprints: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``context`` as a list, previous-key fingerprints only when present."""
        data = self._asdict()
        data["context"] = list(self.context)
        if self.previous_fingerprints:
            data["previous_fingerprints"] = dict(self.previous_fingerprints)
        else:
            del data["previous_fingerprints"]
        return data

    def shifted(self, offset: int) -> Finding:
        """The same finding with offsets moved, for chunked scanning of large files."""
        return self._replace(start=self.start + offset, end=self.end + offset)
