"""HttpFetcher against a local server: retries, Retry-After, backoff, timeouts, size cap, proxy."""

from __future__ import annotations

import gzip
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streams.collectors.config import HttpSettings
from streams.collectors.fetch import (
    FetchError,
    HttpFetcher,
    RateLimiter,
    Stopped,
    parse_retry_after,
)
from streams.collectors.testing import FixtureServer, Reply


class RecordingWait:
    """Stands in for Event.wait: records requested sleeps instead of sleeping."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.waits: list[float] = []
        self.stop_after = stop_after

    def __call__(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.stop_after is not None and len(self.waits) >= self.stop_after


def fetcher(wait=None, **settings) -> HttpFetcher:
    values = dict(rate_limit_per_second=1000, backoff_initial_seconds=1.0, timeout_seconds=2)
    values.update(settings)
    return HttpFetcher(HttpSettings(**values), wait=wait or RecordingWait())


@pytest.fixture
def http():
    server = FixtureServer().start()
    yield server
    server.stop()


def test_429_honours_retry_after(http):
    http.script("/list", Reply(429, b"slow down", {"Retry-After": "7"}), Reply(200, b"[]"))
    wait = RecordingWait()
    result = fetcher(wait).fetch(http.url("/list"), max_bytes=1000)
    assert result.body == b"[]"
    assert 7.0 in wait.waits
    assert http.hits("/list") == 2


def test_503_retry_after_as_http_date(http):
    when = formatdate(time.time() + 30, usegmt=True)
    http.script("/x", Reply(503, b"", {"Retry-After": when}), Reply(200, b"ok"))
    wait = RecordingWait()
    assert fetcher(wait).fetch(http.url("/x"), max_bytes=10).body == b"ok"
    assert any(25 <= w <= 31 for w in wait.waits)


def test_retry_after_longer_than_allowed_fails_as_rate_limited(http):
    http.script("/x", Reply(429, b"", {"Retry-After": "3600"}))
    with pytest.raises(FetchError) as excinfo:
        fetcher(retry_after_max_seconds=60).fetch(http.url("/x"), max_bytes=10)
    assert excinfo.value.kind == "rate_limited"
    assert http.hits("/x") == 1


def test_server_errors_back_off_exponentially_then_give_up(http):
    http.script("/x", Reply(500, b"boom"))
    wait = RecordingWait()
    with pytest.raises(FetchError) as excinfo:
        fetcher(wait, max_retries=3).fetch(http.url("/x"), max_bytes=10)
    assert excinfo.value.kind == "http_status" and excinfo.value.status == 500
    backoffs = [w for w in wait.waits if w >= 0.5]
    assert len(backoffs) == 3
    assert [round(w) for w in backoffs] == [1, 2, 4]  # 10% jitter at most
    assert http.hits("/x") == 4


@pytest.mark.parametrize(("status", "kind"), [(404, "gone"), (410, "gone"), (403, "http_status")])
def test_client_errors_are_not_retried(http, status, kind):
    http.script("/x", Reply(status, b""))
    with pytest.raises(FetchError) as excinfo:
        fetcher().fetch(http.url("/x"), max_bytes=10)
    assert excinfo.value.kind == kind
    assert http.hits("/x") == 1


def test_timeouts_are_retried_then_reported(http):
    http.script("/slow", Reply(200, b"late", delay=0.6))
    started = time.monotonic()
    with pytest.raises(FetchError) as excinfo:
        fetcher(timeout_seconds=0.2, max_retries=1).fetch(http.url("/slow"), max_bytes=10)
    assert excinfo.value.kind == "timeout"
    assert time.monotonic() - started < 3


def test_connection_refused_is_a_connection_error():
    with pytest.raises(FetchError) as excinfo:
        fetcher(max_retries=0).fetch("http://127.0.0.1:9/nothing", max_bytes=10)
    assert excinfo.value.kind == "connection"


def test_body_is_capped_and_flagged(http):
    http.script("/big", Reply(200, b"x" * 5000))
    result = fetcher().fetch(http.url("/big"), max_bytes=1000)
    assert len(result.body) == 1000
    assert result.truncated and result.original_bytes == 5000


def test_gzip_is_decompressed_within_the_cap(http):
    body = gzip.compress(b"a" * 100_000)
    http.script("/gz", Reply(200, body, {"Content-Encoding": "gzip"}))
    result = fetcher().fetch(http.url("/gz"), max_bytes=2000)
    assert result.body == b"a" * 2000 and result.truncated
    small = gzip.compress("chào".encode())
    http.script("/gz2", Reply(200, small, {"Content-Encoding": "gzip"}))
    assert fetcher().fetch(http.url("/gz2"), max_bytes=2000).body == "chào".encode()


def test_conditional_get_sends_validators_and_reports_304(http):
    http.script("/feed", Reply(304, b""))
    result = fetcher().fetch(http.url("/feed"), max_bytes=10, etag='"v1"', last_modified="x")
    assert result.not_modified
    assert http.requests[-1].headers["If-None-Match"] == '"v1"'
    assert http.requests[-1].headers["User-Agent"].startswith("roriwatch-collector")


def test_stop_interrupts_a_long_retry_after(http):
    http.script("/x", Reply(429, b"", {"Retry-After": "600"}))
    stopping = fetcher(RecordingWait(stop_after=2))
    with pytest.raises(Stopped):
        stopping.fetch(http.url("/x"), max_bytes=10)


def test_configured_proxy_is_used_and_nothing_else(http):
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)  # a proxy receives the absolute URL
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"proxied")

        def log_message(self, *args):
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True).start()
    try:
        address = f"http://127.0.0.1:{proxy.server_address[1]}"
        through = fetcher(proxies={"http": address})
        assert through.fetch("http://paste.vi.example/raw/1", max_bytes=100).body == b"proxied"
        assert seen == ["http://paste.vi.example/raw/1"]
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_rate_limiter_spaces_requests():
    now = [100.0]
    limiter = RateLimiter(2.0, clock=lambda: now[0])
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.5, 1.0]
    now[0] = 110.0
    assert limiter.reserve() == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), ("0", 0.0), ("soon", None), (None, None)],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected
