"""Polite, bounded HTTP fetching on urllib: rate limit, Retry-After, backoff, size cap.

Every knob comes from :class:`~streams.collectors.config.HttpSettings`. Proxies are only those
configured: urllib would otherwise read ``http_proxy`` from the environment behind our back.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message

from streams.collectors.config import HttpSettings
from streams.collectors.textdecode import DecodedText, charset_from_content_type, decode_bytes

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
_RETRY_WITH_RETRY_AFTER = {429, 503}
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class FetchError(RuntimeError):
    """A request that failed for good; ``kind`` is one of the metrics' error kinds."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class Stopped(Exception):
    """The collector is shutting down; raised out of waits so loops unwind promptly."""


@dataclass(frozen=True)
class FetchResult:
    """A fetched body, capped at ``max_bytes`` (``truncated`` says whether it was cut)."""

    url: str
    status: int
    headers: Message
    body: bytes
    truncated: bool
    original_bytes: int | None

    @property
    def not_modified(self) -> bool:
        """Whether a conditional request was answered 304."""
        return self.status == 304

    def decode(self) -> DecodedText:
        """Decode the body with the charset the server declared, or a detected one."""
        declared = charset_from_content_type(self.headers.get("Content-Type"))
        return decode_bytes(self.body, declared)


class RateLimiter:
    """Spaces requests at least ``1 / rate`` seconds apart (per source, shared by its threads)."""

    def __init__(
        self, rate_per_second: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = 1.0 / rate_per_second
        self.clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next slot and return how long to wait for it."""
        with self._lock:
            now = self.clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            return slot - now


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class HttpFetcher:
    """Fetches URLs for one source with that source's politeness settings.

    ``wait`` is how the fetcher sleeps; it returns True when the collector is stopping
    (``threading.Event.wait`` has exactly that shape), so a shutdown interrupts a long
    Retry-After instead of waiting it out.
    """

    def __init__(
        self,
        settings: HttpSettings,
        *,
        wait: Callable[[float], bool] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit_per_second)
        self._wait = wait if wait is not None else threading.Event().wait
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.ProxyHandler(dict(settings.proxies)),
        ]
        if settings.ca_file or not settings.verify_tls:
            context = ssl.create_default_context(cafile=settings.ca_file)
            if not settings.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def sleep(self, seconds: float) -> None:
        """Wait, raising :class:`Stopped` if the collector is asked to stop meanwhile."""
        if seconds > 0 and self._wait(seconds):
            raise Stopped()

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with 10% jitter so many sources do not retry in lockstep."""
        base = self.settings.backoff_initial_seconds * (2**attempt)
        delay = min(self.settings.backoff_max_seconds, base)
        return delay * (1.0 + 0.1 * self._rng.random())

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = "*/*",
    ) -> FetchResult:
        """GET ``url`` with retries; return the (possibly truncated) body or raise FetchError."""
        attempt = 0
        while True:
            self.sleep(self.limiter.reserve())
            try:
                return self._fetch_once(url, max_bytes, etag, last_modified, accept)
            except _Retryable as retry:
                if attempt >= self.settings.max_retries:
                    raise FetchError(retry.kind, retry.message, retry.status) from None
                delay = retry.retry_after
                if delay is not None:
                    if delay > self.settings.retry_after_max_seconds:
                        raise FetchError(
                            "rate_limited",
                            f"server asked to wait {delay:.0f}s, more than "
                            f"retry_after_max_seconds={self.settings.retry_after_max_seconds:g}",
                            retry.status,
                        ) from None
                else:
                    delay = self.backoff_delay(attempt)
                log.info(
                    "retrying after %s (attempt %d of %d, waiting %.1fs)",
                    retry.kind,
                    attempt + 1,
                    self.settings.max_retries,
                    delay,
                )
                attempt += 1
                self.sleep(delay)

    def _fetch_once(
        self,
        url: str,
        max_bytes: int,
        etag: str | None,
        last_modified: str | None,
        accept: str,
    ) -> FetchResult:
        headers = {
            "User-Agent": self.settings.user_agent,
            "Accept": accept,
            "Accept-Encoding": "gzip, deflate",
            **self.settings.headers,
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme validated
        try:
            response = self._opener.open(request, timeout=self.settings.timeout_seconds)
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc_headers = exc.headers
            exc.close()
            if status == 304:
                return FetchResult(url, 304, exc_headers, b"", False, None)
            if status in _RETRY_STATUSES:
                retry_after = (
                    parse_retry_after(exc_headers.get("Retry-After"))
                    if status in _RETRY_WITH_RETRY_AFTER
                    else None
                )
                kind = "rate_limited" if status in _RETRY_WITH_RETRY_AFTER else "http_status"
                raise _Retryable(kind, f"HTTP {status}", status, retry_after) from None
            kind = "gone" if status in (404, 410) else "http_status"
            raise FetchError(kind, f"HTTP {status}", status) from None
        except TimeoutError:
            raise _Retryable("timeout", "timed out", None, None) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retryable("timeout", "timed out", None, None) from None
            raise _Retryable(
                "connection", f"connection failed ({type(exc.reason).__name__})", None, None
            ) from None
        except (ConnectionError, OSError) as exc:
            raise _Retryable(
                "connection", f"connection failed ({type(exc).__name__})", None, None
            ) from None
        with response:
            try:
                return self._read(url, response, max_bytes)
            except TimeoutError:
                raise _Retryable("timeout", "timed out reading body", None, None) from None
            except (ConnectionError, OSError) as exc:
                raise _Retryable(
                    "connection", f"body read failed ({type(exc).__name__})", None, None
                ) from None

    def _read(self, url: str, response: object, max_bytes: int) -> FetchResult:
        headers: Message = response.headers  # type: ignore[attr-defined]
        status: int = response.status  # type: ignore[attr-defined]
        encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
        declared_length = headers.get("Content-Length")
        original: int | None = None
        if encoding == "identity" and declared_length and declared_length.isdigit():
            original = int(declared_length)
        decompressor = None
        if encoding in ("gzip", "x-gzip"):
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            decompressor = zlib.decompressobj()
        body = bytearray()
        truncated = False
        # Read at most one byte past the cap: enough to know the item is bigger, without
        # downloading a multi-gigabyte paste (or a decompression bomb).
        while len(body) <= max_bytes:
            chunk = response.read(_READ_CHUNK)  # type: ignore[attr-defined]
            if not chunk:
                if decompressor is not None:
                    body.extend(decompressor.flush())
                break
            if decompressor is not None:
                try:
                    chunk = decompressor.decompress(chunk, max_bytes + 1 - len(body))
                except zlib.error:
                    raise FetchError("parse", "corrupt compressed body", status) from None
            body.extend(chunk)
        if len(body) > max_bytes:
            truncated = True
            del body[max_bytes:]
        return FetchResult(url, status, headers, bytes(body), truncated, original)


class _Retryable(Exception):
    def __init__(
        self, kind: str, message: str, status: int | None, retry_after: float | None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
