"""A syslog receiver (UDP and TCP; RFC 5424 and RFC 3164) feeding the log topic.

Syslog is pushed, so there is no position to checkpoint: messages wait in a bounded in-memory
queue and are produced every ``flush_interval_seconds``. Messages that arrive while the queue is
full are dropped and counted (``errors_total{kind="queue_full"}``); over UDP the sender never
knew whether they arrived anyway. For loss-free shipping, point a log shipper at the log topic
instead (see docs/collectors.md).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import re
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from streams.collectors.config import SourceConfig, option_reader
from streams.collectors.sources.base import Emission, PollContext, Source, utc_now_iso

log = logging.getLogger(__name__)

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1",
    "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

_PRI = re.compile(rb"^<(\d{1,3})>")
_RFC5424_HEAD = re.compile(r"^(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ")
_RFC3164_HEAD = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)(?: (?P<host>[^\s:\[]+(?=\s)))? ?(?P<rest>.*)$",
    re.S,
)
_TAG = re.compile(r"^(?P<tag>[^\s:\[\]]{1,48})(?:\[(?P<pid>[^\]]*)\])?: ?(?P<msg>.*)$", re.S)
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
)}  # fmt: skip


@dataclass(frozen=True)
class SyslogMessage:
    """A parsed syslog message; absent header fields are None."""

    format: str
    facility: str | None
    severity: str | None
    timestamp: str | None
    hostname: str | None
    app_name: str | None
    procid: str | None
    msgid: str | None
    structured_data: str | None
    message: str


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _split_structured_data(text: str) -> tuple[str | None, str]:
    """Split RFC 5424 STRUCTURED-DATA from the message, honouring escaped ``]`` in values."""
    if text.startswith("-"):
        return None, text[2:] if text.startswith("- ") else text[1:]
    index = 0
    while index < len(text) and text[index] == "[":
        in_quotes = False
        index += 1
        while index < len(text):
            char = text[index]
            if char == "\\" and in_quotes:
                index += 2
                continue
            if char == '"':
                in_quotes = not in_quotes
            elif char == "]" and not in_quotes:
                index += 1
                break
            index += 1
    data = text[:index]
    rest = text[index:]
    return (data or None), rest[1:] if rest.startswith(" ") else rest


def _rfc3164_timestamp(text: str, now: datetime) -> str | None:
    try:
        month = _MONTHS[text[:3]]
        day = int(text[4:6])
        hour, minute, second = (int(p) for p in text[7:15].split(":"))
        # RFC 3164 has no year: take this year, or last year if that would be in the future.
        parsed = datetime(now.year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except (KeyError, ValueError):
        return None
    if (parsed - now).days >= 1:
        parsed = parsed.replace(year=now.year - 1)
    return parsed.isoformat()


def parse_syslog(raw: bytes, *, now: datetime | None = None) -> SyslogMessage:
    """Parse one syslog message (RFC 5424 or RFC 3164); never raises.

    Anything unparseable is kept whole as the message with format ``raw``: for leak detection
    the text matters more than the header.
    """
    now = now or datetime.now(timezone.utc)
    facility = severity = None
    match = _PRI.match(raw)
    body = raw
    if match and int(match.group(1)) <= 191:
        pri = int(match.group(1))
        facility, severity = FACILITIES[pri // 8], SEVERITIES[pri % 8]
        body = raw[match.end() :]
    text = body.decode("utf-8", errors="replace")
    if match:
        head = _RFC5424_HEAD.match(text)
        if head and head.group(1) == "1":
            _, stamp, host, app, procid, msgid = head.groups()
            structured, message = _split_structured_data(text[head.end() :])
            message = message.removeprefix("\ufeff")  # RFC 5424 BOM before UTF-8 MSG
            return SyslogMessage(
                "rfc5424", facility, severity, _iso(_nil(stamp)), _nil(host), _nil(app),
                _nil(procid), _nil(msgid), structured, message.rstrip("\r\n"),
            )  # fmt: skip
        legacy = _RFC3164_HEAD.match(text)
        if legacy:
            tag = _TAG.match(legacy.group("rest"))
            return SyslogMessage(
                "rfc3164", facility, severity, _rfc3164_timestamp(legacy.group("ts"), now),
                legacy.group("host"), tag.group("tag") if tag else None,
                tag.group("pid") if tag else None, None, None,
                (tag.group("msg") if tag else legacy.group("rest")).rstrip("\r\n"),
            )  # fmt: skip
        tag = _TAG.match(text)
        if tag:
            return SyslogMessage(
                "rfc3164", facility, severity, None, None, tag.group("tag"), tag.group("pid"),
                None, None, tag.group("msg").rstrip("\r\n"),
            )  # fmt: skip
    return SyslogMessage(
        "raw", facility, severity, None, None, None, None, None, None, text.rstrip("\r\n")
    )


def _iso(stamp: str | None) -> str | None:
    if stamp is None:
        return None
    text = stamp[:-1] + "+00:00" if stamp.endswith("Z") else stamp
    # RFC 5424 allows up to 6 fractional digits; Python 3.10 wants exactly 3 or 6.
    text = re.sub(r"\.(\d+)", lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        return None


@dataclass(frozen=True)
class SyslogOptions:
    """Validated options of a syslog receiver."""

    listen: tuple[tuple[str, str, int], ...]
    max_message_bytes: int
    queue_size: int
    batch_size: int
    flush_interval_seconds: float
    tcp_idle_timeout_seconds: float


@dataclass(frozen=True)
class Received:
    """A raw datagram or frame and when and how it arrived."""

    data: bytes
    received_at: str
    transport: str


def read_frames(stream: Any, max_bytes: int) -> Iterator[bytes]:
    """Split a TCP syslog stream into messages: RFC 6587 octet counting or newline framing."""
    buffer = b""
    while True:
        if not buffer:
            chunk = stream.recv(65536)
            if not chunk:
                return
            buffer += chunk
        if buffer[:1].isdigit():
            space = buffer.find(b" ", 0, 12)
            if space == -1 and len(buffer) < 12:
                chunk = stream.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                continue
            if space > 0 and buffer[:space].isdigit():
                length = int(buffer[:space])
                while len(buffer) < space + 1 + length:
                    chunk = stream.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                frame = buffer[space + 1 : space + 1 + length]
                buffer = buffer[space + 1 + length :]
                yield frame[:max_bytes]
                continue
        newline = buffer.find(b"\n")
        while newline == -1:
            if len(buffer) > max_bytes:
                # Over-long unframed message: cut it rather than buffer without limit.
                yield buffer[:max_bytes]
                buffer = b""
                break
            chunk = stream.recv(65536)
            if not chunk:
                if buffer.strip(b"\x00\r "):
                    yield buffer
                return
            buffer += chunk
            newline = buffer.find(b"\n")
        if newline == -1:
            continue
        frame, buffer = buffer[:newline], buffer[newline + 1 :]
        frame = frame.strip(b"\x00\r")
        if frame:
            yield frame[:max_bytes]


class SyslogSource(Source):
    """Listens on the configured UDP/TCP addresses and produces what arrives."""

    source_type = "syslog"

    @classmethod
    def parse_options(cls, config: SourceConfig, where: str) -> SyslogOptions:
        """Validate listen addresses and queue sizes."""
        reader = option_reader(config, where)
        listen = []
        for value in reader.str_list("listen") or ["udp://127.0.0.1:5514"]:
            parts = urlsplit(value)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme not in ("udp", "tcp") or not parts.hostname or port is None:
                raise reader.fail("listen", "entries must look like udp://127.0.0.1:5514")
            listen.append((parts.scheme, parts.hostname, port))
        options = SyslogOptions(
            listen=tuple(listen),
            max_message_bytes=reader.integer(
                "max_message_bytes", min(config.max_content_bytes, 64 * 1024), minimum=480
            ),
            queue_size=reader.integer("queue_size", 10000, minimum=1),
            batch_size=reader.integer("batch_size", 500, minimum=1),
            flush_interval_seconds=reader.number("flush_interval_seconds", 1.0, minimum=0.01),
            tcp_idle_timeout_seconds=reader.number("tcp_idle_timeout_seconds", 300.0, minimum=1),
        )
        reader.check_unknown()
        return options

    def __init__(self, config: SourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.queue: queue.Queue[Received] = queue.Queue(self.options.queue_size)
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._sequence = itertools.count()
        self._boot = time.time_ns()

    @property
    def poll_interval(self) -> float:
        """Drain the queue often: messages are waiting in memory."""
        return self.options.flush_interval_seconds

    @property
    def addresses(self) -> list[tuple[str, str, int]]:
        """The bound (transport, host, port), useful when a port of 0 was configured."""
        found = []
        for server in self._servers:
            host, port = server.server_address[:2]  # type: ignore[misc]
            transport = "udp" if isinstance(server, socketserver.UDPServer) else "tcp"
            found.append((transport, str(host), int(port)))
        return found

    def _enqueue(self, data: bytes, transport: str) -> None:
        try:
            self.queue.put_nowait(Received(data, utc_now_iso(), transport))
        except queue.Full:
            with self._dropped_lock:
                self._dropped += 1

    def start(self) -> None:
        """Bind the listening sockets; a busy port fails here, at start-up."""
        if self._servers:
            return
        source = self
        options: SyslogOptions = self.options

        class UdpHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = self.request[0]
                source._enqueue(data[: options.max_message_bytes], "udp")

        class TcpHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(options.tcp_idle_timeout_seconds)
                with contextlib.suppress(OSError):
                    for frame in read_frames(self.request, options.max_message_bytes):
                        source._enqueue(frame, "tcp")

        for transport, host, port in options.listen:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            base = _ThreadingUDP if transport == "udp" else _ThreadingTCP
            server_class = type(base.__name__, (base,), {"address_family": family})
            handler = UdpHandler if transport == "udp" else TcpHandler
            try:
                server = server_class((host, port), handler)
            except OSError as exc:
                self.close()
                raise OSError(
                    f"source '{self.name}': cannot listen on {transport}://{host}:{port} "
                    f"({exc.strerror})"
                ) from None
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"syslog-{self.name}-{transport}",
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        log.info("source %s: syslog listening on %d address(es)", self.name, len(self._servers))

    def poll(self, state: dict[str, Any], ctx: PollContext) -> Iterator[Emission]:
        """Produce what arrived since the last poll, in batches."""
        options: SyslogOptions = self.options
        self.start()
        with self._dropped_lock:
            dropped, self._dropped = self._dropped, 0
        for _ in range(dropped):
            ctx.error("queue_full")
        batch = []
        while True:
            try:
                received = self.queue.get_nowait()
            except queue.Empty:
                break
            batch.append(self._envelope(received))
            if len(batch) >= options.batch_size:
                yield Emission(envelopes=batch)
                batch = []
        if batch:
            yield Emission(envelopes=batch)

    def _envelope(self, received: Received) -> Any:
        parsed = parse_syslog(received.data)
        meta: dict[str, Any] = {"transport": received.transport, "format": parsed.format}
        for key in (
            "facility", "severity", "hostname", "app_name", "procid", "msgid", "structured_data",
        ):  # fmt: skip
            value = getattr(parsed, key)
            if value is not None:
                meta[key] = value
        return self.envelope(
            item_id=f"{self._boot}-{next(self._sequence)}",
            content=parsed.message,
            published_at=parsed.timestamp,
            title=parsed.app_name,
            meta=meta,
            fetched_at=received.received_at,
        )

    def close(self) -> None:
        """Stop listening; messages still queued are lost (documented)."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._servers.clear()
        self._threads.clear()


class _ThreadingUDP(socketserver.UDPServer):
    allow_reuse_address = True
    max_packet_size = 65535


class _ThreadingTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
