"""Paste sites: poll a listing, fetch each new paste's raw text.

Pastebin's scraping API is just a preset of the generic listing source, so another paste site
(a Vietnamese one included) is a few lines of YAML: where the listing is, how its fields are
named, and how to build the raw-content URL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.collectors.config import CollectorConfigError, SourceConfig, option_reader
from streams.collectors.feeds import FeedParseError, parse_feed, parse_timestamp
from streams.collectors.fetch import FetchError, HttpFetcher
from streams.collectors.html_text import html_to_text
from streams.collectors.sources.base import Emission, PollContext, Source, dotted_get

log = logging.getLogger(__name__)

MAPPABLE_FIELDS = ("item_id", "url", "title", "author", "published_at", "raw_url", "content")

PASTEBIN_PRESET: dict[str, Any] = {
    "listing_url": "https://scrape.pastebin.com/api_scraping.php?limit=100",
    "listing_format": "json",
    "items_path": "",
    "fields": {
        "item_id": "key",
        "url": "full_url",
        "title": "title",
        "author": "user",
        "published_at": "date",
        "raw_url": "scrape_url",
    },
    "meta_fields": {"syntax": "syntax", "size": "size", "expire": "expire"},
    "url_template": "https://pastebin.com/{item_id}",
    "raw_url_template": "https://scrape.pastebin.com/api_scrape_item.php?i={item_id}",
}


@dataclass(frozen=True)
class ListingOptions:
    """Validated options of a paste listing source."""

    listing_url: str
    listing_format: str
    items_path: str
    fields: dict[str, str]
    meta_fields: dict[str, str]
    raw_url_template: str | None
    url_template: str | None
    item_id_pattern: re.Pattern[str] | None
    listing_order: str
    content_is_html: bool
    max_items_per_poll: int


@dataclass(frozen=True)
class ListingEntry:
    """One paste as the listing describes it."""

    item_id: str
    url: str | None
    title: str | None
    author: str | None
    published_at: str | None
    raw_url: str | None
    inline_content: str | None
    meta: dict[str, Any]


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def _format_template(template: str, values: dict[str, Any]) -> str | None:
    try:
        return template.format_map(_Missing({k: v for k, v in values.items() if v is not None}))
    except (KeyError, IndexError, ValueError):
        return None


class PasteListingSource(Source):
    """A paste site with a JSON or RSS/Atom listing of recent pastes."""

    source_type = "paste_listing"
    preset: dict[str, Any] | None = None

    @classmethod
    def parse_options(cls, config: SourceConfig, where: str) -> ListingOptions:
        """Validate listing, field mapping and URL templates."""
        merged = dict(cls.preset or {})
        merged.update(config.options)
        reader = option_reader(dataclasses.replace(config, options=merged), where)
        listing_url = reader.url("listing_url", required=True)
        listing_format = reader.choice("listing_format", "json", ("json", "rss", "atom", "feed"))
        items_path = reader.get("items_path", "") or ""
        if not isinstance(items_path, str):
            raise reader.fail("items_path", "must be a dotted path like 'data.pastes'")
        fields = reader.str_map("fields")
        unknown = sorted(set(fields) - set(MAPPABLE_FIELDS))
        if unknown:
            raise reader.fail(
                "fields", f"unknown key(s) {', '.join(unknown)}; use {', '.join(MAPPABLE_FIELDS)}"
            )
        if listing_format == "json" and "item_id" not in fields:
            raise reader.fail("fields", "must map item_id for a JSON listing")
        raw_template = reader.text("raw_url_template")
        has_content = "content" in fields or "raw_url" in fields or listing_format != "json"
        if raw_template is None and not has_content:
            raise reader.fail(
                "raw_url_template",
                "is required unless fields maps raw_url or content (e.g. "
                "'https://paste.example.vn/raw/{item_id}')",
            )
        for key in ("raw_url_template", "url_template"):
            template = reader.get(key)
            if isinstance(template, str):
                check_template(template, f"{where}: field '{key}'")
        pattern_text = reader.text("item_id_pattern")
        pattern = None
        if pattern_text:
            try:
                pattern = re.compile(pattern_text)
            except re.error as exc:
                raise reader.fail("item_id_pattern", f"is not a valid regex ({exc})") from None
        options = ListingOptions(
            listing_url=listing_url,
            listing_format=listing_format,
            items_path=items_path,
            fields=fields,
            meta_fields=reader.str_map("meta_fields"),
            raw_url_template=raw_template,
            url_template=reader.text("url_template"),
            item_id_pattern=pattern,
            listing_order=reader.choice(
                "listing_order", "newest_first", ("newest_first", "oldest_first")
            ),
            content_is_html=reader.flag("content_is_html", False),
            max_items_per_poll=reader.integer("max_items_per_poll", 200, minimum=1),
        )
        reader.check_unknown()
        return options

    def __init__(self, config: SourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.fetcher: HttpFetcher = self.make_fetcher()

    # ------------------------------------------------------------------ listing

    def _entries_from_json(self, body: bytes) -> list[ListingEntry]:
        options: ListingOptions = self.options
        try:
            document = json.loads(body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            # Pastebin answers plain text ("... DOES NOT HAVE ACCESS") to IPs that are not
            # whitelisted for its scraping API.
            raise FeedParseError(
                "listing is not JSON (for Pastebin: is this IP whitelisted for the scraping API?)"
            ) from None
        items = dotted_get(document, options.items_path)
        if not isinstance(items, list):
            raise FeedParseError(f"listing has no list at items_path '{options.items_path}'")
        entries = []
        for raw in items:
            if not isinstance(raw, dict):
                continue
            values = {name: dotted_get(raw, path) for name, path in options.fields.items()}
            item_id = values.get("item_id")
            if item_id is None or item_id == "":
                continue
            meta = {}
            for name, path in options.meta_fields.items():
                value = dotted_get(raw, path)
                if isinstance(value, str | int | float | bool):
                    meta[name] = value
            entries.append(self._entry(values, meta))
        return entries

    def _entries_from_feed(self, body: bytes) -> list[ListingEntry]:
        entries = []
        for item in parse_feed(body):
            values = {
                "item_id": item.item_id,
                "url": item.link,
                "title": item.title,
                "author": item.author,
                "published_at": item.published_at,
                "content": html_to_text(item.body_html) if item.body_html else None,
            }
            if values["item_id"] is None:
                continue
            if "content" not in self.options.fields:
                values["content"] = None  # the feed's summary is not the paste: fetch raw
            entries.append(self._entry(values, {}))
        return entries

    def _entry(self, values: dict[str, Any], meta: dict[str, Any]) -> ListingEntry:
        options: ListingOptions = self.options
        item_id = str(values["item_id"])
        if options.item_id_pattern is not None:
            match = options.item_id_pattern.search(item_id)
            if match:
                named = match.groupdict().get("id")
                item_id = named or (match.group(1) if match.re.groups else match.group(0))
        values = {**{k: (None if v is None else str(v)) for k, v in values.items()}}
        values["item_id"] = item_id
        url = values.get("url")
        if not url and options.url_template:
            url = _format_template(options.url_template, values)
        raw_url = values.get("raw_url")
        if not raw_url and options.raw_url_template:
            raw_url = _format_template(options.raw_url_template, {**values, "url": url})
        content = values.get("content")
        if content is not None and options.content_is_html:
            content = html_to_text(content)
        return ListingEntry(
            item_id=item_id,
            url=url,
            title=values.get("title") or None,
            author=values.get("author") or None,
            published_at=parse_timestamp(values.get("published_at")),
            raw_url=raw_url,
            inline_content=content,
            meta=meta,
        )

    def _order(self, entries: list[ListingEntry]) -> list[ListingEntry]:
        # Deliver oldest first so the checkpoint advances in publication order.
        if entries and all(e.published_at for e in entries):
            return sorted(entries, key=lambda e: e.published_at or "")
        if self.options.listing_order == "newest_first":
            return list(reversed(entries))
        return entries

    # ------------------------------------------------------------------ poll

    def poll(self, state: dict[str, Any], ctx: PollContext) -> Iterator[Emission]:
        """Fetch the listing, then every paste not delivered before."""
        options: ListingOptions = self.options
        accept = "application/json" if options.listing_format == "json" else "application/xml, */*"
        listing = self.fetcher.fetch(
            options.listing_url,
            max_bytes=8 * 1024 * 1024,
            etag=state.get("etag"),
            last_modified=state.get("last_modified"),
            accept=accept,
        )
        if listing.not_modified:
            return
        if listing.truncated:
            raise FeedParseError("listing is larger than 8 MiB")
        if options.listing_format == "json":
            entries = self._entries_from_json(listing.body)
        else:
            entries = self._entries_from_feed(listing.body)
        new = [e for e in self._order(entries) if not ctx.is_seen(e.item_id)]
        # Left-over items wait for the next poll, so the listing must not be marked as seen.
        complete = len(new) <= options.max_items_per_poll
        new = new[: options.max_items_per_poll]
        log.info("source %s: listing has %d items, %d new", self.name, len(entries), len(new))
        last: dict[str, Any] = {}
        for entry in new:
            if ctx.stopping():
                return
            try:
                envelope = self._collect(entry)
            except FetchError as exc:
                ctx.error(exc.kind)
                if exc.kind == "gone":
                    # Deleted or expired before we got to it: remember it so it is not
                    # requested again on every poll while it stays in the listing.
                    yield Emission(seen_ids=(entry.item_id,))
                    continue
                if exc.kind == "rate_limited":
                    raise
                log.warning("source %s: item %s not fetched (%s)", self.name, entry.item_id, exc)
                complete = False
                continue
            last = {"last_item_id": entry.item_id, "last_published_at": entry.published_at}
            yield Emission(envelopes=[envelope], state={**state, **last})
        if complete:
            # Only now is it safe to remember the listing's validators: a 304 next time must
            # not hide an item whose fetch failed in this poll.
            yield Emission(
                state={
                    **state,
                    **last,
                    "etag": listing.headers.get("ETag"),
                    "last_modified": listing.headers.get("Last-Modified"),
                }
            )

    def _collect(self, entry: ListingEntry) -> Any:
        meta = dict(entry.meta)
        if entry.inline_content is not None:
            return self.envelope(
                item_id=entry.item_id,
                content=entry.inline_content,
                url=entry.url,
                author=entry.author,
                title=entry.title,
                published_at=entry.published_at,
                meta=meta,
            )
        if not entry.raw_url:
            raise FetchError("parse", "no raw URL for item")
        result = self.fetcher.fetch(entry.raw_url, max_bytes=self.config.max_content_bytes)
        decoded = result.decode()
        meta["charset"] = decoded.charset
        meta["charset_fallback"] = decoded.fallback
        content: str | bytes = result.body if decoded.binary else decoded.text
        return self.envelope(
            item_id=entry.item_id,
            content=content,
            url=entry.url,
            author=entry.author,
            title=entry.title,
            published_at=entry.published_at,
            meta=meta,
            truncated=result.truncated,
            original_bytes=result.original_bytes,
        )


class PastebinSource(PasteListingSource):
    """Pastebin's scraping API (needs a whitelisted IP and a PRO account)."""

    source_type = "pastebin"
    preset = PASTEBIN_PRESET


def check_template(template: str, where: str) -> None:
    """Reject templates with placeholders no listing field can fill."""
    for name in re.findall(r"{([^}:!]*)", template):
        if name not in MAPPABLE_FIELDS:
            raise CollectorConfigError(f"{where}: template placeholder '{{{name}}}' is unknown")
