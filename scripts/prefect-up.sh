#!/usr/bin/env bash
# Start the local orchestrator on 127.0.0.1: a Prefect server, the `cpu` and `gpu` process
# work pools, the deployments of prefect.yaml, and one `cpu` worker for this checkout.
# Stop it all with `make prefect-down` (scripts/prefect-down.sh). Running it again reuses what
# is still running. Settings: PREFECT_PORT (4200), PREFECT_HOME (.prefect/), VENV (.venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV_DIR="${VENV:-.venv}"
[[ "$VENV_DIR" = /* ]] || VENV_DIR="$ROOT/$VENV_DIR"
BIN="$VENV_DIR/bin"
[[ -x "$BIN/prefect" ]] || { echo "error: $BIN/prefect not found; run 'make install' first" >&2; exit 1; }
PREFECT="$BIN/prefect"

HOST=127.0.0.1
PORT="${PREFECT_PORT:-4200}"
export PATH="$BIN:$PATH"
export PREFECT_HOME="${PREFECT_HOME:-$ROOT/.prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false   # no internet here: telemetry would only fail
export PREFECT_API_URL="http://$HOST:$PORT/api"
export TSFORECAST_REPO="$ROOT"                  # prefect.yaml's pull step changes into it
RUN_DIR="$PREFECT_HOME/run"
mkdir -p "$RUN_DIR"

running() {  # running NAME: the process recorded in RUN_DIR/NAME.pid is alive
  local pid
  pid="$(cat "$RUN_DIR/$1.pid" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

start() {  # start NAME CMD...: in the background, in its own process group, logging to RUN_DIR/NAME.log
  local name="$1"; shift
  if running "$name"; then
    echo "$name: already running (pid $(cat "$RUN_DIR/$name.pid"))"
    return
  fi
  # Job control gives the process its own group and keeps SIGINT/SIGTERM working: a plain
  # `cmd &` from a script inherits SIGINT-ignore, and Prefect's worker then ignores SIGTERM.
  set -m
  nohup "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  set +m
  echo "$name: started (pid $!, log ${RUN_DIR#"$ROOT"/}/$name.log)"
}

healthy() {
  "$BIN/python" - "$PREFECT_API_URL/health" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

if healthy && ! running server; then
  echo "server: a Prefect server already answers on $HOST:$PORT; using it (not started here)"
else
  start server "$PREFECT" server start --host "$HOST" --port "$PORT"
fi
for _ in $(seq 120); do
  healthy && break
  running server || { echo "error: the server exited; see $RUN_DIR/server.log" >&2; tail -20 "$RUN_DIR/server.log" >&2; exit 1; }
  sleep 0.5
done
healthy || { echo "error: no answer from $PREFECT_API_URL/health after 60 s; see $RUN_DIR/server.log" >&2; exit 1; }
echo "server: ready at http://$HOST:$PORT"

# Pools first: `prefect deploy --all --no-prompt` skips a deployment whose pool is missing.
for pool in cpu gpu; do
  if "$PREFECT" work-pool inspect "$pool" >/dev/null 2>&1; then
    echo "pool $pool: exists"
  else
    "$PREFECT" work-pool create "$pool" --type process >/dev/null
    echo "pool $pool: created (process)"
  fi
done

"$PREFECT" --no-prompt deploy --all >"$RUN_DIR/deploy.log" 2>&1 || {
  echo "error: prefect deploy failed; see $RUN_DIR/deploy.log" >&2; tail -30 "$RUN_DIR/deploy.log" >&2; exit 1; }
echo "deployments: forecast-nightly, forecast-on-demand (pool cpu), train-gpu (pool gpu)"

start worker-cpu "$PREFECT" worker start --pool cpu --limit 1 --name "cpu-$(hostname)"
sleep 2
running worker-cpu || { echo "error: the cpu worker exited; see $RUN_DIR/worker-cpu.log" >&2; tail -20 "$RUN_DIR/worker-cpu.log" >&2; exit 1; }

cat <<MSG

Prefect UI   http://$HOST:$PORT
run now      PREFECT_API_URL=$PREFECT_API_URL $PREFECT deployment run 'forecast-pipeline/forecast-on-demand'
gpu worker   on a CUDA host, see pipelines/README.md (prefect worker start --pool gpu)
stop         make prefect-down
MSG
