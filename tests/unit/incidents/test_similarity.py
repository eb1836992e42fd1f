from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.incidents.similarity import (
    BANDS,
    SAMPLE_SIZE,
    band_keys,
    bottom_k,
    estimate_distinct,
    minhash_signature,
    sample_jaccard,
)


def fps(prefix: str, n: int) -> list[str]:
    return [hashlib.sha256(f"{prefix}-{i}".encode()).hexdigest() for i in range(n)]


def test_signature_is_deterministic_and_order_free():
    items = fps("a", 50)
    assert minhash_signature(items) == minhash_signature(list(reversed(items)))
    assert minhash_signature([]) == ()
    assert len(band_keys(minhash_signature(items))) == BANDS


def test_near_duplicates_share_a_band_and_strangers_do_not():
    base = fps("a", 200)
    repost = base[:190] + fps("b", 10)  # Jaccard 190/210 ≈ 0.90
    other = fps("c", 200)
    keys = set(band_keys(minhash_signature(base)))
    assert keys & set(band_keys(minhash_signature(repost)))
    assert not keys & set(band_keys(minhash_signature(other)))


def test_sample_jaccard_is_exact_for_small_sets():
    a, b = fps("a", 40), fps("a", 50)[10:]  # overlap 30 of 50
    assert sample_jaccard(bottom_k(a), bottom_k(b)) == 30 / 50
    assert sample_jaccard(bottom_k(a), []) == 0.0


def test_sample_jaccard_estimates_large_sets():
    a = fps("x", 3000)
    b = a[:2700] + fps("y", 300)  # 2700 / 3300 ≈ 0.818
    estimate = sample_jaccard(bottom_k(a), bottom_k(b))
    assert abs(estimate - 2700 / 3300) < 0.08


def test_estimate_distinct_exact_below_k_and_close_above():
    assert estimate_distinct(bottom_k(fps("a", 100))) == 100
    big = estimate_distinct(bottom_k(fps("a", 20000)))
    assert len(bottom_k(fps("a", 20000))) == SAMPLE_SIZE
    assert 16000 < big < 24000


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=300, unique=True))
def test_a_set_is_identical_to_itself(values):
    items = [hashlib.sha256(str(v).encode()).hexdigest() for v in values]
    assert sample_jaccard(bottom_k(items), bottom_k(items)) == 1.0
    assert band_keys(minhash_signature(items)) == band_keys(minhash_signature(items[::-1]))
