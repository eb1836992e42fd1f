"""Telegram Desktop exports: one envelope per message, only what is new in a later export."""

from __future__ import annotations

import json
import os
import shutil
import time


def test_channel_export(fixtures_dir, harness):
    run = harness(
        [
            {
                "name": "tg",
                "type": "telegram_export",
                "path": str(fixtures_dir / "telegram/channel/result.json"),
            }
        ]
    )
    assert run.cycle()
    assert run.ids() == [
        f"telegram:1700000001:{i}" for i in (2, 3, 4, 5)
    ]  # service message skipped
    text, file_message, photo, contact = run.envelopes
    assert text.feed == "forum" and text.site == "telegram:Kênh Dữ Liệu Giả"
    assert text.content == "Mẫu dữ liệu: Nguyễn Văn Giả 0912345678"
    assert text.published_at == "2024-05-01T02:05:00+00:00"
    assert text.author == "Kênh Dữ Liệu Giả" and text.title == "Kênh Dữ Liệu Giả"
    assert text.meta["chat_type"] == "public_channel" and text.meta["message_id"] == 2
    assert file_message.content == "Full data 10k dòng, CCCD 079099000123 ..."
    assert file_message.meta["files"] == [
        {
            "kind": "file",
            "path": "files/danh_sach_gia.xlsx",
            "name": "danh_sach_gia.xlsx",
            "size": 20480,
            "mime_type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "included": True,
        }
    ]
    assert photo.content == "" and photo.meta["files"][0]["included"] is False
    assert contact.content == "Contact: Trần Thị Mẫu +84987654321"
    run.cycle()
    run.restart()
    run.cycle()
    assert len(run.envelopes) == 4


def test_account_export_lists_every_chat(fixtures_dir, harness):
    run = harness(
        [
            {
                "name": "tg",
                "type": "telegram_export",
                "path": str(fixtures_dir / "telegram/account/result.json"),
                "export_utc_offset": "+07:00",
            }
        ]
    )
    run.cycle()
    assert run.ids() == ["telegram:1800000002:10", "telegram:1800000002:11", "telegram:900003:1"]
    reply = run.envelopes[1]
    assert reply.meta["reply_to_message_id"] == 10
    assert reply.published_at == "2024-05-02T08:01:00+07:00"  # no date_unixtime: configured offset


def test_watched_folder_only_sends_new_messages_of_a_newer_export(fixtures_dir, harness, tmp_path):
    drop = tmp_path / "drop"
    first = drop / "ChatExport_2024-05-01"
    first.mkdir(parents=True)
    shutil.copy(fixtures_dir / "telegram/channel/result.json", first / "result.json")
    old = time.time() - 60
    os.utime(first / "result.json", (old, old))
    run = harness(
        [
            {
                "name": "tg",
                "type": "telegram_export",
                "path": str(drop),
                "watch": True,
                "settle_seconds": 5,
            }
        ]
    )
    run.cycle()
    assert len(run.envelopes) == 4

    export = json.loads((fixtures_dir / "telegram/channel/result.json").read_text())
    export["messages"].append(
        {
            "id": 6,
            "type": "message",
            "date": "2024-05-03T09:00:00",
            "from": "Kênh Dữ Liệu Giả",
            "text": "Tin mới: 0933111222",
        }
    )
    second = drop / "ChatExport_2024-05-03"
    second.mkdir()
    (second / "result.json").write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    run.cycle()
    assert len(run.envelopes) == 4  # still being written (modified less than settle_seconds ago)
    os.utime(second / "result.json", (old, old))
    run.restart()
    run.cycle()
    assert run.ids()[-1] == "telegram:1700000001:6"
    assert len(run.envelopes) == 5


def test_half_written_export_is_retried_not_fatal(harness, tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"name": "x", "id": 1, "messages": [', encoding="utf-8")
    run = harness([{"name": "tg", "type": "telegram_export", "path": str(path)}])
    assert run.cycle()
    assert run.metric("roriwatch_collector_errors_total", source="tg", kind="parse") == 1
    path.write_text(
        '{"name": "x", "id": 1, "messages": [{"id": 1, "type": "message", "text": "ok"}]}',
        encoding="utf-8",
    )
    run.cycle()
    assert run.ids() == ["telegram:1:1"]


def test_missing_export_file_is_an_io_error(harness, tmp_path):
    run = harness(
        [{"name": "tg", "type": "telegram_export", "path": str(tmp_path / "missing.json")}]
    )
    assert not run.cycle()
    assert run.metric("roriwatch_collector_errors_total", source="tg", kind="io") == 1
