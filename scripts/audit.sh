#!/usr/bin/env bash
# Dependency audit: every version pinned in constraints.txt against known vulnerabilities.
#
#   bash scripts/audit.sh
#
# Runs pip-audit on constraints.txt (the full pinned set, so --no-deps). pip-audit asks the
# package index's JSON API for each pinned release; where that API answers "not found" for
# the release (some mirrors and proxies serve only the project-level document), the script
# asks again for the project-level document, which carries the vulnerabilities of the latest
# release, and uses it for every pin that *is* the latest release. Whatever is still not
# audited is listed by name.
#
# Exit status:
#   0  every pin audited, no known vulnerability
#   1  a known vulnerability (always), or some pins could not be audited
#   2  pip-audit is not installed, or constraints.txt is missing
# RORIWATCH_AUDIT_OFFLINE_OK=1 turns "could not be audited" (no vulnerability data reachable)
# into exit 0 with a loud warning; a vulnerability found still fails.
#
# Environment: RORIWATCH_VENV (default .venv), RORIWATCH_AUDIT_CONSTRAINTS (default
# constraints.txt), RORIWATCH_AUDIT_TIMEOUT seconds per request (default 15).
set -uo pipefail
cd "$(dirname "$0")/.."

VENV="${RORIWATCH_VENV:-.venv}"
CONSTRAINTS="${RORIWATCH_AUDIT_CONSTRAINTS:-constraints.txt}"
TIMEOUT="${RORIWATCH_AUDIT_TIMEOUT:-15}"
PYTHON="$VENV/bin/python"

if [ ! -f "$CONSTRAINTS" ]; then
  echo "audit: $CONSTRAINTS not found" >&2
  exit 2
fi
if ! "$PYTHON" -c "import pip_audit" 2>/dev/null; then
  echo "audit: pip-audit is not installed in $VENV; install it with:" >&2
  echo "  $PYTHON -m pip install -c $CONSTRAINTS pip-audit" >&2
  exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== pip-audit $("$PYTHON" -m pip_audit --version 2>/dev/null | awk '{print $2}') on $CONSTRAINTS"
"$PYTHON" -m pip_audit -r "$CONSTRAINTS" --no-deps --disable-pip --progress-spinner off \
  --timeout "$TIMEOUT" --format json --output "$work/report.json" 2>"$work/stderr.txt"
status=$?

RORIWATCH_AUDIT_STATUS="$status" RORIWATCH_AUDIT_TIMEOUT="$TIMEOUT" \
  "$PYTHON" - "$work/report.json" "$work/stderr.txt" "$CONSTRAINTS" <<'PY'
"""Read pip-audit's report; audit what it skipped through the project-level documents."""

import json
import os
import re
import sys
from pathlib import Path

report_path, stderr_path, constraints = sys.argv[1:4]
status = int(os.environ["RORIWATCH_AUDIT_STATUS"])
timeout = int(os.environ["RORIWATCH_AUDIT_TIMEOUT"])
offline_ok = os.environ.get("RORIWATCH_AUDIT_OFFLINE_OK") == "1"
stderr = Path(stderr_path).read_text(errors="replace")

try:
    report = json.loads(Path(report_path).read_text())
except (OSError, ValueError):
    report = None

if report is None:
    # pip-audit stopped before writing a report: no vulnerability data at all.
    error = [line for line in stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
    print(f"audit: pip-audit failed (exit {status}): {error[0][:300]}")
    pins = [line.split("==", 1) for line in Path(constraints).read_text().splitlines()
            if "==" in line and not line.lstrip().startswith("#")]
    unaudited = [(name.strip(), version.strip()) for name, version in pins]
    vulnerable = []
else:
    vulnerable, unaudited = [], []
    for dep in report.get("dependencies", []):
        if "skip_reason" in dep:
            unaudited.append((dep["name"], dep.get("version") or
                              re.sub(r".*\((.*)\)$", r"\1", dep["skip_reason"])))
        elif dep.get("vulns"):
            vulnerable.append((dep["name"], dep["version"], dep["vulns"]))
    audited = len(report.get("dependencies", [])) - len(unaudited)
    print(f"audit: pip-audit audited {audited}, could not audit {len(unaudited)}")

# Second chance for pins the release-level API did not answer: the project-level document
# describes the latest release, so it settles every pin that is the latest release.
fallback_note = ""
if unaudited:
    try:
        import requests
        from packaging.version import Version
        from pip_audit._service.interface import ResolvedDependency
        from pip_audit._service.pypi import PyPIService
    except ImportError as exc:
        fallback_note = f"project-level check unavailable ({exc})"
    else:
        class ProjectLevelSession:
            """Answers release-level queries from the project-level document, when it fits."""

            def __init__(self, session):
                self.session = session

            def get(self, url, timeout=None):
                match = re.match(r"(.*/pypi/[^/]+)/([^/]+)/json$", url)
                response = self.session.get(url=f"{match.group(1)}/json", timeout=timeout)
                if response.status_code == 200:
                    latest = response.json().get("info", {}).get("version")
                    if latest == match.group(2):
                        return response
                missing = requests.Response()
                missing.status_code, missing.url = 404, url
                return missing

        service = PyPIService(timeout=timeout)
        service.session = ProjectLevelSession(service.session)
        still = []
        for name, version in unaudited:
            try:
                dep, vulns = service.query(ResolvedDependency(name=name, version=Version(version)))
            except Exception as exc:  # network errors: stays unaudited, named below
                still.append((name, version))
                fallback_note = f"project-level check failed: {type(exc).__name__}"
                continue
            if dep.is_skipped():
                still.append((name, version))
            elif vulns:
                vulnerable.append((name, version, [
                    {"id": v.id, "fix_versions": [str(f) for f in v.fix_versions]}
                    for v in vulns]))
        print(f"audit: project-level documents audited {len(unaudited) - len(still)} more "
              f"(pins that are the latest release)")
        unaudited = still

for name, version, vulns in vulnerable:
    ids = ", ".join(f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or []) or '?'})"
                    for v in vulns)
    print(f"VULNERABLE {name}=={version}: {ids}")
if unaudited:
    names = ", ".join(f"{name}=={version}" for name, version in sorted(unaudited))
    print(f"NOT AUDITED ({len(unaudited)}): {names}")
    print("  no vulnerability data could be fetched for these releases "
          f"(pip-audit: release-level JSON API not found or unreachable"
          f"{'; ' + fallback_note if fallback_note else ''})")
if vulnerable:
    print(f"audit: FAILED: {len(vulnerable)} pinned package(s) with known vulnerabilities")
    sys.exit(1)
if unaudited and not offline_ok:
    print("audit: FAILED: not every pin could be audited (set RORIWATCH_AUDIT_OFFLINE_OK=1 "
          "to accept that where the vulnerability data is unreachable)")
    sys.exit(1)
if unaudited:
    print("audit: WARNING: passing without a complete audit (RORIWATCH_AUDIT_OFFLINE_OK=1)")
    sys.exit(0)
print("audit: ok: every pin audited, no known vulnerability")
PY
