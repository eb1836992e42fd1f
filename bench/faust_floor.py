"""How fast one Faust worker moves the pipeline's feed when its agent does no detection at all.

usage: python bench/faust_floor.py [--docs 6000] [--agent forward|decode]

Issue 3 sets 20 MB/s of feed content through one worker. ``bench/pipeline.py`` measures the
real worker; this bench measures the ceiling under it: the same envelopes (the same mix and
sizes as ``bench/pipeline.py``), the same broker, faust-streaming and aiokafka, one worker
process, and an agent that only reads each message and produces one small record per message
to a sink topic, as the scan agent produces one alert or acknowledgement per document.

- ``forward``: the agent touches nothing (raw bytes in, 64 bytes out): Faust's and aiokafka's
  own per-message cost plus the broker's;
- ``decode``: the agent also parses the JSON envelope (``streams.jsonio.loads``), which any
  worker must do before scanning;
- ``batch``: as ``decode``, reading the stream in batches (``stream.take``), as the scan
  agent does;
- ``aiokafka``: no Faust, the same work in a plain aiokafka batch loop: what the Kafka client
  and the broker cost on their own.

With ``--backlog`` the burst is in the topic before the worker starts and the clock starts at
its first output, so only the worker and the broker share the cores.
Needs the local services (``scripts/services.sh up``). Fresh topics per run; the worker runs
with ``--without-web``. Reported: docs/s and MB/s of envelope bytes from the first send to
the last sink record, and the busy CPU seconds of the worker and of the whole machine.
Nothing here is asserted in tests; BENCHMARKS.md reports the figures.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))


def plain_aiokafka(app_id: str, source: str, sink: str, broker: str) -> None:
    """No Faust: aiokafka's batch consumer and producer, for what the client and broker cost."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from streams.jsonio import loads

    async def loop() -> None:
        consumer = AIOKafkaConsumer(source, bootstrap_servers=broker, group_id=app_id,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=5)
        await consumer.start()
        await producer.start()
        payload = b"x" * 64
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for records in batches.values():
                for record in records:
                    loads(record.value)
                    await producer.send(sink, payload)
            if batches:
                await consumer.commit()

    asyncio.run(loop())


def worker(app_id: str, source: str, sink: str, broker: str, agent_kind: str,
           linger_ms: int) -> None:
    """The Faust worker: one agent, one small record out per message in."""
    if agent_kind == "aiokafka":
        plain_aiokafka(app_id, source, sink, broker.removeprefix("kafka://"))
        return
    import faust

    from streams.faust_config import connection_options
    from streams.jsonio import loads
    from streams.settings import load_settings

    # The real worker's connection options (the empty-fetch wait, the producer linger),
    # otherwise the emulator's instant empty fetches make the consumer spin.
    settings = load_settings({"RORIWATCH_BROKER": broker,
                              "RORIWATCH_KAFKA_PRODUCER_LINGER_MS": str(linger_ms)})
    app = faust.App(app_id, **connection_options(settings), value_serializer="raw",
                    web_enabled=False, topic_partitions=1, topic_disable_leader=True)
    source_topic = app.topic(source, value_serializer="raw")
    sink_topic = app.topic(sink, value_serializer="raw")
    payload = b"x" * 64

    if agent_kind == "batch":
        @app.agent(source_topic)
        async def forward_batches(stream):
            async for values in stream.take(500, within=0.05):
                for value in values:
                    loads(value)
                    await sink_topic.send(value=payload)
    else:
        @app.agent(source_topic)
        async def forward(stream):
            async for value in stream:
                if agent_kind == "decode":
                    loads(value)
                await sink_topic.send(value=payload)

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]  # Faust's own CLI
    # As in `roriwatch worker`: no LogRecord per message for the debug lines of Faust's and
    # aiokafka's send paths (~8 % of this worker's samples when they were built).
    for name in ("faust", "aiokafka", "mode"):
        logging.getLogger(name).setLevel(logging.WARNING)
    app.main()


def sink_count(consumer, partitions) -> int:
    return sum(consumer.end_offsets(partitions).values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=6000, help="documents in the burst")
    parser.add_argument("--agent", choices=("forward", "decode", "batch", "aiokafka"),
                        default="decode", help="what the worker does per message (above)")
    parser.add_argument("--backlog", action="store_true",
                        help="produce the burst before the worker starts, so the producer "
                             "does not share the cores while the worker is timed")
    parser.add_argument("--linger-ms", type=int, default=5,
                        help="the producer's linger (roriwatch's default 5; Faust's own 0)")
    parser.add_argument("--broker", default="127.0.0.1:9092")
    parser.add_argument("--worker", nargs=4, metavar=("APP", "SOURCE", "SINK", "AGENT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        app_id, source, sink, agent_kind = args.worker
        worker(app_id, source, sink, f"kafka://{args.broker}", agent_kind, args.linger_ms)
        return 0

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    from pipeline import envelope, machine_busy_s, make_documents, process_cpu_s

    run = uuid.uuid4().hex[:8]
    source, sink, app_id = f"floor-src-{run}", f"floor-sink-{run}", f"floor-{run}"
    admin = KafkaAdminClient(bootstrap_servers=args.broker)
    admin.create_topics([NewTopic(source, 1, 1), NewTopic(sink, 1, 1)])
    docs = make_documents(args.docs, seed=7)
    values = [envelope(feed, item_id, text) for feed, item_id, text in docs]
    total_mb = sum(len(v) for v in values) / 1e6
    producer = KafkaProducer(bootstrap_servers=args.broker, linger_ms=5,
                             max_request_size=8 << 20)
    consumer = KafkaConsumer(bootstrap_servers=args.broker)
    partitions = [TopicPartition(sink, 0)]
    producer.send(source, b'{"warm": "up"}').get(timeout=30)
    if args.backlog:  # the whole burst waits in the topic before the worker starts
        for value in values:
            producer.send(source, value)
        producer.flush()
    log = (ROOT / ".services" / f"faust-floor-{run}.log")
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "--broker", args.broker, "--linger-ms",
             str(args.linger_ms), "--worker", app_id, source, sink, args.agent],
            stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT),
            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while (done_before := sink_count(consumer, partitions)) < 1:
            if time.monotonic() > deadline or process.poll() is not None:
                print(f"worker did not start: see {log}", file=sys.stderr)
                return 2
            time.sleep(0.02 if args.backlog else 0.2)
        worker_cpu, machine = process_cpu_s(process.pid), machine_busy_s()
        started = time.perf_counter()
        if not args.backlog:
            for value in values:
                producer.send(source, value)
            producer.flush()
        deadline = time.monotonic() + 600
        while sink_count(consumer, partitions) < args.docs + 1:
            if time.monotonic() > deadline:
                print("timed out waiting for the sink", file=sys.stderr)
                return 2
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        worker_cpu, machine = process_cpu_s(process.pid) - worker_cpu, machine_busy_s() - machine
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        admin.delete_topics([source, sink])
    print(f"agent={args.agent} docs={args.docs} MB={total_mb:.1f} "
          f"avg_doc_KB={1000 * total_mb / args.docs:.1f}")
    print("| agent | docs/s | MB/s | worker CPU-s | machine CPU-s | s |")
    share = (args.docs + 1 - done_before) / args.docs  # backlog: some went before the clock
    print(f"| {args.agent}{' (backlog)' if args.backlog else ''} | "
          f"{share * args.docs / elapsed:,.0f} | {share * total_mb / elapsed:.1f} | "
          f"{worker_cpu:.1f} | {machine:.1f} | {elapsed:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
