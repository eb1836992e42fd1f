"""Masking and keyed fingerprints: the only forms in which an identifier leaves the scanner.

The monitor must not become a second copy of the leak, so findings carry a masked form
for humans and an HMAC fingerprint for machines (correlation, watch-lists). The raw value
is never stored on a finding.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

MASK_CHAR = "*"
MAX_SHOWN_EACH_SIDE = 3


def shown_each_side(length: int) -> int:
    """How many characters stay visible at each end: at most 3, and never over a quarter."""
    return min(MAX_SHOWN_EACH_SIDE, length // 4)


def mask_value(value: str) -> str:
    """Mask an identifier keeping at most the first and last 3 characters, e.g. 079******345.

    Short values reveal proportionally less, so a 9-digit legacy ID shows 2+2 digits.
    """
    if "@" in value:
        return mask_email(value)
    keep = shown_each_side(len(value))
    if keep == 0:
        return MASK_CHAR * len(value)
    return value[:keep] + MASK_CHAR * (len(value) - 2 * keep) + value[-keep:]


def mask_email(value: str) -> str:
    """Keep the domain (it tells the analyst whose users leaked) and one letter of the mailbox."""
    local, _, domain = value.rpartition("@")
    head = local[:1] if len(local) >= 4 else ""
    return f"{head}{MASK_CHAR * max(3, len(local) - len(head))}@{domain}"


@dataclass(frozen=True)
class Fingerprinter:
    """HMAC-SHA256 over the canonical value; the key id travels with every fingerprint.

    A keyed hash (not a bare SHA-256) because 12-digit IDs are easy to enumerate: without
    the key, a fingerprint must not be reversible by brute force.
    """

    key: bytes
    key_id: str = "k1"
    ephemeral: bool = field(default=False, compare=False)

    @classmethod
    def ephemeral_key(cls) -> Fingerprinter:
        """A per-run random key: fingerprints then correlate only within this run."""
        return cls(key=secrets.token_bytes(32), key_id="ephemeral", ephemeral=True)

    def fingerprint(self, canonical_value: str) -> str:
        """Hex HMAC of the canonical value; identical values give identical fingerprints."""
        return hmac.digest(self.key, canonical_value.encode("utf-8"), "sha256").hex()
