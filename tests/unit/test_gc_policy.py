"""The GC policy every roriwatch process runs with: fewer passes, cycles still collected."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, weakref
from streams.gc_policy import YOUNG_THRESHOLD, apply_scan_gc_policy
apply_scan_gc_policy()
assert gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_threshold()
assert gc.get_freeze_count() > 0, "start-up objects are frozen"

class Node:
    pass

freed = []
for _ in range(3 * YOUNG_THRESHOLD // 2):  # more allocations than one young generation
    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle, garbage at the next iteration
    weakref.finalize(a, freed.append, 1)
print(len(freed))
"""


def test_policy_still_collects_reference_cycles_without_an_explicit_collect():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0  # cycles were freed by automatic passes alone


def test_the_roriwatch_program_runs_with_the_policy():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'roriwatch = "streams.cli:entry"' in pyproject  # the console script
    probe = ("import gc, runpy, sys; sys.argv = ['roriwatch', '--version']\n"
             "try:\n    runpy.run_module('streams.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "from streams.gc_policy import YOUNG_THRESHOLD\n"
             "print(gc.get_threshold()[0] == YOUNG_THRESHOLD)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            timeout=120, check=False)
    assert result.stdout.split()[-1] == b"True", result.stderr
