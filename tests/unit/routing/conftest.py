"""Local receivers on 127.0.0.1: a webhook server and an SMTP sink, both stdlib, port 0.

Every test gets its own servers on ephemeral ports, so tests run in parallel with anything else
on the machine and nothing leaves the loopback interface.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookReceiver:
    """Records every POST; answers with the queued (status, headers) replies, then 200."""

    url: str
    requests: list[Received] = field(default_factory=list)
    replies: list[tuple[int, dict[str, str]]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    receiver: WebhookReceiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        self.receiver.requests.append(Received(self.path, dict(self.headers), body))
        status, headers = self.receiver.replies.pop(0) if self.receiver.replies else (200, {})
        payload = b'{"ok": true}' if status < 300 else b'{"ok": false}'
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    receiver = WebhookReceiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = type("Handler", (_Handler,), {"receiver": receiver})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: str


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Enough SMTP for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    mailbox: list[Mail]

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ready")
        sender, recipients = "", []
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 sink")
            elif verb == "MAIL":
                sender, recipients = line.split(":", 1)[1].strip(" <>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(line.split(":", 1)[1].strip(" <>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with .")
                lines = []
                while True:
                    data = self.rfile.readline(65536).decode("utf-8", "replace")
                    if data in (".\r\n", ".\n", ""):
                        break
                    lines.append(data[1:] if data.startswith("..") else data)
                self.mailbox.append(Mail(sender, recipients, "".join(lines)))
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


@dataclass
class SmtpSink:
    host: str
    port: int
    mailbox: list[Mail]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    mailbox: list[Mail] = []
    handler = type("Handler", (_SmtpHandler,), {"mailbox": mailbox})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield SmtpSink("127.0.0.1", server.server_address[1], mailbox)
    server.shutdown()
    server.server_close()


def incident(**overrides: Any) -> dict[str, Any]:
    """An incident state as the router sees it (synthetic masked values, fake fingerprints)."""
    base = {
        "incident_id": "0123456789abcdef0123456789abcdef",
        "severity": "high", "severity_rank": 3,
        "first_seen": "2025-01-01T00:00:00Z", "last_seen": "2025-01-02T00:00:00Z",
        "title": "data khach hang 2025", "sites": ["pastebin.com"], "feeds": ["paste"],
        "sightings": [{"site": "pastebin.com", "feed": "paste", "url": "https://pastebin.com/x",
                       "seen_at": "2025-01-01T00:00:00Z", "alert_id": "a1"}],
        "sightings_total": 1, "counts": {"vn_citizen_id": 120, "vn_phone": 118},
        "detectors": ["vn_citizen_id", "vn_phone"], "estimated_records": 118,
        "fingerprints_count": 238, "watchlists": [], "watchlist_hits": {},
        "reasons": ["118 record(s) combining two or more identifier types"],
        "samples": [{"detector": "vn_citizen_id", "masked": "079*******45", "confidence": 0.95},
                    {"detector": "vn_phone", "masked": "09******78", "confidence": 0.95}],
        "fingerprint_sample": ["ab" * 8], "notified": {},
    }
    base.update(overrides)
    return base


@pytest.fixture
def make_incident():
    return incident
