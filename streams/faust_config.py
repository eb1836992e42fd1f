"""How every Faust app of roriwatch connects to Kafka, in one place.

The scan/index worker and the incidents worker must agree on TLS/SASL, session timeouts and,
above all, on not letting Faust read unprefixed environment variables of its own
(``BROKER_URL``, ``WEB_PORT``, ...): ``streams.settings`` is the only reader of the
environment, and a Kubernetes Service named "web" injects ``WEB_PORT=tcp://...``.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust

from streams import fetch_wait
from streams.settings import Settings, SettingsError


def broker_credentials(settings: Settings) -> Any:
    """Faust's form of the Kafka TLS/SASL settings; None for PLAINTEXT."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(username=settings.kafka_sasl_username,
                                     password=settings.kafka_sasl_password,
                                     mechanism=settings.kafka_sasl_mechanism or "PLAIN",
                                     ssl_context=context)
    raise SettingsError(f"RORIWATCH_KAFKA_SECURITY_PROTOCOL={protocol!r}: use PLAINTEXT, SSL, "
                        "SASL_PLAINTEXT or SASL_SSL")


def connection_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App``: broker, credentials, session, no environment.

    Also applies the empty-fetch wait to this process's Kafka consumers (``fetch_wait``):
    aiokafka has no per-consumer hook for it, and both apps need the same.
    """
    fetch_wait.install(settings.kafka_empty_fetch_wait_ms / 1000)
    return {
        "broker": settings.broker,
        "broker_credentials": broker_credentials(settings),
        # How long a crashed worker's partitions stay unread on real Kafka (heartbeats run in
        # the background, so a slow batch never counts against it). Heartbeat at most a third
        # of it, as Kafka advises: 3 s (Faust's default) for the default 60 s.
        "broker_session_timeout": settings.kafka_session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.kafka_session_timeout_s / 3),
        # Alerts, dead letters and incidents leave in batches, not one request each.
        "producer_linger": settings.kafka_producer_linger_ms / 1000,
        # Faust would otherwise read unprefixed variables and let them override the rest.
        "env": {},
    }
