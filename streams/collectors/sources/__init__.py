"""Source types by name; the configuration's ``type`` field picks one."""

from __future__ import annotations

import threading

from streams.collectors.config import SourceConfig
from streams.collectors.sources.base import Emission, PollContext, Source, build_envelope
from streams.collectors.sources.forum import ForumFeedSource, ForumThreadSource
from streams.collectors.sources.logs import FileTailSource
from streams.collectors.sources.paste import PastebinSource, PasteListingSource
from streams.collectors.sources.syslog import SyslogSource
from streams.collectors.sources.telegram import TelegramExportSource

SOURCE_CLASSES: dict[str, type[Source]] = {
    cls.source_type: cls
    for cls in (
        PastebinSource,
        PasteListingSource,
        ForumFeedSource,
        ForumThreadSource,
        TelegramExportSource,
        FileTailSource,
        SyslogSource,
    )
}

__all__ = [
    "SOURCE_CLASSES",
    "Emission",
    "PollContext",
    "Source",
    "build_envelope",
    "build_source",
    "validate_source_options",
]


def validate_source_options(config: SourceConfig, where: str) -> None:
    """Check a source's type-specific options at load time (raises CollectorConfigError)."""
    SOURCE_CLASSES[config.type].parse_options(config, where)


def build_source(config: SourceConfig, *, stop_event: threading.Event | None = None) -> Source:
    """Instantiate the source class named by ``config.type``."""
    return SOURCE_CLASSES[config.type](config, stop_event=stop_event)
