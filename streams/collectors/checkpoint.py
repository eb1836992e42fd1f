"""Per-source checkpoints: what a source has already delivered, kept across restarts.

A checkpoint is written only after the sink confirmed delivery, and atomically (temporary file,
fsync, rename), so after a crash it describes either the old or the new position, never half of
each: a restart re-sends at most the last unconfirmed batch and never skips anything.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # pragma: no cover - fcntl is missing only on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
# 64 bits of SHA-256 are plenty to recognise a re-post inside a window of thousands of items and
# keep the checkpoint small enough to rewrite after every delivered batch.
CONTENT_HASH_CHARS = 16


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or written; the message names the file and what to do."""


class RecentSet:
    """An insertion-ordered set that forgets its oldest members beyond ``limit``."""

    def __init__(self, limit: int, items: Iterable[str] = ()) -> None:
        self.limit = limit
        self._items: OrderedDict[str, None] = OrderedDict()
        for item in items:
            self.add(item)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: str) -> None:
        """Remember ``item`` as the newest member, evicting the oldest beyond the limit."""
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def to_list(self) -> list[str]:
        """Oldest first, so reloading keeps the eviction order."""
        return list(self._items)


@dataclass
class Checkpoint:
    """A source's resumable position plus the identities of recently delivered items."""

    source: str
    state: dict[str, Any] = field(default_factory=dict)
    recent_ids: RecentSet = field(default_factory=lambda: RecentSet(5000))
    recent_hashes: RecentSet = field(default_factory=lambda: RecentSet(5000))

    def snapshot_state(self) -> dict[str, Any]:
        """Return a deep copy so sources can never mutate the committed position in place."""
        return copy.deepcopy(self.state)

    def to_json(self) -> str:
        """Serialise for the checkpoint file."""
        return json.dumps(
            {
                "version": CHECKPOINT_VERSION,
                "source": self.source,
                "state": self.state,
                "recent_ids": self.recent_ids.to_list(),
                "recent_hashes": self.recent_hashes.to_list(),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )


def content_hash(sha256_hex: str) -> str:
    """Shorten a content SHA-256 to the form remembered in checkpoints."""
    return sha256_hex[:CONTENT_HASH_CHARS]


class CheckpointStore:
    """Checkpoint files under ``state_dir``, one ``<source>.json`` per source.

    ``read_only`` stores (``--dry-run``) load existing checkpoints but never write, so trying a
    configuration does not move the real collector's position.
    """

    def __init__(self, state_dir: Path, *, read_only: bool = False) -> None:
        self.state_dir = Path(state_dir)
        self.read_only = read_only
        self._locks: dict[str, Any] = {}

    def path_for(self, source: str) -> Path:
        """Return the checkpoint file of ``source``."""
        return self.state_dir / f"{source}.json"

    def lock(self, source: str) -> None:
        """Take an exclusive lock so two processes never collect the same source.

        Two writers would each commit their own position and silently lose the other's items.
        """
        if self.read_only or fcntl is None or source in self._locks:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.state_dir / f"{source}.lock", "a+")  # noqa: SIM115 - held until close
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise CheckpointError(
                f"source '{source}' is already being collected by another process "
                f"(lock {self.state_dir / (source + '.lock')}); stop it or use another state_dir"
            ) from None
        self._locks[source] = handle

    def release(self) -> None:
        """Drop all locks taken by this store."""
        for handle in self._locks.values():
            with contextlib.suppress(OSError):
                handle.close()
        self._locks.clear()

    def load(self, source: str, window: int) -> Checkpoint:
        """Load ``source``'s checkpoint, or an empty one when it has never run."""
        path = self.path_for(source)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Checkpoint(source, {}, RecentSet(window), RecentSet(window))
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror}") from None
        try:
            data = json.loads(text)
            if data.get("version") != CHECKPOINT_VERSION or not isinstance(data["state"], dict):
                raise ValueError("unexpected layout")
            ids = [str(i) for i in data.get("recent_ids", [])]
            hashes = [str(h) for h in data.get("recent_hashes", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointError(
                f"{path}: checkpoint is unreadable; move it away to start this source from "
                "scratch (items may be sent again)"
            ) from None
        return Checkpoint(source, data["state"], RecentSet(window, ids), RecentSet(window, hashes))

    def save(self, checkpoint: Checkpoint) -> None:
        """Write atomically: a crash leaves the previous or the new checkpoint, never a mix."""
        if self.read_only:
            return
        path = self.path_for(checkpoint.source)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{checkpoint.source}.", dir=self.state_dir)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(checkpoint.to_json())
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            _fsync_dir(self.state_dir)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot write checkpoint: {exc.strerror}") from None


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
