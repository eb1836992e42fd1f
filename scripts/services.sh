#!/usr/bin/env bash
# Local Kafka + Elasticsearch (noida-db) and optionally Prometheus for development and CI.
#
#   bash scripts/services.sh up [--fresh] [--with-prometheus] [--timeout SECONDS]
#   bash scripts/services.sh down
#   bash scripts/services.sh status [--with-prometheus]
#
# Real Kafka and Elasticsearch cannot be installed on our machines, so noida-db (one binary that
# speaks the Kafka protocol and an Elasticsearch 8.15-compatible REST API) stands in for both.
# Everything listens on 127.0.0.1 only. State lives in .services/ (pid files, logs, data).
#
# Environment:
#   RORIWATCH_VENV            virtualenv holding noida-db and kafka-python (default .venv)
#   RORIWATCH_KAFKA_PORT      default 9092
#   RORIWATCH_ES_PORT         default 9200
#   RORIWATCH_PROM_PORT       default 9090
#   RORIWATCH_PROM_TARGETS    comma list of host:port scraped by Prometheus (default 127.0.0.1:9108)
#   RORIWATCH_SERVICES_TIMEOUT  seconds to wait for readiness (default 60)
#
# Exit codes: 0 ok, 1 error (message says how to fix), 2 usage, 3 `status`: something requested is down.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HOST=127.0.0.1
VENV="${RORIWATCH_VENV:-.venv}"
KAFKA_PORT="${RORIWATCH_KAFKA_PORT:-9092}"
ES_PORT="${RORIWATCH_ES_PORT:-9200}"
PROM_PORT="${RORIWATCH_PROM_PORT:-9090}"
PROM_TARGETS="${RORIWATCH_PROM_TARGETS:-127.0.0.1:9108}"
TIMEOUT="${RORIWATCH_SERVICES_TIMEOUT:-60}"

STATE_DIR="$ROOT/.services"
NOIDA_DATA="$STATE_DIR/noida"
NOIDA_LOG="$STATE_DIR/noida.log"
NOIDA_PID="$STATE_DIR/noida.pid"
NOIDA_PORTS="$STATE_DIR/noida.ports"
PROM_CONFIG="$STATE_DIR/prometheus.yml"
PROM_DATA="$STATE_DIR/prometheus-data"
PROM_LOG="$STATE_DIR/prometheus.log"
PROM_PID="$STATE_DIR/prometheus.pid"
PROM_PORTFILE="$STATE_DIR/prometheus.port"

NOIDA_REQ='noida-db>=0.2.3,<0.3'

# A reader that goes away (`... | head`) must not kill us halfway through starting a server.
trap '' PIPE
say() { printf '%s\n' "$*" 2>/dev/null || true; }
err() { printf 'services.sh: error: %s\n' "$*" >&2 2>/dev/null || true; }
die() { err "$@"; exit 1; }

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

for var in KAFKA_PORT ES_PORT PROM_PORT TIMEOUT; do
    is_uint "${!var}" || die "$var must be a number, got '${!var}'"
done

# venv path may be relative to the project root; make it absolute so later cd's do not matter.
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PY="$VENV/bin/python"
NOIDA="$VENV/bin/noida-db"

# --- small helpers --------------------------------------------------------------------------

port_open() {  # port -> 0 if something accepts TCP connections on HOST:port
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

pid_alive() {  # pidfile pattern -> 0 if the pid in pidfile runs and its command line matches
    local pidfile="$1" pattern="$2" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    is_uint "$pid" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A recycled pid must not make us think (or kill) a stranger is our server.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"
}

read_pid() { cat "$1" 2>/dev/null || true; }

tail_log() {  # log file -> print its last 30 lines to stderr
    if [[ -s "$1" ]]; then
        printf -- '--- last 30 lines of %s ---\n' "$1" >&2
        tail -n 30 "$1" >&2
        printf -- '--- end of log ---\n' >&2
    fi
}

who_listens() {  # port -> short description of the listening process, if ss can tell
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*",pid=[0-9]*\).*/\1/p' | head -1
}

probe_es() {  # port -> 0 if Elasticsearch answers GET / with a version
    "$PY" - "$HOST" "$1" <<'EOF' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/", timeout=3) as resp:
    body = json.load(resp)
sys.exit(0 if body.get("version", {}).get("number") else 1)
EOF
}

probe_kafka() {  # port -> 0 if the broker answers a metadata request
    # kafka-python 2.x and 3.x accept different timeout options: pass only the ones it knows.
    # describe_cluster() is avoided on purpose: kafka-python 3.0 breaks on DescribeCluster v0.
    timeout 10 "$PY" - "$HOST:$1" <<'EOF' 2>/dev/null
import sys
from kafka import KafkaAdminClient
want = dict(bootstrap_servers=sys.argv[1], client_id="roriwatch-services-probe",
            request_timeout_ms=3000, bootstrap_timeout_ms=3000, api_version_auto_timeout_ms=3000)
admin = KafkaAdminClient(**{k: v for k, v in want.items() if k in KafkaAdminClient.DEFAULT_CONFIG})
try:
    admin.list_topics()
finally:
    admin.close()
EOF
}

probe_prom() {  # port -> 0 if Prometheus reports ready
    "$PY" - "$HOST" "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/-/ready", timeout=3) as resp:
    sys.exit(0 if resp.status == 200 else 1)
EOF
}

