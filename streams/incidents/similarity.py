"""Set similarity of identifier fingerprints: MinHash + LSH to find candidates, bottom-k to confirm.

A repost of a dump is rarely byte-identical (a new header, a few rows cut, another order), but
it leaks the same people: the sets of keyed fingerprints overlap almost entirely. Comparing an
alert with every incident would be a scan; instead each set gets a MinHash signature whose bands
become table keys, so finding "incidents that probably share most identifiers" is a handful of
key look-ups. Candidates are then confirmed with a Jaccard index computed on bottom-k samples
(the k smallest fingerprints), which is exact for sets of up to k fingerprints and a consistent
estimate above: the same k smallest values are kept whichever site the dump came from.

Fingerprints are HMAC-SHA256 hex strings, so their leading 64 bits are already uniformly
random: no further hashing is needed before the permutations. Everything here is deterministic
across processes and restarts (fixed constants, no Python ``hash()``), because band keys are
stored in Kafka-backed tables and must mean the same thing to the next worker.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Iterable

NUM_PERMUTATIONS = 64
# 16 bands of 4 rows: a pair with Jaccard 0.8 shares at least one band with probability
# 1 - (1 - 0.8**4)**16 ≈ 0.9998; at 0.3 only ≈ 0.12, so few candidates need confirming.
BANDS = 16
ROWS_PER_BAND = NUM_PERMUTATIONS // BANDS
SAMPLE_SIZE = 256
# Stored fingerprints are shortened to 64 bits: collisions among a few thousand values are
# ~1e-13 likely, and the state stays small enough for one Kafka message per incident.
SHORT_HEX = 16

_MERSENNE_61 = (1 << 61) - 1
_MASK_64 = (1 << 64) - 1
# Fixed seed, not secrecy: signatures must be stable across processes and restarts.
_rng = random.Random(0x524F5249)  # noqa: S311
_PERMUTATIONS: tuple[tuple[int, int], ...] = tuple(
    (_rng.randrange(1, _MERSENNE_61), _rng.randrange(0, _MERSENNE_61))
    for _ in range(NUM_PERMUTATIONS)
)


def short_fingerprint(fingerprint: str) -> str:
    """The first 64 bits of a hex fingerprint, the form kept in incident state."""
    return fingerprint[:SHORT_HEX].lower()


def _as_int(fingerprint: str) -> int | None:
    try:
        return int(fingerprint[:SHORT_HEX], 16) & _MASK_64
    except ValueError:
        return None


def minhash_signature(fingerprints: Iterable[str]) -> tuple[int, ...]:
    """MinHash signature of a set of hex fingerprints; empty for an empty set."""
    values = {v for v in map(_as_int, fingerprints) if v is not None}
    if not values:
        return ()
    return tuple(min((a * v + b) % _MERSENNE_61 for v in values) for a, b in _PERMUTATIONS)


def band_keys(signature: tuple[int, ...]) -> list[str]:
    """One short key per LSH band; two sets sharing a key are candidates for a match."""
    if len(signature) != NUM_PERMUTATIONS:
        return []
    keys = []
    for band in range(BANDS):
        rows = signature[band * ROWS_PER_BAND:(band + 1) * ROWS_PER_BAND]
        digest = hashlib.blake2b(repr(rows).encode("ascii"), digest_size=8).hexdigest()
        keys.append(f"{band:02d}:{digest}")
    return keys


def bottom_k(fingerprints: Iterable[str], k: int = SAMPLE_SIZE) -> list[str]:
    """The k smallest short fingerprints, sorted: a sample that two copies of a set agree on."""
    shorts = {short_fingerprint(f) for f in fingerprints if _as_int(f) is not None}
    return sorted(shorts)[:k]


def sample_jaccard(a: Collection[str], b: Collection[str], k: int = SAMPLE_SIZE) -> float:
    """Jaccard index of two sets from their bottom-k samples (exact when both have <= k values).

    The estimator looks at the k smallest values of the union and counts those present in
    both samples; a value among the union's k smallest is in a set's sample iff it is in the
    set, which is what makes it unbiased.
    """
    if not a or not b:
        return 0.0
    set_a, set_b = set(a), set(b)
    union_sample = sorted(set_a | set_b)[:k]
    # A full sample (k values) says nothing about its set above its largest value: compare
    # only below the lower of the two ceilings. A sample with fewer values is the whole set.
    ceilings = [max(s) for s in (set_a, set_b) if len(s) >= k]
    considered = [v for v in union_sample if not ceilings or v <= min(ceilings)]
    if not considered:
        return 0.0
    both = sum(1 for v in considered if v in set_a and v in set_b)
    return both / len(considered)


def estimate_distinct(sample: Collection[str], k: int = SAMPLE_SIZE) -> int:
    """Distinct-count estimate from a bottom-k sample (KMV): exact below k values."""
    if len(sample) < k:
        return len(sample)
    kth = int(max(sample), 16)
    if kth == 0:
        return len(sample)
    return int((k - 1) * (1 << (4 * SHORT_HEX)) / kth)
