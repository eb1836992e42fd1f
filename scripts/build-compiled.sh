#!/usr/bin/env bash
# Build a roriwatch wheel whose detection core is compiled to C by mypyc (same findings, less
# CPU per MB: BENCHMARKS.md). Needs a C compiler and the Python headers; the pure package
# stays the default everywhere else.
#
#   bash scripts/build-compiled.sh [OUTPUT_DIR]      # default: dist/
#   .venv/bin/pip install --force-reinstall --no-deps dist/roriwatch-*.whl
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${RORIWATCH_VENV:-.venv}"
OUT="${1:-dist}"
if ! command -v "${CC:-cc}" >/dev/null 2>&1; then
  echo "build-compiled: no C compiler (${CC:-cc}) found; install one (Debian: apt-get install" \
       "gcc) or keep the pure package, which finds exactly the same" >&2
  exit 3
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "build-compiled: $VENV/bin/python not found; run bash scripts/test.sh first or set" \
       "RORIWATCH_VENV" >&2
  exit 2
fi
PY="$(cd "$VENV/bin" && pwd)/python"
echo "== installing mypyc (pinned by constraints.txt)" >&2
"$PY" -m pip install --quiet --disable-pip-version-check -c constraints.txt \
  "mypy>=1.11" "setuptools>=77" "wheel>=0.43" 2>&1 | grep -v "^WARNING: Location" || true
echo "== compiling the detection core (about 20 s on 2 cores)" >&2
mkdir -p "$OUT"
rm -f "$OUT"/roriwatch-*-cp*.whl
OUT="$(cd "$OUT" && pwd)"
# Built from a copy: compiled objects left in ./build would slip into a later pure build.
src="$(mktemp -d "${TMPDIR:-/tmp}/roriwatch-compile-XXXXXX")"
trap 'rm -rf "$src"' EXIT
cp -r pyproject.toml setup.py README.md detectors streams "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
(cd "$src" && RORIWATCH_MYPYC=1 "$PY" -m pip wheel --quiet \
  --disable-pip-version-check --no-deps --no-build-isolation --wheel-dir "$OUT" .) 2>&1 \
  | grep -v "^WARNING: Location" || true
wheel=$(ls -t "$OUT"/roriwatch-*-cp*.whl 2>/dev/null | head -n 1)
if [ -z "$wheel" ]; then
  echo "build-compiled: no compiled wheel was written to $OUT (see the errors above)" >&2
  exit 1
fi
echo "$wheel"
