#!/usr/bin/env bash
# Stops exactly the processes hack/env-up.sh started (by PID) and removes their state.
#   hack/env-down.sh [--locked]   (--locked: the caller already holds the env lock)
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
. "$HACK/lib.sh"
ROOT=$(cd "$HACK/.." && pwd)
STATE="$ROOT/.slipway/env"
ENVFILE="$ROOT/.slipway/testenv.env"
mkdir -p "$ROOT/.slipway"

if [ "${1:-}" != "--locked" ]; then
  exec 9>"$ROOT/.slipway/env.lock"
  flock 9
fi

# ours PID: the process is one env-up started, recognised by our state folder in its command
# line or environment, so a reused PID is never killed.
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$STATE"; }

# The real node first: its containers must stop before containerd, and what they mounted
# must be unmounted before the state folder goes.
BASE=$(cat "$STATE/realnode/base" 2>/dev/null || echo "${SLIPWAY_ENV_PORT_BASE:-17400}")
. "$HACK/realnode.sh"
stop_real_node

pids=()
if [ -d "$STATE/pids" ]; then
  for f in "$STATE"/pids/*; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null && ours "$pid"; then pids+=("$pid"); fi
  done
fi
if [ ${#pids[@]} -gt 0 ]; then
  # PostgreSQL's TERM waits for its clients to leave; INT disconnects them and stops.
  pg=$(cat "$STATE/pids/postgres" 2>/dev/null || true)
  if [ -n "$pg" ] && kill -0 "$pg" 2>/dev/null && ours "$pg"; then kill -INT "$pg" 2>/dev/null || true; fi
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop on TERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  log "stopped ${#pids[@]} processes"
fi
rm -f "$ENVFILE"
if [ -d "$STATE" ]; then
  # BuildKit's snapshots can hold read-only folders; make them removable first.
  chmod -R u+w "$STATE" 2>/dev/null || true
  rm -rf "$STATE"
fi
