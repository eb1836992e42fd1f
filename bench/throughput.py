"""Scanner throughput on a generated mixed corpus, next to GNU grep on an equivalent pattern set.

usage: python bench/throughput.py [--mb 100] [--out bench/out]
Writes the corpus once (logs, Vietnamese forum text, CSV dumps, JSON lines), then times
`roriwatch scan` (one process, one core) and `grep -E -c` over the same file.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from detectors import DocumentAccumulator, Fingerprinter, Scanner, load_rules
from detectors.corpus import app_log, chat, csv_dump, forum_post, json_lines, sql_dump
from detectors.synthetic import Synth
from streams.textsource import DecodeReport, decode_blocks, scan_chunks

GREP_PATTERN = (
    r"(^|[^0-9])(0[0-9]{9,11}|\+84[ .-]?[0-9]{9}|[0-9]{12}|[0-9]{13,19}|[A-Z][0-9]{7})"
    r"([^0-9]|$)|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
)
# Share of bytes per shape: logs dominate real feeds; dumps are the dense part.
MIX = ((app_log, 0.55), (forum_post, 0.15), (chat, 0.05), (csv_dump, 0.15), (json_lines, 0.05),
       (sql_dump, 0.05))


def write_corpus(path: Path, megabytes: int) -> None:
    s = Synth(1)
    target = megabytes * 1_000_000
    written = {g.__name__: 0 for g, _ in MIX}
    with path.open("w", encoding="utf-8") as out:
        total = 0
        while total < target:
            for generator, share in MIX:
                if written[generator.__name__] < share * target:
                    text = generator(s).text
                    out.write(text)
                    written[generator.__name__] += len(text.encode())
                    total += len(text.encode())


def time_scanner(path: Path) -> tuple[float, int]:
    scanner = Scanner(load_rules(), Fingerprinter(b"bench-key-0123456789abcdef"))
    started = time.perf_counter()
    count = 0
    with path.open("rb") as stream:
        for chunk in scan_chunks(scanner, decode_blocks(stream, DecodeReport()),
                                 DocumentAccumulator()):
            count += len(chunk.findings)
    return time.perf_counter() - started, count


def time_command(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="corpus size in MB (default 100)")
    parser.add_argument("--out", default="bench/out", help="where the corpus is written")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / f"mixed-{args.mb}mb.txt"
    if not corpus.exists():
        print(f"writing {corpus} ...", file=sys.stderr)
        write_corpus(corpus, args.mb)
    size = corpus.stat().st_size / 1e6
    seconds, findings = time_scanner(corpus)
    print(f"corpus: {size:.1f} MB mixed (logs 55%, forum+chat 20%, CSV/JSON/SQL dumps 25%)")
    print(f"roriwatch scan (pyahocorasick + regex, 1 core): {size / seconds:.1f} MB/s, "
          f"{findings:,} findings")
    grep = shutil.which("grep")
    if grep:
        elapsed = time_command([grep, "-E", "-c", GREP_PATTERN, str(corpus)])
        print(f"GNU grep -E (equivalent pattern set, no validation): {size / elapsed:.1f} MB/s")
    rg = shutil.which("rg")
    if rg:
        elapsed = time_command([rg, "-c", GREP_PATTERN, str(corpus)])
        print(f"ripgrep (same pattern): {size / elapsed:.1f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
