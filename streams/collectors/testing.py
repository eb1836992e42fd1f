"""A local HTTP fixture server for trying collector configs without touching real sites.

Used by the collector tests and handy for checking a new paste-site or forum configuration
against saved pages: it serves files from a directory on 127.0.0.1, substitutes ``{base}``
with its own address, and can script responses (429 with Retry-After, 304, slow bodies).
"""

from __future__ import annotations

import contextlib
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_TYPES = {
    ".json": "application/json; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def encode_windows_1258(text: str) -> bytes:
    """Encode text as a Vietnamese windows-1258 page would: tones as combining marks.

    Python's cp1258 codec only maps single code points, so NFC text must first be split into
    the base letters cp1258 has (â, ê, ô, ơ, ư, ă, đ) plus a combining tone mark.
    """
    out = bytearray()
    for char in unicodedata.normalize("NFC", text):
        try:
            out += char.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        decomposed = unicodedata.normalize("NFD", char)
        base, marks = decomposed[0], decomposed[1:]
        shape = "".join(m for m in marks if m in "\u0302\u0306\u031b")
        base = unicodedata.normalize("NFC", base + shape)
        marks = "".join(m for m in marks if m not in shape)
        out += (base + marks).encode("cp1258")
    return bytes(out)


@dataclass
class Reply:
    """A scripted response; ``delay`` seconds pass before the body is sent."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class SeenRequest:
    """A request the server received."""

    path: str
    headers: dict[str, str]
    at: float


class FixtureServer:
    """Serves scripted replies first, then files under ``root`` (with ``{base}`` filled in)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.requests: list[SeenRequest] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        """Return ``http://127.0.0.1:PORT``."""
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.base + path

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests for ``path`` (path and query) with ``replies`` in order.

        The last reply keeps being served once the others are used up.
        """
        with self._lock:
            self._scripts[path] = list(replies)

    def hits(self, path: str) -> int:
        """How many requests asked for exactly ``path``."""
        return sum(1 for r in self.requests if r.path == path)

    def _next_reply(self, path: str) -> Reply | None:
        with self._lock:
            replies = self._scripts.get(path)
            if not replies:
                return None
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _file_reply(self, path: str) -> Reply:
        if self.root is None:
            return Reply(404, b"not found")
        relative = path.split("?", 1)[0].lstrip("/")
        candidate = (self.root / relative).resolve()
        if self.root.resolve() not in candidate.parents or not candidate.is_file():
            return Reply(404, b"not found")
        body = candidate.read_bytes().replace(b"{base}", self.base.encode())
        content_type = _TYPES.get(candidate.suffix, "application/octet-stream")
        return Reply(200, body, {"Content-Type": content_type})

    def start(self) -> FixtureServer:
        """Listen on an ephemeral port of 127.0.0.1."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.requests.append(
                    SeenRequest(self.path, dict(self.headers.items()), time.monotonic())
                )
                reply = server._next_reply(self.path) or server._file_reply(self.path)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                headers = {"Content-Length": str(len(reply.body)), **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                """Stay quiet: tests read ``requests`` instead."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@contextmanager
def fixture_server(root: Path | None = None) -> Iterator[FixtureServer]:
    """Run a :class:`FixtureServer` for the duration of a ``with`` block."""
    server = FixtureServer(root).start()
    try:
        yield server
    finally:
        server.stop()
