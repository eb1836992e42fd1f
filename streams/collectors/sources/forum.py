"""Forums: RSS/Atom feeds of boards and HTML thread pages, one envelope per post.

Post extraction is data, not code: a markup preset is a handful of selectors, and a board on
other software gets its own selectors in the YAML instead of a new parser.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin

from streams.collectors.config import SourceConfig, option_reader
from streams.collectors.feeds import FeedParseError, parse_feed, parse_timestamp
from streams.collectors.fetch import FetchError, HttpFetcher
from streams.collectors.html_text import Node, SelectorError, html_to_text, parse_html
from streams.collectors.html_text import parse_selector as _parse_selector
from streams.collectors.sources.base import Emission, PollContext, Source

log = logging.getLogger(__name__)

SELECTOR_KEYS = ("post", "post_id_attr", "author", "author_attr", "body", "time", "title", "next")

# XenForo 2 (article.message--post) and 1 (li.message); phpBB 3 prosilver (div.post#pNNN).
MARKUP_PRESETS: dict[str, dict[str, str]] = {
    "xenforo": {
        "post": "article.message--post, li.message[data-author]",
        "post_id_attr": "data-content, id",
        "author": ".message-name .username, .message-name, .userText .username, a.username",
        "author_attr": "data-author",
        "body": ".message-body .bbWrapper, .messageContent blockquote.messageText, .bbWrapper",
        "time": "time[datetime], abbr.DateTime[data-time]",
        "title": "h1.p-title-value, .titleBar h1, h1",
        "next": "a.pageNav-jump--next, link[rel=next], a[rel=next]",
    },
    "phpbb": {
        "post": "div.post[id]",
        "post_id_attr": "id",
        "author": ".postprofile .username, .postprofile .username-coloured, "
        "p.author .username, p.author .username-coloured, p.author strong",
        "author_attr": "",
        "body": "div.content",
        "time": "p.author time[datetime], time[datetime]",
        "title": "h2.topic-title, h2",
        "next": "link[rel=next], a[rel=next], li.next a, li.arrow.next a",
    },
}

_POST_DIGITS = re.compile(r"(\d+)")
THREAD_STATE_LIMIT = 2000


@dataclass(frozen=True)
class ForumPost:
    """A post as read from a thread page."""

    post_id: str
    author: str | None
    published_at: str | None
    text: str
    url: str


@dataclass(frozen=True)
class ThreadPage:
    """The posts of one page of a thread and the link to the next page."""

    title: str | None
    posts: list[ForumPost]
    next_url: str | None


def _first(root: Node, selector: str) -> Node | None:
    return root.select_one(selector) if selector else None


def detect_markup(root: Node) -> str | None:
    """Guess the forum software from the page's markup."""
    if root.select_one("article.message--post, li.message[data-author]"):
        return "xenforo"
    if any(re.fullmatch(r"p\d+", node.attrs.get("id", "")) for node in root.select("div.post")):
        return "phpbb"
    return None


