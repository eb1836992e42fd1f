"""Paste sources against recorded listings: incremental, restart-safe, polite, size-capped."""

from __future__ import annotations

import json

import pytest

from streams.collectors.testing import Reply

PASTEBIN_KEYS = ["Hd3Rc9Vy", "Zt4Wb8Ns", "Qm7Xp2Lk"]  # oldest first


def pastebin(server, **extra):
    source = {
        "name": "pastebin",
        "type": "pastebin",
        "listing_url": server.url("/pastes/pastebin_listing.json"),
        "raw_url_template": server.base + "/pastes/{item_id}.txt",
    }
    source.update(extra)
    return source


def serve_raw_from_files(server):
    # The listing points at api_scrape_item.php?i=KEY; serve those from pastes/KEY.txt.
    for key in PASTEBIN_KEYS:
        body = (server.root / "pastes" / f"{key}.txt").read_bytes()
        server.script(
            f"/api_scrape_item.php?i={key}",
            Reply(200, body, {"Content-Type": "text/plain; charset=utf-8"}),
        )


def test_pastebin_listing_produces_one_envelope_per_paste(server, harness):
    serve_raw_from_files(server)
    run = harness([pastebin(server)])
    assert run.cycle()
    assert run.ids() == PASTEBIN_KEYS
    first = run.envelopes[-1]
    assert first.feed == "paste" and first.site == "pastebin"
    assert first.url == server.url("/Qm7Xp2Lk")
    assert first.author == "nguoidung_gia" and first.title == "khach hang thang 4"
    assert first.published_at == "2024-05-01T10:00:00+00:00"
    assert "CCCD 079099000123" in first.content
    assert first.meta["syntax"] == "text" and first.meta["truncated"] is False
    assert first.meta["charset"] == "utf-8" and first.meta["source"] == "pastebin"
    untitled = run.envelopes[1]
    assert untitled.title is None and untitled.author is None
    assert run.metric("roriwatch_collector_items_total", source="pastebin") == 3
    assert run.metric("roriwatch_collector_bytes_total", source="pastebin") == sum(
        len(e.content.encode()) for e in run.envelopes
    )
    assert run.metric("roriwatch_collector_last_success_timestamp_seconds", source="pastebin")


def test_second_poll_and_restart_fetch_nothing_again(server, harness):
    serve_raw_from_files(server)
    run = harness([pastebin(server)])
    run.cycle()
    run.cycle()
    run.restart()
    run.cycle()
    assert run.ids() == PASTEBIN_KEYS
    for key in PASTEBIN_KEYS:
        assert server.hits(f"/api_scrape_item.php?i={key}") == 1


def test_items_that_appear_while_stopped_are_collected_after_restart(server, harness, tmp_path):
    serve_raw_from_files(server)
    run = harness([pastebin(server)])
    run.cycle()
    run.close()
    listing = json.loads((server.root / "pastes" / "pastebin_listing.json").read_text())
    newer = dict(listing[0], key="Nw1Pst22", date="1714560000", title="moi")
    newer["scrape_url"] = server.base + "/api_scrape_item.php?i=Nw1Pst22"
    newer["full_url"] = server.base + "/Nw1Pst22"
    server.script(
        "/pastes/pastebin_listing.json", Reply(200, json.dumps([newer, *listing]).encode())
    )
    server.script(
        "/api_scrape_item.php?i=Nw1Pst22", Reply(200, "Trần Thị Mẫu 0987654321 mới".encode())
    )
    run.start()
    run.cycle()
    assert run.ids() == [*PASTEBIN_KEYS, "Nw1Pst22"]


def test_same_content_under_a_new_key_is_dropped(server, harness):
    serve_raw_from_files(server)
    run = harness([pastebin(server)])
    run.cycle()
    listing = json.loads((server.root / "pastes" / "pastebin_listing.json").read_text())
    repost = dict(listing[0], key="Rp0St333", date="1714561000")
    repost["scrape_url"] = server.base + "/api_scrape_item.php?i=Rp0St333"
    server.script(
        "/pastes/pastebin_listing.json", Reply(200, json.dumps([repost, *listing]).encode())
    )
    body = (server.root / "pastes" / "Qm7Xp2Lk.txt").read_bytes()
    server.script("/api_scrape_item.php?i=Rp0St333", Reply(200, body))
    run.cycle()
    assert "Rp0St333" not in run.ids()
    assert run.metric("roriwatch_collector_duplicates_total", source="pastebin") == 1


