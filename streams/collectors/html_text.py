"""A small HTML tree, CSS-like selection and reduction to readable text, on the stdlib parser.

Forum pages only need "find the posts, read a few attributes, turn the body into text", which
does not justify a compiled HTML library; the stdlib parser is lenient with broken markup, which
is what scraped forums serve.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
}  # fmt: skip
# Elements whose text is never what a person reads on the page.
_SKIP_TEXT = {"script", "style", "noscript", "template", "head", "svg", "iframe", "button"}
_BLOCK = {
    "address", "article", "aside", "blockquote", "cite", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
}  # fmt: skip
# Closing one of these implicitly closes an open <p>/<li>, as browsers do.
_AUTO_CLOSE = {"p": {"p"}, "li": {"li"}, "tr": {"tr"}, "td": {"td", "th"}, "th": {"td", "th"}}


@dataclass(eq=False)
class Node:
    """An element with its attributes, children (nodes or text) and parent."""

    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    @property
    def classes(self) -> set[str]:
        """Return the element's class names."""
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        """Yield descendants in document order (not including self)."""
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def select(self, selector: str) -> list[Node]:
        """Return descendants matching a selector list (see :func:`parse_selector`)."""
        return select(self, selector)

    def select_one(self, selector: str) -> Node | None:
        """Return the first match of ``selector`` or None."""
        found = select(self, selector)
        return found[0] if found else None

    def text(self) -> str:
        """Return the element's readable text (see :func:`node_text`)."""
        return node_text(self)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        closes = _AUTO_CLOSE.get(tag)
        if closes and self.current.tag in closes:
            self._close(self.current.tag)
        node = Node(tag, {name: value or "" for name, value in attrs}, parent=self.current)
        self.current.children.append(node)
        if tag not in _VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs}, parent=self.current)
        self.current.children.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self._close(tag)

    def _close(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:  # ignore stray end tags
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def parse_html(markup: str) -> Node:
    """Parse markup into a tree; never raises on malformed HTML."""
    builder = _TreeBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


# ---------------------------------------------------------------------------- selectors

_COMPOUND = re.compile(
    r"""(?P<tag>[a-zA-Z][a-zA-Z0-9-]*|\*)?"""
    r"""(?P<rest>(?:\.[\w-]+|\#[\w-]+|\[[\w:-]+(?:[~^$*]?=["']?[^"'\]]*["']?)?\])*)$"""
)
_PART = re.compile(r"""\.([\w-]+)|\#([\w-]+)|\[([\w:-]+)(?:([~^$*]?=)["']?([^"'\]]*)["']?)?\]""")


@dataclass(frozen=True)
class _Simple:
    tag: str | None
    ids: tuple[str, ...]
    classes: tuple[str, ...]
    attrs: tuple[tuple[str, str | None, str], ...]

    def matches(self, node: Node) -> bool:
        if self.tag and self.tag != "*" and node.tag != self.tag:
            return False
        if any(node.attrs.get("id") != ident for ident in self.ids):
            return False
        if self.classes and not set(self.classes) <= node.classes:
            return False
        for name, operator, value in self.attrs:
            actual = node.attrs.get(name)
            if actual is None:
                return False
            if operator is None:
                continue
            if not _attr_matches(actual, operator, value):
                return False
        return True


def _attr_matches(actual: str, operator: str, value: str) -> bool:
    if operator == "=":
        return actual == value
    if operator == "~=":
        return value in actual.split()
    if operator == "^=":
        return actual.startswith(value)
    if operator == "$=":
        return actual.endswith(value)
    return value in actual  # "*="


class SelectorError(ValueError):
    """A selector outside the supported subset; raised when the configuration loads."""


def parse_selector(selector: str) -> list[list[_Simple]]:
    """Parse the supported subset: ``tag``, ``.class``, ``#id``, ``[attr]``, ``[attr=v]``
    (also ``~= ^= $= *=``), descendant combinator (space) and selector lists (comma).
    """  # noqa: D205 - the grammar is the point
    groups: list[list[_Simple]] = []
    for group in selector.split(","):
        chain: list[_Simple] = []
        for compound in group.split():
            match = _COMPOUND.match(compound)
            if not match or not compound:
                raise SelectorError(f"unsupported selector part {compound!r}")
            ids: list[str] = []
            classes: list[str] = []
            attrs: list[tuple[str, str | None, str]] = []
            for part in _PART.finditer(match.group("rest") or ""):
                cls, ident, attr, operator, value = part.groups()
                if cls:
                    classes.append(cls)
                elif ident:
                    ids.append(ident)
                else:
                    attrs.append((attr, operator, value or ""))
            chain.append(_Simple(match.group("tag"), tuple(ids), tuple(classes), tuple(attrs)))
        if not chain:
            raise SelectorError("empty selector")
        groups.append(chain)
    return groups


def _matches_chain(node: Node, chain: list[_Simple]) -> bool:
    if not chain[-1].matches(node):
        return False
    ancestor = node.parent
    for simple in reversed(chain[:-1]):
        while ancestor is not None and not simple.matches(ancestor):
            ancestor = ancestor.parent
        if ancestor is None:
            return False
        ancestor = ancestor.parent
    return True


def select(root: Node, selector: str) -> list[Node]:
    """Return descendants of ``root`` matching ``selector``, in document order."""
    groups = parse_selector(selector)
    return [node for node in root.iter() if any(_matches_chain(node, g) for g in groups)]


# ---------------------------------------------------------------------------- text

_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_PENDING_BREAK = re.compile(r"\n(?:> )*")


def node_text(node: Node) -> str:
    """Reduce an element to the text a person reads: blocks and ``<br>`` become line breaks,
    whitespace is collapsed, scripts and styles are dropped, quotes keep a ``> `` prefix.
    """  # noqa: D205
    parts: list[str] = []
    _collect(node, parts, quote_depth=0)
    lines = []
    for line in "".join(parts).split("\n"):
        prefix_match = re.match(r"^(?:> )*", line)
        prefix = prefix_match.group(0) if prefix_match else ""
        body = _SPACES.sub(" ", line[len(prefix) :]).strip()
        lines.append(prefix + body if body else "")
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _break(parts: list[str], quote_depth: int) -> None:
    # One line break between blocks however deeply they nest: a pending break is replaced
    # (so the quote prefix is the one of the level we are at), not doubled.
    marker = "\n" + "> " * quote_depth
    index = len(parts) - 1
    while index >= 0 and not parts[index].strip(" "):
        index -= 1
    if index < 0:
        if quote_depth:
            parts.append(marker)
        return
    if _PENDING_BREAK.fullmatch(parts[index]):
        parts[index] = marker
        del parts[index + 1 :]
        return
    parts.append(marker)


def _collect(node: Node, parts: list[str], quote_depth: int) -> None:
    for child in node.children:
        if isinstance(child, str):
            text = child.replace("\n", " ")
            parts.append(text)
            continue
        if child.tag in _SKIP_TEXT:
            continue
        if child.tag == "br":
            parts.append("\n" + "> " * quote_depth)
            continue
        if child.tag == "img":
            alt = child.attrs.get("alt", "").strip()
            if alt:
                parts.append(alt)
            continue
        depth = quote_depth + (1 if child.tag == "blockquote" else 0)
        block = child.tag in _BLOCK
        if block:
            _break(parts, depth)
        elif child.tag in ("td", "th"):
            parts.append(" ")
        _collect(child, parts, depth)
        if block:
            _break(parts, quote_depth)


def html_to_text(markup: str) -> str:
    """Reduce an HTML fragment or page to readable text."""
    return node_text(parse_html(markup))