def parse_thread_page(
    markup: str, page_url: str, selectors: dict[str, str] | None = None
) -> ThreadPage:
    """Extract posts from a thread page using ``selectors`` or the auto-detected preset."""
    root = parse_html(markup)
    if selectors is None:
        preset = detect_markup(root)
        if preset is None:
            raise FeedParseError("thread page markup not recognised (set markup or selectors)")
        selectors = MARKUP_PRESETS[preset]
    title_node = _first(root, selectors.get("title", ""))
    title = title_node.text() if title_node is not None else None
    posts = []
    for node in root.select(selectors["post"]):
        post_id = None
        for attr in [a.strip() for a in selectors.get("post_id_attr", "id").split(",")]:
            match = _POST_DIGITS.search(node.attrs.get(attr, ""))
            if match:
                post_id = match.group(1)
                break
        if post_id is None:
            continue
        author = None
        author_attr = selectors.get("author_attr", "")
        if author_attr and node.attrs.get(author_attr):
            author = node.attrs[author_attr].strip()
        if not author:
            author_node = _first(node, selectors.get("author", ""))
            author = author_node.text() if author_node is not None else None
        body = _first(node, selectors.get("body", ""))
        time_node = _first(node, selectors.get("time", ""))
        published = None
        if time_node is not None:
            published = parse_timestamp(
                time_node.attrs.get("datetime") or time_node.attrs.get("data-time")
            )
        anchor = node.attrs.get("id") or f"post-{post_id}"
        posts.append(
            ForumPost(
                post_id=post_id,
                author=author or None,
                published_at=published,
                text=body.text() if body is not None else node.text(),
                url=f"{urldefrag(page_url).url}#{anchor}",
            )
        )
    next_node = _first(root, selectors.get("next", ""))
    next_url = None
    if next_node is not None and next_node.attrs.get("href"):
        next_url = urljoin(page_url, next_node.attrs["href"])
    return ThreadPage(title=title, posts=posts, next_url=next_url)


@dataclass(frozen=True)
class ForumOptions:
    """Validated options shared by both forum source types."""

    feed_url: str | None
    thread_urls: tuple[str, ...]
    follow_links: bool
    selectors: dict[str, str] | None
    max_pages: int


def _parse_forum_options(config: SourceConfig, where: str, *, feed: bool) -> ForumOptions:
    reader = option_reader(config, where)
    feed_url = reader.url("feed_url", required=feed) if feed else None
    thread_urls = () if feed else tuple(reader.str_list("thread_urls", required=True))
    for url in thread_urls:
        if not url.startswith(("http://", "https://")):
            raise reader.fail("thread_urls", "must be http(s) URLs")
    follow = reader.flag("follow_links", False) if feed else True
    markup = reader.choice("markup", "auto", ("auto", *MARKUP_PRESETS, "custom"))
    custom = reader.str_map("selectors")
    unknown = sorted(set(custom) - set(SELECTOR_KEYS))
    if unknown:
        raise reader.fail("selectors", f"unknown key(s) {', '.join(unknown)}")
    selectors: dict[str, str] | None = None
    if markup == "custom":
        if "post" not in custom:
            raise reader.fail("selectors", "must give at least 'post' when markup is custom")
        selectors = custom
    elif markup != "auto":
        selectors = {**MARKUP_PRESETS[markup], **custom}
    elif custom:
        raise reader.fail("selectors", "needs markup set to xenforo, phpbb or custom")
    for key, selector in (selectors or {}).items():
        if key.endswith("_attr") or not selector:
            continue
        try:
            _parse_selector(selector)
        except SelectorError as exc:
            raise reader.fail("selectors", f"{key}: {exc}") from None
    options = ForumOptions(
        feed_url=feed_url,
        thread_urls=thread_urls,
        follow_links=follow,
        selectors=selectors,
        max_pages=reader.integer("max_pages", 5, minimum=1),
    )
    reader.check_unknown()
    return options


