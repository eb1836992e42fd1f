"""detectors/ stays a pure library: no I/O stack, no environment."""

import ast
from pathlib import Path

FORBIDDEN = {"kafka", "aiokafka", "faust", "elasticsearch", "prometheus_client", "requests",
             "urllib", "socket", "http", "streams", "os"}


def test_detectors_import_no_io_or_environment():
    root = Path(__file__).resolve().parents[2] / "detectors"
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
