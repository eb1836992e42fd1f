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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``context`` as a list."""
        data = asdict(self)
        data["context"] = list(self.context)
        return data

    def shifted(self, offset: int) -> Finding:
        """The same finding with offsets moved, for chunked scanning of large files."""
        return Finding(self.detector, self.start + offset, self.end + offset, self.confidence,
                       self.masked, self.fingerprint, self.key_id, self.severity, self.context)
