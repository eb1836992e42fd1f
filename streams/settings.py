"""The only module that reads the environment.

Everything else receives a ``Settings`` object, so tests build one directly and nothing
reads ``os.environ`` at import time (detect-secrets' global-settings pitfall).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from detectors.privacy import Fingerprinter

ENV_PREFIX = "RORIWATCH_"
KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Kafka brokers refuse sessions shorter than group.min.session.timeout.ms (6 s by default), and
# Faust refuses a session timeout longer than its request timeout (broker_request_timeout, 90 s).
KAFKA_SESSION_TIMEOUT_RANGE_S = (6.0, 90.0)
# aiokafka's fetch_max_wait_ms default: past it the wait is never applied (fetch_wait.py).
KAFKA_EMPTY_FETCH_WAIT_MAX_MS = 500
KAFKA_PRODUCER_LINGER_MAX_MS = 1000


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    """Typed configuration of every roriwatch process."""

    broker: str = "kafka://127.0.0.1:9092"
    topic_paste: str = "roriwatch.feed.paste"
    topic_forum: str = "roriwatch.feed.forum"
    topic_log: str = "roriwatch.feed.log"
    topic_alerts: str = "roriwatch.alerts"
    topic_deadletter: str = "roriwatch.deadletter"
    topic_partitions: int = 3
    es_url: str = "http://127.0.0.1:9200"
    es_api_key: str | None = field(default=None, repr=False)
    es_username: str | None = None
    es_password: str | None = field(default=None, repr=False)
    es_ca_certs: str | None = None
    es_index_prefix: str = "roriwatch"
    es_retention_days: int = 90
    hmac_key: bytes | None = field(default=None, repr=False)
    hmac_key_id: str = "k1"
    production: bool = False
    metrics_port: int = 9108
    min_confidence: float = 0.5
    alert_min_severity: str = "low"
    max_content_bytes: int = 20 * 1024 * 1024
    rules_files: tuple[str, ...] = ()
    app_id: str = "roriwatch"
    data_dir: str = ".roriwatch"
    web_port: int = 6066
    deadletter_keep_raw: bool = False
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None
    # How long the group coordinator waits for a silent member before handing its partitions
    # to the others (Faust's broker_session_timeout; 60 s is Faust's own default).
    kafka_session_timeout_s: float = 60.0
    # After an empty fetch answered sooner than the fetch wait, hold this long before asking
    # that broker again (streams/fetch_wait.py): brokers that honour the wait never trigger
    # it; the local substitute otherwise makes idle consumers spin. 0 turns it off.
    kafka_empty_fetch_wait_ms: int = 50
    # How long the producer holds a record to send it with others (Faust's producer_linger;
    # Faust's own default is 0: one produce request per alert). 5 ms doubled what one Faust
    # worker moves through the local broker and halved the broker's CPU (BENCHMARKS.md).
    kafka_producer_linger_ms: int = 5
    previous_hmac_keys: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    routes_file: str | None = None
    topic_incidents: str | None = None
    incident_jaccard: float = 0.8

    def feed_topics(self) -> dict[str, str]:
        """Feed kind → topic name."""
        return {"paste": self.topic_paste, "forum": self.topic_forum, "log": self.topic_log}

    def fingerprinter(self) -> Fingerprinter:
        """The keyed fingerprinter; production refuses to run without a configured key."""
        if self.hmac_key:
            return Fingerprinter(key=self.hmac_key, key_id=self.hmac_key_id)
        if self.production:
            raise SettingsError(
                "RORIWATCH_HMAC_KEY is not set and RORIWATCH_PRODUCTION=1: refusing to start "
                "with a random key. Set RORIWATCH_HMAC_KEY (or RORIWATCH_HMAC_KEY_FILE) to a "
                "secret of at least 32 bytes."
            )
        return Fingerprinter.ephemeral_key()

    def previous_fingerprinters(self) -> list[Fingerprinter]:
        """Retired keys: watch-lists built under them still match after a rotation."""
        return [Fingerprinter(key=key, key_id=key_id) for key_id, key in self.previous_hmac_keys]

    def kafka_client_options(self) -> dict[str, object]:
        """TLS/SASL options in kafka-python's names (producers, admin, collectors)."""
        options: dict[str, object] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_ssl_cafile:
            options["ssl_cafile"] = self.kafka_ssl_cafile
        if self.kafka_sasl_mechanism:
            options.update(sasl_mechanism=self.kafka_sasl_mechanism,
                           sasl_plain_username=self.kafka_sasl_username,
                           sasl_plain_password=self.kafka_sasl_password)
        return options

    def es_client_options(self) -> dict[str, object]:
        """Elasticsearch client options: API key or basic auth, CA bundle for TLS."""
        options: dict[str, object] = {"hosts": [self.es_url]}
        if self.es_api_key:
            options["api_key"] = self.es_api_key
        elif self.es_username and self.es_password:
            options["basic_auth"] = (self.es_username, self.es_password)
        if self.es_ca_certs:
            options["ca_certs"] = self.es_ca_certs
        return options

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields changed (CLI flags win over the environment)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no")


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not an integer") from None


