"""``roriwatch scan``: find Vietnamese identifiers in files, directories or stdin.

Exit codes follow gitleaks: 0 nothing found, 1 findings, 2 usage or fatal error (also when
some path could not be read and nothing was found elsewhere).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import TextIO

from detectors import DocumentAccumulator, RuleError, Scanner, load_rules
from streams.settings import Settings, SettingsError, load_settings
from streams.textsource import (
    DecodeReport,
    ScannedChunk,
    SkipFile,
    decode_blocks,
    iter_paths,
    scan_chunks,
)

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
PROGRESS_MIN_BYTES = 64 << 20

DESCRIPTION = """\
Scan files, directories (recursively) or stdin (-) for Vietnamese personal identifiers:
citizen IDs (CCCD), legacy IDs (CMND), phones, bank accounts, payment cards, passports,
tax codes, health-insurance numbers and e-mails.

Findings show a masked value (079******345) and a keyed fingerprint, never the raw value.
Set RORIWATCH_HMAC_KEY (or RORIWATCH_HMAC_KEY_FILE) so fingerprints are stable across runs;
without it a random per-run key is used.

exit codes: 0 no findings, 1 findings, 2 usage or fatal error / unreadable input"""

EPILOG = """\
examples:
  roriwatch scan samples/                      table of findings
  roriwatch scan dump.csv --format summary     one verdict per file (severity, reasons)
  cat paste.txt | roriwatch scan - --format jsonl --min-confidence 0.8
  roriwatch scan logs/ --rules my-brand.yaml   add watch-list keyword rules
  roriwatch scan archive/ -j 0                 every core, one file per process"""


def add_scan_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Register ``scan`` on the top-level parser."""
    parser = subparsers.add_parser(
        "scan", help="scan files/directories/stdin for identifiers", description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, or - for stdin")
    parser.add_argument("--format", choices=("table", "jsonl", "summary"), default="table",
                        help="table (default): one finding per row; jsonl: one JSON object per "
                             "finding; summary: one verdict per file")
    parser.add_argument("--min-confidence", type=float, default=None, metavar="X",
                        help="drop findings below this confidence 0..1 (default 0.5)")
    parser.add_argument("--rules", action="append", default=[], metavar="FILE",
                        help="extra YAML rule file (repeatable); same id replaces a built-in")
    parser.add_argument("--reveal", action="store_true",
                        help="also print raw values (dangerous: the output becomes personal data)")
    parser.add_argument("--chunk-mb", type=int, default=4, metavar="N",
                        help="window size for large files, in millions of characters (default 4)")
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                        help="scan up to N files at once in child processes (0: one per core; "
                             "default 1). Output keeps the input order")
    parser.set_defaults(handler=run_scan)


def _scanner(args: argparse.Namespace, settings: Settings, err: TextIO) -> Scanner:
    rules = load_rules([*settings.rules_files, *args.rules])
    fingerprinter = settings.fingerprinter()
    if fingerprinter.ephemeral:
        print("roriwatch: warning: no RORIWATCH_HMAC_KEY set; fingerprints use a random "
              "per-run key and will not match other runs", file=err)
    min_confidence = settings.min_confidence if args.min_confidence is None \
        else args.min_confidence
    if not 0.0 <= min_confidence <= 1.0:
        raise SettingsError("--min-confidence must be between 0 and 1")
    return Scanner(rules, fingerprinter, min_confidence=min_confidence)


