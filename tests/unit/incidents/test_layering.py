"""Correlation and message building stay pure: no broker, cluster, HTTP or environment."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3] / "streams"
PURE = ["incidents/correlate.py", "incidents/similarity.py", "routing/config.py",
        "routing/messages.py", "routing/router.py"]
FORBIDDEN = {"kafka", "aiokafka", "faust", "elasticsearch", "urllib", "socket", "http",
             "smtplib", "os"}


def test_pure_modules_import_no_io():
    offenders = []
    for name in PURE:
        tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            offenders += [f"{name}: {m}" for m in modules if m.split(".")[0] in FORBIDDEN]
    assert offenders == []
