"""What every source shares: the poll contract, the poll context and envelope building.

A source never talks to Kafka or writes checkpoints. It reads the committed ``state`` it is
given and yields :class:`Emission` s, each pairing envelopes with the state that is true once
they are delivered; the runner delivers, then commits. A source that is interrupted halfway
is simply polled again from the last committed state.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from streams.collectors.config import SourceConfig, option_reader
from streams.collectors.fetch import HttpFetcher
from streams.envelope import FeedEnvelope


def utc_now_iso() -> str:
    """Return the current time as ISO-8601 UTC, the format of ``fetched_at``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Emission:
    """Envelopes to deliver and the source state to commit once they are delivered.

    ``state`` None leaves the committed state unchanged. ``seen_ids`` are remembered as
    delivered without sending anything (a listed paste that vanished before it was fetched).
    """

    envelopes: list[FeedEnvelope] = field(default_factory=list)
    state: dict[str, Any] | None = None
    seen_ids: tuple[str, ...] = ()


@dataclass
class PollContext:
    """What the runner lends a source during one poll."""

    is_seen: Callable[[str], bool]
    error: Callable[[str], None]
    stop_event: threading.Event

    def stopping(self) -> bool:
        """Whether the collector asked to stop; long polls check it between items."""
        return self.stop_event.is_set()


class Source:
    """Base class of sources; subclasses set ``source_type`` and implement :meth:`poll`."""

    source_type: ClassVar[str] = ""

    def __init__(self, config: SourceConfig, *, stop_event: threading.Event | None = None):
        self.config = config
        self.name = config.name
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.options = self.parse_options(config, f"source '{config.name}'")

    @classmethod
    def parse_options(cls, config: SourceConfig, where: str) -> Any:
        """Validate the type-specific options; raise CollectorConfigError naming the field."""
        reader = option_reader(config, where)
        reader.check_unknown()
        return None

    @property
    def poll_interval(self) -> float:
        """Seconds between polls."""
        return self.config.poll_interval_seconds

    def start(self) -> None:
        """Acquire resources that must exist before the first poll (listening sockets)."""

    def poll(self, state: dict[str, Any], ctx: PollContext) -> Iterator[Emission]:
        """Yield emissions for everything new since ``state``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources."""

    def make_fetcher(self) -> HttpFetcher:
        """Return an HTTP fetcher with this source's politeness settings, interrupted by stop."""
        return HttpFetcher(self.config.http, wait=self.stop_event.wait)

    def envelope(
        self,
        *,
        item_id: str,
        content: str | bytes,
        url: str | None = None,
        author: str | None = None,
        title: str | None = None,
        published_at: str | None = None,
        meta: dict[str, Any] | None = None,
        site: str | None = None,
        truncated: bool = False,
        original_bytes: int | None = None,
        fetched_at: str | None = None,
    ) -> FeedEnvelope:
        """Build an envelope, enforcing the size cap: oversize items are cut and flagged."""
        return build_envelope(
            self.config,
            item_id=item_id,
            content=content,
            url=url,
            author=author,
            title=title,
            published_at=published_at,
            meta=meta,
            site=site,
            truncated=truncated,
            original_bytes=original_bytes,
            fetched_at=fetched_at,
        )


def _cut_utf8(text: str, limit: int) -> tuple[str, int]:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text, len(encoded)
    # errors="ignore" drops a multi-byte character split by the cut instead of mangling it.
    return encoded[:limit].decode("utf-8", errors="ignore"), len(encoded)


def build_envelope(
    config: SourceConfig,
    *,
    item_id: str,
    content: str | bytes,
    url: str | None = None,
    author: str | None = None,
    title: str | None = None,
    published_at: str | None = None,
    meta: dict[str, Any] | None = None,
    site: str | None = None,
    truncated: bool = False,
    original_bytes: int | None = None,
    fetched_at: str | None = None,
) -> FeedEnvelope:
    """Build a source's envelope: text stays text, bytes become base64, both capped in size.

    Items over ``max_content_bytes`` are never dropped: they are cut, and ``meta.truncated``
    and ``meta.original_bytes`` tell the analyst the item was bigger.
    """
    limit = config.max_content_bytes
    encoding = None
    if isinstance(content, bytes):
        size = len(content)
        if size > limit:
            content = content[:limit]
            truncated = True
        original = max(size, original_bytes or 0)
        content = base64.b64encode(content).decode("ascii")
        encoding = "base64"
    else:
        content, size = _cut_utf8(content, limit)
        truncated = truncated or size > limit
        original = max(size, original_bytes or 0)
    full_meta: dict[str, Any] = {"source": config.name, **(meta or {}), "truncated": truncated}
    if truncated:
        full_meta["original_bytes"] = original
    return FeedEnvelope(
        feed=config.feed,
        site=site or config.site,
        item_id=item_id,
        url=url,
        author=author,
        title=title,
        published_at=published_at,
        fetched_at=fetched_at or utc_now_iso(),
        content=content,
        content_encoding=encoding,
        meta=full_meta,
    )


def dotted_get(data: Any, path: str) -> Any:
    """Look up ``a.b.0.c`` in nested dicts/lists; None when any step is missing."""
    if not path:
        return data
    current = data
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current