class _Output:
    """Formats findings as they stream; the only place raw values may appear (--reveal)."""

    def __init__(self, fmt: str, reveal: bool, out: TextIO) -> None:
        self.fmt = fmt
        self.reveal = reveal
        self.out = out
        self.total = 0
        self.header_done = False

    def findings(self, source: str, chunk: ScannedChunk, line_counter: list[int]) -> None:
        last_pos, line = line_counter
        for finding in chunk.findings:
            self.total += 1
            local = finding.start - chunk.base
            if local >= last_pos:
                line += chunk.text.count("\n", last_pos, local)
            last_pos = local
            if self.fmt == "summary":
                continue
            value = chunk.text[local:finding.end - chunk.base] if self.reveal else None
            if self.fmt == "jsonl":
                record = {"source": source, "line": line + 1, **finding.to_dict()}
                if value is not None:
                    record["value"] = value
                self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                self._row(source, line + 1, finding, value)
        line += chunk.text.count("\n", last_pos)
        line_counter[0], line_counter[1] = 0, line

    def write_header(self) -> None:
        self.out.write(f"{'LOCATION':<40} {'DETECTOR':<20} {'MASKED':<22} {'CONF':>5}  "
                       f"CONTEXT\n")
        self.header_done = True

    def _row(self, source: str, line: int, finding: object, value: str | None) -> None:
        if not self.header_done:
            self.write_header()
        location = f"{source}:{line}"
        masked = value if value is not None else finding.masked  # type: ignore[attr-defined]
        context = ",".join(finding.context)  # type: ignore[attr-defined]
        self.out.write(f"{location:<40} {finding.detector:<20} {masked:<22} "  # type: ignore[attr-defined]
                       f"{finding.confidence:>5.2f}  {context}\n")  # type: ignore[attr-defined]

    def summary(self, source: str, accumulator: DocumentAccumulator) -> None:
        if self.fmt != "summary":
            return
        summary = accumulator.summary()
        if not summary.findings_total:
            self.out.write(f"{source}: no findings\n")
            return
        counts = ", ".join(f"{d}={n}" for d, n in summary.counts.items())
        self.out.write(f"{source}: {summary.severity.upper()} — {counts}; "
                       f"{'about ' if summary.distinct_estimated else ''}"
                       f"{summary.distinct_fingerprints} distinct, "
                       f"~{summary.estimated_records} records\n")
        for reason in summary.reasons:
            self.out.write(f"    - {reason}\n")


def _progress(err: TextIO, source: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-6) / 1e6
    err.write(f"\r{source}: {done / 1e6:,.0f}/{total / 1e6:,.0f} MB ({rate:.1f} MB/s)")
    err.flush()


def _scan_one(scanner: Scanner, source: str, stream, output: _Output, err: TextIO,
              chunk_chars: int, size: int) -> None:
    report = DecodeReport()
    accumulator = DocumentAccumulator()
    show_progress = size >= PROGRESS_MIN_BYTES and err.isatty()
    started = time.monotonic()
    line_counter = [0, 0]
    for chunk in scan_chunks(scanner, decode_blocks(stream, report), accumulator, chunk_chars):
        output.findings(source, chunk, line_counter)
        if show_progress:
            _progress(err, source, stream.tell(), size, started)
    if show_progress:
        err.write("\n")
    if report.replaced:
        print(f"roriwatch: {source}: invalid UTF-8: {report.replaced} byte sequence(s) replaced "
              f"with U+FFFD and scanned anyway", file=err)
    output.summary(source, accumulator)


def _scan_path(scanner: Scanner, source: str, path: Path, output: _Output, err: TextIO,
               chunk_chars: int) -> bool:
    """Scan one file; False when it could not be read (reported on ``err``)."""
    try:
        size = path.stat().st_size
        with Path(path).open("rb") as stream:
            _scan_one(scanner, source, stream, output, err, chunk_chars, size)
    except SkipFile as skip:
        print(f"roriwatch: {source}: {skip}", file=err)
    except OSError as exc:
        print(f"roriwatch: {source}: cannot read: {exc.strerror or exc}", file=err)
        return False
    return True


# Set in the parent just before the pool forks: children inherit the compiled scanner.
_JOB_SCANNER: Scanner | None = None


@dataclass
class _JobResult:
    output_file: str
    messages: str
    findings: int
    readable: bool
    wrote_rows: bool


def _start_job_process() -> None:
    """Make a child leave at once and quietly on Ctrl-C.

    The signal reaches the whole process group; the parent reports the interruption and
    removes the children's output files. Children are forked with SIGINT blocked (see
    ``_run_jobs``), so a Ctrl-C that lands before this handler exists waits until here
    instead of raising KeyboardInterrupt, with a traceback, in the child's bootstrap.
    """
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _stop_pool(pool: ProcessPoolExecutor, finished: bool) -> None:
    """Leave no child running, so none can write into the scratch folder once it is removed.

    After an interruption (Ctrl-C, a closed stdout) the children may still be scanning:
    they are terminated and joined before the parent goes on.
    """
    if finished:
        pool.shutdown(wait=True)
        return
    # ProcessPoolExecutor has no public way to stop busy workers before Python 3.14.
    children = list((getattr(pool, "_processes", None) or {}).values())
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join(timeout=5)
    pool.shutdown(wait=False, cancel_futures=True)


