#!/usr/bin/env bash
# Install, start and stop moto's S3-compatible server, where the checkpoint tests keep their
# sources and checkpoints (tests/checkpoint.rs).
#
#   scripts/moto.sh install          # virtualenv with moto[server] 5.2.5
#   eval "$(scripts/moto.sh start)"  # exports DFBQ_S3_ENDPOINT
#   scripts/moto.sh stop
#
# Environment:
#   MOTO_VENV       virtualenv (default: $REPO/.venv/moto)
#   MOTO_STATE_DIR  pid and log directory (default: $REPO/target/moto)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
VENV="${MOTO_VENV:-$REPO/.venv/moto}"
PY="$VENV/bin/python"
STATE_DIR="${MOTO_STATE_DIR:-$REPO/target/moto}"
PID_FILE="$STATE_DIR/moto.pid"
LOG_FILE="$STATE_DIR/moto.log"
VERSION="5.2.5"

log() { echo "moto.sh: $*" >&2; }

installed() {
    [[ -x "$VENV/bin/moto_server" ]] && "$PY" - "$VERSION" <<'PYEOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
sys.exit(0 if version("moto") == sys.argv[1] else 1)
PYEOF
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

case "${1:-}" in
    install)
        if installed; then
            log "moto $VERSION already installed in $VENV"
            exit 0
        fi
        mkdir -p "$(dirname "$VENV")"
        "${MOTO_PYTHON:-python3}" -m venv "$VENV"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install --quiet --no-input "moto[server]==$VERSION" >&2
        installed || { log "install finished but moto $VERSION is not importable"; exit 1; }
        log "installed moto $VERSION in $VENV"
        ;;
    start)
        installed || { log "not installed; run: $0 install"; exit 1; }
        mkdir -p "$STATE_DIR"
        port="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
        setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_FILE" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$PID_FILE"
        deadline=$((SECONDS + 60))
        until port_open "$port"; do
            if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
                log "moto did not start; log tail ($LOG_FILE):"
                tail -n 40 "$LOG_FILE" >&2 || true
                exit 1
            fi
            sleep 0.2
        done
        log "started pid $pid on port $port (log $LOG_FILE)"
        echo "export DFBQ_S3_ENDPOINT=http://127.0.0.1:$port"
        ;;
    stop)
        if [[ -f "$PID_FILE" ]]; then
            pid="$(cat "$PID_FILE")"
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            log "stopped pid $pid"
        fi
        ;;
    *)
        echo "usage: $0 install|start|stop" >&2
        exit 2
        ;;
esac
