#!/usr/bin/env bash
# Install everything the tests need into .venv, start the local services, run lint and the
# whole test suite, stop the services. This is the README's test command; .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${RORIWATCH_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
echo "== installing roriwatch and test dependencies (pinned by constraints.txt)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 \
  | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt \
  -e ".[dev,services]" 2>&1 | grep -v "^WARNING: Location" || true

echo "== ruff"
"$VENV/bin/ruff" check .

echo "== dependency audit (pip-audit over constraints.txt)"
# Some pinned releases have no vulnerability data reachable from these machines: they are
# listed by name and do not fail the run; a known vulnerability always does.
RORIWATCH_AUDIT_OFFLINE_OK="${RORIWATCH_AUDIT_OFFLINE_OK:-1}" bash scripts/audit.sh

# The mypyc-compiled detection core is tested against the source (same output, byte for
# byte: tests/unit/test_compiled_engine.py). Skipped without a C compiler, or with
# RORIWATCH_TEST_COMPILED=0.
if [ "${RORIWATCH_TEST_COMPILED:-1}" = 1 ] && command -v "${CC:-cc}" >/dev/null 2>&1; then
  echo "== compiled detection core (mypyc)"
  compiled_site="$VENV/roriwatch-compiled"
  wheel="$(bash scripts/build-compiled.sh "$VENV/roriwatch-wheels" | tail -n 1)"
  rm -rf "$compiled_site"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$compiled_site" "$wheel" 2>&1 | grep -v "^WARNING: Location" || true
  RORIWATCH_COMPILED_SITE="$(cd "$compiled_site" && pwd)"
  export RORIWATCH_COMPILED_SITE
fi

stop_services() { bash scripts/services.sh down >/dev/null 2>&1 || true; }
if [ -d tests/integration ]; then
  echo "== starting local services (Kafka protocol + Elasticsearch API + Prometheus on 127.0.0.1)"
  trap stop_services EXIT
  bash scripts/services.sh up --fresh ${RORIWATCH_TEST_SERVICES_FLAGS:---with-prometheus}
fi

echo "== pytest"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
