"""The finding record: what the scanner reports, without the raw value."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One identifier found in a text.

    ``start``/``end`` are code-point offsets into the original text, so ``text[start:end]``
    is the written match; the value itself is only ever present as ``masked`` and the keyed
    ``fingerprint``.
    """

    detector: str
    start: int
    end: int
    confidence: float
    masked: str
    fingerprint: str
    key_id: str
    severity: str
    context: tuple[str, ...] = field(default=())
    # (key id, fingerprint) under each previous HMAC key the scanner was given: during a key
    # rotation, watch-lists made with the old key still match. Empty outside a rotation.
    previous_fingerprints: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``context`` as a list, previous-key fingerprints only when present."""
        data = asdict(self)
        data["context"] = list(self.context)
        if self.previous_fingerprints:
            data["previous_fingerprints"] = dict(self.previous_fingerprints)
        else:
            del data["previous_fingerprints"]
        return data

    def shifted(self, offset: int) -> Finding:
        """The same finding with offsets moved, for chunked scanning of large files."""
        return Finding(self.detector, self.start + offset, self.end + offset, self.confidence,
                       self.masked, self.fingerprint, self.key_id, self.severity, self.context,
                       self.previous_fingerprints)
