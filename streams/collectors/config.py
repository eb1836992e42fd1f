"""Collector configuration: one YAML file, validated completely before anything is fetched.

A mistake in a source should stop the process at start-up with a message naming the source and
the field, not surface hours later as a crash in the middle of a poll.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from streams.envelope import FEED_TOPICS

# What `roriwatch collect KIND` runs, and which source types belong to each kind.
SOURCE_TYPES_BY_KIND: dict[str, tuple[str, ...]] = {
    "paste": ("pastebin", "paste_listing"),
    "forum": ("forum_feed", "forum_thread"),
    "telegram": ("telegram_export",),
    "log": ("file_tail", "syslog"),
}
COLLECTOR_KINDS: tuple[str, ...] = tuple(SOURCE_TYPES_BY_KIND)

# Telegram has no topic of its own: chat messages are forum-like posts.
FEED_BY_KIND: dict[str, str] = {
    "paste": "paste",
    "forum": "forum",
    "telegram": "forum",
    "log": "log",
}

# Source names become Prometheus label values and checkpoint file names, so they must be short
# slugs: this also guarantees a URL or a piece of content can never end up as a label.
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")

# Kafka's default max.message.bytes is about 1 MiB; JSON escaping and meta need headroom.
MAX_CONTENT_BYTES_LIMIT = 900_000
DEFAULT_MAX_CONTENT_BYTES = 512 * 1024


class CollectorConfigError(ValueError):
    """The collector configuration is unusable; the message names the source and field."""


@dataclass(frozen=True)
class HttpSettings:
    """How a source talks HTTP: politeness and robustness knobs, overridable per source."""

    user_agent: str = "roriwatch-collector/0.1"
    timeout_seconds: float = 20.0
    rate_limit_per_second: float = 1.0
    max_retries: int = 4
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    retry_after_max_seconds: float = 900.0
    proxies: dict[str, str] = field(default_factory=dict)
    verify_tls: bool = True
    ca_file: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DedupeSettings:
    """Which duplicates are dropped before producing, and how much history is remembered."""

    by_item_id: bool = True
    by_content: bool = True
    window: int = 5000


@dataclass(frozen=True)
class SourceConfig:
    """One configured source: the common fields plus the type-specific ``options``."""

    name: str
    type: str
    kind: str
    site: str
    poll_interval_seconds: float
    max_content_bytes: int
    http: HttpSettings
    dedupe: DedupeSettings
    options: dict[str, Any]
    config_dir: Path | None = None

    def resolve_path(self, value: str) -> Path:
        """Resolve a path option: relative paths are relative to the config file."""
        path = Path(value).expanduser()
        if not path.is_absolute() and self.config_dir is not None:
            path = self.config_dir / path
        return path

    @property
    def feed(self) -> str:
        """Envelope feed kind (and therefore topic) this source writes to."""
        return FEED_BY_KIND[self.kind]


@dataclass(frozen=True)
class KafkaSettings:
    """Where envelopes are produced; ``bootstrap`` may be overridden on the command line."""

    bootstrap: str | None = None
    topics: dict[str, str] = field(default_factory=lambda: dict(FEED_TOPICS))
    client_id: str = "roriwatch-collector"
    acks_timeout_seconds: float = 30.0
    enable_idempotence: bool = True
    compression_type: str | None = None


@dataclass(frozen=True)
class MetricsSettings:
    """Where the Prometheus endpoint listens; ``port: null`` leaves it off."""

    port: int | None = None
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class CollectorConfig:
    """The whole file: shared settings and the list of sources."""

    state_dir: Path
    kafka: KafkaSettings
    metrics: MetricsSettings
    sources: tuple[SourceConfig, ...]

    def sources_for(self, kind: str) -> tuple[SourceConfig, ...]:
        """Return the sources that ``roriwatch collect KIND`` should run."""
        return tuple(source for source in self.sources if source.kind == kind)


# --------------------------------------------------------------------------- helpers


class _Fields:
    """Reads one mapping, remembering which keys were used so typos can be reported."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise CollectorConfigError(f"{where}: must be a mapping")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def fail(self, key: str, problem: str) -> CollectorConfigError:
        return CollectorConfigError(f"{self.where}: field '{key}': {problem}")

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self.get(key, default)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "must be a number")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum:g}")
        return float(value)

    def integer(self, key: str, default: int | None, *, minimum: int = 0) -> Any:
        value = self.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "must be an integer")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def str_map(self, key: str) -> dict[str, str]:
        value = self.get(key, {}) or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.fail(key, "must be a mapping of strings to strings")
        return dict(value)

    def str_list(self, key: str, *, required: bool = False) -> list[str]:
        value = self.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "must be a string or a list of strings")
        if required and not value:
            raise self.fail(key, "must not be empty")
        return list(value)

    def url(self, key: str, *, required: bool = False, schemes: tuple[str, ...] = ()) -> Any:
        value = self.text(key, required=required)
        if value is None:
            return None
        allowed = schemes or ("http", "https")
        parts = urlsplit(value)
        if parts.scheme not in allowed or not parts.netloc:
            raise self.fail(key, f"must be a {'/'.join(allowed)} URL")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.get(key, default)
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}")
        return value

    def check_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise CollectorConfigError(
                f"{self.where}: unknown field(s) {', '.join(unknown)} (check the spelling)"
            )


