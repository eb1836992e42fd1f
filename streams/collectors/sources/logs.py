"""Tailing log files: follows rename rotation and truncation, resumes across restarts.

Files are tracked by identity (device and inode), not by name, as Filebeat does: after
``app.log`` is renamed to ``app.log.1`` its unread tail is still read (even after a restart,
by finding the inode again in the directory), and the new ``app.log`` starts from its first
byte. Truncation in place (copytruncate) starts a new *generation* of the same inode so item ids
stay unique.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from streams.collectors.config import SourceConfig, option_reader
from streams.collectors.sources.base import Emission, PollContext, Source

log = logging.getLogger(__name__)

DEFAULT_EXCLUDES = ("*.gz", "*.bz2", "*.xz", "*.zst", "*.zip")


@dataclass(frozen=True)
class TailOptions:
    """Validated options of a file tail source."""

    paths: tuple[str, ...]
    exclude: tuple[str, ...]
    start_at: str
    encoding: str
    max_line_bytes: int
    batch_lines: int
    fingerprint_bytes: int


@dataclass(frozen=True)
class Line:
    """A line read from a file, with the byte offset where it starts."""

    offset: int
    data: bytes
    truncated: bool


def read_lines(
    handle: BinaryIO,
    offset: int,
    *,
    skipping: bool,
    max_line_bytes: int,
    max_lines: int,
    final: bool,
) -> tuple[list[Line], int, bool]:
    """Read complete lines from ``offset``; return lines, the next offset and the skip flag.

    An unterminated last line is left for the next poll (the writer may be mid-line) unless
    ``final`` says the file will not grow (it was rotated away). A line longer than
    ``max_line_bytes`` is emitted cut and flagged, and the rest of it is skipped.
    """
    handle.seek(offset)
    lines: list[Line] = []
    while len(lines) < max_lines:
        start = handle.tell()
        data = handle.readline(max_line_bytes + 1)
        if not data:
            break
        if data.endswith(b"\n"):
            offset = handle.tell()
            if skipping:
                skipping = False  # this was the end of an over-long line
                continue
            lines.append(Line(start, data[:-1].rstrip(b"\r"), False))
        elif len(data) > max_line_bytes:
            offset = handle.tell()
            if not skipping:
                lines.append(Line(start, data[:max_line_bytes], True))
                skipping = True
        else:
            # Unterminated tail.
            if skipping or final:
                offset = handle.tell()
                if not skipping:
                    lines.append(Line(start, data.rstrip(b"\r"), False))
            break
    return lines, offset, skipping


def _fingerprint(handle: BinaryIO, length: int) -> str:
    handle.seek(0)
    return hashlib.sha256(handle.read(length)).hexdigest()[:16]


class FileTailSource(Source):
    """Follows a set of files given as glob patterns."""

    source_type = "file_tail"

    @classmethod
    def parse_options(cls, config: SourceConfig, where: str) -> TailOptions:
        """Validate path patterns, start position, encoding and line limits."""
        reader = option_reader(config, where)
        encoding = reader.text("encoding", "utf-8")
        try:
            "".encode(encoding)
        except LookupError:
            raise reader.fail("encoding", "is not a known text encoding") from None
        exclude = reader.get("exclude")
        options = TailOptions(
            paths=tuple(
                str(config.resolve_path(p)) for p in reader.str_list("paths", required=True)
            ),
            exclude=tuple(reader.str_list("exclude")) if exclude is not None else DEFAULT_EXCLUDES,
            start_at=reader.choice("start_at", "beginning", ("beginning", "end")),
            encoding=encoding,
            max_line_bytes=reader.integer("max_line_bytes", config.max_content_bytes, minimum=64),
            batch_lines=reader.integer("batch_lines", 500, minimum=1),
            fingerprint_bytes=reader.integer("fingerprint_bytes", 256, minimum=1),
        )
        reader.check_unknown()
        return options

    def _matching_paths(self) -> list[str]:
        options: TailOptions = self.options
        found: set[str] = set()
        for pattern in options.paths:
            for path in glob.glob(pattern, recursive=True):
                name = os.path.basename(path)
                if any(fnmatch.fnmatch(name, ex) for ex in options.exclude):
                    continue
                if os.path.isfile(path):
                    found.add(os.path.abspath(path))
        return sorted(found)

    def poll(self, state: dict[str, Any], ctx: PollContext) -> Iterator[Emission]:
        """Read new lines of every matching file, rotated-away files first."""
        options: TailOptions = self.options
        files: dict[str, dict[str, Any]] = {k: dict(v) for k, v in state.get("files", {}).items()}
        first_run = not state.get("initialized")
        current: dict[str, str] = {}
        for path in self._matching_paths():
            try:
                st = os.stat(path)
            except OSError:
                continue
            current[f"{st.st_dev}.{st.st_ino}"] = path

        # Files we were reading whose name no longer matches: rotated away (or deleted).
        for key in [k for k in files if k not in current]:
            old = files[key]
            located = _find_inode(old["path"], key)
            if located is not None:
                old["path"] = located
                yield from self._read_file(key, old, files, state, final=True, ctx=ctx)
            files.pop(key, None)
            state = {**state, "files": _copy(files)}
            yield Emission(state=state)

        for key, path in current.items():
            if ctx.stopping():
                return
            record = files.get(key)
            if record is None:
                size = os.path.getsize(path)
                start = size if first_run and options.start_at == "end" else 0
                record = {"path": path, "offset": start, "gen": 0, "skip": False}
                files[key] = record
            record["path"] = path
            yield from self._read_file(key, record, files, state, final=False, ctx=ctx)
            state = {**state, "files": _copy(files)}
        yield Emission(state={**state, "files": _copy(files), "initialized": True})

    def _read_file(
        self,
        key: str,
        record: dict[str, Any],
        files: dict[str, dict[str, Any]],
        state: dict[str, Any],
        *,
        final: bool,
        ctx: PollContext,
    ) -> Iterator[Emission]:
        options: TailOptions = self.options
        try:
            handle = open(record["path"], "rb")  # noqa: SIM115 - closed in finally
        except OSError:
            ctx.error("io")
            return
        try:
            st = os.fstat(handle.fileno())
            if f"{st.st_dev}.{st.st_ino}" != key:
                return  # replaced between stat and open; the next poll sees the new file
            fp_len = min(options.fingerprint_bytes, st.st_size)
            stored_fp = record.get("fp")
            stored_len = record.get("fp_len", 0)
            truncated = st.st_size < record["offset"]
            if stored_fp and not truncated and st.st_size >= stored_len:
                # Same inode but different first bytes: truncated and rewritten between polls,
                # or the inode was reused by a new file.
                truncated = _fingerprint(handle, stored_len) != stored_fp
            if truncated:
                log.info("source %s: file truncated, reading it again from the start", self.name)
                record.update(offset=0, gen=record["gen"] + 1, skip=False, fp=None, fp_len=0)
            if not record.get("fp") or record.get("fp_len", 0) < fp_len:
                record["fp"] = _fingerprint(handle, fp_len) if fp_len else None
                record["fp_len"] = fp_len
            while not ctx.stopping():
                lines, offset, skipping = read_lines(
                    handle,
                    record["offset"],
                    skipping=record.get("skip", False),
                    max_line_bytes=options.max_line_bytes,
                    max_lines=options.batch_lines,
                    final=final,
                )
                if offset == record["offset"] and not lines:
                    break
                envelopes = [self._line_envelope(key, record, line) for line in lines]
                record.update(offset=offset, skip=skipping)
                yield Emission(
                    envelopes=[e for e in envelopes if e is not None],
                    state={**state, "files": _copy(files)},
                )
        finally:
            handle.close()

    def _line_envelope(self, key: str, record: dict[str, Any], line: Line) -> Any:
        options: TailOptions = self.options
        if not line.data.strip():
            return None
        try:
            text = line.data.decode(options.encoding)
            decode_errors = False
        except UnicodeDecodeError:
            text = line.data.decode(options.encoding, errors="replace")
            decode_errors = True
        meta: dict[str, Any] = {"path": record["path"], "offset": line.offset}
        if decode_errors:
            meta["decode_errors"] = True
        return self.envelope(
            item_id=f"{key}-{record['gen']}:{line.offset}",
            content=text,
            url=Path(record["path"]).as_uri(),
            title=os.path.basename(record["path"]),
            meta=meta,
            truncated=line.truncated,
        )


def _copy(files: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in files.items()}


def _find_inode(last_path: str, key: str) -> str | None:
    """Find the file with identity ``key`` near where it was last seen (rotation renames)."""
    directory = os.path.dirname(last_path) or "."
    try:
        st = os.stat(last_path)
        if f"{st.st_dev}.{st.st_ino}" == key:
            return last_path
    except OSError:
        pass
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        try:
            if entry.is_file() and f"{entry.stat().st_dev}.{entry.inode()}" == key:
                return entry.path
        except OSError:
            continue
    return None