need_python() {
    [[ -x "$PY" ]] || die "no Python virtualenv at $VENV.
  Fix: python3 -m venv .venv && .venv/bin/pip install -e '.[dev,services]'
  (or point RORIWATCH_VENV at an existing virtualenv)"
    "$PY" -c 'import kafka' 2>/dev/null || die "kafka-python is not installed in $VENV (needed for the Kafka readiness check).
  Fix: $VENV/bin/pip install -e '.[dev,services]'"
}

ensure_noida() {
    need_python
    if [[ ! -x "$NOIDA" ]]; then
        say "noida-db not found in $VENV; installing $NOIDA_REQ ..."
        timeout 300 "$PY" -m pip install --quiet "$NOIDA_REQ" \
            || die "could not install $NOIDA_REQ into $VENV.
  Fix: check that PyPI is reachable, then run: $VENV/bin/pip install '$NOIDA_REQ'"
        [[ -x "$NOIDA" ]] || die "installed $NOIDA_REQ but $NOIDA is still missing"
    fi
}

wait_until() {  # deadline(epoch s) description command... -> 0 when the command succeeds in time
    local deadline="$1" what="$2"
    shift 2
    until "$@"; do
        if (( $(date +%s) >= deadline )); then
            err "timed out waiting for $what"
            return 1
        fi
        sleep 0.3
    done
}

wait_port_closed() {  # port seconds -> 0 once nothing listens on the port
    local deadline=$(( $(date +%s) + $2 ))
    while port_open "$1"; do
        (( $(date +%s) >= deadline )) && return 1
        sleep 0.2
    done
}

