"""Slow-consumer soak: does back-pressure keep the worker's memory bounded?

    .venv/bin/python bench/soak.py --minutes 10 [--rate 300] [--es-delay 1.5]

Starts a private noida-db (Kafka + Elasticsearch on free ports, fresh data directory, never the
shared server), one ``roriwatch worker`` (or, with ``--split-roles``, a ``--role scan`` and a
``--role index`` worker) whose Elasticsearch traffic goes through a proxy that
holds every request ``--es-delay`` seconds (an overloaded cluster), and a producer that sends
``--rate`` synthetic leak documents per second for ``--minutes``: far more than the slowed
indexer can write, so backlogs build in Kafka. Every ``--interval`` seconds it samples the
workers' resident memory (VmRSS from /proc), their metrics and the emulator's memory, and
prints one row:

    t_s  rss_<role>...  produced  scanned  indexed(bulk requests)  lag  es_req  broker_mb

Before the workers start, one probe fetch checks whether the broker honours the client's
per-partition fetch size limit: Kafka does, noida-db 0.2.3 does not (it returns the whole
backlog), and then a lagging consumer's memory grows with its lag whatever the worker does;
the header and the verdict say which case was measured.

At the end: RSS first/peak/last, the growth between the first and the last quarter of the
run, and the verdict "bounded" when the last quarter's mean is within --max-growth-mb of the
second quarter's (the first quarter is warm-up: imports, JIT-free caches, buffers filling).
Exit status 0 when bounded, 1 otherwise. Everything stops on its own; Ctrl-C stops early.
Figures from runs on the project machine are in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.corpus import forum_post  # noqa: E402
from detectors.synthetic import Synth  # noqa: E402
from streams.pipeline_commands import start_worker_process, stop_worker_process  # noqa: E402
from streams.settings import load_settings  # noqa: E402
from streams.topics import bootstrap_servers, ensure_topics  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class SlowProxy:
    """127.0.0.1:port → upstream, holding each HTTP request for `delay_s` before passing it."""

    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.delay_s = delay_s
        self.port = free_port()
        self.requests = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            threading.Thread(target=self._pump, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while data := src.recv(65536):
                if requests and data[:5] in (b"POST ", b"PUT /"):
                    self.requests += 1
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Services:
    """A private noida-db with Kafka and Elasticsearch."""

    def __init__(self, data_dir: Path) -> None:
        self.binary = str(Path(sys.executable).with_name("noida-db"))
        if not Path(self.binary).exists():
            self.binary = shutil.which("noida-db") or sys.exit("noida-db is not installed")
        self.data_dir = data_dir
        self.kafka_port, self.es_port = free_port(), free_port()
        self.log = (data_dir.parent / "noida.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "start", "--only", "kafka,elasticsearch", "--host", "127.0.0.1",
             "--kafka-port", str(self.kafka_port), "--elasticsearch-port", str(self.es_port),
             "--data-dir", str(data_dir)],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while not (port_open(self.kafka_port) and port_open(self.es_port)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                sys.exit("private noida-db did not start")
            time.sleep(0.1)

    def rss_mb(self) -> float:
        # The console script starts the server binary as a child: count the whole tree.
        return sum(rss_mb(pid) for pid in process_tree(self.process.pid))

    def down(self) -> None:
        # After a 10-minute soak the emulator holds gigabytes and `down` can take longer than
        # its timeout; the verdict must not be lost to that, so fall back to signalling the
        # emulator's own process group (started with start_new_session) and never raise.
        try:
            subprocess.run([self.binary, "down", "--data-dir", str(self.data_dir)],
                           capture_output=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            print("soak: noida-db down timed out; stopping it with SIGTERM", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc/*/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                todo.extend(int(child) for child in task.read_text().split())
    return found


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def metrics(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


FETCH_PROBE_LIMIT = 64 * 1024


def fetch_probe(bootstrap: list[str], topic: str) -> int:
    """Bytes one fetch of one partition returns when the client asks for FETCH_PROBE_LIMIT.

    Kafka caps a partition's fetch at the client's max_partition_fetch_bytes (Faust's
    consumer_max_fetch_size, 1 MiB), which is what bounds a lagging consumer's buffers.
    noida-db 0.2.3 ignores the cap and returns the whole backlog, so there a consumer's memory
    grows with its lag whatever the client does: the soak must say which case it measured.
    """
    import aiokafka
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, batch_size=16 * 1024, linger_ms=5)
    for _ in range(1000):  # 1 MB in ~16 KB batches: 16 times the limit
        producer.send(topic, value=b"x" * 1000)
    producer.flush(timeout=30)
    producer.close(timeout=10)

    async def one_fetch() -> int:
        consumer = aiokafka.AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=FETCH_PROBE_LIMIT,
            fetch_max_bytes=FETCH_PROBE_LIMIT)
        await consumer.start()
        try:
            # aiokafka buffers one fetch response per partition until it is consumed.
            batches = await consumer.getmany(timeout_ms=10_000)
            return sum(len(r.value or b"") for records in batches.values() for r in records)
        finally:
            await consumer.stop()

    return asyncio.run(one_fetch())


class Producer(threading.Thread):
    """Sends `rate` documents per second to the paste topic until stopped."""

    def __init__(self, bootstrap: list[str], topic: str, rate: float) -> None:
        super().__init__(daemon=True)
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                      batch_size=256 * 1024)
        self.topic = topic
        self.rate = rate
        self.sent = 0
        self.stop_event = threading.Event()
        synth = Synth(seed=99)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # A pool of realistic documents, reused with fresh item ids (each is a new alert).
        self.pool = [forum_post(synth).text for _ in range(500)]
        self.now = now

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop_event.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due and not self.stop_event.is_set():
                item = f"soak-{self.sent}"
                envelope = {"feed": "paste", "site": "soak", "item_id": item, "url": None,
                            "author": None, "title": None, "published_at": None,
                            "fetched_at": self.now,
                            "content": self.pool[self.sent % len(self.pool)]}
                self.producer.send(self.topic, key=item.encode(),
                                   value=json.dumps(envelope, ensure_ascii=False).encode())
                self.sent += 1
            time.sleep(0.02)
        self.producer.flush(timeout=30)
        self.producer.close(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=300.0, help="documents per second")
    parser.add_argument("--es-delay", type=float, default=1.5,
                        help="seconds each Elasticsearch request is held")
    parser.add_argument("--interval", type=float, default=10.0, help="sampling period (s)")
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("--split-roles", action="store_true",
                        help="run a scan worker and an index worker (--role) instead of one")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="roriwatch-soak-"))
    services = Services(workdir / "noida")
    proxy = SlowProxy(services.es_port, args.es_delay)
    name = f"soak-{uuid.uuid4().hex[:8]}"
    variables = {
        "RORIWATCH_BROKER": f"kafka://127.0.0.1:{services.kafka_port}",
        "RORIWATCH_ES_URL": f"http://127.0.0.1:{proxy.port}",
        "RORIWATCH_TOPIC_PASTE": f"{name}-paste", "RORIWATCH_TOPIC_FORUM": f"{name}-forum",
        "RORIWATCH_TOPIC_LOG": f"{name}-log", "RORIWATCH_TOPIC_ALERTS": f"{name}-alerts",
        "RORIWATCH_TOPIC_DEADLETTER": f"{name}-deadletter", "RORIWATCH_APP_ID": name,
        "RORIWATCH_ES_INDEX_PREFIX": name, "RORIWATCH_DATA_DIR": str(workdir / "data"),
        "RORIWATCH_HMAC_KEY": "soak-benchmark-key-0123456789abcdef",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RORIWATCH_")}
    env.update(variables)
    settings = load_settings(variables)
    ensure_topics(settings)
    fetched = fetch_probe(bootstrap_servers(settings.broker), f"{name}-fetch-probe")
    honoured = fetched <= 2 * FETCH_PROBE_LIMIT
    roles = ["scan", "index"] if args.split_roles else ["all"]
    ports = {role: free_port() for role in roles}
    workers = {role: start_worker_process(env, workdir / f"worker-{role}.log", ports[role],
                                          ["--loglevel", "warning", "--metrics-addr",
                                           "127.0.0.1", "--role", role])
               for role in roles}
    producer = Producer(bootstrap_servers(settings.broker), settings.topic_paste, args.rate)
    rows: list[dict[str, float]] = []
    interrupted = False
    print(f"soak: {args.minutes:g} min, {args.rate:g} docs/s, Elasticsearch requests held "
          f"{args.es_delay:g} s; workers: {', '.join(roles)}; logs in {workdir}", flush=True)
    print(f"soak: one fetch asked for {FETCH_PROBE_LIMIT // 1024} KiB of a partition and got "
          f"{fetched / 1024:.0f} KiB: the broker "
          + ("honours the fetch size limit" if honoured else
             "IGNORES the fetch size limit, so a lagging consumer's memory grows with its lag "
             "whatever the worker does (docs/reliability.md)"), flush=True)
    rss_heads = " ".join(f"{'rss_' + role:>9}" for role in roles)
    print(f"{'t_s':>6} {rss_heads} {'produced':>9} {'scanned':>8} {'indexed':>8} "
          f"{'lag':>8} {'es_req':>7} {'broker_mb':>9}", flush=True)
    try:
        deadline = time.monotonic() + 60
        while not all(metrics(port) for port in ports.values()):
            if any(w.poll() is not None for w in workers.values()) or \
                    time.monotonic() > deadline:
                print("worker did not start; see its log", file=sys.stderr)
                return 2
            time.sleep(0.5)
        started = time.monotonic()
        producer.start()
        end = started + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(args.interval, max(0.0, end - time.monotonic())))
            if any(w.poll() is not None for w in workers.values()):
                print("a worker exited during the soak; see its log", file=sys.stderr)
                return 2
            seen: dict[str, float] = {}
            for port in ports.values():
                for name, value in metrics(port).items():
                    seen[name] = seen.get(name, 0.0) + value
            rss = {role: rss_mb(w.pid) for role, w in workers.items()}
            row = {"t": time.monotonic() - started, "rss": sum(rss.values()),
                   "produced": producer.sent, "scanned": seen.get("roriwatch_documents_total", 0),
                   "indexed": seen.get("roriwatch_es_bulk_duration_seconds_count", 0),
                   "lag": seen.get("roriwatch_consumer_lag", 0),
                   "es_requests": proxy.requests, "broker": services.rss_mb()}
            rows.append(row)
            rss_cells = " ".join(f"{rss[role]:9.1f}" for role in roles)
            print(f"{row['t']:6.0f} {rss_cells} {row['produced']:9.0f} "
                  f"{row['scanned']:8.0f} {row['indexed']:8.0f} {row['lag']:8.0f} "
                  f"{row['es_requests']:7.0f} {row['broker']:9.1f}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        producer.stop_event.set()
        if producer.is_alive():
            producer.join(timeout=30)
        for worker in workers.values():
            stop_worker_process(worker, timeout_s=30)
        proxy.close()
        services.down()
        shutil.rmtree(workdir, ignore_errors=True)
    if len(rows) < 4:
        print("too few samples for a verdict", file=sys.stderr)
        return 2 if not interrupted else 130
    quarter = len(rows) // 4
    second = statistics.mean(r["rss"] for r in rows[quarter:2 * quarter])
    last = statistics.mean(r["rss"] for r in rows[-quarter:])
    peak = max(r["rss"] for r in rows)
    growth = last - second
    bounded = growth <= args.max_growth_mb
    final = rows[-1]
    print(f"summary ({'+'.join(roles)} worker RSS summed): rss first {rows[0]['rss']:.1f} MB, "
          f"peak {peak:.1f} MB, last "
          f"{final['rss']:.1f} MB; mean of 2nd quarter {second:.1f} MB, of last quarter "
          f"{last:.1f} MB (growth {growth:+.1f} MB); produced {final['produced']:.0f}, scanned "
          f"{final['scanned']:.0f}, bulk requests {final['indexed']:.0f}, uncommitted lag "
          f"{final['lag']:.0f} at the end -> {'bounded' if bounded else 'GROWING'}"
          + ("" if honoured else " (on a broker that ignores fetch size limits)"))
    return 0 if bounded else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