def test_429_on_a_paste_is_retried_after_the_server_says(server, harness):
    serve_raw_from_files(server)
    body = (server.root / "pastes" / "Zt4Wb8Ns.txt").read_bytes()
    server.script(
        "/api_scrape_item.php?i=Zt4Wb8Ns",
        Reply(429, b"", {"Retry-After": "1"}),
        Reply(200, body),
    )
    run = harness([pastebin(server)])
    assert run.cycle()
    assert run.ids() == PASTEBIN_KEYS
    hits = [r.at for r in server.requests if r.path == "/api_scrape_item.php?i=Zt4Wb8Ns"]
    assert len(hits) == 2 and hits[1] - hits[0] >= 0.9


def test_rate_limited_listing_fails_the_cycle_and_counts(server, harness):
    server.script("/pastes/pastebin_listing.json", Reply(429, b"", {"Retry-After": "0"}))
    run = harness([pastebin(server, http={"max_retries": 1})])
    assert not run.cycle()
    assert (
        run.metric("roriwatch_collector_errors_total", source="pastebin", kind="rate_limited") == 1
    )
    assert run.envelopes == []


def test_vanished_paste_is_counted_and_not_requested_again(server, harness):
    serve_raw_from_files(server)
    server.script("/api_scrape_item.php?i=Zt4Wb8Ns", Reply(404, b"gone"))
    run = harness([pastebin(server)])
    run.cycle()
    run.cycle()
    assert run.ids() == ["Hd3Rc9Vy", "Qm7Xp2Lk"]
    assert server.hits("/api_scrape_item.php?i=Zt4Wb8Ns") == 1
    assert run.metric("roriwatch_collector_errors_total", source="pastebin", kind="gone") == 1


def test_transient_failure_is_retried_next_poll(server, harness):
    serve_raw_from_files(server)
    body = (server.root / "pastes" / "Zt4Wb8Ns.txt").read_bytes()
    server.script(
        "/api_scrape_item.php?i=Zt4Wb8Ns",
        Reply(500, b""),
        Reply(500, b""),
        Reply(500, b""),
        Reply(200, body),
    )
    run = harness([pastebin(server)])
    run.cycle()
    assert "Zt4Wb8Ns" not in run.ids()
    run.cycle()
    assert sorted(run.ids()) == sorted(PASTEBIN_KEYS)


def test_oversize_paste_is_truncated_and_flagged_not_dropped(server, harness):
    serve_raw_from_files(server)
    big = ("Nguyễn Văn Giả 0912345678\n" * 200).encode()
    server.script(
        "/api_scrape_item.php?i=Zt4Wb8Ns", Reply(200, big, {"Content-Type": "text/plain"})
    )
    run = harness([pastebin(server, max_content_bytes=1024)])
    run.cycle()
    cut = next(e for e in run.envelopes if e.item_id == "Zt4Wb8Ns")
    assert cut.meta["truncated"] is True and cut.meta["original_bytes"] == len(big)
    assert len(cut.content.encode()) <= 1024
    assert cut.content.startswith("Nguyễn Văn Giả")


def test_bad_charset_paste_is_decoded_and_flagged(server, harness, cp1258):
    serve_raw_from_files(server)
    text = "Ghi chú: số 0912345678 của Nguyễn Văn Giả"
    server.script(
        "/api_scrape_item.php?i=Zt4Wb8Ns",
        Reply(
            200, text.encode("utf-8") + b"\xff\xfe", {"Content-Type": "text/plain; charset=utf-8"}
        ),
    )
    server.script(
        "/api_scrape_item.php?i=Hd3Rc9Vy",
        Reply(
            200,
            cp1258("Số CCCD 079099000123 Đà Nẵng"),
            {"Content-Type": "text/plain; charset=windows-1258"},
        ),
    )
    run = harness([pastebin(server)])
    run.cycle()
    by_id = {e.item_id: e for e in run.envelopes}
    assert by_id["Zt4Wb8Ns"].meta["charset_fallback"] is True
    assert "0912345678" in by_id["Zt4Wb8Ns"].content
    assert by_id["Hd3Rc9Vy"].meta["charset"] == "cp1258"
    assert by_id["Hd3Rc9Vy"].content == "Số CCCD 079099000123 Đà Nẵng"


