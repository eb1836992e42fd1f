"""Scanner throughput per document shape and on a mixed corpus, next to GNU grep.

usage: python bench/throughput.py [--mb 100] [--out bench/out]

Writes the corpora once under --out, then times the scanner in this process (one core, with
the GC policy every roriwatch process sets: streams/gc_policy.py) and
`grep -E -c` with an equivalent pattern set (no validation, no context) over the same files.
Throughput depends on how dense a text is in candidates: Python work per candidate dominates
(../shared/reference/stack-notes.md), so the shapes are reported separately.
"""

from __future__ import annotations

import argparse
import functools
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from detectors import CORE_BUILD, DocumentAccumulator, Fingerprinter, Scanner, load_rules
from detectors.corpus import LabelledDoc, app_log, chat, csv_dump, forum_post, json_lines, sql_dump
from detectors.synthetic import Synth
from streams.gc_policy import apply_scan_gc_policy
from streams.textsource import DecodeReport, decode_blocks, scan_chunks

GREP_PATTERN = (
    r"(^|[^0-9])(0[0-9]{9,11}|\+84[ .-]?[0-9]{9}|[0-9]{12}|[0-9]{13,19}|[A-Z][0-9]{7})"
    r"([^0-9]|$)|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
)
PROSE = ("Mình mới mua con laptop này tháng trước, dùng ổn, pin khoảng 6 tiếng, giá tầm "
         "15.990.000đ. Có bạn nào biết chỗ sửa bàn phím uy tín ở quận 3 không? Cảm ơn mọi người. ")

Generator = Callable[[Synth], LabelledDoc]


def forum_thread(s: Synth) -> LabelledDoc:
    """Ordinary forum prose, one sale post in twenty."""
    doc = LabelledDoc("forum")
    for _ in range(20):
        doc.add(PROSE * s.rng.randint(1, 4) + "\n")
    doc.add(forum_post(s).text)
    return doc


SHAPES: dict[str, tuple[tuple[Generator, float], ...]] = {
    "logs (1% of lines leak)": ((functools.partial(app_log, lines=200, leak_rate=0.01), 1.0),),
    "forum threads (1 sale post in 20)": ((forum_thread, 1.0),),
    "leak dumps (CSV/JSON/SQL, every row)": ((csv_dump, 0.6), (json_lines, 0.2),
                                             (sql_dump, 0.2)),
    "mixed feed (logs 60%, forum 30%, dumps 10%)": (
        (functools.partial(app_log, lines=200, leak_rate=0.01), 0.6), (forum_thread, 0.25),
        (chat, 0.05), (csv_dump, 0.06), (json_lines, 0.02), (sql_dump, 0.02)),
    # The same ingredients with dumps at 1%: how much the figure above owes to dump density.
    "mixed feed, 1% dumps (logs 69%, forum 30%)": (
        (functools.partial(app_log, lines=200, leak_rate=0.01), 0.69), (forum_thread, 0.25),
        (chat, 0.05), (csv_dump, 0.006), (json_lines, 0.002), (sql_dump, 0.002)),
}


def write_corpus(path: Path, megabytes: int, mix: tuple[tuple[Generator, float], ...]) -> None:
    s = Synth(1)
    target = megabytes * 1_000_000
    written = [0] * len(mix)
    total = 0
    with path.open("w", encoding="utf-8") as out:
        while total < target:
            for index, (generator, share) in enumerate(mix):
                if written[index] < share * target:
                    # A blank line between documents: a feed scans each document on its own,
                    # and without it a CSV header's table (which ends at a blank line) ran on
                    # through every later document, making each digit run there a candidate.
                    data = generator(s).text + "\n"
                    out.write(data)
                    size = len(data.encode())
                    written[index] += size
                    total += size


def time_scanner(path: Path) -> tuple[float, int]:
    scanner = Scanner(load_rules(), Fingerprinter(b"bench-key-0123456789abcdef"))
    started = time.perf_counter()
    count = 0
    with path.open("rb") as stream:
        for chunk in scan_chunks(scanner, decode_blocks(stream, DecodeReport()),
                                 DocumentAccumulator()):
            count += len(chunk.findings)
    return time.perf_counter() - started, count


def time_grep(path: Path) -> float | None:
    grep = shutil.which("grep")
    if grep is None:
        return None
    # Output goes through a pipe, not /dev/null: GNU grep stops at the first match when it
    # sees its output is /dev/null, which would time nothing.
    started = time.perf_counter()
    with subprocess.Popen([grep, "-a", "-E", "-o", GREP_PATTERN, str(path)],
                          stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        while process.stdout.read(1 << 20):
            pass
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="size of each corpus in MB")
    parser.add_argument("--out", default="bench/out", help="where the corpora are written")
    args = parser.parse_args()
    apply_scan_gc_policy()  # as every roriwatch process does (streams.cli:entry)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, one process, detection core: {CORE_BUILD}")
    print("| corpus | MB | roriwatch MB/s | findings/MB | grep -E -o MB/s |")
    print("|---|---|---|---|---|")
    for index, (name, mix) in enumerate(SHAPES.items()):
        corpus = out / f"shape{index}-{args.mb}mb.txt"
        if not corpus.exists():
            print(f"writing {corpus} ...", file=sys.stderr)
            write_corpus(corpus, args.mb, mix)
        size = corpus.stat().st_size / 1e6
        seconds, findings = time_scanner(corpus)
        grep_seconds = time_grep(corpus)
        grep = f"{size / grep_seconds:.0f}" if grep_seconds else "n/a"
        print(f"| {name} | {size:.0f} | {size / seconds:.1f} | {findings / size:,.0f} | "
              f"{grep} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
