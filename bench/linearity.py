"""Scanning time stays linear in input size, including on hostile shapes.

usage: python bench/linearity.py
Prints seconds per MB at 1, 2, 4 and 8 MB for ordinary and worst-case inputs; a linear
scanner shows a flat seconds-per-MB column.
"""

from __future__ import annotations

import time

from detectors import Fingerprinter, Scanner, load_rules
from detectors.corpus import csv_dump
from detectors.synthetic import Synth

SHAPES = {
    "csv dump": lambda n: (csv_dump(Synth(1), rows=n // 110 + 1).text)[:n],
    "spaced digits '1 1 1'": lambda n: ("1 " * (n // 2 + 1))[:n],
    "spaced pairs '12 12'": lambda n: ("12 " * (n // 3 + 1))[:n],
    "at signs": lambda n: "@" * n,
    "zero-width between digits": lambda n: ("0\u200b" * (n // 2 + 1))[:n],
    "keyword + number wall": lambda n: ("stk 0123456789 " * (n // 15 + 1))[:n],
}


def main() -> None:
    scanner = Scanner(load_rules(), Fingerprinter(b"bench-key-0123456789abcdef"))
    print("| input | s/MB at 1 MB | 2 MB | 4 MB | 8 MB |")
    print("|---|---|---|---|---|")
    for name, make in SHAPES.items():
        cells = []
        for megabytes in (1, 2, 4, 8):
            text = make(megabytes * 1_000_000)
            started = time.perf_counter()
            scanner.scan(text)
            cells.append(f"{(time.perf_counter() - started) / megabytes:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