stop_pid() {  # pidfile pattern name: graceful TERM to the process group, KILL after 10 s
    local pidfile="$1" pattern="$2" name="$3" pid _
    pid_alive "$pidfile" "$pattern" || return 0
    pid="$(read_pid "$pidfile")"
    # The server runs as its own session leader (setsid), so the group holds it and its children.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    err "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

# --- noida-db (Kafka + Elasticsearch) -------------------------------------------------------

noida_ready() { probe_es "$ES_PORT" && probe_kafka "$KAFKA_PORT"; }

start_noida() {
    local fresh="$1"
    ensure_noida

    if pid_alive "$NOIDA_PID" noida-db; then
        if [[ "$fresh" == 1 ]]; then
            say "noida-db is running (pid $(read_pid "$NOIDA_PID")); stopping it for --fresh"
            stop_noida
        elif noida_ready; then
            say "noida-db already running (pid $(read_pid "$NOIDA_PID")): kafka $HOST:$KAFKA_PORT, elasticsearch http://$HOST:$ES_PORT"
            return 0
        else
            die "noida-db (pid $(read_pid "$NOIDA_PID")) runs but does not answer on kafka $HOST:$KAFKA_PORT / elasticsearch $HOST:$ES_PORT.
  It may have been started with other ports. Fix: bash scripts/services.sh down && bash scripts/services.sh up"
        fi
    fi

    # Something we did not start may already hold the ports (another checkout, a manual run).
    local kafka_busy=0 es_busy=0
    port_open "$KAFKA_PORT" && kafka_busy=1
    port_open "$ES_PORT" && es_busy=1
    if (( kafka_busy || es_busy )); then
        if (( kafka_busy && es_busy )) && [[ "$fresh" == 0 ]] && noida_ready; then
            say "kafka $HOST:$KAFKA_PORT and elasticsearch http://$HOST:$ES_PORT already answer (not started by this script: $(who_listens "$ES_PORT"))"
            return 0
        fi
        local port=$KAFKA_PORT
        (( kafka_busy )) || port=$ES_PORT
        die "port $HOST:$port is already in use by another process ($(who_listens "$port")), not one this script started.
  Fix: stop that process (ss -ltnp 'sport = :$port' shows it), or pick free ports with
       RORIWATCH_KAFKA_PORT=... RORIWATCH_ES_PORT=... bash scripts/services.sh up"
    fi

    if [[ "$fresh" == 1 && -d "$NOIDA_DATA" ]]; then
        say "--fresh: wiping $NOIDA_DATA"
        rm -rf "$NOIDA_DATA"
    fi
    mkdir -p "$NOIDA_DATA"

    say "starting noida-db: kafka $HOST:$KAFKA_PORT, elasticsearch http://$HOST:$ES_PORT (data $NOIDA_DATA, log $NOIDA_LOG)"
    # `noida-db start` runs in the foreground: we own the pid file and the log. setsid makes it a
    # session leader so `down` can signal the wrapper and the binary it spawns as one group.
    setsid "$NOIDA" start --only kafka,elasticsearch --host "$HOST" \
        --kafka-port "$KAFKA_PORT" --elasticsearch-port "$ES_PORT" \
        --data-dir "$NOIDA_DATA" >"$NOIDA_LOG" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$NOIDA_PID"
    printf 'KAFKA_PORT=%s\nES_PORT=%s\n' "$KAFKA_PORT" "$ES_PORT" >"$NOIDA_PORTS"

    local started deadline
    started=$(date +%s)
    deadline=$(( started + TIMEOUT ))
    local ok=1
    wait_until "$deadline" "noida-db to stay up and open ports $KAFKA_PORT/$ES_PORT" \
        noida_ports_or_dead "$pid" || ok=0
    if (( ok )) && ! kill -0 "$pid" 2>/dev/null; then
        err "noida-db exited right after starting"
        ok=0
    fi
    (( ok )) && { wait_until "$deadline" "Elasticsearch to answer GET / on port $ES_PORT" probe_es "$ES_PORT" || ok=0; }
    (( ok )) && { wait_until "$deadline" "Kafka to answer a metadata request on port $KAFKA_PORT" probe_kafka "$KAFKA_PORT" || ok=0; }
    if (( ! ok )); then
        tail_log "$NOIDA_LOG"
        stop_pid "$NOIDA_PID" noida-db noida-db
        rm -f "$NOIDA_PID" "$NOIDA_PORTS"
        die "noida-db did not become ready (timeout ${TIMEOUT}s; see the log above, full log: $NOIDA_LOG).
  Fix: read the log; if a port is taken pick others (RORIWATCH_KAFKA_PORT / RORIWATCH_ES_PORT);
       if the data dir is damaged, start clean with: bash scripts/services.sh up --fresh;
       on a slow machine raise RORIWATCH_SERVICES_TIMEOUT"
    fi
    say "noida-db ready in $(( $(date +%s) - started ))s (pid $pid)"
}

noida_ports_or_dead() {  # pid -> 0 when both ports are open, or when the process died
    kill -0 "$1" 2>/dev/null || return 0
    port_open "$KAFKA_PORT" && port_open "$ES_PORT"
}

stop_noida() {
    local kport="$KAFKA_PORT" eport="$ES_PORT" was_running=0
    if [[ -f "$NOIDA_PORTS" ]]; then
        kport="$(sed -n 's/^KAFKA_PORT=//p' "$NOIDA_PORTS")"
        eport="$(sed -n 's/^ES_PORT=//p' "$NOIDA_PORTS")"
    fi
    if pid_alive "$NOIDA_PID" noida-db; then
        was_running=1
        local pid
        pid="$(read_pid "$NOIDA_PID")"
        say "stopping noida-db (pid $pid)"
        # Ask noida-db itself first so it saves its data; it returns before the process exits.
        if [[ -x "$NOIDA" ]]; then
            timeout 15 "$NOIDA" down --data-dir "$NOIDA_DATA" >/dev/null 2>&1 || true
        fi
        local _
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        stop_pid "$NOIDA_PID" noida-db noida-db
    fi
    rm -f "$NOIDA_PID" "$NOIDA_PORTS"
    if (( was_running )); then
        local port
        for port in $kport $eport; do
            wait_port_closed "$port" 15 || err "port $HOST:$port is still open 15 s after stopping noida-db ($(who_listens "$port"))"
        done
        say "noida-db stopped (data kept in $NOIDA_DATA)"
    else
        say "noida-db: not running (nothing to stop)"
        local port
        for port in $kport $eport; do
            if port_open "$port"; then
                say "  note: $HOST:$port is served by a process this script did not start ($(who_listens "$port")); left alone"
            fi
        done
    fi
}

# --- Prometheus -----------------------------------------------------------------------------

write_prom_config() {  # -> 0 if the config file changed
    local tmp targets="" t items
    IFS=',' read -r -a items <<<"$PROM_TARGETS"
    for t in "${items[@]}"; do
        t="${t//[[:space:]]/}"
        [[ -n "$t" ]] || continue
        [[ "$t" =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] || die "RORIWATCH_PROM_TARGETS entry '$t' is not host:port"
        targets+="${targets:+, }'$t'"
    done
    [[ -n "$targets" ]] || die "RORIWATCH_PROM_TARGETS is empty; give at least one host:port"
    tmp="$(mktemp "$STATE_DIR/prometheus.yml.XXXXXX")"
    cat >"$tmp" <<EOF
# Written by scripts/services.sh from RORIWATCH_PROM_TARGETS; edits are overwritten on the next up.
global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: roriwatch
    static_configs:
      - targets: [$targets]
EOF
    if [[ -f "$PROM_CONFIG" ]] && cmp -s "$tmp" "$PROM_CONFIG"; then
        rm -f "$tmp"
        return 1
    fi
    chmod 644 "$tmp"
    mv "$tmp" "$PROM_CONFIG"
    return 0
}

ensure_prometheus() {
    command -v prometheus >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" != 0 ]]; then
        die "prometheus is not on PATH and installing it needs root.
  Fix: sudo apt-get update && sudo apt-get install -y --no-install-recommends prometheus"
    fi
    command -v apt-get >/dev/null 2>&1 || die "prometheus is not on PATH and there is no apt-get to install it.
  Fix: install Prometheus 2.x and put the 'prometheus' binary on PATH"
    say "prometheus not found; installing Debian's prometheus package (bounded to 5 minutes per step) ..."
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq >"$STATE_DIR/apt.log" 2>&1 \
        || { tail_log "$STATE_DIR/apt.log"; die "apt-get update failed or timed out. Fix: check the Debian mirror, then rerun"; }
    timeout 300 apt-get install -y -qq --no-install-recommends prometheus >>"$STATE_DIR/apt.log" 2>&1 \
        || { tail_log "$STATE_DIR/apt.log"; die "apt-get install prometheus failed. Fix: apt-get install -y --no-install-recommends prometheus"; }
    command -v prometheus >/dev/null 2>&1 || die "installed the prometheus package but 'prometheus' is still not on PATH"
}

start_prometheus() {
    need_python
    mkdir -p "$STATE_DIR"
    local changed=0
    write_prom_config && changed=1
    if pid_alive "$PROM_PID" prometheus; then
        local pid
        pid="$(read_pid "$PROM_PID")"
        if (( changed )); then
            # Targets changed since it started: reload instead of restarting (keeps its data).
            kill -HUP "$pid"
            say "prometheus (pid $pid): scrape targets changed to $PROM_TARGETS, config reloaded"
        fi
        if probe_prom "$(cat "$PROM_PORTFILE" 2>/dev/null || echo "$PROM_PORT")"; then
            say "prometheus already running (pid $pid): http://$HOST:$(cat "$PROM_PORTFILE" 2>/dev/null || echo "$PROM_PORT")"
            return 0
        fi
        die "prometheus (pid $pid) runs but is not ready. Fix: bash scripts/services.sh down && bash scripts/services.sh up --with-prometheus"
    fi
    ensure_prometheus
    if port_open "$PROM_PORT"; then
        die "port $HOST:$PROM_PORT is already in use ($(who_listens "$PROM_PORT")).
  Fix: stop that process or choose another port: RORIWATCH_PROM_PORT=... bash scripts/services.sh up --with-prometheus"
    fi
    mkdir -p "$PROM_DATA"
    say "starting prometheus on http://$HOST:$PROM_PORT scraping $PROM_TARGETS every 2s (log $PROM_LOG)"
    setsid prometheus --config.file="$PROM_CONFIG" --storage.tsdb.path="$PROM_DATA" \
        --web.listen-address="$HOST:$PROM_PORT" --web.enable-lifecycle \
        >"$PROM_LOG" 2>&1 </dev/null &
    local pid=$! started
    echo "$pid" >"$PROM_PID"
    echo "$PROM_PORT" >"$PROM_PORTFILE"
    started=$(date +%s)
    if ! wait_until $(( started + TIMEOUT )) "prometheus /-/ready on port $PROM_PORT" prom_ready_or_dead "$pid" \
        || ! kill -0 "$pid" 2>/dev/null; then
        tail_log "$PROM_LOG"
        stop_pid "$PROM_PID" prometheus prometheus
        rm -f "$PROM_PID" "$PROM_PORTFILE"
        die "prometheus did not become ready (timeout ${TIMEOUT}s; full log: $PROM_LOG).
  Fix: read the log above; check $PROM_CONFIG; pick another port with RORIWATCH_PROM_PORT"
    fi
    say "prometheus ready in $(( $(date +%s) - started ))s (pid $pid)"
}

prom_ready_or_dead() { kill -0 "$1" 2>/dev/null || return 0; probe_prom "$PROM_PORT"; }

stop_prometheus() {
    if pid_alive "$PROM_PID" prometheus; then
        local pid port
        pid="$(read_pid "$PROM_PID")"
        port="$(cat "$PROM_PORTFILE" 2>/dev/null || echo "$PROM_PORT")"
        say "stopping prometheus (pid $pid)"
        stop_pid "$PROM_PID" prometheus prometheus
        wait_port_closed "$port" 10 || err "port $HOST:$port still open 10 s after stopping prometheus"
        say "prometheus stopped"
    else
        say "prometheus: not running (nothing to stop)"
    fi
    rm -f "$PROM_PID" "$PROM_PORTFILE"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
    local fresh=0 with_prom=0
    while (( $# )); do
        case "$1" in
            --fresh) fresh=1 ;;
            --with-prometheus) with_prom=1 ;;
            --timeout) shift; TIMEOUT="${1:-}"; is_uint "$TIMEOUT" || die "--timeout needs seconds" ;;
            --timeout=*) TIMEOUT="${1#*=}"; is_uint "$TIMEOUT" || die "--timeout needs seconds" ;;
            -h|--help) usage ;;
            *) err "unknown option for up: $1"; usage ;;
        esac
        shift
    done
    mkdir -p "$STATE_DIR"
    start_noida "$fresh"
    (( with_prom )) && start_prometheus
    say ""
    cmd_status_print "$with_prom" || true
}

