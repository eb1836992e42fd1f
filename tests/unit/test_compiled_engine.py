"""The mypyc-compiled detection core finds exactly what the pure source finds.

``scripts/test.sh`` builds the compiled wheel (``scripts/build-compiled.sh``) when a C
compiler is present and unpacks it into ``RORIWATCH_COMPILED_SITE``; these tests then run
``roriwatch scan`` once from the source tree and once from that build, on the same files, and
compare every output byte.
"""

import os
import subprocess
import sys
import unicodedata
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from detectors.corpus import labelled_corpus

ROOT = Path(__file__).resolve().parents[2]
SITE = os.environ.get("RORIWATCH_COMPILED_SITE", "")

pytestmark = pytest.mark.skipif(
    not SITE, reason="no compiled build: scripts/test.sh makes one when a C compiler is present")


def _run(site: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    # cwd is outside the repository, so `-m` cannot pick the source tree up by accident.
    env = {"PYTHONPATH": site, "PATH": "/usr/bin:/bin",
           "RORIWATCH_HMAC_KEY": "compiled-test-key-0123456789abcdef"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          timeout=600, check=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every shape the engine has a path for, large enough to span several scan chunks."""
    folder = tmp_path_factory.mktemp("compiled-inputs")
    docs = labelled_corpus(seed=11, documents=900)
    joined = "\n\n".join(doc.text for doc in docs)
    (folder / "mixed.txt").write_text(joined, encoding="utf-8")
    prose = "\n\n".join(doc.text for doc in docs if doc.kind in {"forum", "chat"})
    (folder / "decomposed.txt").write_text(unicodedata.normalize("NFD", prose),
                                           encoding="utf-8")
    # Large ASCII windows take the up-front keyword index and the screens applied in C.
    logs = "\n\n".join(doc.text for doc in docs if doc.kind == "log")
    logs = logs.encode("ascii", "ignore").decode("ascii")
    (folder / "logs.txt").write_text(logs * (1 + 1_200_000 // max(1, len(logs))),
                                     encoding="ascii")
    fullwidth = str.maketrans("0123456789", "０１２３４５６７８９")
    (folder / "look-alikes.txt").write_text(
        prose[:200_000].translate(fullwidth).replace("9", "9\u200b"), encoding="utf-8")
    return folder


def test_the_compiled_build_is_what_gets_imported(tmp_path):
    probe = _run(SITE, tmp_path, "-c",
                 "import detectors.engine, detectors.context; "
                 "print(detectors.engine.__file__); print(detectors.context.__file__)")
    assert probe.returncode == 0, probe.stderr
    files = probe.stdout.decode().split()
    assert files and all(name.endswith(tuple(EXTENSION_SUFFIXES)) for name in files), files
    version = _run(SITE, tmp_path, "-m", "streams.cli", "--version")
    assert b"detection core: mypyc-compiled" in version.stdout, version.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "summary"])
def test_compiled_scan_output_is_byte_identical_to_the_source(inputs, tmp_path, fmt):
    args = ("-m", "streams.cli", "scan", str(inputs), "--format", fmt, "--chunk-mb", "1",
            "--jobs", "1")
    pure = _run(str(ROOT), tmp_path, *args)
    compiled = _run(SITE, tmp_path, *args)
    assert pure.returncode == 1, pure.stderr  # 1: findings
    assert compiled.returncode == pure.returncode, compiled.stderr
    assert pure.stdout.count(b"\n") > 1000 if fmt == "jsonl" else pure.stdout
    assert compiled.stdout == pure.stdout
