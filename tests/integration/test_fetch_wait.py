"""Idle consumers against the real local broker: few fetches with the wait, records still flow.

The broker here answers empty fetches at once (streams/fetch_wait.py): without the wait this
test counted 4,554 fetches in its idle second. One that honours fetch_max_wait_ms sends even
fewer, so the bound holds on both.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import NewTopic

from streams import fetch_wait

IDLE_S = 1.0
WAIT_S = 0.05


async def _idle_then_receive(bootstrap: str, topic: str, calls: list[float]) -> bytes:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        await asyncio.wait_for(_assigned(consumer), timeout=30)
        calls.clear()  # count from here: idle, fully assigned
        await asyncio.sleep(IDLE_S)
        idle_calls = len(calls)
        await producer.send_and_wait(topic, b"still-delivered")
        record = await asyncio.wait_for(consumer.getone(), timeout=10)
        calls[:] = calls[:idle_calls]
        return record.value
    finally:
        await producer.stop()
        await consumer.stop()


async def _assigned(consumer: AIOKafkaConsumer) -> None:
    while not consumer.assignment():
        await asyncio.sleep(0.05)


def test_idle_consumer_fetches_a_bounded_number_of_times(kafka_admin, kafka_bootstrap,
                                                         unique_name, monkeypatch):
    kafka_admin.create_topics([NewTopic(unique_name, num_partitions=1, replication_factor=1)])
    calls: list[float] = []
    real = fetch_wait._ORIGINAL

    async def counting(self: Any, *args: Any) -> bool:
        calls.append(asyncio.get_running_loop().time())
        return await real(self, *args)

    monkeypatch.setattr(fetch_wait, "_ORIGINAL", counting)
    fetch_wait.install(WAIT_S)
    try:
        value = asyncio.run(_idle_then_receive(kafka_bootstrap, unique_name, calls))
    finally:
        fetch_wait.install(0)
        kafka_admin.delete_topics([unique_name])
    assert value == b"still-delivered"
    # One fetch per WAIT_S at most, plus slack for the first.
    assert len(calls) <= IDLE_S / WAIT_S + 5, f"{len(calls)} fetches in {IDLE_S} s of idling"