cmd_down() {
    (( $# == 0 )) || { err "down takes no options"; usage; }
    mkdir -p "$STATE_DIR"
    stop_prometheus
    stop_noida
}

status_line() {  # name state detail
    printf '  %-14s %-5s %s\n' "$1" "$2" "$3" 2>/dev/null || true
}

cmd_status_print() {  # with_prom -> prints, returns 0 when everything requested is up
    local with_prom="$1" all_up=0 owner=""
    if pid_alive "$NOIDA_PID" noida-db; then
        owner="pid $(read_pid "$NOIDA_PID")"
    else
        owner="not started by this script"
    fi
    if [[ -x "$PY" ]] && probe_kafka "$KAFKA_PORT"; then
        status_line kafka up "$HOST:$KAFKA_PORT ($owner)"
    else
        status_line kafka down "$HOST:$KAFKA_PORT"
        all_up=3
    fi
    if [[ -x "$PY" ]] && probe_es "$ES_PORT"; then
        status_line elasticsearch up "http://$HOST:$ES_PORT ($owner)"
    else
        status_line elasticsearch down "http://$HOST:$ES_PORT"
        all_up=3
    fi
    local pport
    pport="$(cat "$PROM_PORTFILE" 2>/dev/null || echo "$PROM_PORT")"
    if [[ -x "$PY" ]] && probe_prom "$pport"; then
        owner="not started by this script"
        if pid_alive "$PROM_PID" prometheus; then owner="pid $(read_pid "$PROM_PID")"; fi
        status_line prometheus up "http://$HOST:$pport ($owner)"
    elif (( with_prom )); then
        status_line prometheus down "http://$HOST:$pport"
        all_up=3
    else
        status_line prometheus down "http://$HOST:$pport (not requested; add --with-prometheus)"
    fi
    return "$all_up"
}

cmd_status() {
    local with_prom=0
    while (( $# )); do
        case "$1" in
            --with-prometheus) with_prom=1 ;;
            -h|--help) usage ;;
            *) err "unknown option for status: $1"; usage ;;
        esac
        shift
    done
    local rc=0
    cmd_status_print "$with_prom" || rc=$?
    if (( rc != 0 )); then
        local hint="bash scripts/services.sh up"
        (( with_prom )) && hint+=" --with-prometheus"
        say "some requested services are down; start them with: $hint"
    fi
    exit "$rc"
}

main() {
    (( $# )) || usage
    local cmd="$1"
    shift
    case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        -h|--help|help) usage ;;
        *) err "unknown command: $cmd"; usage ;;
    esac
}

main "$@"
