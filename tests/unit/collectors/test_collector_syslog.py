"""Syslog parsing (RFC 5424 / 3164) and the UDP/TCP receiver."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

import pytest

from streams.collectors.sources.syslog import parse_syslog

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"<34>1 2024-05-01T10:00:00.123+07:00 may-chu-1 dangky 4321 ID47 "
            + b'[ex@32473 iut="3" note="a \\] b"] '
            + "Người dùng mới: 0912345678".encode(),
            dict(
                format="rfc5424",
                facility="auth",
                severity="crit",
                hostname="may-chu-1",
                app_name="dangky",
                procid="4321",
                msgid="ID47",
                structured_data='[ex@32473 iut="3" note="a \\] b"]',
                timestamp="2024-05-01T10:00:00.123000+07:00",
                message="Người dùng mới: 0912345678",
            ),
        ),
        (
            b"<165>1 2024-05-01T03:00:07Z - app - - - \xef\xbb\xbfCCCD 079099000123",
            dict(
                format="rfc5424",
                facility="local4",
                severity="notice",
                hostname=None,
                app_name="app",
                procid=None,
                structured_data=None,
                timestamp="2024-05-01T03:00:07+00:00",
                message="CCCD 079099000123",
            ),
        ),
        (
            b"<13>May  1 10:00:05 may-chu-2 sshd[999]: Accepted password for ung_dung",
            dict(
                format="rfc3164",
                facility="user",
                severity="notice",
                hostname="may-chu-2",
                app_name="sshd",
                procid="999",
                timestamp="2024-05-01T10:00:05+00:00",
                message="Accepted password for ung_dung",
            ),
        ),
        (
            b"<14>Dec 31 23:59:59 host cron: chay",
            dict(
                format="rfc3164",
                timestamp="2023-12-31T23:59:59+00:00",
                app_name="cron",
                message="chay",
            ),
        ),
        (
            b"<14>app: khong co thoi gian",
            dict(format="rfc3164", app_name="app", message="khong co thoi gian"),
        ),
        (
            b"khong co PRI 0912345678",
            dict(format="raw", facility=None, message="khong co PRI 0912345678"),
        ),
        (b"<999>qua lon", dict(format="raw", message="<999>qua lon")),
    ],
)
def test_parse_syslog(raw, expected):
    parsed = parse_syslog(raw, now=NOW)
    for key, value in expected.items():
        assert getattr(parsed, key) == value, key


def syslog_source(**extra):
    source = {
        "name": "syslog",
        "type": "syslog",
        "listen": ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"],
        "flush_interval_seconds": 0.05,
    }
    source.update(extra)
    return source


def addresses(run):
    return {transport: (host, port) for transport, host, port in run.source.addresses}


def wait_for(run, count, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.cycle()
        if len(run.envelopes) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"expected {count} envelopes, got {len(run.envelopes)}")


def test_udp_and_tcp_messages_become_log_envelopes(harness):
    run = harness([syslog_source()])
    run.source.start()
    addr = addresses(run)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"<13>May  1 10:00:05 h app[1]: qua UDP 0912345678", addr["udp"])
    with socket.create_connection(addr["tcp"], timeout=2) as tcp:
        five = b"<34>1 2024-05-01T10:00:00Z h app - - - dem octet"
        tcp.sendall(str(len(five)).encode() + b" " + five)
        tcp.sendall(
            b"<13>May  1 10:00:06 h app: xuong dong 1\n<13>May  1 10:00:07 h app: xuong dong 2\n"
        )
    wait_for(run, 4)
    by_content = {e.content: e for e in run.envelopes}
    assert set(by_content) == {"qua UDP 0912345678", "dem octet", "xuong dong 1", "xuong dong 2"}
    udp_envelope = by_content["qua UDP 0912345678"]
    assert udp_envelope.feed == "log" and udp_envelope.meta["transport"] == "udp"
    assert udp_envelope.meta["app_name"] == "app" and udp_envelope.meta["format"] == "rfc3164"
    assert by_content["dem octet"].published_at == "2024-05-01T10:00:00+00:00"
    assert len(set(run.ids())) == 4


def test_full_queue_drops_and_counts(harness):
    run = harness([syslog_source(queue_size=2, listen=["udp://127.0.0.1:0"])])
    run.source.start()
    target = addresses(run)["udp"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for i in range(5):
            udp.sendto(f"<13>app: tin {i}".encode(), target)
    deadline = time.monotonic() + 3
    while run.source.queue.qsize() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    run.cycle()
    assert len(run.envelopes) == 2
    assert run.metric("roriwatch_collector_errors_total", source="syslog", kind="queue_full") == 3


def test_busy_port_fails_at_start_with_a_clear_message(harness):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = harness([syslog_source(listen=[f"tcp://127.0.0.1:{port}"])])
        with pytest.raises(OSError, match=f"cannot listen on tcp://127.0.0.1:{port}"):
            run.source.start()
