"""Hold an empty fetch answer client-side when the broker sends it at once.

A Kafka broker answers a fetch that finds no new records only after ``fetch.max.wait.ms``
(aiokafka's default: 500 ms), or sooner as soon as records arrive, so an idle consumer sends
about two requests a second. The local substitute broker (noida-db,
../shared/reference/stack-notes.md) answers at once, and aiokafka's fetcher then asks again
at once: ~4,500 fetches a second, an idle worker burning 87 % of a core and the broker
12.5 % (BENCHMARKS.md), CPU the scanner needs on a two-core machine; a busy worker still
spent a sixth of its time re-asking for partitions that had nothing new.

``install(wait_s)`` makes each consumer of this process wait out what is left of
``min(wait_s, fetch_max_wait_ms)`` after an early, empty answer before that broker is asked
again. A broker that honours the fetch wait never answers early and empty, so the wait is
never added there; on one that does not, a record can wait up to ``wait_s`` longer to be
fetched. ``wait_s = 0`` restores aiokafka's own behaviour.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.consumer.fetcher import Fetcher

_ORIGINAL: Callable[..., Awaitable[bool]] = Fetcher._proc_fetch_request
_settings = {"wait_s": 0.0}


async def _proc_fetch_request(self: Any, assignment: Any, node_id: int, request: Any) -> bool:
    started = time.monotonic()
    got_records = await _ORIGINAL(self, assignment, node_id, request)
    wait_s = _settings["wait_s"]
    if not got_records and wait_s > 0:
        remaining = min(wait_s, self._fetch_max_wait_ms / 1000) - (time.monotonic() - started)
        if remaining > 0:
            try:
                await asyncio.sleep(remaining)
            except asyncio.CancelledError:
                # Like aiokafka's own method: Fetcher.close() and a lost assignment cancel
                # pending fetch tasks and then await them, expecting no CancelledError.
                return got_records
    return got_records


def install(wait_s: float) -> None:
    """Apply (or, with 0, lift) the wait for every aiokafka consumer in this process."""
    if wait_s < 0:
        raise ValueError(f"fetch wait must be >= 0 seconds, not {wait_s}")
    _settings["wait_s"] = wait_s
    Fetcher._proc_fetch_request = _proc_fetch_request if wait_s > 0 else _ORIGINAL


def installed_wait_s() -> float:
    """The wait currently applied (0 when aiokafka runs unchanged)."""
    return _settings["wait_s"] if Fetcher._proc_fetch_request is _proc_fetch_request else 0.0
