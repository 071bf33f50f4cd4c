#!/usr/bin/env bash
# Stops what ops/dev/up.sh started (by PID), keeping the data for the next start.
# With --purge, also deletes the local state (database, secrets, logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# shellcheck source=ops/scripts/pg.sh
. ops/scripts/pg.sh
state=${DEV_STATE:-$repo/.dev}
alt=/var/tmp/platform-dev-$(printf '%s' "$repo" | sha1sum | cut -c1-8)
# An explicit DEV_STATE names the only stack to stop (never the default one's fallback).
[ -d "$state/pids" ] || [ -n "${DEV_STATE:-}" ] || state=$alt
[ -d "$state/pids" ] || { echo "nothing to stop"; exit 0; }

for name in router workers platform pebble dns stripe-emulator smtp-sink redis; do
  f="$state/pids/$name.pid"
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped $name"
  fi
  rm -f "$f"
done
pg_stop "$state/pg" && echo "stopped postgresql"
if [ "${1:-}" = "--purge" ]; then rm -rf "$state"; echo "removed $state"; fi