_HTTP_KEYS = (
    "user_agent",
    "timeout_seconds",
    "rate_limit_per_second",
    "max_retries",
    "backoff_initial_seconds",
    "backoff_max_seconds",
    "retry_after_max_seconds",
    "proxy",
    "proxies",
    "verify_tls",
    "ca_file",
    "headers",
)


def _http_settings(data: Any, where: str, base: HttpSettings) -> HttpSettings:
    if data is None:
        return base
    fields = _Fields(data, where)
    proxies = dict(base.proxies)
    proxy = fields.url("proxy", schemes=("http", "https"))
    if proxy:
        proxies = {"http": proxy, "https": proxy}
    explicit = fields.str_map("proxies")
    for scheme, url in explicit.items():
        if scheme not in ("http", "https"):
            raise fields.fail("proxies", "keys must be http or https")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise fields.fail("proxies", "values must be http(s) proxy URLs")
    proxies.update(explicit)
    headers = dict(base.headers)
    headers.update(fields.str_map("headers"))
    settings = HttpSettings(
        user_agent=fields.text("user_agent", base.user_agent),
        timeout_seconds=fields.number("timeout_seconds", base.timeout_seconds, minimum=0.1),
        rate_limit_per_second=fields.number(
            "rate_limit_per_second", base.rate_limit_per_second, minimum=0.0001
        ),
        max_retries=fields.integer("max_retries", base.max_retries),
        backoff_initial_seconds=fields.number(
            "backoff_initial_seconds", base.backoff_initial_seconds
        ),
        backoff_max_seconds=fields.number("backoff_max_seconds", base.backoff_max_seconds),
        retry_after_max_seconds=fields.number(
            "retry_after_max_seconds", base.retry_after_max_seconds
        ),
        proxies=proxies,
        verify_tls=fields.flag("verify_tls", base.verify_tls),
        ca_file=fields.text("ca_file", base.ca_file),
        headers=headers,
    )
    fields.check_unknown()
    return settings


def _dedupe_settings(data: Any, where: str, base: DedupeSettings) -> DedupeSettings:
    if data is None:
        return base
    fields = _Fields(data, where)
    settings = DedupeSettings(
        by_item_id=fields.flag("by_item_id", base.by_item_id),
        by_content=fields.flag("by_content", base.by_content),
        window=fields.integer("window", base.window, minimum=1),
    )
    fields.check_unknown()
    return settings


_COMMON_SOURCE_KEYS = (
    "name",
    "type",
    "site",
    "poll_interval_seconds",
    "max_content_bytes",
    "http",
    "dedupe",
)


def _source_config(
    data: Any,
    index: int,
    *,
    http: HttpSettings,
    poll_interval: float,
    max_content: int,
    config_dir: Path | None,
) -> SourceConfig:
    where = f"sources[{index}]"
    if isinstance(data, Mapping) and isinstance(data.get("name"), str):
        where = f"sources[{index}] ({data['name']})"
    fields = _Fields(data, where)
    name = fields.text("name", required=True)
    if not _SOURCE_NAME.match(name):
        raise fields.fail(
            "name",
            "must be a short slug (lowercase letters, digits, '_', '.', '-'; at most 63 "
            "characters) because it is used as a metric label and a checkpoint file name",
        )
    all_types = tuple(t for types in SOURCE_TYPES_BY_KIND.values() for t in types)
    source_type = fields.choice("type", "", all_types)
    kind = next(k for k, types in SOURCE_TYPES_BY_KIND.items() if source_type in types)
    # Logs default to keeping repeated lines apart: a repeated log line is a new event, and the
    # file position already prevents re-sending.
    dedupe_base = DedupeSettings(by_item_id=kind != "log", by_content=kind != "log")
    max_bytes = fields.integer("max_content_bytes", max_content, minimum=1024)
    if max_bytes > MAX_CONTENT_BYTES_LIMIT:
        raise fields.fail("max_content_bytes", f"must be at most {MAX_CONTENT_BYTES_LIMIT}")
    config = SourceConfig(
        name=name,
        type=source_type,
        kind=kind,
        site=fields.text("site", name),
        poll_interval_seconds=fields.number("poll_interval_seconds", poll_interval, minimum=0.1),
        max_content_bytes=max_bytes,
        http=_http_settings(fields.get("http"), f"{where}.http", http),
        dedupe=_dedupe_settings(fields.get("dedupe"), f"{where}.dedupe", dedupe_base),
        options={k: v for k, v in fields.data.items() if k not in _COMMON_SOURCE_KEYS},
        config_dir=config_dir,
    )
    # Type-specific options are validated by the source class; importing here would be circular.
    from streams.collectors.sources import validate_source_options

    validate_source_options(config, where)
    return config


