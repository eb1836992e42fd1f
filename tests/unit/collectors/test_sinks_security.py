"""Collectors reach a TLS/SASL Kafka with the same settings as the worker."""

import kafka

from streams.collectors.sinks import KafkaSink
from streams.settings import load_settings


def test_kafka_sink_passes_tls_and_sasl_options(monkeypatch):
    captured = {}

    class FakeProducer:
        DEFAULT_CONFIG = kafka.KafkaProducer.DEFAULT_CONFIG

        def __init__(self, **config):
            captured.update(config)

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    settings = load_settings({
        "RORIWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "RORIWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RORIWATCH_KAFKA_SASL_USERNAME": "collector",
        "RORIWATCH_KAFKA_SASL_PASSWORD": "s3cret-password",
        "RORIWATCH_KAFKA_SSL_CAFILE": "/etc/roriwatch/ca.pem",
    })
    KafkaSink("broker:9093", security=settings.kafka_client_options())
    assert captured["security_protocol"] == "SASL_SSL"
    assert captured["sasl_mechanism"] == "SCRAM-SHA-512"
    assert captured["sasl_plain_username"] == "collector"
    assert captured["ssl_cafile"] == "/etc/roriwatch/ca.pem"
    assert captured["acks"] == "all"
