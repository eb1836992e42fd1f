"""Forum feeds and thread pages: one envelope per post, pages remembered per thread."""

from __future__ import annotations

from streams.collectors.testing import Reply

THREAD = "/forum/xenforo_thread_p1.html"
PAGE2 = "/forum/xenforo_thread_p2.html"


def serve_thread(server):
    """Map the XenForo URLs the feed links to onto the recorded pages."""
    for url_path, name in [
        ("/threads/ban-data-khach-hang.501/", "xenforo_thread_p1.html"),
        ("/threads/ban-data-khach-hang.501/page-2", "xenforo_thread_p2.html"),
        ("/threads/hoi-ve-bao-mat.499/", "xenforo_thread_p2.html"),
    ]:
        body = (server.root / "forum" / name).read_bytes().replace(b"{base}", server.base.encode())
        server.script(url_path, Reply(200, body, {"Content-Type": "text/html; charset=utf-8"}))


def test_feed_items_become_envelopes_with_readable_text(server, harness):
    run = harness(
        [
            {
                "name": "board",
                "type": "forum_feed",
                "site": "forum.vi.example",
                "feed_url": server.url("/forum/board.rss"),
            }
        ]
    )
    assert run.cycle()
    assert run.ids() == ["499", "501"]  # oldest first
    question, offer = run.envelopes
    assert offer.feed == "forum" and offer.site == "forum.vi.example"
    assert offer.author == "ban_data_gia" and offer.title == "Bán data khách hàng 2024 (giả)"
    assert offer.content == "Mẫu: Nguyễn Văn Giả 0912345678\nInbox để mua full."
    assert question.content == "Làm sao để tự bảo vệ dữ liệu cá nhân?"  # script dropped
    assert offer.published_at == "2024-05-02T03:00:00+00:00"
    run.cycle()
    assert len(run.envelopes) == 2


def test_atom_feed(server, harness):
    run = harness(
        [{"name": "atom", "type": "forum_feed", "feed_url": server.url("/forum/board.atom")}]
    )
    run.cycle()
    assert [e.author for e in run.envelopes] == [None, "nguoi_chia_se"]
    assert run.envelopes[1].content == "Danh sách: Trần Thị Mẫu - 0987654321"
    assert run.envelopes[1].url == server.url("/t/9001")


def test_follow_links_reads_xenforo_threads_post_by_post(server, harness):
    serve_thread(server)
    run = harness(
        [
            {
                "name": "board",
                "type": "forum_feed",
                "feed_url": server.url("/forum/board.rss"),
                "follow_links": True,
                "markup": "xenforo",
            }
        ]
    )
    assert run.cycle()
    posts = {e.item_id: e for e in run.envelopes}
    assert set(posts) == {"post-7001", "post-7002", "post-7003"}
    first = posts["post-7001"]
    assert first.author == "ban_data_gia"
    assert first.title == "Bán data khách hàng 2024 (giả)"
    assert first.published_at == "2024-05-02T10:00:00+07:00"
    assert first.url.endswith("/threads/ban-data-khach-hang.501/#js-post-7001")
    assert "Nguyễn Văn Giả - 0912345678 - CCCD 079099000123" in first.content
    assert "not content" not in first.content
    assert (
        posts["post-7002"].content == "> Liên hệ qua tin nhắn.\nGiá bao nhiêu & có bảo hành không?"
    )
    assert first.meta["post_id"] == "7001"


def test_thread_walk_resumes_from_the_last_page(server, harness):
    serve_thread(server)
    run = harness(
        [
            {
                "name": "thread",
                "type": "forum_thread",
                "thread_urls": [server.url("/threads/ban-data-khach-hang.501/")],
            }
        ]
    )
    run.cycle()
    assert run.ids() == ["post-7001", "post-7002", "post-7003"]
    run.restart()
    run.cycle()
    assert server.hits("/threads/ban-data-khach-hang.501/") == 1  # restarted at page 2
    assert server.hits("/threads/ban-data-khach-hang.501/page-2") == 2
    assert len(run.envelopes) == 3


def test_new_post_on_the_last_page_is_picked_up(server, harness):
    serve_thread(server)
    run = harness(
        [
            {
                "name": "thread",
                "type": "forum_thread",
                "thread_urls": [server.url("/threads/ban-data-khach-hang.501/")],
            }
        ]
    )
    run.cycle()
    page2 = (server.root / "forum" / "xenforo_thread_p2.html").read_text()
    extra = page2.replace(
        "</body>",
        '<article class="message message--post" data-author="moi" data-content="post-7004">'
        '<div class="bbWrapper">Còn hàng không?</div></article></body>',
    )
    server.script("/threads/ban-data-khach-hang.501/page-2", Reply(200, extra.encode()))
    run.cycle()
    assert run.ids()[-1] == "post-7004"
    assert run.envelopes[-1].author == "moi"


def test_phpbb_topic(server, harness):
    run = harness(
        [
            {
                "name": "phpbb",
                "type": "forum_thread",
                "markup": "phpbb",
                "thread_urls": [server.url("/forum/phpbb_topic.html")],
                "max_pages": 1,
            }
        ]
    )
    run.cycle()
    first, second = run.envelopes
    assert (first.item_id, first.author, second.author) == ("post-501", "thanh_vien_a", "quan_tri")
    assert first.title == "Rò rỉ danh sách?"
    assert first.content.splitlines() == [
        "Có ai thấy file này chưa?",
        "Ví dụ dòng đầu: Phạm Thị Ví Dụ, 0944333444, CCCD 001199000456",
    ]
    assert "Chữ ký" not in first.content  # the signature is not the post
    assert second.content.startswith("> thanh_vien_a đã viết:")
    assert first.published_at == "2024-05-01T03:00:00+00:00"


def test_custom_selectors(server, harness):
    page = (
        '<h1>Chủ đề</h1><div class="comment" data-id="c-77"><span class="who">khach</span>'
        '<div class="text">SĐT 0901234567</div></div>'
    )
    server.script(
        "/custom", Reply(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
    )
    run = harness(
        [
            {
                "name": "custom",
                "type": "forum_thread",
                "thread_urls": [server.url("/custom")],
                "markup": "custom",
                "selectors": {
                    "post": "div.comment",
                    "post_id_attr": "data-id",
                    "author": ".who",
                    "body": ".text",
                    "title": "h1",
                },
            }
        ]
    )
    run.cycle()
    (post,) = run.envelopes
    assert (post.item_id, post.author, post.title, post.content) == (
        "post-77",
        "khach",
        "Chủ đề",
        "SĐT 0901234567",
    )


def test_legacy_charset_thread_page(server, harness, cp1258):
    page = (
        (server.root / "forum" / "xenforo_thread_p2.html")
        .read_text()
        .replace('charset="utf-8"', 'charset="windows-1258"')
    )
    server.script("/legacy", Reply(200, cp1258(page), {"Content-Type": "text/html"}))
    run = harness(
        [{"name": "legacy", "type": "forum_thread", "thread_urls": [server.url("/legacy")]}]
    )
    run.cycle()
    (post,) = run.envelopes
    assert "Lê Văn Thử 0933111222" in post.content
    assert post.meta["charset"] == "cp1258"


def test_unrecognised_markup_is_a_parse_error(server, harness):
    server.script("/plain", Reply(200, b"<html><body><p>nothing here</p></body></html>"))
    run = harness(
        [{"name": "plain", "type": "forum_thread", "thread_urls": [server.url("/plain")]}]
    )
    run.cycle()
    assert run.metric("roriwatch_collector_errors_total", source="plain", kind="parse") == 1
