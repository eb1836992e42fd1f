"""Delivery: one attempt to hand a summary to a receiver, with a verdict on what went wrong.

Each sender makes exactly one attempt and raises :class:`DeliveryError` saying whether trying
again can help (timeouts, connection errors, 429 and 5xx: yes; other 4xx, a refused SMTP
recipient: no) and how long the receiver asked to wait. The router owns retries, backoff and
rate limits. Blocking clients (urllib, smtplib) run in a worker thread so a slow receiver never
stalls the event loop that heartbeats to Kafka.

Error messages carry the route's target type and host and the HTTP or SMTP status, never the
URL path (webhook URLs and bot tokens are secrets) and never the message body.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from streams.routing.config import Route, Target
from streams.routing.messages import (
    render_email,
    render_slack,
    render_teams,
    render_telegram,
    render_webhook,
)

USER_AGENT = "roriwatch-notifier/1"
MAX_RETRY_AFTER_S = 300.0


class DeliveryError(RuntimeError):
    """One attempt failed; ``retryable`` says whether another attempt can succeed."""

    def __init__(self, reason: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after_s = retry_after_s


Sender = Callable[[Route, Mapping[str, Any]], Awaitable[None]]


def _retry_after(value: str | None, body: bytes) -> float | None:
    if value:
        try:
            return min(MAX_RETRY_AFTER_S, max(0.0, float(value)))
        except ValueError:
            pass
    try:  # Telegram: {"ok": false, "parameters": {"retry_after": 5}}
        data = json.loads(body or b"{}")
        after = data.get("parameters", {}).get("retry_after")
        if isinstance(after, (int, float)):
            return min(MAX_RETRY_AFTER_S, max(0.0, float(after)))
    except (ValueError, AttributeError):
        pass
    return None


def post_json(url: str, payload: Mapping[str, Any], *, timeout_s: float, what: str,
              headers: tuple[tuple[str, str], ...] = ()) -> int:
    """POST a JSON body; returns the status or raises :class:`DeliveryError` (blocking)."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 (http(s) checked at load)
                                     headers={"Content-Type": "application/json; charset=utf-8",
                                              "User-Agent": USER_AGENT, **dict(headers)})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            response.read(64 * 1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        detail = exc.read(64 * 1024) if exc.fp is not None else b""
        retryable = status in (408, 425, 429) or status >= 500
        after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None, detail)
        raise DeliveryError(f"{what} answered HTTP {status}", retryable=retryable,
                            retry_after_s=after) from None
    except OSError as exc:  # URLError, timeouts and refused connections are all OSErrors
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{what} unreachable ({type(reason).__name__})",
                            retryable=True) from None


def send_smtp(target: Target, message: Any) -> None:
    """Send one e-mail (blocking); refused recipients or auth are final, the rest retryable."""
    what = target.describe()
    host, port = target.smtp_host or "localhost", target.smtp_port
    try:
        if target.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=target.timeout_s,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=target.timeout_s)
        with client:
            if target.starttls:
                client.starttls(context=ssl.create_default_context())
            if target.username:
                client.login(target.username, target.password or "")
            refused = client.send_message(message)
        if refused:
            raise DeliveryError(f"{what} refused {len(refused)} recipient(s)", retryable=False)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{what} rejected the login (SMTP {exc.smtp_code})",
                            retryable=False) from None
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        raise DeliveryError(f"{what} refused the envelope ({type(exc).__name__})",
                            retryable=False) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"{what} answered SMTP {exc.smtp_code}",
                            retryable=exc.smtp_code >= 400 and exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"{what} unreachable ({type(exc).__name__})",
                            retryable=True) from None


def build_request(route: Route, summary: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """URL and JSON body for an HTTP target (pure, for tests and for the sender)."""
    target = route.target
    if target.type == "webhook":
        return target.url or "", render_webhook(summary, route.name)
    if target.type == "slack":
        return target.url or "", render_slack(summary)
    if target.type == "teams":
        return target.url or "", render_teams(summary)
    if target.type == "telegram":
        url = f"{target.api_base}/bot{target.token}/sendMessage"
        return url, render_telegram(summary, target.chat_id or "")
    raise ValueError(f"route {route.name}: {target.type} is not an HTTP target")


async def deliver(route: Route, summary: Mapping[str, Any]) -> None:
    """One delivery attempt to the route's target, off the event loop."""
    target = route.target
    if target.type == "email":
        message = render_email(summary, sender=target.sender or "", recipients=target.recipients)
        await asyncio.to_thread(send_smtp, target, message)
        return
    url, payload = build_request(route, summary)
    await asyncio.to_thread(post_json, url, payload, timeout_s=target.timeout_s,
                            what=target.describe(), headers=target.headers)