def test_binary_paste_is_base64(server, harness):
    serve_raw_from_files(server)
    server.script(
        "/api_scrape_item.php?i=Zt4Wb8Ns",
        Reply(200, b"\x00\x01\x02PK\x03\x04", {"Content-Type": "application/octet-stream"}),
    )
    run = harness([pastebin(server)])
    run.cycle()
    binary = next(e for e in run.envelopes if e.item_id == "Zt4Wb8Ns")
    assert binary.content_encoding == "base64"
    assert binary.content_bytes() == b"\x00\x01\x02PK\x03\x04"


def test_delivery_failure_does_not_advance_the_checkpoint(server, harness):
    serve_raw_from_files(server)
    run = harness([pastebin(server)])
    run.sink.fail_next = 1
    assert not run.cycle()
    assert run.envelopes == []
    assert run.metric("roriwatch_collector_errors_total", source="pastebin", kind="sink") == 1
    run.restart()
    assert run.cycle()
    assert run.ids() == PASTEBIN_KEYS


def test_non_json_listing_is_a_parse_error_with_a_hint(server, harness):
    server.script(
        "/pastes/pastebin_listing.json", Reply(200, b"YOUR IP: 192.0.2.1 DOES NOT HAVE ACCESS.")
    )
    run = harness([pastebin(server)])
    assert not run.cycle()
    assert run.metric("roriwatch_collector_errors_total", source="pastebin", kind="parse") == 1


def test_generic_json_listing_with_field_mapping(server, harness):
    run = harness(
        [
            {
                "name": "paste-vi",
                "type": "paste_listing",
                "site": "paste.vi.example",
                "listing_url": server.url("/pastes/vn_listing.json"),
                "items_path": "du_lieu.bai_dan",
                "fields": {
                    "item_id": "ma",
                    "title": "tieu_de",
                    "author": "nguoi_dang.ten",
                    "published_at": "ngay_tao",
                },
                "meta_fields": {"syntax": "ngon_ngu"},
                "url_template": "https://paste.vi.example/p/{item_id}",
                "raw_url_template": server.base + "/pastes/{item_id}.txt",
            }
        ]
    )
    run.cycle()
    assert run.ids() == ["vn-1001", "vn-1002", "vn-1003"]
    salary = run.envelopes[2]
    assert salary.site == "paste.vi.example" and salary.author == "ke_toan_gia"
    assert salary.url == "https://paste.vi.example/p/vn-1003"
    assert salary.published_at == "2024-05-02T09:30:00+07:00"
    assert "079188000789" in salary.content
    assert run.envelopes[0].author is None


def test_rss_listing_with_id_pattern(server, harness):
    run = harness(
        [
            {
                "name": "paste-rss",
                "type": "paste_listing",
                "listing_url": server.url("/pastes/listing.rss"),
                "listing_format": "rss",
                "item_id_pattern": "/p/(?P<id>[A-Za-z0-9-]+)$",
                "raw_url_template": server.base + "/pastes/{item_id}.txt",
            }
        ]
    )
    run.cycle()
    assert run.ids() == ["vn-1001", "vn-1002"]
    assert run.envelopes[0].author == "an_danh"
    assert run.envelopes[0].content.startswith("Danh bạ lớp 12A")


def test_unchanged_listing_304_is_cheap(server, harness):
    serve_raw_from_files(server)
    listing = (
        (server.root / "pastes" / "pastebin_listing.json")
        .read_bytes()
        .replace(b"{base}", server.base.encode())
    )
    server.script(
        "/pastes/pastebin_listing.json", Reply(200, listing, {"ETag": '"v1"'}), Reply(304, b"")
    )
    run = harness([pastebin(server)])
    run.cycle()
    assert run.cycle()
    assert server.requests[-1].headers.get("If-None-Match") == '"v1"'
    assert len(run.envelopes) == 3


@pytest.mark.parametrize("limit", [1, 2])
def test_max_items_per_poll_leaves_the_rest_for_later(server, harness, limit):
    serve_raw_from_files(server)
    run = harness([pastebin(server, max_items_per_poll=limit)])
    run.cycle()
    assert len(run.envelopes) == limit
    run.cycle()
    run.cycle()
    assert run.ids() == PASTEBIN_KEYS