class _ForumSource(Source):
    def __init__(self, config: SourceConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.fetcher: HttpFetcher = self.make_fetcher()

    def _walk_thread(
        self, thread_url: str, state: dict[str, Any], ctx: PollContext
    ) -> Iterator[Emission]:
        """Read a thread from the last page seen, following next-page links.

        Starting at the remembered page keeps a long thread to one or two requests per poll.
        """
        options: ForumOptions = self.options
        threads: dict[str, str] = dict(state.get("threads", {}))
        page_url = threads.get(thread_url, thread_url)
        for _ in range(options.max_pages):
            if ctx.stopping():
                return
            result = self.fetcher.fetch(
                page_url, max_bytes=4 * 1024 * 1024, accept="text/html, */*"
            )
            decoded = result.decode()
            page = parse_thread_page(decoded.text, page_url, options.selectors)
            envelopes = []
            for post in page.posts:
                item_id = f"post-{post.post_id}"
                if ctx.is_seen(item_id):
                    continue
                envelopes.append(
                    self.envelope(
                        item_id=item_id,
                        content=post.text,
                        url=post.url,
                        author=post.author,
                        title=page.title,
                        published_at=post.published_at,
                        meta={
                            "post_id": post.post_id,
                            "thread_url": thread_url,
                            "charset": decoded.charset,
                            "charset_fallback": decoded.fallback,
                            **({"page_truncated": True} if result.truncated else {}),
                        },
                    )
                )
            threads.pop(thread_url, None)
            threads[thread_url] = page_url
            while len(threads) > THREAD_STATE_LIMIT:
                threads.pop(next(iter(threads)))
            state = {**state, "threads": threads}
            yield Emission(envelopes=envelopes, state=state)
            if not page.next_url or page.next_url == page_url:
                return
            page_url = page.next_url
            threads = dict(threads)


class ForumFeedSource(_ForumSource):
    """An RSS/Atom feed of a board; optionally follows each item to its thread page."""

    source_type = "forum_feed"

    @classmethod
    def parse_options(cls, config: SourceConfig, where: str) -> ForumOptions:
        """Validate feed URL and thread-page options."""
        return _parse_forum_options(config, where, feed=True)

    def poll(self, state: dict[str, Any], ctx: PollContext) -> Iterator[Emission]:
        """Fetch the feed; emit its items, or the new posts of the threads it links."""
        options: ForumOptions = self.options
        assert options.feed_url is not None
        feed = self.fetcher.fetch(
            options.feed_url,
            max_bytes=8 * 1024 * 1024,
            etag=state.get("etag"),
            last_modified=state.get("last_modified"),
            accept="application/rss+xml, application/atom+xml, application/xml, */*",
        )
        if feed.not_modified:
            return
        items = parse_feed(feed.body)
        complete = True
        for item in reversed(items):  # feeds list newest first; deliver oldest first
            if ctx.stopping():
                return
            if options.follow_links:
                if not item.link:
                    continue
                try:
                    for emission in self._walk_thread(item.link, state, ctx):
                        if emission.state is not None:
                            state = emission.state
                        yield emission
                except FetchError as exc:
                    ctx.error(exc.kind)
                    if exc.kind == "rate_limited":
                        raise
                    complete = False
                except FeedParseError:
                    ctx.error("parse")
                    complete = False
                continue
            item_id = item.item_id or item.link
            if not item_id or ctx.is_seen(item_id):
                continue
            yield Emission(
                envelopes=[
                    self.envelope(
                        item_id=item_id,
                        content=html_to_text(item.body_html or ""),
                        url=item.link,
                        author=item.author,
                        title=item.title,
                        published_at=item.published_at,
                        meta={"from_feed": True},
                    )
                ]
            )
        if complete:
            yield Emission(
                state={
                    **state,
                    "etag": feed.headers.get("ETag"),
                    "last_modified": feed.headers.get("Last-Modified"),
                }
            )


class ForumThreadSource(_ForumSource):
    """A fixed list of thread pages watched for new posts."""

    source_type = "forum_thread"

    @classmethod
    def parse_options(cls, config: SourceConfig, where: str) -> ForumOptions:
        """Validate thread URLs and markup options."""
        return _parse_forum_options(config, where, feed=False)

    def poll(self, state: dict[str, Any], ctx: PollContext) -> Iterator[Emission]:
        """Walk every configured thread from its last seen page."""
        options: ForumOptions = self.options
        failures: list[FetchError] = []
        for thread_url in options.thread_urls:
            try:
                for emission in self._walk_thread(thread_url, state, ctx):
                    if emission.state is not None:
                        state = emission.state
                    yield emission
            except FetchError as exc:
                if exc.kind == "rate_limited":
                    raise
                ctx.error(exc.kind)
                failures.append(exc)
            except FeedParseError:
                ctx.error("parse")
        if failures and len(failures) == len(options.thread_urls):
            raise failures[0]