def _scan_job(source: str, path: Path, fmt: str, reveal: bool, chunk_chars: int,
              workdir: str) -> _JobResult:
    """One file in a child process; its output goes to a file in ``workdir`` (bounded memory)."""
    assert _JOB_SCANNER is not None
    messages = io.StringIO()
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=workdir, suffix=".out",
                                     delete=False) as out:
        output = _Output(fmt, reveal, out)
        output.header_done = True  # the parent writes the table header once
        readable = _scan_path(_JOB_SCANNER, source, path, output, messages, chunk_chars)
    return _JobResult(out.name, messages.getvalue(), output.total, readable,
                      output.total > 0 and fmt == "table")


def _run_jobs(scanner: Scanner, entries: list[tuple[str, Path | None, str | None]],
              args: argparse.Namespace, output: _Output, out: TextIO, err: TextIO,
              jobs: int) -> int:
    """Scan files in ``jobs`` forked processes; report everything in input order."""
    global _JOB_SCANNER
    _JOB_SCANNER = scanner
    chunk_chars = args.chunk_mb * 1_000_000
    errors = 0
    workdir: str | None = None
    pool: ProcessPoolExecutor | None = None
    finished = False
    try:
        # Private (0700) and always removed: with --reveal the children's output is personal
        # data.
        workdir = tempfile.mkdtemp(prefix="roriwatch-scan-")
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork"),
                                   initializer=_start_job_process)
        # The first submit forks the children; they unblock SIGINT in their initializer.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            futures = [None if problem or path is None else
                       pool.submit(_scan_job, source, path, args.format, args.reveal,
                                   chunk_chars, workdir)
                       for source, path, problem in entries]
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        for (source, _path, problem), future in zip(entries, futures, strict=True):
            if future is None:
                print(f"roriwatch: {source}: {problem}", file=err)
                errors += 1
                continue
            result = future.result()
            err.write(result.messages)
            if result.wrote_rows and not output.header_done:
                output.write_header()
            with open(result.output_file, encoding="utf-8") as produced:
                shutil.copyfileobj(produced, out)
            os.unlink(result.output_file)
            output.total += result.findings
            errors += 0 if result.readable else 1
        finished = True
    finally:
        if pool is not None:
            _stop_pool(pool, finished)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return errors


def run_scan(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
             stdin: object = None) -> int:
    """Scan every path; errors on one path are reported and the scan goes on."""
    try:
        settings = load_settings()
        scanner = _scanner(args, settings, err)
    except (RuleError, SettingsError) as exc:
        print(f"roriwatch: {exc}", file=err)
        return EXIT_ERROR
    if args.chunk_mb < 1:
        print("roriwatch: --chunk-mb must be at least 1", file=err)
        return EXIT_ERROR
    if args.jobs < 0:
        print("roriwatch: --jobs must be 0 (one per core) or more", file=err)
        return EXIT_ERROR
    jobs = args.jobs or os.cpu_count() or 1
    if args.reveal:
        print("roriwatch: --reveal: printing RAW identifiers; treat this output as personal "
              "data", file=err)
    output = _Output(args.format, args.reveal, out)
    errors = 0
    entries = list(iter_paths(args.paths))
    files = sum(1 for _, path, _ in entries if path is not None)
    stdin_too = any(source == "-" and path is None and not problem
                    for source, path, problem in entries)
    if jobs > 1 and files > 1 and not stdin_too and "fork" in get_all_start_methods():
        try:
            errors += _run_jobs(scanner, entries, args, output, out, err, min(jobs, files))
        except BrokenProcessPool:
            print("roriwatch: a scan process ended unexpectedly (out of memory or killed); "
                  "rerun with --jobs 1 to scan in one process", file=err)
            return EXIT_ERROR
        entries = []
    for source, path, problem in entries:
        if problem:
            print(f"roriwatch: {source}: {problem}", file=err)
            errors += 1
            continue
        if path is None:
            stream = stdin if stdin is not None else sys.stdin.buffer
            _scan_one(scanner, "-", stream, output, err, args.chunk_mb * 1_000_000, 0)
            continue
        if not _scan_path(scanner, source, path, output, err, args.chunk_mb * 1_000_000):
            errors += 1
    out.flush()
    if output.total:
        return EXIT_FINDINGS
    return EXIT_ERROR if errors else EXIT_CLEAN
