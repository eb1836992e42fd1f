"""Counting distinct fingerprints in bounded memory.

A summary counts distinct identifiers per detector, and a leak dump of a few GB holds tens
of millions of them: one exact set of fingerprints cost 1.16 GB of memory for a 100 MB dump
(3.9 million distinct values). Up to ``EXACT_LIMIT`` values the count stays exact (every
document a feed carries, and most files); past it the set is folded into a HyperLogLog
sketch (Flajolet et al., 2007) of 16,384 one-byte registers, whose count is within about
1 % (standard error 1.04 / sqrt(16384) = 0.8 %), so memory no longer grows with the file.
"""

from __future__ import annotations

import hashlib
import math

EXACT_LIMIT = 100_000
_PRECISION = 14  # 2**14 registers
_REGISTERS = 1 << _PRECISION
_REST_BITS = 64 - _PRECISION
_REST_MASK = (1 << _REST_BITS) - 1
_ALPHA = 0.7213 / (1 + 1.079 / _REGISTERS)


def _hash64(value: str) -> int:
    """64 well-mixed bits of ``value``.

    Fingerprints are hex HMAC-SHA256 digests, uniform already: their first 16 hex digits
    are used as they are; anything else is hashed.
    """
    if len(value) == 64:
        try:
            return int(value[:16], 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "big")


class DistinctCounter:
    """How many different values were added: exact up to a limit, then a ~1 % estimate."""

    def __init__(self, exact_limit: int | None = None) -> None:
        self._exact_limit = EXACT_LIMIT if exact_limit is None else exact_limit
        self._exact: set[str] | None = set()
        self._registers = bytearray()

    @property
    def estimated(self) -> bool:
        """Whether the count is a sketch's estimate rather than exact."""
        return self._exact is None

    def add(self, value: str) -> None:
        """Count ``value`` (again: adding a value twice counts it once)."""
        self.update([value])

    def update(self, values: list[str]) -> None:
        """``add`` each of ``values``, in bulk (the summary adds a chunk's findings at once)."""
        exact = self._exact
        if exact is not None:
            exact.update(values)
            if len(exact) > self._exact_limit:
                self._to_sketch(exact)
            return
        observe = self._observe
        for value in values:
            observe(_hash64(value))

    def count(self) -> int:
        """The number of distinct values added."""
        if self._exact is not None:
            return len(self._exact)
        registers = self._registers
        estimate = _ALPHA * _REGISTERS * _REGISTERS / sum(2.0 ** -r for r in registers)
        zeros = registers.count(0)
        if estimate <= 2.5 * _REGISTERS and zeros:  # small range: linear counting
            estimate = _REGISTERS * math.log(_REGISTERS / zeros)
        return round(estimate)

    def merged_count(self, others: list[DistinctCounter]) -> int:
        """Distinct values over this counter and ``others`` together."""
        counters = [self, *others]
        if all(counter._exact is not None for counter in counters):
            return len(set().union(*(counter._exact or () for counter in counters)))
        union = DistinctCounter()
        union._to_sketch(set())
        for counter in counters:
            if counter._exact is not None:
                union.update(list(counter._exact))
            else:
                union._registers = bytearray(map(max, union._registers, counter._registers))
        return union.count()

    def _to_sketch(self, exact: set[str]) -> None:
        self._exact = None
        self._registers = bytearray(_REGISTERS)
        for value in exact:
            self._observe(_hash64(value))

    def _observe(self, bits: int) -> None:
        index = bits >> _REST_BITS
        # Rank: position of the first 1 in the remaining bits (all zero: one past them).
        rank = _REST_BITS - (bits & _REST_MASK).bit_length() + 1
        if rank > self._registers[index]:
            self._registers[index] = rank
