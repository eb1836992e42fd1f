"""`roriwatch scan` as a user runs it: exit codes, formats, bad input, no raw values."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {"RORIWATCH_HMAC_KEY": "unit-test-key-0123456789abcdef", "PATH": "/usr/bin:/bin"}


def run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "scan", *args], input=stdin, capture_output=True,
        cwd=ROOT, env=ENV, timeout=60, check=False,
    )


@pytest.fixture
def leak(tmp_path):
    path = tmp_path / "leak.csv"
    path.write_text("ho_ten,cccd,sdt\nNguyen Van A,079203012345,0912345678\n", encoding="utf-8")
    return path


def test_jsonl_findings_and_exit_code_1(leak):
    result = run(str(leak), "--format", "jsonl")
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [(r["detector"], r["masked"], r["line"]) for r in rows] == [
        ("vn_citizen_id", "079******345", 2), ("vn_phone", "09******78", 2)]
    for row in rows:
        assert {"source", "start", "end", "confidence", "fingerprint"} <= row.keys()
    assert b"079203012345" not in result.stdout + result.stderr


def test_clean_input_exits_0(tmp_path):
    clean = tmp_path / "clean.txt"
    clean.write_text("nothing to see, order DH20261124000123, 10.0.0.1\n", encoding="utf-8")
    result = run(str(clean))
    assert (result.returncode, result.stdout) == (0, b"")


def test_stdin_and_summary():
    result = run("-", "--format", "summary", stdin="SĐT 0912345678 CCCD 079203012345".encode())
    assert result.returncode == 1
    assert result.stdout.decode().startswith("-: HIGH") or b"MEDIUM" in result.stdout


def test_reveal_is_the_only_way_to_print_raw_values_and_warns(leak):
    result = run(str(leak), "--format", "jsonl", "--reveal")
    assert b"079203012345" in result.stdout
    assert b"--reveal" in result.stderr


def test_bad_input_is_reported_and_the_scan_goes_on(tmp_path, leak):
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\x89PNG\x00\x00\x00" + bytes(range(256)))
    broken = tmp_path / "latin1.txt"
    broken.write_bytes("SĐT 0912345678 \xff\xfe tên".encode() + b"\xff\xfe")
    result = run(str(binary), str(tmp_path / "missing.txt"), str(broken), str(leak))
    err = result.stderr.decode()
    assert "image.bin: binary file" in err
    assert "missing.txt: no such file or directory" in err
    assert "latin1.txt: invalid UTF-8: 2 byte sequence(s) replaced" in err
    assert "Traceback" not in err
    assert result.returncode == 1
    assert "latin1.txt" in result.stdout.decode()


def test_usage_errors_exit_2(tmp_path):
    bad_rules = tmp_path / "r.yaml"
    bad_rules.write_text("id: x_rule\nseverity: nope\n", encoding="utf-8")
    result = run("--rules", str(bad_rules), str(tmp_path))
    assert result.returncode == 2
    assert "field 'severity'" in result.stderr.decode()
    assert run("--min-confidence", "7", str(tmp_path)).returncode == 2


def test_help_explains():
    result = subprocess.run([sys.executable, "-m", "streams.cli", "scan", "--help"],
                            capture_output=True, cwd=ROOT, timeout=60, check=False)
    assert b"exit codes" in result.stdout
    assert b"--reveal" in result.stdout


def test_version_names_the_build_of_the_detection_core():
    result = subprocess.run([sys.executable, "-m", "streams.cli", "--version"],
                            capture_output=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"roriwatch ")
    assert b"detection core: pure Python" in result.stdout  # the source tree is never compiled


@pytest.mark.parametrize("fmt", ["table", "jsonl", "summary"])
def test_parallel_jobs_print_exactly_what_one_process_prints(tmp_path, leak, fmt):
    """-j N scans files in child processes; output, messages and exit code stay the same."""
    folder = tmp_path / "dump"
    folder.mkdir()
    for i in range(5):
        (folder / f"part-{i}.txt").write_text(
            f"khách {i}: SĐT 09123456{i:02d}, CCCD 0792030123{i:02d}\n" * (i + 1), encoding="utf-8")
    (folder / "image.bin").write_bytes(b"\x89PNG\x00\x00\x00" + bytes(range(256)))
    (folder / "latin1.txt").write_bytes("SĐT 0912345678 ".encode() + b"\xff\xfe")
    (folder / "clean.txt").write_text("nothing here\n", encoding="utf-8")
    paths = [str(folder), str(tmp_path / "missing.txt"), str(leak)]
    one = run(*paths, "--format", fmt)
    many = run(*paths, "--format", fmt, "--jobs", "3")
    assert (many.returncode, many.stdout, many.stderr) == (one.returncode, one.stdout, one.stderr)
    assert one.returncode == 1 and one.stdout.count(b"part-") >= 5


def test_negative_jobs_is_a_usage_error(leak):
    result = run(str(leak), "--jobs", "-1")
    assert result.returncode == 2 and b"--jobs" in result.stderr


def _start_parallel_reveal_scan(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A -j 2 --reveal scan long enough to interrupt; its scratch folders go to the Path."""
    folder = tmp_path / "big"
    folder.mkdir()
    line = "2026-11-24 api user=0912345678 req=4111111111111111 cccd 079203012345\n"
    for i in range(8):
        (folder / f"part-{i}.log").write_text(line * 120_000, encoding="utf-8")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "scan", str(folder), "-j", "2", "--reveal",
         "--format", "jsonl"],
        cwd=ROOT, env={**ENV, "TMPDIR": str(scratch)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    return process, scratch


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in
                Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:  # the scan already ended
        return []


def _interrupt(process: subprocess.Popen, ready, act) -> bytes:
    """Wait (bounded) until ready(), act(), and return stderr; never leave the scan running."""
    try:
        deadline = time.monotonic() + 30
        while not ready() and process.poll() is None:
            assert time.monotonic() < deadline, "the parallel scan never started"
            time.sleep(0.05)
        if process.poll() is None:
            act()
        return process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_ctrl_c_during_parallel_scan_stops_quietly_and_leaves_no_output_files(tmp_path):
    """Ctrl-C signals the whole process group: no traceback from any child, exit 130, and the
    children's output files (raw values with --reveal) are removed."""
    process, scratch = _start_parallel_reveal_scan(tmp_path)
    err = _interrupt(process, lambda: any(scratch.iterdir()),
                     lambda: os.killpg(process.pid, signal.SIGINT))
    if process.returncode == 1:
        pytest.skip("the scan finished before the signal arrived")
    assert process.returncode == 130, err
    assert b"Traceback" not in err and b"interrupted" in err
    assert list(scratch.iterdir()) == []


def test_a_killed_scan_process_is_a_clear_error_and_leaves_no_output_files(tmp_path):
    """A child killed mid-scan (the OOM killer, an operator) ends the scan with exit 2 and the
    fix, not a BrokenProcessPool traceback, and its siblings' output files are removed."""
    process, scratch = _start_parallel_reveal_scan(tmp_path)

    def kill_one_child() -> None:
        for child in _children(process.pid)[:1]:
            os.kill(child, signal.SIGKILL)

    err = _interrupt(process, lambda: bool(_children(process.pid)), kill_one_child)
    if process.returncode == 1 and b"Traceback" not in err:
        pytest.skip("the scan finished before the child was killed")
    assert process.returncode == 2, err
    assert b"Traceback" not in err and b"--jobs 1" in err
    assert list(scratch.iterdir()) == []
