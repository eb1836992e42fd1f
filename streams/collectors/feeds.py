"""RSS 2.0, RSS 1.0 (RDF) and Atom feeds reduced to a list of items.

Parsed with defusedxml because feeds come from strangers: entity expansion and external
entities must never be honoured.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException

_ATOM = "{http://www.w3.org/2005/Atom}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_DC = "{http://purl.org/dc/elements/1.1/}"


class FeedParseError(ValueError):
    """The document is not an RSS or Atom feed we can read."""


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed; ``body_html`` is the richest body the entry carries."""

    item_id: str | None
    link: str | None
    title: str | None
    author: str | None
    published_at: str | None
    body_html: str | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: Element | None) -> str | None:
    if element is None:
        return None
    value = "".join(element.itertext()).strip()
    return value or None


def _find_local(parent: Element, name: str) -> Element | None:
    for child in parent:
        if isinstance(child.tag, str) and _local(child.tag) == name:
            return child
    return None


_OFFSET_NO_COLON = re.compile(r"([+-]\d\d)(\d\d)$")
_FRACTION = re.compile(r"\.(\d+)")


def parse_iso8601(value: str) -> datetime | None:
    """Parse ISO-8601 as Python 3.10 cannot alone: ``Z``, ``+0700``, any fraction length."""
    text = value.strip().replace(" ", "T", 1) if " " in value.strip() else value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _OFFSET_NO_COLON.sub(r"\1:\2", text)
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_timestamp(value: str | None) -> str | None:
    """Normalise RFC 822, ISO-8601 or Unix-epoch timestamps to ISO-8601, or None."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    if value.isdigit():
        try:
            return datetime.fromtimestamp(int(value), tz=timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    parsed = parse_iso8601(value)
    if parsed is None:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.isoformat()


def parse_feed(data: bytes | str) -> list[FeedItem]:
    """Return the feed's items in document order; raise :class:`FeedParseError` otherwise."""
    try:
        root = SafeElementTree.fromstring(data)
    except (SafeElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise FeedParseError(f"not well-formed XML ({type(exc).__name__})") from None
    name = _local(root.tag)
    if name == "feed":
        return [_atom_entry(entry) for entry in root.iter(f"{_ATOM}entry")]
    if name in ("rss", "RDF"):
        return [
            _rss_item(item)
            for item in root.iter()
            if isinstance(item.tag, str) and _local(item.tag) == "item"
        ]
    raise FeedParseError(f"root element <{name}> is neither RSS nor Atom")


def _rss_item(item: Element) -> FeedItem:
    guid = _text(_find_local(item, "guid"))
    link = _text(_find_local(item, "link"))
    about = item.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about")
    author = _text(item.find(f"{_DC}creator")) or _text(_find_local(item, "author"))
    published = _text(_find_local(item, "pubDate")) or _text(item.find(f"{_DC}date"))
    body = _text(item.find(f"{_CONTENT}encoded")) or _text(_find_local(item, "description"))
    return FeedItem(
        item_id=guid or about or link,
        link=link or about,
        title=_text(_find_local(item, "title")),
        author=author,
        published_at=parse_timestamp(published),
        body_html=body,
    )


def _atom_entry(entry: Element) -> FeedItem:
    link = None
    for candidate in entry.findall(f"{_ATOM}link"):
        if candidate.get("rel", "alternate") == "alternate":
            link = candidate.get("href")
            break
    author = _text(entry.find(f"{_ATOM}author/{_ATOM}name"))
    published = _text(entry.find(f"{_ATOM}published")) or _text(entry.find(f"{_ATOM}updated"))
    body = _text(entry.find(f"{_ATOM}content")) or _text(entry.find(f"{_ATOM}summary"))
    return FeedItem(
        item_id=_text(entry.find(f"{_ATOM}id")) or link,
        link=link,
        title=_text(entry.find(f"{_ATOM}title")),
        author=author,
        published_at=parse_timestamp(published),
        body_html=body,
    )
