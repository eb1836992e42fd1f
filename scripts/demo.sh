#!/usr/bin/env bash
# One command for a fresh machine: install roriwatch into .venv and run the main job on the
# embedded default (the synthetic samples/), with no servers to set up.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RORIWATCH_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e . \
  2>&1 | grep -v "^WARNING: Location" || true
echo "== roriwatch scan samples/ --format summary"
status=0
"$VENV/bin/roriwatch" scan samples/ --format summary "$@" || status=$?
# Exit code 1 means "findings", which is what the samples are for.
[ "$status" -le 1 ] || exit "$status"
