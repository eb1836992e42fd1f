"""roriwatch detection core: a pure library, text in, findings out.

No Kafka, no Elasticsearch, no network, no environment: everything it needs is passed in,
so it is fast to test and the same in the CLI, the stream workers and the benchmarks.
"""

from importlib.machinery import EXTENSION_SUFFIXES

from detectors import engine as _engine
from detectors.engine import Scanner
from detectors.findings import Finding
from detectors.privacy import Fingerprinter, mask_value
from detectors.ruleset import Rule, RuleError, RuleSet, load_rules
from detectors.summary import DocumentAccumulator, DocumentSummary, summarize
from detectors.validators import Verdict

# Which build of the core this process runs: the benchmarks and `roriwatch --version` say so,
# because the mypyc build (scripts/build-compiled.sh) scans faster (BENCHMARKS.md).
CORE_BUILD = ("mypyc-compiled" if (_engine.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))
              else "pure Python")

__all__ = [
    "CORE_BUILD",
    "DocumentAccumulator",
    "DocumentSummary",
    "Finding",
    "Fingerprinter",
    "Rule",
    "RuleError",
    "RuleSet",
    "Scanner",
    "Verdict",
    "load_rules",
    "mask_value",
    "summarize",
]
