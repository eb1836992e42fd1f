"""Where collected envelopes go: Kafka in production, a list in tests, stdout for ``--dry-run``.

The one contract every sink keeps: :meth:`EnvelopeSink.deliver` returns only once every envelope
is durably accepted, and raises otherwise. The runner commits a checkpoint only after
``deliver`` returned, which is what makes collection at-least-once.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TextIO

from streams.envelope import FEED_TOPICS, FeedEnvelope

log = logging.getLogger(__name__)


class SinkError(RuntimeError):
    """Delivery was not confirmed; the caller must not advance its checkpoint."""


class EnvelopeSink(Protocol):
    """Destination for envelopes."""

    def deliver(self, envelopes: Sequence[FeedEnvelope]) -> None:
        """Send all envelopes and wait until each is acknowledged; raise :class:`SinkError`."""
        ...

    def close(self) -> None:
        """Release connections; pending envelopes are flushed first where possible."""
        ...


class ListSink:
    """Keeps envelopes in memory, for unit tests; ``fail_next`` simulates a broker outage."""

    def __init__(self) -> None:
        self.envelopes: list[FeedEnvelope] = []
        self.fail_next = 0
        self._lock = threading.Lock()

    def deliver(self, envelopes: Sequence[FeedEnvelope]) -> None:
        """Append the envelopes, unless a simulated failure is pending."""
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise SinkError("simulated delivery failure")
            self.envelopes.extend(envelopes)

    def close(self) -> None:
        """Nothing to release."""


class JsonLinesSink:
    """Writes one envelope per line, for ``--dry-run`` and piping into other tools."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def deliver(self, envelopes: Sequence[FeedEnvelope]) -> None:
        """Print the envelopes as JSON lines."""
        with self._lock:
            try:
                for envelope in envelopes:
                    self.stream.write(envelope.to_json().decode("utf-8") + "\n")
                self.stream.flush()
            except OSError as exc:  # e.g. the reader of a pipe went away
                raise SinkError(f"cannot write to output ({type(exc).__name__})") from None

    def close(self) -> None:
        """Flush the stream; it is not ours to close."""
        self.stream.flush()


class KafkaSink:
    """Produces envelopes with kafka-python, keyed by item id, acknowledged by all replicas.

    ``acks=all`` plus waiting on every send future before returning means a checkpoint written
    after :meth:`deliver` describes only records the broker has really stored.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        topics: Mapping[str, str] | None = None,
        client_id: str = "roriwatch-collector",
        acks_timeout_seconds: float = 30.0,
        enable_idempotence: bool = True,
        compression_type: str | None = None,
        producer: Any = None,
        security: Mapping[str, object] | None = None,
    ) -> None:
        self.topics = dict(topics or FEED_TOPICS)
        self.acks_timeout_seconds = acks_timeout_seconds
        if producer is None:
            from kafka import KafkaProducer
            from kafka.errors import KafkaError

            timeout_ms = int(acks_timeout_seconds * 1000)
            settings = {
                "bootstrap_servers": bootstrap.split(","),
                "client_id": client_id,
                "acks": "all",
                "enable_idempotence": enable_idempotence,
                "compression_type": compression_type,
                "max_request_size": 2 * 1024 * 1024,
                "request_timeout_ms": timeout_ms,
                "max_block_ms": timeout_ms,
                # kafka-python 3 only: fail start-up in time instead of its 30 s default.
                "bootstrap_timeout_ms": timeout_ms,
                # TLS/SASL from Settings.kafka_client_options() (never logged).
                **dict(security or {}),
            }
            supported = KafkaProducer.DEFAULT_CONFIG
            try:
                producer = KafkaProducer(**{k: v for k, v in settings.items() if k in supported})
            except KafkaError as exc:
                raise SinkError(
                    f"cannot connect to Kafka at {bootstrap}: {type(exc).__name__}; check "
                    "--bootstrap / kafka.bootstrap and that the broker is up"
                ) from None
        self._producer = producer

    def topic_for(self, envelope: FeedEnvelope) -> str:
        """Route by feed kind, honouring topic overrides from the configuration."""
        return self.topics[envelope.feed]

    def deliver(self, envelopes: Sequence[FeedEnvelope]) -> None:
        """Send every envelope, flush, and fail unless each one was acknowledged."""
        from kafka.errors import KafkaError

        futures = []
        try:
            for envelope in envelopes:
                futures.append(
                    self._producer.send(
                        self.topic_for(envelope),
                        key=envelope.item_id.encode("utf-8"),
                        value=envelope.to_json(),
                    )
                )
            self._producer.flush(timeout=self.acks_timeout_seconds)
        except KafkaError as exc:
            raise SinkError(f"Kafka delivery failed: {type(exc).__name__}") from None
        failed = [f for f in futures if not f.is_done or f.failed()]
        if failed:
            reasons = sorted(
                {type(f.exception).__name__ if f.is_done else "not acknowledged" for f in failed}
            )
            raise SinkError(
                f"Kafka did not acknowledge {len(failed)} of {len(futures)} records "
                f"({', '.join(reasons)})"
            )

    def close(self) -> None:
        """Flush what is pending and close the producer."""
        try:
            self._producer.close(timeout=self.acks_timeout_seconds)
        except Exception:
            log.warning("Kafka producer did not close cleanly")
