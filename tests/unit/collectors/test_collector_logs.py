"""File tailing: incremental, restart-safe, follows rename rotation and truncation."""

from __future__ import annotations

import io
import os

from streams.collectors.sources.logs import read_lines


def tail(tmp_path, **extra):
    source = {
        "name": "app",
        "type": "file_tail",
        "paths": [str(tmp_path / "logs" / "*.log")],
        "poll_interval_seconds": 1,
    }
    source.update(extra)
    return source


def write(path, text, mode="a"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as handle:
        handle.write(text)


def contents(run):
    return [e.content for e in run.envelopes]


def test_lines_are_read_incrementally_and_partial_lines_wait(tmp_path, harness):
    log = tmp_path / "logs" / "app.log"
    write(log, "dang nhap 0912345678\nmot dong\nchua xong")
    run = harness([tail(tmp_path)])
    run.cycle()
    assert contents(run) == ["dang nhap 0912345678", "mot dong"]
    write(log, " gio da xong\n")
    run.cycle()
    assert contents(run)[-1] == "chua xong gio da xong"
    first = run.envelopes[0]
    assert first.feed == "log" and first.site == "app" and first.title == "app.log"
    assert first.meta["path"] == str(log) and first.meta["offset"] == 0
    assert first.url == log.as_uri()
    assert run.envelopes[1].meta["offset"] == len("dang nhap 0912345678\n")


def test_restart_resumes_at_the_saved_position(tmp_path, harness):
    log = tmp_path / "logs" / "app.log"
    write(log, "mot\nhai\n")
    run = harness([tail(tmp_path)])
    run.cycle()
    run.close()
    write(log, "ba\n")  # written while the collector was down
    run.start()
    run.cycle()
    assert contents(run) == ["mot", "hai", "ba"]


def test_repeated_lines_are_kept_for_logs(tmp_path, harness):
    write(tmp_path / "logs" / "app.log", "same\nsame\n")
    run = harness([tail(tmp_path)])
    run.cycle()
    assert contents(run) == ["same", "same"]
    assert len(set(run.ids())) == 2


def test_rename_rotation_reads_the_old_tail_then_the_new_file(tmp_path, harness):
    log = tmp_path / "logs" / "app.log"
    write(log, "truoc xoay 1\n")
    run = harness([tail(tmp_path)])
    run.cycle()
    write(log, "truoc xoay 2\n")  # written just before rotation, not yet read
    os.rename(log, tmp_path / "logs" / "app.log.1")
    write(log, "sau xoay\n", mode="w")
    run.cycle()
    assert contents(run) == ["truoc xoay 1", "truoc xoay 2", "sau xoay"]
    run.cycle()
    assert len(run.envelopes) == 3


def test_rotation_while_stopped_is_caught_up_after_restart(tmp_path, harness):
    log = tmp_path / "logs" / "app.log"
    write(log, "a\n")
    run = harness([tail(tmp_path)])
    run.cycle()
    run.close()
    write(log, "b\n")
    os.rename(log, tmp_path / "logs" / "app.log.1")
    write(log, "c\n", mode="w")
    run.start()
    run.cycle()
    assert contents(run) == ["a", "b", "c"]


def test_copytruncate_starts_a_new_generation(tmp_path, harness):
    log = tmp_path / "logs" / "app.log"
    write(log, "dong dai thu nhat\ndong dai thu hai\n")
    run = harness([tail(tmp_path)])
    run.cycle()
    with open(log, "w", encoding="utf-8") as handle:
        handle.write("moi\n")
    run.cycle()
    assert contents(run) == ["dong dai thu nhat", "dong dai thu hai", "moi"]
    assert run.ids()[0].endswith("-0:0") and run.ids()[2].endswith("-1:0")


def test_truncated_and_regrown_past_the_offset_is_detected_by_fingerprint(tmp_path, harness):
    log = tmp_path / "logs" / "app.log"
    write(log, "cu 1\ncu 2\n")
    run = harness([tail(tmp_path)])
    run.cycle()
    with open(log, "w", encoding="utf-8") as handle:
        handle.write("hoan toan moi, dai hon truoc\n")
    run.cycle()
    assert contents(run)[-1] == "hoan toan moi, dai hon truoc"


def test_start_at_end_skips_history_on_first_run_only(tmp_path, harness):
    log = tmp_path / "logs" / "app.log"
    write(log, "lich su\n")
    run = harness([tail(tmp_path, start_at="end")])
    run.cycle()
    write(log, "moi\n")
    write(tmp_path / "logs" / "other.log", "file moi tu dau\n")
    run.cycle()
    assert sorted(contents(run)) == ["file moi tu dau", "moi"]


def test_long_lines_are_cut_and_flagged(tmp_path, harness):
    write(tmp_path / "logs" / "app.log", "x" * 300 + "\nngan\n")
    run = harness([tail(tmp_path, max_line_bytes=100)])
    run.cycle()
    long, short = run.envelopes
    assert long.content == "x" * 100 and long.meta["truncated"] is True
    assert short.content == "ngan" and short.meta["truncated"] is False


def test_undecodable_bytes_are_replaced_and_flagged(tmp_path, harness):
    path = tmp_path / "logs" / "app.log"
    path.parent.mkdir()
    path.write_bytes("Nguyễn ".encode() + b"\xff\xfe 0912345678\n")
    run = harness([tail(tmp_path)])
    run.cycle()
    (line,) = run.envelopes
    assert line.meta["decode_errors"] is True and "0912345678" in line.content


def test_compressed_rotations_are_excluded(tmp_path, harness):
    write(tmp_path / "logs" / "app.log", "ok\n")
    (tmp_path / "logs" / "old.log.gz").write_bytes(b"\x1f\x8b binary")
    run = harness([tail(tmp_path, paths=[str(tmp_path / "logs" / "*")])])
    run.cycle()
    assert contents(run) == ["ok"]


def test_read_lines_table():
    data = io.BytesIO(b"one\r\ntwo\n" + b"z" * 20 + b"\ntail")
    lines, offset, skipping = read_lines(
        data, 0, skipping=False, max_line_bytes=8, max_lines=10, final=False
    )
    assert [(line.data, line.truncated) for line in lines] == [
        (b"one", False),
        (b"two", False),
        (b"z" * 8, True),
    ]
    assert offset == len(b"one\r\ntwo\n" + b"z" * 20 + b"\n") and not skipping
    lines, offset, _ = read_lines(
        data, offset, skipping=False, max_line_bytes=8, max_lines=10, final=True
    )
    assert [line.data for line in lines] == [b"tail"]