def parse_config(
    data: Any, *, origin: str = "config", config_dir: Path | None = None
) -> CollectorConfig:
    """Validate an already-parsed YAML document; ``origin`` prefixes error messages.

    ``config_dir`` anchors relative paths (state_dir, export folders, log globs).
    """
    fields = _Fields(data, origin)
    state_dir = fields.text("state_dir", required=True)
    kafka_fields = _Fields(fields.get("kafka", {}) or {}, f"{origin}: kafka")
    topics = dict(FEED_TOPICS)
    configured_topics = kafka_fields.str_map("topics")
    for feed_kind in configured_topics:
        if feed_kind not in FEED_TOPICS:
            raise kafka_fields.fail("topics", f"keys must be among {', '.join(FEED_TOPICS)}")
    topics.update(configured_topics)
    kafka = KafkaSettings(
        bootstrap=kafka_fields.text("bootstrap"),
        topics=topics,
        client_id=kafka_fields.text("client_id", "roriwatch-collector"),
        acks_timeout_seconds=kafka_fields.number("acks_timeout_seconds", 30.0, minimum=1.0),
        enable_idempotence=kafka_fields.flag("enable_idempotence", True),
        compression_type=kafka_fields.text("compression_type"),
    )
    kafka_fields.check_unknown()
    metrics_fields = _Fields(fields.get("metrics", {}) or {}, f"{origin}: metrics")
    metrics = MetricsSettings(
        port=metrics_fields.integer("port", None),
        address=metrics_fields.text("address", "127.0.0.1"),
    )
    metrics_fields.check_unknown()
    http = _http_settings(fields.get("http"), f"{origin}: http", HttpSettings())
    poll_interval = fields.number("poll_interval_seconds", 60.0, minimum=0.1)
    max_content = fields.integer("max_content_bytes", DEFAULT_MAX_CONTENT_BYTES, minimum=1024)
    if max_content > MAX_CONTENT_BYTES_LIMIT:
        raise fields.fail("max_content_bytes", f"must be at most {MAX_CONTENT_BYTES_LIMIT}")
    raw_sources = fields.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise fields.fail("sources", "must be a non-empty list of sources")
    sources = tuple(
        _source_config(
            item,
            index,
            http=http,
            poll_interval=poll_interval,
            max_content=max_content,
            config_dir=config_dir,
        )
        for index, item in enumerate(raw_sources)
    )
    seen: set[str] = set()
    for source in sources:
        if source.name in seen:
            raise CollectorConfigError(
                f"{origin}: source name '{source.name}' is used twice; names key checkpoints "
                "and metrics, so they must be unique"
            )
        seen.add(source.name)
    fields.check_unknown()
    state_path = Path(state_dir).expanduser()
    if not state_path.is_absolute() and config_dir is not None:
        state_path = config_dir / state_path
    return CollectorConfig(state_dir=state_path, kafka=kafka, metrics=metrics, sources=sources)


def load_config(path: str | Path) -> CollectorConfig:
    """Read and validate a collector YAML file; relative ``state_dir`` is relative to the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CollectorConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CollectorConfigError(f"{path}: not valid YAML{where}") from None
    return parse_config(data, origin=str(path), config_dir=path.parent.resolve())


def option_reader(config: SourceConfig, where: str) -> _Fields:
    """Give source classes the same validated-field reader for their own options."""
    reader = _Fields(config.options, where)
    reader.used.update(_COMMON_SOURCE_KEYS)
    return reader
