"""Synthetic alerts for the incident tests: Synth identifiers, real scanner, real alert builder.

Alerts go through the same code as in the pipeline (scan → summarize → build_alert), so their
fingerprints are the ones a watch-list import produces for the same values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from detectors import Fingerprinter, Scanner, load_rules, summarize
from detectors.synthetic import Synth
from streams.alerts import build_alert
from streams.envelope import FeedEnvelope

KEY = Fingerprinter(b"unit-test-key-0123456789abcdef!!", key_id="t1")


def dump_rows(seed: int, n: int) -> list[tuple[str, str, str]]:
    """N synthetic (name, citizen id, phone) records."""
    synth = Synth(seed)
    return [(synth.name(), synth.citizen_id(), synth.mobile()) for _ in range(n)]


def dump_text(rows: Sequence[tuple[str, str, str]], header: str = "Ho ten | CCCD | SDT") -> str:
    """A leaked table as a paste would show it."""
    return "\n".join([header, *(f"{name} | {cid} | {phone}" for name, cid, phone in rows)])


AlertFactory = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def scanner() -> Scanner:
    return Scanner(load_rules(), KEY)


@pytest.fixture(scope="session")
def make_alert(scanner: Scanner) -> AlertFactory:
    def make(text: str, *, site: str = "pastebin.com", item_id: str = "p1",
             fetched_at: str = "2025-01-01T00:00:00Z", feed: str = "paste") -> dict[str, Any]:
        findings = scanner.scan(text)
        summary = summarize(text, findings)
        envelope = FeedEnvelope(feed=feed, site=site, item_id=item_id,
                                url=f"https://{site}/{item_id}", author=None, title="dump",
                                published_at=None, fetched_at=fetched_at, content=text,
                                content_encoding=None, meta={})
        return build_alert(envelope, summary, findings,
                           content_sha256=hashlib.sha256(text.encode()).hexdigest(),
                           content_bytes=len(text.encode()), detected_at=fetched_at,
                           rules_version="test", key_id=KEY.key_id)
    return make


class Dumps:
    """Test data helpers as a fixture (importlib mode cannot import conftest modules)."""

    rows = staticmethod(dump_rows)
    text = staticmethod(dump_text)


@pytest.fixture(scope="session")
def dumps() -> type[Dumps]:
    return Dumps


@pytest.fixture(scope="session")
def key() -> Fingerprinter:
    """The fingerprinter the synthetic alerts were made with."""
    return KEY
