"""End-to-end pipeline benchmark: produce envelopes → `roriwatch worker` → alert searchable.

usage: python bench/pipeline.py [--docs 3000] [--workers 1 2] [--split] [--partitions 4]
                                [--rate 50] [--json OUT]

For each worker count: fresh topics, consumer group and index prefix; start that many
`roriwatch worker` processes, wait until each owns partitions and a warm-up alert went through,
send the paced documents at --rate, then produce the burst as fast as the producer can and
wait until every expected alert is searchable and the workers have consumed every document.

Reported: throughput (docs/s and MB/s of envelope bytes, from the first send to the last alert
searchable and the last document consumed); latency p50/p99/max of the paced phase from the
send of one document to its alert being returned by a search (so it includes the 1 s refresh
interval), and of the burst from the send to the alert's ``indexed_at`` (the sink's write).

The emulator answers every search by reading every stored alert: at 3,200 alerts one search
cost it 0.28 s of CPU (a count 0.18 s), so a poller searching several times a second took a
whole core from the two the workers run on. Hence the paced phase runs first, on an index
holding only its own alerts, and the burst searches Elasticsearch only once the workers'
metrics count every expected alert as indexed.
The mix is realistic rather than flattering: forum posts, paste dumps (CSV/JSON/SQL) and log
batches from detectors.corpus, about half with identifiers. Needs `scripts/services.sh up`.
Everything runs on this machine: the broker/Elasticsearch emulator, the producer, the workers
and the poller share the same cores, which the printed core count puts in context; the CPU
seconds the workers and the whole machine spent during the burst show how they shared them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from detectors import Fingerprinter, Scanner, load_rules, summarize
from detectors.corpus import LabelledDoc, app_log, chat, csv_dump, forum_post, json_lines, sql_dump
from detectors.synthetic import Synth
from streams.alerts import alert_id_for, crosses_threshold
from streams.app import consumer_group
from streams.decode import DecodedDocument, MessageInfo, decode_feed_message
from streams.envelope import FeedEnvelope
from streams.es_schema import alerts_alias
from streams.pipeline_commands import send_messages, start_worker_process, stop_worker_process
from streams.settings import load_settings
from streams.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
HMAC_KEY = "bench-pipeline-key-0123456789abcdef"
# Settings taken from the environment, to compare runs with and without them.
COMPARED_SETTINGS = ("RORIWATCH_KAFKA_EMPTY_FETCH_WAIT_MS", "RORIWATCH_KAFKA_PRODUCER_LINGER_MS")
PROSE = ("Mình mới mua con laptop này tháng trước, dùng ổn, pin khoảng 6 tiếng, giá tầm "
         "15.990.000đ. Có bạn nào biết chỗ sửa bàn phím uy tín ở quận 3 không? ")

Generator = Callable[[Synth], LabelledDoc]


def chatter(s: Synth) -> LabelledDoc:
    """A forum post without identifiers: half the feed produces no alert."""
    doc = LabelledDoc("forum")
    doc.add(PROSE * s.rng.randint(2, 12))
    return doc


MIX: tuple[tuple[str, Generator, float], ...] = (
    ("forum", chatter, 0.45),
    ("forum", forum_post, 0.15),
    ("forum", chat, 0.05),
    ("paste", csv_dump, 0.10),
    ("paste", json_lines, 0.05),
    ("paste", sql_dump, 0.05),
    ("log", functools.partial(app_log, lines=40, leak_rate=0.05), 0.15),
)


def make_documents(count: int, seed: int) -> list[tuple[str, str, str]]:
    """(feed, item id, text) in a fixed random order."""
    s = Synth(seed)
    weights = [share for _, _, share in MIX]
    docs = []
    for i in range(count):
        feed, generator, _ = s.rng.choices(MIX, weights=weights)[0]
        docs.append((feed, f"bench-{seed}-{i}", generator(s).text))
    return docs


def envelope(feed: str, item_id: str, text: str) -> bytes:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return FeedEnvelope(feed=feed, site="bench", item_id=item_id, url=None, author=None,
                        title=None, published_at=None, fetched_at=now, content=text).to_json()


def expected_ids(docs: list[tuple[str, str, str]], scanner: Scanner) -> dict[str, str]:
    """item id → alert id for the documents that should alert (same code as the worker)."""
    out = {}
    for feed, item_id, text in docs:
        value = envelope(feed, item_id, text)
        decoded = decode_feed_message(value, MessageInfo("bench", 0, 0), feed_kind=feed,
                                      max_content_bytes=1 << 24)
        assert isinstance(decoded, DecodedDocument)
        if crosses_threshold(summarize(text, scanner.scan(text)), "low"):
            out[item_id] = alert_id_for(feed, "bench", item_id, decoded.content_sha256)
    return out


def metric_sums(port: int, *names: str) -> list[float]:
    """Each metric summed over its label sets, from one scrape (-1 where the worker is down).

    One scrape per poll: rendering /metrics costs the worker CPU the bench is measuring.
    """
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            lines = resp.read().decode().splitlines()
    except OSError:
        return [-1.0] * len(names)
    return [sum(float(line.rsplit(" ", 1)[1]) for line in lines
                if line.startswith(name + "{") or line.startswith(name + " "))
            for name in names]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy so far (everything but idle and iowait)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def has_partitions(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return "roriwatch_consumer_lag{" in resp.read().decode()
    except OSError:
        return False


def wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.2)


class AlertPoller:
    """Sees alerts become searchable, cheaply: only what was indexed since a watermark."""

    def __init__(self, es: Elasticsearch, alias: str) -> None:
        self.es = es
        self.alias = alias
        self.seen: dict[str, float] = {}
        self.indexed_ms: dict[str, int] = {}  # alert id -> its indexed_at, epoch ms
        self.watermark_ms = 0

    def poll(self) -> None:
        now = time.time()
        response = self.es.search(
            index=self.alias, size=10000, source=["alert_id", "indexed_at"],
            query={"range": {"indexed_at": {"gte": self.watermark_ms}}},
            sort=[{"indexed_at": "asc"}])
        newest = 0
        for hit in response["hits"]["hits"]:
            alert_id = hit["_source"]["alert_id"]
            self.seen.setdefault(alert_id, now)
            stamp = int(datetime.fromisoformat(hit["_source"]["indexed_at"].replace(
                "Z", "+00:00")).timestamp() * 1000)
            self.indexed_ms.setdefault(alert_id, stamp)
            newest = max(newest, stamp)
        if newest:
            # A document indexed a moment before the newest one may not be refreshed yet.
            self.watermark_ms = max(self.watermark_ms, newest - 3000)


def produce(producer: Any, topics: dict[str, str],
            batch: list[tuple[str, str, bytes]]) -> float:
    """Send (feed, item id, envelope) and wait for the acks; returns the send time."""
    stamp = time.time()
    for feed, item_id, value in batch:
        producer.send(topics[feed], key=item_id.encode(), value=value)
    producer.flush(timeout=60)
    return stamp


INDEXED_METRIC = "roriwatch_end_to_end_lag_seconds_count"  # one per alert indexed


def drain(poller: AlertPoller, wanted: set[str], ports: list[int], docs_target: float,
          timeout_s: float, indexed_target: float | None = None) -> float:
    """Poll until every wanted alert is searchable and the workers consumed docs_target.

    With ``indexed_target``, Elasticsearch is searched only once the workers count that many
    alerts indexed (see the module docstring for why).
    """
    deadline = time.monotonic() + timeout_s
    consumed_at = None
    while True:
        now = time.time()
        if consumed_at is None or indexed_target is not None:
            sums = [metric_sums(p, "roriwatch_documents_total", INDEXED_METRIC) for p in ports]
            if consumed_at is None and sum(docs for docs, _ in sums) >= docs_target:
                consumed_at = now
            if indexed_target is not None and sum(n for _, n in sums) >= indexed_target:
                indexed_target = None
        if indexed_target is None and not wanted <= set(poller.seen):
            poller.poll()
        if wanted <= set(poller.seen) and consumed_at is not None:
            return max(max((poller.seen[a] for a in wanted), default=now), consumed_at)
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {len(wanted & set(poller.seen))}/{len(wanted)} alerts "
                             f"after {timeout_s}s")
        time.sleep(0.2)


def percentiles(latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {"p50_s": statistics.median(latencies),
            "p99_s": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "max_s": latencies[-1]}


def run(roles: list[str], burst: list[tuple[str, str, str]], burst_ids: dict[str, str],
        paced: list[tuple[str, str, str]], paced_ids: dict[str, str], rate: float,
        partitions: int, timeout_s: float) -> dict[str, Any]:
    from kafka import KafkaProducer

    name = f"bench-pipe-{uuid.uuid4().hex[:8]}"
    variables = {
        "RORIWATCH_TOPIC_PASTE": f"{name}-paste", "RORIWATCH_TOPIC_FORUM": f"{name}-forum",
        "RORIWATCH_TOPIC_LOG": f"{name}-log", "RORIWATCH_TOPIC_ALERTS": f"{name}-alerts",
        "RORIWATCH_TOPIC_DEADLETTER": f"{name}-deadletter", "RORIWATCH_ES_INDEX_PREFIX": name,
        "RORIWATCH_APP_ID": name, "RORIWATCH_HMAC_KEY": HMAC_KEY,
        "RORIWATCH_TOPIC_PARTITIONS": str(partitions),
        "RORIWATCH_DATA_DIR": f"/tmp/{name}",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RORIWATCH_")
           or k in COMPARED_SETTINGS}
    env.update(variables)
    settings = load_settings({**{k: v for k, v in os.environ.items()
                                 if k in ("RORIWATCH_BROKER", "RORIWATCH_ES_URL")}, **variables})
    ensure_topics(settings)
    topics = settings.feed_topics()
    es = Elasticsearch(settings.es_url, request_timeout=30)
    alias = alerts_alias(name)
    ports = [19300 + i for i in range(len(roles))]
    procs = [start_worker_process(env, Path(f"/tmp/{name}/worker-{i}.log"), port,
                                  ["--role", role])
             for i, (port, role) in enumerate(zip(ports, roles, strict=True))]
    producer = KafkaProducer(bootstrap_servers=settings.broker.split("://")[-1], acks="all",
                             linger_ms=5, max_request_size=8 << 20)
    try:
        for port in ports:
            wait(lambda p=port: has_partitions(p), 60, f"worker on :{port} to own partitions")
        send_messages(settings, settings.topic_paste,
                      [(b"warm", envelope("paste", "warm-up", "SĐT: 0912345678"))])
        wait(lambda: es.options(ignore_status=404).count(index=alias).get("count", 0) >= 1,
             60, "the warm-up alert")
        poller = AlertPoller(es, alias)

        # Latency: a steady feed well under capacity, first, while searches are cheap.
        consumed = sum(metric_sums(p, "roriwatch_documents_total")[0] for p in ports)
        sent_at: dict[str, float] = {}
        tick = 0.1
        per_tick = max(1, round(rate * tick))
        next_tick = time.monotonic()
        for start in range(0, len(paced), per_tick):
            chunk = paced[start:start + per_tick]
            stamp = produce(producer, topics, [(f, i, envelope(f, i, t)) for f, i, t in chunk])
            for _, item_id, _ in chunk:
                sent_at[item_id] = stamp
            poller.poll()
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.monotonic()))
        drain(poller, set(paced_ids.values()), ports, consumed + len(paced), timeout_s)
        paced_lat = percentiles([poller.seen[a] - sent_at[i] for i, a in paced_ids.items()])

        # Throughput: everything at once, as after an outage or a big crawl.
        values = [(feed, item_id, envelope(feed, item_id, text))
                  for feed, item_id, text in burst]
        total_bytes = sum(len(v) for _, _, v in values)
        sums = [metric_sums(p, "roriwatch_documents_total", INDEXED_METRIC) for p in ports]
        consumed, indexed = sum(docs for docs, _ in sums), sum(n for _, n in sums)
        cpu_before = sum(process_cpu_s(proc.pid) for proc in procs), machine_busy_s()
        started = produce(producer, topics, values)
        produced = time.time()
        finished = drain(poller, set(burst_ids.values()), ports, consumed + len(burst),
                         timeout_s, indexed_target=indexed + len(burst_ids))
        elapsed = finished - started
        worker_cpu = sum(process_cpu_s(proc.pid) for proc in procs) - cpu_before[0]
        machine_cpu = machine_busy_s() - cpu_before[1]
        burst_lat = percentiles([poller.indexed_ms[a] / 1000 - started
                                 for a in burst_ids.values()])
        count = es.count(index=alias)["count"]
        return {
            "workers": "+".join(roles), "partitions": partitions, "documents": len(burst),
            "alerts": len(burst_ids), "indexed": count - 1 - len(paced_ids),
            "megabytes": total_bytes / 1e6, "produce_s": produced - started,
            "elapsed_s": elapsed, "docs_per_s": len(burst) / elapsed,
            "mb_per_s": total_bytes / 1e6 / elapsed,
            # Where the machine's CPU went during the burst: the workers' share, and the
            # rest (the broker/Elasticsearch emulator, the producer, the poller, the OS).
            "worker_cpu_s": worker_cpu, "machine_cpu_s": machine_cpu,
            "worker_mb_per_cpu_s": total_bytes / 1e6 / worker_cpu if worker_cpu else None,
            "burst_latency": burst_lat, "paced_rate": rate, "paced_docs": len(paced),
            "paced_latency": paced_lat,
        }
    finally:
        producer.close(timeout=10)
        for proc in procs:
            stop_worker_process(proc)
        for index in es.indices.get(index=f"{name}-*", ignore_unavailable=True,
                                    allow_no_indices=True):
            es.indices.delete(index=index, ignore_unavailable=True)
        quiet = es.options(ignore_status=404)
        for kind in ("alerts", "incidents"):
            quiet.indices.delete_index_template(name=f"{name}-{kind}")
            for part in ("mappings", "settings"):
                quiet.cluster.delete_component_template(name=f"{name}-{kind}-{part}")
        es.close()
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=settings.broker.split("://")[-1])
        try:
            admin.delete_topics([f"{name}-{t}" for t in ("paste", "forum", "log", "alerts",
                                                          "deadletter")])
            admin.delete_groups(sorted({consumer_group(settings, role) for role in roles}))
        except Exception as exc:
            print(f"bench: topic cleanup failed ({type(exc).__name__})", file=sys.stderr)
        finally:
            admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=3000, help="burst size (throughput)")
    parser.add_argument("--paced-docs", type=int, default=600, help="documents sent at --rate")
    parser.add_argument("--rate", type=float, default=50.0, help="docs/s of the latency phase")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to run, each worker scanning and indexing")
    parser.add_argument("--split", action="store_true",
                        help="also run one scan-only and one index-only worker")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()

    import logging
    logging.getLogger("kafka").setLevel(logging.ERROR)
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)

    scanner = Scanner(load_rules(), Fingerprinter(key=HMAC_KEY.encode()), min_confidence=0.5)
    burst = make_documents(args.docs, args.seed)
    paced = make_documents(args.paced_docs, args.seed + 1)
    burst_ids, paced_ids = expected_ids(burst, scanner), expected_ids(paced, scanner)
    size = sum(len(t.encode()) for _, _, t in burst) / 1e6
    print(f"burst: {len(burst)} documents, {size:.1f} MB of text, {len(burst_ids)} expected "
          f"alerts; paced: {len(paced)} documents at {args.rate:.0f}/s; {os.cpu_count()} "
          f"cores, Python {platform.python_version()}")
    layouts = [["all"] * n for n in args.workers] + ([["scan", "index"]] if args.split else [])
    results = [run(roles, burst, burst_ids, paced, paced_ids, args.rate, args.partitions,
                   args.timeout) for roles in layouts]
    print(f"{'workers':>10} {'docs/s':>7} {'MB/s':>5} {'elapsed':>8} | burst, to indexed "
          f"{'p50':>5} {'p99':>5} | paced, to searchable {'p50':>5} {'p99':>5} {'max':>5}")
    for r in results:
        b, p = r["burst_latency"], r["paced_latency"]
        print(f"{r['workers']:>10} {r['docs_per_s']:>7.0f} {r['mb_per_s']:>5.2f} "
              f"{r['elapsed_s']:>7.1f}s |{'':>18}{b['p50_s']:>5.2f} {b['p99_s']:>5.2f} |"
              f"{'':>21}{p['p50_s']:>5.2f} {p['p99_s']:>5.2f} {p['max_s']:>5.2f}")
    print("CPU during the burst (busy core-seconds): workers, whole machine; MB per "
          "worker CPU-second")
    for r in results:
        per_cpu = r["worker_mb_per_cpu_s"]
        print(f"{r['workers']:>10} {r['worker_cpu_s']:>7.1f} {r['machine_cpu_s']:>7.1f} "
              f"{per_cpu if per_cpu is None else round(per_cpu, 2)!s:>7}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
