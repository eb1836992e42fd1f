"""Every target type against local receivers on 127.0.0.1: what arrives, and retries."""

from __future__ import annotations

import asyncio
import email
import json
from email import policy

import pytest

from streams.incidents.metrics import IncidentMetrics
from streams.routing.config import parse_routes
from streams.routing.messages import incident_summary
from streams.routing.router import Router
from streams.routing.senders import DeliveryError, deliver

FAKE_FINGERPRINT = "ab" * 8


def route_for(target, **extra):
    document = {"defaults": {"retry": {"attempts": 3, "base_delay_s": 0.01,
                                       "max_delay_s": 0.05}, "timeout_s": 5},
                "routes": [{"name": "r1", "target": target, **extra}]}
    return parse_routes(document, "test")


def notify(config, incident):
    router = Router(config, IncidentMetrics.create(), jitter=lambda: 1.0)
    notified: dict[str, int] = {}
    decisions = asyncio.run(router.notify(incident, notified))
    return decisions, notified


def assert_private(payload):
    blob = json.dumps(payload, ensure_ascii=False) if not isinstance(payload, str) else payload
    assert FAKE_FINGERPRINT not in blob and "fingerprint_sample" not in blob
    assert "notified" not in blob


def test_generic_webhook_gets_the_summary(webhook, make_incident):
    config = route_for({"type": "webhook", "url": webhook.url + "/hook",
                        "headers": {"Authorization": "Bearer t"}})
    decisions, notified = notify(config, make_incident())
    assert decisions[0].outcome == "sent" and notified == {"r1": 3}
    request = webhook.requests[0]
    assert request.path == "/hook" and request.headers["Authorization"] == "Bearer t"
    body = request.body
    assert body["type"] == "incident.new" and body["route"] == "r1"
    assert body["incident"]["severity"] == "high"
    assert body["incident"]["samples"] == [{"detector": "vn_citizen_id", "masked": "079*******45"},
                                           {"detector": "vn_phone", "masked": "09******78"}]
    assert_private(body)


def test_slack_payload(webhook, make_incident):
    decisions, _ = notify(route_for({"type": "slack", "url": webhook.url}), make_incident())
    body = webhook.requests[0].body
    assert decisions[0].outcome == "sent"
    assert body["text"].startswith("[HIGH] roriwatch new incident")
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section"]
    assert "079*******45" in body["blocks"][2]["text"]["text"]
    assert_private(body)


def test_teams_message_card(webhook, make_incident):
    notify(route_for({"type": "teams", "url": webhook.url}),
           make_incident(severity="critical", severity_rank=4))
    body = webhook.requests[0].body
    assert body["@type"] == "MessageCard" and body["themeColor"] == "C00000"
    assert {"name": "Severity", "value": "critical"} in body["sections"][0]["facts"]
    assert_private(body)


def test_telegram_send_message(webhook, make_incident):
    notify(route_for({"type": "telegram", "chat_id": "-100", "token": "42:tok",
                      "api_base": webhook.url}),
           make_incident(watchlists=["customers"], watchlist_hits={"customers": 412}))
    request = webhook.requests[0]
    assert request.path == "/bot42:tok/sendMessage"
    assert request.body["chat_id"] == "-100" and request.body["disable_web_page_preview"]
    assert "Watch-list 'customers': 412 of its identifiers appear" in request.body["text"]
    assert_private(request.body)


def test_server_errors_are_retried_then_succeed(webhook, make_incident):
    webhook.replies = [(500, {}), (429, {"Retry-After": "0"})]
    decisions, notified = notify(route_for({"type": "webhook", "url": webhook.url}),
                                 make_incident())
    assert decisions[0].outcome == "sent" and len(webhook.requests) == 3
    assert notified == {"r1": 3}


def test_client_errors_are_not_retried(webhook, make_incident):
    webhook.replies = [(400, {})]
    decisions, notified = notify(route_for({"type": "webhook", "url": webhook.url}),
                                 make_incident())
    assert decisions[0].outcome == "failed" and "HTTP 400" in decisions[0].detail
    assert len(webhook.requests) == 1 and notified == {}


def test_unreachable_receiver_fails_with_a_safe_reason(make_incident):
    config = route_for({"type": "slack", "url": "http://127.0.0.1:9/services/SECRET/PATH"})
    with pytest.raises(DeliveryError) as info:
        asyncio.run(deliver(config.routes[0], incident_summary(make_incident(), event="new")))
    assert info.value.retryable and "SECRET" not in str(info.value)
    assert "127.0.0.1:9" in str(info.value)


def test_email_through_smtp_sink(smtp_sink, make_incident):
    config = route_for({"type": "email", "smtp_host": smtp_sink.host,
                        "smtp_port": smtp_sink.port, "from": "roriwatch@example.vn",
                        "to": ["dpo@example.vn", "soc@example.vn"]})
    decisions, notified = notify(config, make_incident())
    assert decisions[0].outcome == "sent" and notified == {"r1": 3}
    (mail,) = smtp_sink.mailbox
    assert mail.recipients == ["dpo@example.vn", "soc@example.vn"]
    message = email.message_from_string(mail.data, policy=policy.default)
    assert message["Subject"].startswith("[HIGH] roriwatch new incident")
    body = message.get_content()
    assert "079*******45 (vn_citizen_id)" in body and "estimated records: 118" in body
    assert_private(body)


def test_smtp_down_is_retryable(make_incident):
    config = route_for({"type": "email", "smtp_host": "127.0.0.1", "smtp_port": 9,
                        "from": "a@example.vn", "to": ["b@example.vn"], "timeout_s": 2})
    decisions, _ = notify(config, make_incident())
    assert decisions[0].outcome == "failed" and "unreachable" in decisions[0].detail
