"""Reading files and streams as text, safely: binary detection, decoding, bounded chunks.

A leak dump can be gigabytes; reading it whole would need that much memory. Text arrives
in blocks from an incremental decoder; ``scan_chunks`` scans windows with a lead-in and an
overlap so a match across a window border is found exactly once.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from detectors import DocumentAccumulator, Finding, Scanner

READ_BLOCK = 1 << 20
SNIFF_BYTES = 8192
CHUNK_CHARS = 4 << 20
LEAD_CHARS = 256  # context before a window: keywords, and the never-a-slice boundary
OVERLAP_CHARS = 256  # longer than any identifier plus its after-context
LINE_SEARCH = 1 << 16


class SkipFile(Exception):
    """The file is not scanned (binary, unreadable); the message says why, in one line."""


@dataclass
class DecodeReport:
    """What decoding had to repair, so the user is told instead of silently losing text."""

    encoding: str = "utf-8"
    replaced: int = 0


@dataclass
class ScannedChunk:
    """Findings accepted from one window and the window text they point into."""

    text: str
    base: int
    findings: list[Finding] = field(default_factory=list)


def _count_errors(report: DecodeReport) -> str:
    name = f"roriwatch-count-{id(report)}"

    def handler(error: UnicodeDecodeError) -> tuple[str, int]:
        report.replaced += 1
        return "\ufffd", error.end

    codecs.register_error(name, handler)
    return name


def sniff_encoding(head: bytes) -> str:
    """UTF-16/32 text has NUL bytes but a BOM; anything else with NULs is binary."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise SkipFile("binary file (NUL bytes in the first 8 KiB): skipped")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    return "utf-8"


def decode_blocks(stream: BinaryIO, report: DecodeReport) -> Iterator[str]:
    """Decode a byte stream incrementally; invalid UTF-8 becomes U+FFFD and is counted."""
    head = stream.read(SNIFF_BYTES)
    report.encoding = sniff_encoding(head)
    decoder = codecs.getincrementaldecoder(report.encoding)(errors=_count_errors(report))
    block = head
    while block:
        text = decoder.decode(block)
        if text:
            yield text
        block = stream.read(READ_BLOCK)
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def scan_chunks(scanner: Scanner, pieces: Iterable[str], accumulator: DocumentAccumulator,
                chunk_chars: int = CHUNK_CHARS) -> Iterator[ScannedChunk]:
    """Scan text arriving in pieces with bounded memory; offsets are global code points."""
    columns = scanner.new_columns()
    buffer = ""
    base = 0
    accept_from = 0
    first = True
    for piece in pieces:
        buffer += piece
        while len(buffer) >= chunk_chars + OVERLAP_CHARS:
            window = buffer[:chunk_chars + OVERLAP_CHARS]
            cut = base + chunk_chars
            yield _scan_window(scanner, window, base, accept_from, cut, columns, first,
                               accumulator)
            accept_from = cut
            first = False
            # Start the next window at a line start so column positions stay right.
            drop = buffer.rfind("\n", max(0, chunk_chars - LINE_SEARCH),
                                chunk_chars - LEAD_CHARS) + 1
            if drop <= 0:
                drop = chunk_chars - LEAD_CHARS
            buffer = buffer[drop:]
            base += drop
    yield _scan_window(scanner, buffer, base, accept_from, None, columns, first, accumulator)


def _scan_window(scanner: Scanner, window: str, base: int, accept_from: int, cut: int | None,
                 columns: object, first: bool, accumulator: DocumentAccumulator) -> ScannedChunk:
    chunk = ScannedChunk(window, base)
    for finding in scanner.scan(window, columns=columns,  # type: ignore[arg-type]
                                carry_header=not first, offset=base):
        if finding.start >= accept_from and (cut is None or finding.start < cut):
            chunk.findings.append(finding)
    accumulator.add(window, chunk.findings, offset=base)
    return chunk


def iter_paths(paths: Iterable[str]) -> Iterator[tuple[str, Path | None, str | None]]:
    """Expand files and directories (recursively, sorted); yields (label, path, error)."""
    for raw in paths:
        if raw == "-":
            yield "-", None, None
            continue
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path, onerror=None):
                dirs.sort()
                for name in sorted(files):
                    yield str(Path(root) / name), Path(root) / name, None
        elif path.exists():
            yield raw, path, None
        else:
            yield raw, None, "no such file or directory"
