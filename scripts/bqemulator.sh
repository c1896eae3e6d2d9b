#!/usr/bin/env bash
# Install, start and stop the bqemulator conformance server (BigQuery REST +
# Storage Read/Write gRPC on DuckDB) used by the conformance tests.
#
#   scripts/bqemulator.sh install        # virtualenv with bqemulator 1.4.0
#   eval "$(scripts/bqemulator.sh start)" # exports BQEMULATOR_GRPC / BQEMULATOR_REST
#   scripts/bqemulator.sh stop
#
# Environment:
#   BQEMULATOR_VENV       virtualenv (default: $REPO/.venv/bqemulator)
#   BQEMULATOR_PYTHON     interpreter used to create it (default: python3)
#   BQEMULATOR_REST_PORT  fixed REST port (default: a free loopback port)
#   BQEMULATOR_GRPC_PORT  fixed gRPC port (default: a free loopback port)
#   BQEMULATOR_STATE_DIR  pid/log/data directory (default: $REPO/target/bqemulator)
#   BQEMULATOR_START_TIMEOUT  seconds to wait for both ports (default: 60)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
VENV="${BQEMULATOR_VENV:-$REPO/.venv/bqemulator}"
PY="$VENV/bin/python"
STATE_DIR="${BQEMULATOR_STATE_DIR:-$REPO/target/bqemulator}"
PID_FILE="$STATE_DIR/bqemulator.pid"
LOG_FILE="$STATE_DIR/bqemulator.log"
CONSTRAINTS="$SCRIPT_DIR/bqemulator-constraints.txt"
VERSION="1.4.0"

log() { echo "bqemulator.sh: $*" >&2; }

installed() {
    [[ -x "$PY" ]] || return 1
    "$PY" - "$VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
sys.exit(0 if version("bqemulator") == sys.argv[1] else 1)
EOF
}

cmd_install() {
    if installed; then
        log "bqemulator $VERSION already installed in $VENV"
        return 0
    fi
    local base="${BQEMULATOR_PYTHON:-python3}"
    log "creating virtualenv $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$base" -m venv "$VENV"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install --quiet --no-input \
        -c "$CONSTRAINTS" "bqemulator==$VERSION" duckdb==2.0.1 numpy >&2
    installed || { log "install finished but bqemulator $VERSION is not importable"; exit 1; }
    log "installed bqemulator $VERSION in $VENV"
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

cmd_start() {
    installed || { log "not installed; run: $0 install"; exit 1; }
    if running_pid >/dev/null; then
        log "already running (pid $(cat "$PID_FILE")); run: $0 stop"
        exit 1
    fi
    mkdir -p "$STATE_DIR"
    local rest="${BQEMULATOR_REST_PORT:-}" grpc="${BQEMULATOR_GRPC_PORT:-}"
    [[ -n "$rest" ]] || rest="$(free_port)"
    while [[ -z "$grpc" || "$grpc" == "$rest" ]]; do grpc="$(free_port)"; done
    local port
    for port in "$rest" "$grpc"; do
        if port_open "$port"; then
            log "port $port on 127.0.0.1 is already in use"
            exit 1
        fi
    done
    local data_dir
    data_dir="$(mktemp -d "$STATE_DIR/data.XXXXXX")"

    # setsid: own process group, so stop can end the launcher and anything it spawned.
    setsid "$PY" "$SCRIPT_DIR/bqemulator_launch.py" "$rest" "$grpc" "$data_dir" \
        >"$LOG_FILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PID_FILE"

    local timeout="${BQEMULATOR_START_TIMEOUT:-60}"
    local deadline=$((SECONDS + timeout))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "process $pid exited during start-up; log tail ($LOG_FILE):"
            tail -n 60 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            rm -rf "$data_dir"
            exit 1
        fi
        if port_open "$rest" && port_open "$grpc"; then break; fi
        if ((SECONDS >= deadline)); then
            log "ports $rest/$grpc not open after ${timeout}s; log tail ($LOG_FILE):"
            tail -n 60 "$LOG_FILE" >&2 || true
            cmd_stop
            exit 1
        fi
        sleep 0.2
    done
    log "started pid $pid (rest $rest, grpc $grpc, log $LOG_FILE)"
    echo "export BQEMULATOR_GRPC=http://127.0.0.1:$grpc"
    echo "export BQEMULATOR_REST=http://127.0.0.1:$rest"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    rm -rf "$STATE_DIR"/data.*
    log "stopped pid $pid"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    *)
        echo "usage: $0 {install|start|stop}" >&2
        exit 2
        ;;
esac
