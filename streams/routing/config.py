"""Route configuration: which incidents go to whom, validated when it loads.

A route is a filter (severity, detectors, watch-lists, feeds, sites), a target (generic JSON
webhook, Slack, Microsoft Teams, Telegram bot, e-mail over SMTP), a rate limit and a retry
policy. All criteria of a route must hold; within one criterion any listed value will do. Errors
name the file, the route and the field, at start-up, never in the middle of a stream.

Secrets (webhook URLs, bot tokens, SMTP passwords) may be given inline or, better, as
``*_file`` paths to files that hold them (mounted secrets), so the routes file itself can be
reviewed and committed. See samples/routes.yaml and docs/incidents.md.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detectors.summary import SEVERITY_RANK

TARGET_TYPES = ("webhook", "slack", "teams", "telegram", "email")
ROUTE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
DEFAULT_TELEGRAM_API = "https://api.telegram.org"


class RouteConfigError(ValueError):
    """The routes file is invalid; the message names the file, the route and the field."""


@dataclass(frozen=True)
class RateLimit:
    """Token bucket: ``burst`` notifications at once, refilled at ``per_minute``."""

    per_minute: float = 30.0
    burst: int = 10


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and exponential backoff for one notification."""

    attempts: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def delay_s(self, retry_number: int) -> float:
        """Delay before retry ``retry_number`` (1-based), before jitter."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** (retry_number - 1))


@dataclass(frozen=True)
class Target:
    """Where a route delivers; which fields matter depends on ``type``."""

    type: str
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    chat_id: str | None = None
    token: str | None = field(default=None, repr=False)
    api_base: str = DEFAULT_TELEGRAM_API
    smtp_host: str | None = None
    smtp_port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    timeout_s: float = 10.0

    def describe(self) -> str:
        """A log-safe description: the type and host only, never a URL path or token."""
        if self.type == "email":
            return f"email via {self.smtp_host}:{self.smtp_port}"
        if self.type == "telegram":
            return f"telegram via {_host(self.api_base)}"
        return f"{self.type} to {_host(self.url or '')}"


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit("@", 1)[-1] or "?"


@dataclass(frozen=True)
class Criteria:
    """What an incident must have for a route to take it; empty tuples match anything."""

    min_severity: str = "low"
    detectors: tuple[str, ...] = ()
    watchlists: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()

    def matches(self, incident: Mapping[str, Any]) -> bool:
        """Whether an incident (its state or ES document as a mapping) passes every criterion."""
        if int(incident.get("severity_rank") or 0) < SEVERITY_RANK[self.min_severity]:
            return False
        if self.detectors and not set(self.detectors) & set(incident.get("detectors") or ()):
            return False
        if self.watchlists:
            present = set(incident.get("watchlists") or ())
            if "*" in self.watchlists:
                if not present:
                    return False
            elif not set(self.watchlists) & present:
                return False
        if self.feeds and not set(self.feeds) & set(incident.get("feeds") or ()):
            return False
        if self.sites:
            sites = [str(s).lower() for s in incident.get("sites") or ()]
            if not any(fnmatch.fnmatchcase(site, pattern.lower())
                       for site in sites for pattern in self.sites):
                return False
        return True


@dataclass(frozen=True)
class Route:
    """One route: filter, target, limits."""

    name: str
    criteria: Criteria
    target: Target
    rate_limit: RateLimit = RateLimit()
    retry: RetryPolicy = RetryPolicy()


@dataclass(frozen=True)
class RoutesConfig:
    """Every route in force; empty when no routes file is configured."""

    routes: tuple[Route, ...] = ()

    @property
    def names(self) -> list[str]:
        """Route names (bounded: they are metric labels)."""
        return [route.name for route in self.routes]


# --- parsing ------------------------------------------------------------------------------


def _str_list(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RouteConfigError(f"{where}: field '{key}' must be a list of non-empty strings")
    return tuple(value)


def _number(data: Mapping[str, Any], key: str, default: float, where: str, *,
            minimum: float = 0.0) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise RouteConfigError(f"{where}: field '{key}' must be a number >= {minimum}")
    return float(value)


def _mapping(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {}) or {}
    if not isinstance(value, Mapping):
        raise RouteConfigError(f"{where}: field '{key}' must be a mapping")
    return value


def _known(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RouteConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")


def _secret(data: Mapping[str, Any], key: str, where: str, base: Path) -> str | None:
    inline, path = data.get(key), data.get(f"{key}_file")
    if inline is not None and path is not None:
        raise RouteConfigError(f"{where}: give '{key}' or '{key}_file', not both")
    if path is not None:
        if not isinstance(path, str):
            raise RouteConfigError(f"{where}: field '{key}_file' must be a path")
        file = Path(path) if Path(path).is_absolute() else base / path
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RouteConfigError(f"{where}: field '{key}_file': cannot read {file} "
                                   f"({exc.strerror})") from None
    if inline is not None and not isinstance(inline, (str, int)):
        raise RouteConfigError(f"{where}: field '{key}' must be a string")
    return None if inline is None else str(inline)


def _rate_limit(data: Mapping[str, Any], default: RateLimit, where: str) -> RateLimit:
    if not data:
        return default
    _known(data, {"per_minute", "burst"}, f"{where} rate_limit")
    burst = data.get("burst", default.burst)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise RouteConfigError(f"{where}: field 'rate_limit.burst' must be an integer >= 1")
    return RateLimit(per_minute=_number(data, "per_minute", default.per_minute,
                                        f"{where} rate_limit", minimum=0.001), burst=burst)


def _retry(data: Mapping[str, Any], default: RetryPolicy, where: str) -> RetryPolicy:
    if not data:
        return default
    _known(data, {"attempts", "base_delay_s", "max_delay_s"}, f"{where} retry")
    attempts = data.get("attempts", default.attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 20:
        raise RouteConfigError(f"{where}: field 'retry.attempts' must be an integer 1..20")
    return RetryPolicy(attempts=attempts,
                       base_delay_s=_number(data, "base_delay_s", default.base_delay_s, where),
                       max_delay_s=_number(data, "max_delay_s", default.max_delay_s, where))


def _url(value: str | None, where: str, key: str = "url") -> str:
    if not value or not re.match(r"^https?://[^/\s]+", value):
        raise RouteConfigError(f"{where}: field '{key}' must be an http(s) URL")
    return value


_TARGET_FIELDS = {
    "webhook": {"url", "url_file", "headers"},
    "slack": {"url", "url_file"},
    "teams": {"url", "url_file"},
    "telegram": {"chat_id", "token", "token_file", "api_base"},
    "email": {"smtp_host", "smtp_port", "starttls", "ssl", "username", "password",
              "password_file", "from", "to"},
}


def _target(data: Mapping[str, Any], timeout_s: float, where: str, base: Path) -> Target:
    kind = data.get("type")
    if kind not in TARGET_TYPES:
        raise RouteConfigError(f"{where}: field 'target.type' must be one of "
                               f"{', '.join(TARGET_TYPES)}")
    where = f"{where} target"
    _known(data, {"type", "timeout_s"} | _TARGET_FIELDS[kind], where)
    timeout_s = _number(data, "timeout_s", timeout_s, where, minimum=0.1)
    if kind in ("webhook", "slack", "teams"):
        headers = _mapping(data, "headers", where)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise RouteConfigError(f"{where}: field 'headers' must map strings to strings")
        return Target(type=kind, url=_url(_secret(data, "url", where, base), where),
                      headers=tuple(sorted(headers.items())), timeout_s=timeout_s)
    if kind == "telegram":
        chat_id = data.get("chat_id")
        if not isinstance(chat_id, (str, int)) or isinstance(chat_id, bool) or chat_id == "":
            raise RouteConfigError(f"{where}: field 'chat_id' is required (a chat id or @name)")
        token = _secret(data, "token", where, base)
        if not token:
            raise RouteConfigError(f"{where}: field 'token' or 'token_file' is required")
        api_base = _url(str(data.get("api_base", DEFAULT_TELEGRAM_API)), where, "api_base")
        return Target(type=kind, chat_id=str(chat_id), token=token,
                      api_base=api_base.rstrip("/"), timeout_s=timeout_s)
    host = data.get("smtp_host")
    if not isinstance(host, str) or not host:
        raise RouteConfigError(f"{where}: field 'smtp_host' is required")
    port = data.get("smtp_port", 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RouteConfigError(f"{where}: field 'smtp_port' must be a port number")
    sender = data.get("from")
    if not isinstance(sender, str) or "@" not in sender:
        raise RouteConfigError(f"{where}: field 'from' must be an e-mail address")
    recipients = _str_list(data, "to", where)
    if not recipients or not all("@" in r for r in recipients):
        raise RouteConfigError(f"{where}: field 'to' must list e-mail addresses")
    for flag in ("starttls", "ssl"):
        if not isinstance(data.get(flag, False), bool):
            raise RouteConfigError(f"{where}: field '{flag}' must be true or false")
    username = data.get("username")
    if username is not None and not isinstance(username, str):
        raise RouteConfigError(f"{where}: field 'username' must be a string")
    return Target(type=kind, smtp_host=host, smtp_port=port,
                  starttls=bool(data.get("starttls", False)), ssl=bool(data.get("ssl", False)),
                  username=username, password=_secret(data, "password", where, base),
                  sender=sender, recipients=recipients, timeout_s=timeout_s)


def _criteria(data: Mapping[str, Any], where: str) -> Criteria:
    where = f"{where} match"
    _known(data, {"min_severity", "detectors", "watchlists", "feeds", "sites"}, where)
    severity = data.get("min_severity", "low")
    if severity not in SEVERITY_RANK:
        raise RouteConfigError(f"{where}: field 'min_severity' must be one of "
                               f"{', '.join(SEVERITY_RANK)}")
    return Criteria(min_severity=severity, detectors=_str_list(data, "detectors", where),
                    watchlists=_str_list(data, "watchlists", where),
                    feeds=_str_list(data, "feeds", where), sites=_str_list(data, "sites", where))


def parse_routes(document: Any, source: str, *, base_dir: str | Path = ".") -> RoutesConfig:
    """Validate a routes document (the parsed YAML) and build the configuration."""
    if document is None:
        return RoutesConfig()
    if not isinstance(document, Mapping):
        raise RouteConfigError(f"{source}: the routes file must be a mapping with 'routes'")
    _known(document, {"defaults", "routes"}, source)
    defaults = _mapping(document, "defaults", source)
    _known(defaults, {"rate_limit", "retry", "timeout_s"}, f"{source} defaults")
    default_rate = _rate_limit(_mapping(defaults, "rate_limit", source), RateLimit(), source)
    default_retry = _retry(_mapping(defaults, "retry", source), RetryPolicy(), source)
    default_timeout = _number(defaults, "timeout_s", 10.0, f"{source} defaults", minimum=0.1)
    items = document.get("routes", []) or []
    if not isinstance(items, list):
        raise RouteConfigError(f"{source}: field 'routes' must be a list")
    routes: list[Route] = []
    seen: set[str] = set()
    base = Path(base_dir)
    for position, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise RouteConfigError(f"{source}: route #{position} must be a mapping")
        name = item.get("name")
        where = f"{source}: route '{name}'" if name else f"{source}: route #{position}"
        if not isinstance(name, str) or not ROUTE_NAME_RE.match(name):
            raise RouteConfigError(f"{where}: field 'name' must be 1-64 characters of a-z, 0-9, "
                                   "_ and - (it is a metric label)")
        if name in seen:
            raise RouteConfigError(f"{where}: duplicate route name")
        seen.add(name)
        _known(item, {"name", "match", "target", "rate_limit", "retry"}, where)
        target = item.get("target")
        if not isinstance(target, Mapping):
            raise RouteConfigError(f"{where}: field 'target' is required (a mapping)")
        routes.append(Route(
            name=name,
            criteria=_criteria(_mapping(item, "match", where), where),
            target=_target(target, default_timeout, where, base),
            rate_limit=_rate_limit(_mapping(item, "rate_limit", where), default_rate, where),
            retry=_retry(_mapping(item, "retry", where), default_retry, where),
        ))
    return RoutesConfig(tuple(routes))


def load_routes(path: str | Path | None) -> RoutesConfig:
    """Load a routes YAML file; ``None`` means no routing (incidents are still indexed)."""
    if path is None or str(path) == "":
        return RoutesConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouteConfigError(f"{path}: cannot read routes file ({exc.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RouteConfigError(f"{path}: invalid YAML: {exc}") from None
    return parse_routes(document, str(path), base_dir=path.parent)


def route_names(config: RoutesConfig) -> Sequence[str]:
    """Names of the configured routes, for pre-setting metric series."""
    return config.names
