"""What a notification says: the incident summary and masked samples, nothing else.

Every message is built from :func:`incident_summary`, which copies an allow-list of fields out
of the incident: counts, severity, where and when it was seen, watch-list hits and the masked
samples. Fingerprints, alert contents and routing state never reach a message, so a chat
channel or a mailbox never becomes another copy of the leak. The renderers only lay that
summary out for each receiver.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

MAX_SITES_SHOWN = 10
MAX_SAMPLES_SHOWN = 6
SEVERITY_COLOURS = {"low": "808080", "medium": "FFC000", "high": "FF6600", "critical": "C00000"}
SEVERITY_EMOJI = {"low": ":white_circle:", "medium": ":large_yellow_circle:",
                  "high": ":large_orange_circle:", "critical": ":red_circle:"}


def incident_summary(incident: Mapping[str, Any], *, event: str,
                     previous_severity: str | None = None) -> dict[str, Any]:
    """The allow-listed, JSON-ready summary every renderer starts from.

    ``event`` is ``new`` (first notification on this route) or ``escalated``.
    """
    sightings = list(incident.get("sightings") or ())
    latest = sightings[-1] if sightings else {}
    sites = list(incident.get("sites") or ())
    return {
        "event": event,
        "incident_id": incident.get("incident_id"),
        "severity": incident.get("severity"),
        "severity_rank": incident.get("severity_rank"),
        "previous_severity": previous_severity,
        "title": incident.get("title"),
        "first_seen": incident.get("first_seen"),
        "last_seen": incident.get("last_seen"),
        "sites": sites[:MAX_SITES_SHOWN],
        "sites_total": len(sites),
        "feeds": list(incident.get("feeds") or ()),
        "sightings": int(incident.get("sightings_total") or len(sightings)),
        "latest_url": latest.get("url"),
        "counts": dict(incident.get("counts") or {}),
        "estimated_records": incident.get("estimated_records"),
        "distinct_identifiers": incident.get("fingerprints_count"),
        "watchlists": list(incident.get("watchlists") or ()),
        "watchlist_hits": dict(incident.get("watchlist_hits") or {}),
        "reasons": list(incident.get("reasons") or ()),
        "samples": [{"detector": s.get("detector"), "masked": s.get("masked")}
                    for s in list(incident.get("samples") or ())[:MAX_SAMPLES_SHOWN]
                    if isinstance(s, Mapping)],
    }


def headline(summary: Mapping[str, Any]) -> str:
    """One line: severity, event, size and spread."""
    severity = str(summary.get("severity") or "?").upper()
    if summary["event"] == "escalated" and summary.get("previous_severity"):
        what = f"incident escalated from {summary['previous_severity']}"
    else:
        what = "new incident"
    size = summary.get("distinct_identifiers") or 0
    return (f"[{severity}] roriwatch {what} {str(summary.get('incident_id'))[:12]}: "
            f"~{size:,} distinct identifiers on {summary['sites_total']} site(s)")


def _lines(summary: Mapping[str, Any]) -> list[str]:
    counts = ", ".join(f"{d} {n:,}" for d, n in sorted(summary["counts"].items()))
    lines = [
        f"Title: {summary.get('title') or '(none)'}",
        f"Seen: {summary['sightings']} time(s) on {', '.join(summary['sites']) or '?'}"
        + (" ..." if summary["sites_total"] > len(summary["sites"]) else ""),
        f"First seen: {summary.get('first_seen')}  Last seen: {summary.get('last_seen')}",
        f"Identifiers: {counts or 'none'}; estimated records: {summary.get('estimated_records')}",
    ]
    for name, hits in sorted(summary["watchlist_hits"].items()):
        lines.append(f"Watch-list '{name}': {hits:,} of its identifiers appear in this leak")
    others = [n for n in summary["watchlists"] if n not in summary["watchlist_hits"]]
    if others:
        lines.append("Keyword watch-lists named: " + ", ".join(others))
    if summary["reasons"]:
        lines.append("Why: " + "; ".join(summary["reasons"]))
    if summary["samples"]:
        lines.append("Masked samples: " + ", ".join(
            f"{s['masked']} ({s['detector']})" for s in summary["samples"]))
    if summary.get("latest_url"):
        lines.append(f"Latest sighting: {summary['latest_url']}")
    return lines


def render_text(summary: Mapping[str, Any]) -> str:
    """Plain text: e-mail bodies, Telegram and Slack's fallback text."""
    return "\n".join([headline(summary), "", *_lines(summary)])


def render_webhook(summary: Mapping[str, Any], route: str) -> dict[str, Any]:
    """Generic JSON: the summary itself, for SOAR tools and custom receivers."""
    return {"source": "roriwatch", "type": f"incident.{summary['event']}", "route": route,
            "incident": dict(summary)}


def render_slack(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook payload: fallback ``text`` plus Block Kit sections."""
    severity = str(summary.get("severity") or "low")
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{severity}"},
        {"type": "mrkdwn", "text": f"*Sightings*\n{summary['sightings']} on "
                                   f"{summary['sites_total']} site(s)"},
        {"type": "mrkdwn",
         "text": f"*Distinct identifiers*\n~{summary.get('distinct_identifiers')}"},
        {"type": "mrkdwn", "text": f"*Estimated records*\n{summary.get('estimated_records')}"},
    ]
    return {
        "text": headline(summary),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text",
                                        "text": headline(summary)[:150]}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(
                f"{SEVERITY_EMOJI.get(severity, '')} {line}" if i == 0 else line
                for i, line in enumerate(_lines(summary)))[:2900]}},
        ],
    }


def render_teams(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Microsoft Teams incoming-webhook MessageCard (also accepted by Workflows webhooks)."""
    facts = [{"name": "Severity", "value": str(summary.get("severity"))},
             {"name": "Sightings", "value": f"{summary['sightings']} on "
                                            f"{summary['sites_total']} site(s)"},
             {"name": "Distinct identifiers", "value": str(summary.get("distinct_identifiers"))},
             {"name": "Estimated records", "value": str(summary.get("estimated_records"))},
             {"name": "First seen", "value": str(summary.get("first_seen"))},
             {"name": "Last seen", "value": str(summary.get("last_seen"))}]
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": headline(summary)[:200],
        "themeColor": SEVERITY_COLOURS.get(str(summary.get("severity")), "808080"),
        "title": headline(summary),
        "sections": [{"facts": facts, "text": "<br>".join(_lines(summary))}],
    }


def render_telegram(summary: Mapping[str, Any], chat_id: str) -> dict[str, Any]:
    """Telegram Bot API ``sendMessage`` body: plain text, no parse mode, no link previews.

    No parse mode because masked values are full of ``*`` and ``_``, which Markdown would eat.
    """
    return {"chat_id": chat_id, "text": render_text(summary)[:4000],
            "disable_web_page_preview": True}


def render_email(summary: Mapping[str, Any], *, sender: str,
                 recipients: tuple[str, ...]) -> EmailMessage:
    """A plain-text e-mail."""
    message = EmailMessage()
    message["Subject"] = headline(summary)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["X-Roriwatch-Incident"] = str(summary.get("incident_id"))
    message.set_content(render_text(summary) + "\n\n-- \nroriwatch: masked values only; "
                        "fingerprints and raw identifiers are never sent.\n")
    return message
