"""Masking and fingerprints: what may leave the scanner."""

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.privacy import Fingerprinter, mask_value


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("079203012345", "079******345"),
        ("0912345678", "09******78"),
        ("024567891", "02*****91"),
        ("C1234567", "C1****67"),
        ("nguyenvana92@gmail.com", "n***********@gmail.com"),
        ("abc@x.vn", "***@x.vn"),
    ],
)
def test_mask_examples(value, masked):
    assert mask_value(value) == masked


@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=1, max_size=40))
def test_masking_never_reveals_more_than_three_each_side(value):
    masked = mask_value(value)
    assert len(masked) == len(value)
    shown = [i for i, c in enumerate(masked) if c != "*"]
    assert len(shown) <= 6
    assert len(shown) <= len(value) // 2
    for i in shown:
        assert masked[i] == value[i]
        assert i < 3 or i >= len(value) - 3


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.", min_size=1, max_size=30))
def test_email_mask_hides_the_mailbox(local):
    masked = mask_value(f"{local}@example.vn")
    mailbox = masked.split("@")[0]
    assert sum(c != "*" for c in mailbox) <= 1
    assert masked.endswith("@example.vn")


def test_fingerprint_is_keyed_and_deterministic():
    one = Fingerprinter(b"k" * 32)
    other = Fingerprinter(b"j" * 32)
    assert one.fingerprint("079203012345") == one.fingerprint("079203012345")
    assert one.fingerprint("079203012345") != other.fingerprint("079203012345")
    assert "079203012345" not in one.fingerprint("079203012345")


@given(key=st.binary(min_size=0, max_size=200), value=st.text(max_size=40))
def test_fingerprint_is_standard_hmac_sha256(key, value):
    # The precomputed inner/outer states must give exactly RFC 2104 HMAC-SHA256, for keys
    # shorter than, equal to and longer than the 64-byte block: watch-lists and other
    # tools recompute fingerprints with any HMAC library.
    expected = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    assert Fingerprinter(key).fingerprint(value) == expected


def test_ephemeral_keys_differ_between_runs():
    assert Fingerprinter.ephemeral_key().key != Fingerprinter.ephemeral_key().key
