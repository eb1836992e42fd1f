"""Charset handling and HTML reduction: the pure helpers behind every HTTP source."""

from __future__ import annotations

import unicodedata

import pytest

from streams.collectors.html_text import SelectorError, html_to_text, parse_html, parse_selector
from streams.collectors.testing import encode_windows_1258 as cp1258
from streams.collectors.textdecode import charset_from_content_type, decode_bytes

VI = "Danh sách khách hàng: Nguyễn Văn Giả, điện thoại 0912345678, địa chỉ Quận 1."


def test_cp1258_helper_round_trips():
    assert unicodedata.normalize("NFC", cp1258(VI).decode("cp1258")) == VI


@pytest.mark.parametrize(
    ("data", "declared", "text", "charset", "fallback"),
    [
        (VI.encode(), "utf-8", VI, "utf-8", False),
        (VI.encode(), None, VI, "utf-8", False),
        (cp1258(VI), "windows-1258", VI, "cp1258", False),
        # Servers default to latin-1 while sending UTF-8: clean UTF-8 wins.
        (VI.encode(), "ISO-8859-1", VI, "utf-8", False),
        (b"\xef\xbb\xbf" + VI.encode(), "latin-1", VI, "utf-8-sig", False),
        (VI.encode("utf-16"), None, VI, "utf-16", False),
        # Declared in the document itself.
        (b'<meta charset="windows-1258">' + cp1258(VI), None, None, "cp1258", False),
        (b'<?xml version="1.0" encoding="windows-1258"?><a/>', None, None, "cp1258", False),
    ],
)
def test_decode(data, declared, text, charset, fallback):
    decoded = decode_bytes(data, declared)
    if text is not None:
        assert decoded.text == text
    assert (decoded.charset, decoded.fallback) == (charset, fallback)


def test_wrong_declared_charset_falls_back_without_raising():
    data = VI.encode() + b" \xff\xfe broken"
    decoded = decode_bytes(data, "utf-8")
    assert decoded.fallback
    assert "Nguy" in decoded.text


def test_unknown_charset_label_falls_back():
    decoded = decode_bytes(VI.encode(), "x-klingon")
    assert decoded.text == VI and decoded.fallback


def test_undeclared_legacy_bytes_are_detected_and_flagged():
    decoded = decode_bytes(cp1258(VI * 3), None)
    assert decoded.fallback and not decoded.binary
    assert "0912345678" in decoded.text


def test_binary_is_recognised():
    decoded = decode_bytes(bytes(range(256)) * 4, None)
    assert decoded.binary


@pytest.mark.parametrize(
    ("header", "charset"),
    [
        ("text/html; charset=UTF-8", "UTF-8"),
        ('text/plain;charset="cp1258"', "cp1258"),
        (None, None),
    ],
)
def test_charset_from_content_type(header, charset):
    assert charset_from_content_type(header) == charset


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>Xin <b>chào</b></p><p>bạn</p>", "Xin chào\nbạn"),
        ("a<br>b<br/><br>c", "a\nb\n\nc"),
        ("<script>var x='0912345678'</script><style>p{}</style>ok", "ok"),
        ("<ul><li>một<li>hai</ul>", "một\nhai"),
        ("<blockquote>trích<br>dẫn</blockquote>trả lời", "> trích\n> dẫn\ntrả lời"),
        ("giá &amp; số &lt;10&gt; &#272;", "giá & số <10> Đ"),
        (
            "<table><tr><td>Tên</td><td>SĐT</td></tr><tr><td>A</td><td>09</td></tr></table>",
            "Tên SĐT\nA 09",
        ),
        ("<div><p>unclosed <i>tags", "unclosed tags"),
        ('<img alt="ảnh CCCD"> text', "ảnh CCCD text"),
    ],
)
def test_html_to_text(markup, text):
    assert html_to_text(markup) == text


def test_selectors():
    root = parse_html(
        '<div id="main">'
        '<article class="message message--post" data-author="a" data-content="post-1">'
        '<div class="bbWrapper">one</div></article>'
        '<article class="message" data-content="post-2"><p class="x">two</p></article></div>'
        '<a rel="next" href="/p2">next</a>'
    )
    assert [n.attrs["data-content"] for n in root.select("article.message")] == ["post-1", "post-2"]
    assert len(root.select("article.message--post")) == 1
    assert len(root.select("#main article[data-author]")) == 1
    assert len(root.select("article[data-content^=post-]")) == 2
    assert len(root.select("article[data-content$='-2']")) == 1
    assert root.select_one("a[rel=next]").attrs["href"] == "/p2"
    assert [n.text() for n in root.select(".bbWrapper, p.x")] == ["one", "two"]
    assert root.select_one("span") is None


@pytest.mark.parametrize("selector", ["div > p", "a:first-child", "a + b", ""])
def test_unsupported_selectors_are_rejected(selector):
    with pytest.raises(SelectorError):
        parse_selector(selector)
