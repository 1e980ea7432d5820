#!/usr/bin/env bash
# Stop what scripts/prefect-up.sh started (the cpu worker, then the server), by the process
# ids it recorded in $PREFECT_HOME/run/. Anything else, such as a server that was already
# running before, is left alone. Deployments and pools stay in the server's database.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFECT_HOME="${PREFECT_HOME:-$ROOT/.prefect}"
RUN_DIR="$PREFECT_HOME/run"

stop() {  # stop NAME: TERM its process group, KILL it after 20 s
  local name="$1" pidfile="$RUN_DIR/$1.pid" pid
  pid="$(cat "$pidfile" 2>/dev/null)" || { echo "$name: not started here"; return; }
  if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
    echo "$name: not running"
    rm -f "$pidfile"
    return
  fi
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q prefect; then
    echo "$name: pid $pid is no longer a Prefect process; leaving it alone"
    rm -f "$pidfile"
    return
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    echo "$name: killed (pid $pid)"
  else
    echo "$name: stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop worker-cpu
stop server
