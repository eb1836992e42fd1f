"""Build hook: the pure package by default; mypyc-compiled detectors on request.

``RORIWATCH_MYPYC=1`` (``scripts/build-compiled.sh``) compiles the detection core's hot
modules to C extensions with mypyc. The source stays the reference: same findings byte for
byte (``tests/unit/test_compiled_engine.py``), less CPU per MB
(BENCHMARKS.md). Metadata lives in ``pyproject.toml``.
"""

import os

from setuptools import setup

# The modules a scan spends its Python time in; corpus generators and rule data stay pure.
COMPILED_MODULES = [
    "detectors/context.py",
    "detectors/engine.py",
    "detectors/findings.py",
    "detectors/normalize.py",
    "detectors/privacy.py",
    "detectors/ruleset.py",
    "detectors/sqltext.py",
    "detectors/summary.py",
    "detectors/validators.py",
]

ext_modules = []
if os.environ.get("RORIWATCH_MYPYC") == "1":
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        raise SystemExit("RORIWATCH_MYPYC=1 needs mypy in the build environment: build with "
                         "scripts/build-compiled.sh") from exc

    ext_modules = mypycify(["--ignore-missing-imports", *COMPILED_MODULES], opt_level="3")

setup(ext_modules=ext_modules)