# Millisecond settings with a range: (variable suffix, field, maximum, what the value means).
_BOUNDED_MS = (
    ("KAFKA_EMPTY_FETCH_WAIT_MS", "kafka_empty_fetch_wait_ms", KAFKA_EMPTY_FETCH_WAIT_MAX_MS,
     "it is the most a record may wait on a broker that answers empty fetches at once; 0 "
     "turns the wait off, the default is 50"),
    ("KAFKA_PRODUCER_LINGER_MS", "kafka_producer_linger_ms", KAFKA_PRODUCER_LINGER_MAX_MS,
     "it is how long an alert may wait to be sent with others; 0 sends each at once, the "
     "default is 5"),
)


def _bounded_ms(value: str, name: str, maximum: int, meaning: str) -> int:
    milliseconds = _int(value, name)
    if not 0 <= milliseconds <= maximum:
        raise SettingsError(f"{name}={milliseconds} is outside 0-{maximum} ms: {meaning}")
    return milliseconds


def _float(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a number") from None


def _session_timeout(value: str) -> float:
    """Seconds, within what both the broker and Faust accept (checked here, not at join time)."""
    name = ENV_PREFIX + "KAFKA_SESSION_TIMEOUT_S"
    seconds = _float(value, name)
    low, high = KAFKA_SESSION_TIMEOUT_RANGE_S
    if not low <= seconds <= high:
        raise SettingsError(
            f"{name}={value!r} is outside {low:g}-{high:g} seconds: brokers refuse sessions "
            f"shorter than {low:g} s (group.min.session.timeout.ms) and Faust refuses one "
            f"longer than its {high:g} s request timeout; the default is 60")
    return seconds


def _hmac_key(env: Mapping[str, str]) -> bytes | None:
    key_file = env.get(ENV_PREFIX + "HMAC_KEY_FILE")
    if key_file:
        try:
            key = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise SettingsError(
                f"RORIWATCH_HMAC_KEY_FILE={key_file}: cannot read it ({exc.strerror})"
            ) from None
    else:
        raw = env.get(ENV_PREFIX + "HMAC_KEY")
        key = raw.encode("utf-8") if raw else b""
    if not key:
        return None
    if len(key) < 16:
        raise SettingsError("the HMAC key is shorter than 16 bytes: use at least 32 random bytes")
    return key


def _previous_keys(raw: str) -> tuple[tuple[str, bytes], ...]:
    """``id1:secret1,id2:secret2``: retired keys, kept so old fingerprints still match."""
    keys = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id or len(secret) < 16:
            raise SettingsError("RORIWATCH_HMAC_PREVIOUS_KEYS must be 'id:secret,...' with "
                                "secrets of at least 16 bytes")
        keys.append((key_id, secret.encode("utf-8")))
    return tuple(keys)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``RORIWATCH_*`` variables; unknown values fail with the fix."""
    env = os.environ if env is None else env
    get = env.get
    defaults = Settings()
    kwargs: dict[str, object] = {}
    text_fields = {
        "BROKER": "broker", "TOPIC_PASTE": "topic_paste", "TOPIC_FORUM": "topic_forum",
        "TOPIC_LOG": "topic_log", "TOPIC_ALERTS": "topic_alerts",
        "TOPIC_DEADLETTER": "topic_deadletter", "ES_URL": "es_url", "ES_API_KEY": "es_api_key",
        "ES_USERNAME": "es_username", "ES_PASSWORD": "es_password",
        "ES_CA_CERTS": "es_ca_certs", "ES_INDEX_PREFIX": "es_index_prefix",
        "HMAC_KEY_ID": "hmac_key_id", "ALERT_MIN_SEVERITY": "alert_min_severity",
        "APP_ID": "app_id", "DATA_DIR": "data_dir",
        "KAFKA_SECURITY_PROTOCOL": "kafka_security_protocol",
        "KAFKA_SASL_MECHANISM": "kafka_sasl_mechanism",
        "KAFKA_SASL_USERNAME": "kafka_sasl_username",
        "KAFKA_SASL_PASSWORD": "kafka_sasl_password", "KAFKA_SSL_CAFILE": "kafka_ssl_cafile",
        "ROUTES_FILE": "routes_file", "TOPIC_INCIDENTS": "topic_incidents",
    }  # fmt: skip
    for suffix, attr in text_fields.items():
        value = get(ENV_PREFIX + suffix)
        if value:
            kwargs[attr] = value
    int_fields = {"TOPIC_PARTITIONS": "topic_partitions", "ES_RETENTION_DAYS": "es_retention_days",
                  "METRICS_PORT": "metrics_port", "MAX_CONTENT_BYTES": "max_content_bytes",
                  "WEB_PORT": "web_port"}
    for suffix, attr in int_fields.items():
        value = get(ENV_PREFIX + suffix)
        if value:
            kwargs[attr] = _int(value, ENV_PREFIX + suffix)
    if get(ENV_PREFIX + "MIN_CONFIDENCE"):
        kwargs["min_confidence"] = _float(get(ENV_PREFIX + "MIN_CONFIDENCE", ""),
                                          ENV_PREFIX + "MIN_CONFIDENCE")
    if get(ENV_PREFIX + "KAFKA_SESSION_TIMEOUT_S"):
        kwargs["kafka_session_timeout_s"] = _session_timeout(
            get(ENV_PREFIX + "KAFKA_SESSION_TIMEOUT_S", ""))
    for suffix, attr, maximum, meaning in _BOUNDED_MS:
        if get(ENV_PREFIX + suffix):
            kwargs[attr] = _bounded_ms(get(ENV_PREFIX + suffix, ""), ENV_PREFIX + suffix,
                                       maximum, meaning)
    if get(ENV_PREFIX + "PRODUCTION") is not None:
        kwargs["production"] = _bool(get(ENV_PREFIX + "PRODUCTION", ""), "RORIWATCH_PRODUCTION")
    if get(ENV_PREFIX + "DEADLETTER_KEEP_RAW") is not None:
        kwargs["deadletter_keep_raw"] = _bool(get(ENV_PREFIX + "DEADLETTER_KEEP_RAW", ""),
                                              "RORIWATCH_DEADLETTER_KEEP_RAW")
    rules = get(ENV_PREFIX + "RULES_FILES")
    if rules:
        kwargs["rules_files"] = tuple(p for p in rules.split(os.pathsep) if p)
    if get(ENV_PREFIX + "INCIDENT_JACCARD"):
        jaccard = _float(get(ENV_PREFIX + "INCIDENT_JACCARD", ""), "RORIWATCH_INCIDENT_JACCARD")
        if not 0.5 <= jaccard <= 1.0:
            raise SettingsError("RORIWATCH_INCIDENT_JACCARD must be between 0.5 and 1.0")
        kwargs["incident_jaccard"] = jaccard
    kwargs["hmac_key"] = _hmac_key(env)
    kwargs["previous_hmac_keys"] = _previous_keys(env.get(ENV_PREFIX + "HMAC_PREVIOUS_KEYS", ""))
    settings = replace(defaults, **kwargs)
    if settings.kafka_security_protocol not in KAFKA_PROTOCOLS:
        raise SettingsError("RORIWATCH_KAFKA_SECURITY_PROTOCOL must be one of "
                            + ", ".join(KAFKA_PROTOCOLS))
    if settings.kafka_sasl_mechanism and settings.kafka_sasl_mechanism not in SASL_MECHANISMS:
        raise SettingsError("RORIWATCH_KAFKA_SASL_MECHANISM must be one of "
                            + ", ".join(SASL_MECHANISMS))
    if settings.kafka_sasl_mechanism and not (settings.kafka_sasl_username
                                              and settings.kafka_sasl_password):
        raise SettingsError("RORIWATCH_KAFKA_SASL_MECHANISM is set: also set "
                            "RORIWATCH_KAFKA_SASL_USERNAME and RORIWATCH_KAFKA_SASL_PASSWORD")
    if settings.alert_min_severity not in ("low", "medium", "high", "critical"):
        raise SettingsError("RORIWATCH_ALERT_MIN_SEVERITY must be low, medium, high or critical")
    return settings
