"""Settings: the environment is read in one place, and bad values fail with the fix."""

import pytest

from streams.settings import SettingsError, load_settings


def test_defaults_need_no_environment():
    settings = load_settings({})
    assert settings.broker == "kafka://127.0.0.1:9092"
    assert settings.fingerprinter().ephemeral


def test_production_refuses_to_start_without_a_key():
    settings = load_settings({"RORIWATCH_PRODUCTION": "1"})
    with pytest.raises(SettingsError, match="RORIWATCH_HMAC_KEY"):
        settings.fingerprinter()


def test_key_from_file_and_key_id(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    settings = load_settings({"RORIWATCH_HMAC_KEY_FILE": str(key_file),
                              "RORIWATCH_HMAC_KEY_ID": "2026-11", "RORIWATCH_PRODUCTION": "yes"})
    fingerprinter = settings.fingerprinter()
    assert (fingerprinter.key, fingerprinter.key_id) == (b"0123456789abcdef0123456789abcdef",
                                                         "2026-11")


def test_rotation_keeps_previous_keys():
    settings = load_settings({"RORIWATCH_HMAC_KEY": "new-secret-0123456789",
                              "RORIWATCH_HMAC_KEY_ID": "k2",
                              "RORIWATCH_HMAC_PREVIOUS_KEYS": "k1:old-secret-0123456789"})
    [old] = settings.previous_fingerprinters()
    assert old.key_id == "k1"
    assert old.fingerprint("0912345678") != settings.fingerprinter().fingerprint("0912345678")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RORIWATCH_HMAC_KEY": "short"}, "shorter than 16 bytes"),
        ({"RORIWATCH_METRICS_PORT": "ninety"}, "RORIWATCH_METRICS_PORT='ninety' is not an integer"),
        ({"RORIWATCH_PRODUCTION": "maybe"}, "is not a boolean"),
        ({"RORIWATCH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, "also set RORIWATCH_KAFKA_SASL_USER"),
        ({"RORIWATCH_KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of PLAINTEXT"),
        ({"RORIWATCH_HMAC_KEY_FILE": "/nonexistent/key"}, "cannot read it"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_secrets_never_appear_in_repr():
    settings = load_settings({"RORIWATCH_HMAC_KEY": "super-secret-value-123",
                              "RORIWATCH_KAFKA_SASL_MECHANISM": "PLAIN",
                              "RORIWATCH_KAFKA_SASL_USERNAME": "u",
                              "RORIWATCH_KAFKA_SASL_PASSWORD": "kafka-password-xyz"})
    assert "super-secret-value-123" not in repr(settings)
    assert "kafka-password-xyz" not in repr(settings)
    assert settings.kafka_client_options()["sasl_plain_password"] == "kafka-password-xyz"


def test_kafka_session_timeout_defaults_to_fausts_and_parses_seconds():
    # 60 s is Faust's own default: not setting the variable must not change the worker.
    assert load_settings({}).kafka_session_timeout_s == 60.0
    settings = load_settings({"RORIWATCH_KAFKA_SESSION_TIMEOUT_S": "10"})
    assert settings.kafka_session_timeout_s == 10.0


@pytest.mark.parametrize("value", ["5", "91", "0", "-1", "nan", "inf", "ten"])
def test_kafka_session_timeout_outside_what_broker_and_faust_accept_fails_at_load(value):
    # Out of range it would fail only when the worker joins its group (broker) or starts its
    # consumer (Faust), far from the variable that caused it.
    with pytest.raises(SettingsError, match="RORIWATCH_KAFKA_SESSION_TIMEOUT_S"):
        load_settings({"RORIWATCH_KAFKA_SESSION_TIMEOUT_S": value})


@pytest.mark.parametrize(("seconds", "heartbeat"), [(60.0, 3.0), (6.0, 2.0), (90.0, 3.0)])
def test_worker_uses_the_session_timeout_and_heartbeats_within_a_third_of_it(
        tmp_path, seconds, heartbeat):
    from streams.app import create_app
    from streams.settings import Settings

    settings = Settings(hmac_key=b"session-timeout-test-key-0123456789",
                        data_dir=str(tmp_path), kafka_session_timeout_s=seconds)
    app = create_app(settings)
    try:
        assert app.conf.broker_session_timeout == seconds
        assert app.conf.broker_heartbeat_interval == heartbeat
        assert app.conf.broker_session_timeout <= app.conf.broker_request_timeout
    finally:
        app.pipeline.close()


@pytest.mark.parametrize(("variable", "field", "default", "maximum"), [
    ("RORIWATCH_KAFKA_EMPTY_FETCH_WAIT_MS", "kafka_empty_fetch_wait_ms", 50, 500),
    ("RORIWATCH_KAFKA_PRODUCER_LINGER_MS", "kafka_producer_linger_ms", 5, 1000),
])
def test_millisecond_settings_are_bounded_and_explained(variable, field, default, maximum):
    assert getattr(load_settings({}), field) == default
    assert getattr(load_settings({variable: "0"}), field) == 0
    assert getattr(load_settings({variable: str(maximum)}), field) == maximum
    with pytest.raises(SettingsError, match=rf"{variable}={maximum + 1} .*0-{maximum} ms: "):
        load_settings({variable: str(maximum + 1)})
    with pytest.raises(SettingsError, match=rf"{variable}='fast' is not an integer"):
        load_settings({variable: "fast"})


@pytest.mark.parametrize("linger_ms", [0, 5, 40])
def test_the_worker_producer_lingers_as_configured(tmp_path, linger_ms):
    """Faust's own default sends each alert in a request of its own (BENCHMARKS.md)."""
    from streams.app import create_app
    from streams.settings import Settings

    settings = Settings(hmac_key=b"linger-test-key-0123456789abcdef",
                        data_dir=str(tmp_path), kafka_producer_linger_ms=linger_ms)
    app = create_app(settings)
    try:
        assert app.conf.producer_linger == pytest.approx(linger_ms / 1000)
        assert app.producer.linger_ms == linger_ms  # what aiokafka is handed
    finally:
        app.pipeline.close()
