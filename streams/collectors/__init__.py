"""Feed collectors: long-running processes that turn paste sites, forums, Telegram exports and
logs into feed envelopes on the ``roriwatch.feed.*`` topics.

Start one with ``roriwatch collect KIND --config FILE``; see docs/collectors.md.
"""  # noqa: D205

from streams.collectors.config import COLLECTOR_KINDS, CollectorConfigError, load_config
from streams.collectors.runner import CollectorError, CollectorReport, run_collector

__all__ = [
    "COLLECTOR_KINDS",
    "CollectorConfigError",
    "CollectorError",
    "CollectorReport",
    "load_config",
    "run_collector",
]
