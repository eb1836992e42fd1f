"""roriwatch detection core: a pure library, text in, findings out.

No Kafka, no Elasticsearch, no network, no environment: everything it needs is passed in,
so it is fast to test and the same in the CLI, the stream workers and the benchmarks.
"""

from detectors.engine import Scanner
from detectors.findings import Finding
from detectors.privacy import Fingerprinter, mask_value
from detectors.ruleset import Rule, RuleError, RuleSet, load_rules
from detectors.summary import DocumentAccumulator, DocumentSummary, summarize
from detectors.validators import Verdict

__all__ = [
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
