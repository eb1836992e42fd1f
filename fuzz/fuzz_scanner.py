"""Coverage-guided fuzzing of the detection core (atheris / libFuzzer).

    python fuzz/fuzz_scanner.py -max_total_time=60 [CORPUS_DIR ...]

Every input becomes text three ways (UTF-8 with replacement, Latin-1, and a structured mix of
digits, separators, zero-width characters and keywords that reaches the validators quickly)
and is scanned. A crash, an exception, a finding outside the text, a mask that shows more
than the raw value's digits allow, or a scan slower than SLOW_SCAN_S for these small inputs
(a regex worst case) stops the run with the input saved by libFuzzer as ``crash-*`` /
``timeout-*``. Without atheris (no wheel for this Python), the same checks run on seeded
random inputs for the same time budget, so the command works everywhere.

Nothing here prints an input: the reproducer file is the only copy.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the platform
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["detectors"]):
        from detectors import Fingerprinter, Scanner, load_rules
        from detectors.privacy import MASK_CHAR
else:
    from detectors import Fingerprinter, Scanner, load_rules
    from detectors.privacy import MASK_CHAR

SLOW_SCAN_S = 2.0
MAX_INPUT_BYTES = 64 * 1024
RULES = load_rules()
SCANNER = Scanner(RULES, Fingerprinter(b"fuzz-key-0123456789abcdef"), min_confidence=0.0)
KEYWORD_RULES = frozenset(rule.id for rule in RULES.rules if rule.kind == "keyword")
PIECES = ["0", "1", "9", "84", "+84", "(", ")", " ", "-", ".", "\u200b", "\u2060", "\ufeff",
          "０", "٣", "@", "gmail.com", "SĐT", "CCCD", "STK", "MST", "BHYT", "thẻ", "\n", ",",
          "|", "\t", "Vietcombank", "số", "đ", "ü", "中"]


class Finding(AssertionError):
    """A property violated by an input (the input itself is in libFuzzer's artifact)."""


def texts(data: bytes) -> list[str]:
    """The texts one input stands for."""
    structured = "".join(PIECES[b % len(PIECES)] for b in data)
    return [data.decode("utf-8", errors="replace"), data.decode("latin-1"), structured]


def check(text: str) -> None:
    """Scan one text and verify the scanner's contract."""
    started = time.perf_counter()
    findings = SCANNER.scan(text)
    elapsed = time.perf_counter() - started
    if elapsed > SLOW_SCAN_S:
        raise Finding(f"scan of {len(text)} chars took {elapsed:.1f}s")
    for finding in findings:
        if not 0 <= finding.start < finding.end <= len(text):
            raise Finding(f"{finding.detector}: span {finding.start}:{finding.end} outside text")
        masked = finding.masked
        if finding.detector in KEYWORD_RULES:
            pass  # watch-list keywords are shown as configured, not masked
        elif "@" in masked:
            local = masked.rpartition("@")[0]
            if sum(ch != MASK_CHAR for ch in local) > 1:
                raise Finding(f"{finding.detector}: mask shows more than one mailbox letter")
        elif sum(ch != MASK_CHAR for ch in masked) > 6 or MASK_CHAR not in masked:
            raise Finding(f"{finding.detector}: mask shows more than 3+3 characters")
        if not finding.fingerprint or finding.key_id != SCANNER_KEY_ID:
            raise Finding(f"{finding.detector}: missing keyed fingerprint")


SCANNER_KEY_ID = Fingerprinter(b"fuzz-key-0123456789abcdef").key_id


def test_one_input(data: bytes) -> None:
    """Entry point called by libFuzzer with each input."""
    for text in texts(data[:MAX_INPUT_BYTES]):
        check(text)


def fallback(argv: list[str]) -> int:
    """Random inputs for -max_total_time seconds when atheris is not installed."""
    budget = 60.0
    for arg in argv[1:]:
        if arg.startswith("-max_total_time="):
            budget = float(arg.split("=", 1)[1])
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "1")))  # noqa: S311 - test inputs
    deadline = time.monotonic() + budget
    runs = 0
    while time.monotonic() < deadline:
        size = rng.choice((8, 64, 512, 4096, 32768))
        test_one_input(bytes(rng.getrandbits(8) for _ in range(size)))
        runs += 1
    print(f"fuzz_scanner (random fallback, atheris not installed): {runs} inputs, no finding")
    return 0


def main() -> int:
    """Run libFuzzer through atheris, or the fallback."""
    if atheris is None:
        return fallback(sys.argv)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
