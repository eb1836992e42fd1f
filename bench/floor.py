"""The least any scan on the pyahocorasick + regex path must spend, per corpus, on this machine.

usage: python bench/floor.py [--mb 100] [--out bench/out] [--repeat 3]

Issue 2 sets 40 MB/s per core (25 ms per MB) for the pure path. This bench asks what is
left of that budget before any detection logic runs: it times only the steps no scanner on
that path can skip, each as lean as Python allows, and adds the cheapest per-finding work
that the privacy contract requires (a keyed hash and a masked form per finding). The sum is
a ceiling, not an estimate: the real scanner does all of this and more.

The steps, over the same corpora and chunks as ``bench/throughput.py``:

- decode: bytes to ``str`` (UTF-8), as every reader must;
- nfc: ``unicodedata.is_normalized`` (the cheapest way to learn a text needs no NFC);
- keywords: the cheaper of two ways to have keyword context (words with and without
  diacritics near a value): the keyword fold and one pyahocorasick pass over the whole text,
  or the fold and a pass over the scanner's context window around each loose digit run;
  either with an empty loop body;
- digit runs: one stdlib ``re`` pass for runs of 8+ digits and separators, the loosest
  shape every numeric identifier has, with an empty loop body;
- per finding: ``Fingerprinter.fingerprint`` (HMAC-SHA256 with precomputed pads), the
  mask and one tuple, for as many findings as the real scanner reports on that corpus.

Nothing here is asserted in tests; BENCHMARKS.md reports the figures.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from detectors import DocumentAccumulator, Fingerprinter, Scanner, load_rules
from detectors.context import WINDOW_AFTER, WINDOW_BEFORE, KeywordContext
from detectors.privacy import mask_value
from streams.gc_policy import apply_scan_gc_policy
from streams.textsource import DecodeReport, decode_blocks, scan_chunks

sys.path.insert(0, str(Path(__file__).parent))
from throughput import SHAPES, write_corpus

LOOSEST_RUN = re.compile(r"[0-9][0-9 .\-]{6,}[0-9]")
CHUNK = 4 << 20


def write_pipeline_feed(path: Path, megabytes: int) -> None:
    """The documents ``bench/pipeline.py`` sends, one after another, blank-line separated."""
    from pipeline import make_documents

    written, seed = 0, 0
    with path.open("w", encoding="utf-8") as out:
        while written < megabytes * 1_000_000:
            for _feed, _item, text in make_documents(1000, seed):
                out.write(text + "\n\n")
                written += len(text.encode()) + 2
            seed += 1


def chunks(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


def best_of(repeat: int, step: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs: the floor is about what the machine can do at best."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return min(times)


def real_findings(path: Path, scanner: Scanner) -> tuple[int, float]:
    """How many findings the real scanner reports on ``path``, and its time."""
    count = 0
    started = time.perf_counter()
    with path.open("rb") as stream:
        for chunk in scan_chunks(scanner, decode_blocks(stream, DecodeReport()),
                                 DocumentAccumulator()):
            count += len(chunk.findings)
    return count, time.perf_counter() - started


def measure(path: Path, repeat: int) -> dict[str, float]:
    rules = load_rules()
    keywords = KeywordContext(rules)
    automaton = keywords._automaton  # the scanner's own automaton, read-only here
    fingerprinter = Fingerprinter(b"bench-key-0123456789abcdef")
    raw = chunks(path)
    texts = [block.decode("utf-8", "replace") for block in raw]

    def decode() -> None:
        for block in raw:
            block.decode("utf-8", "replace")

    def nfc() -> None:
        for text in texts:
            unicodedata.is_normalized("NFC", text)

    def keyword_pass() -> None:
        for text in texts:
            for _hit in automaton.iter(keywords.prepare(text)):
                pass

    def keyword_windows() -> None:
        # The other way to have context: fold and match only a window around each digit
        # run, as the scanner does for texts with few candidates. The floor takes whichever
        # of the two is cheaper for the corpus.
        prepare = keywords.prepare
        for text in texts:
            for run in LOOSEST_RUN.finditer(text):
                start, end = run.span()
                for _hit in automaton.iter(prepare(text[max(0, start - WINDOW_BEFORE):
                                                         end + WINDOW_AFTER])):
                    pass

    def digit_runs() -> None:
        for text in texts:
            for _run in LOOSEST_RUN.finditer(text):
                pass

    found, scan_seconds = real_findings(path, Scanner(rules, fingerprinter))
    values = [f"0{index:011d}" for index in range(min(found, 200_000))]
    fingerprint = fingerprinter.fingerprint

    def per_finding() -> None:
        for value in values:
            (fingerprint(value), mask_value(value), value)

    per_value = best_of(repeat, per_finding) / max(1, len(values))
    return {
        "decode": best_of(repeat, decode),
        "nfc": best_of(repeat, nfc),
        "keywords": min(best_of(repeat, keyword_pass), best_of(repeat, keyword_windows)),
        "digit runs": best_of(repeat, digit_runs),
        "per finding": per_value * found,
        "findings": found,
        "scanner": scan_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="size of each corpus in MB")
    parser.add_argument("--out", default="bench/out",
                        help="where the corpora are (written if missing)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step; the best counts")
    args = parser.parse_args()
    apply_scan_gc_policy()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = ("decode", "nfc", "keywords", "digit runs", "per finding")
    print("ms per MB; ceiling = 1000 / (sum of the floor steps) MB/s; target 40 MB/s (25 ms/MB)")
    print("| corpus | " + " | ".join(steps) + " | floor sum | ceiling MB/s | scanner MB/s |")
    print("|---|" + "---|" * (len(steps) + 3))
    corpora = [(name, out / f"shape{index}-{args.mb}mb.txt", mix)
               for index, (name, mix) in enumerate(SHAPES.items())]
    corpora.append(("pipeline feed (bench/pipeline.py's mix)",
                    out / f"pipeline-feed-{args.mb}mb.txt", None))
    for name, corpus, mix in corpora:
        if not corpus.exists():
            print(f"writing {corpus} ...", file=sys.stderr)
            if mix is None:
                write_pipeline_feed(corpus, args.mb)
            else:
                write_corpus(corpus, args.mb, mix)
        size = corpus.stat().st_size / 1e6
        result = measure(corpus, args.repeat)
        per_mb = {step: 1000 * result[step] / size for step in steps}
        total = sum(per_mb.values())
        print(f"| {name} | " + " | ".join(f"{per_mb[s]:.1f}" for s in steps)
              + f" | {total:.1f} | {1000 / total:.0f} | {size / result['scanner']:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
