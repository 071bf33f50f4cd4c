#!/usr/bin/env bash
# Webhook ingestion benchmark (not a test): a private PostgreSQL cluster and Redis in a temp
# folder, the release `platform` binary, then `webhook-bench`, which posts signed
# payment_intent.succeeded events (20 % redeliveries by default) and verifies every unique event
# was applied once with one receipt queued. Everything started here is stopped by PID on exit.
# Usage: ops/bench/webhooks/run.sh [events] [duplicate-share] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$(pwd)
# shellcheck source=ops/scripts/pg.sh
. ops/scripts/pg.sh
ops/scripts/install-deps.sh cmake pkg-config postgresql redis-server
cargo build -q --release -p platform -p bench-tools
target=${CARGO_TARGET_DIR:-$repo/target}/release

work=$(mktemp -d /var/tmp/webhook-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pg_stop "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(free_port); redis_port=$(free_port); web_port=$(free_port)
printf 'bench\n' > "$work/pw"
pg_init "$work/pg" "$work/pw"
pg_start "$work/pg" "$pg_port" -c max_connections=200
export PGPASSWORD=bench
psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE platform"
owner="postgresql://postgres:bench@127.0.0.1:$pg_port/platform"
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >/dev/null &
pids+=($!)

export REDIS_URL="redis://127.0.0.1:$redis_port/0" EDGE_SIGNING_SECRET=bench-edge-secret-0123456789abcdef0123
DATABASE_URL="postgresql://platform_web:bench@127.0.0.1:$pg_port/platform" DATABASE_MIGRATION_URL=$owner \
  "$target/platform" migrate up >/dev/null
psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d platform -f ops/dev/login-roles.sql
psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d platform -c "ALTER ROLE platform_web PASSWORD 'bench'"

secret=whsec_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
DATABASE_URL="postgresql://platform_web:bench@127.0.0.1:$pg_port/platform" \
  DATABASE_MAX_CONNECTIONS=${POOL_MAX:-32} \
  PLATFORM_LISTEN=127.0.0.1:$web_port STRIPE_WEBHOOK_SECRET=$secret LOG_LEVEL=warn \
  "$target/platform" serve >"$work/platform.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$web_port/ready" 2>/dev/null && break; sleep 0.1; done

echo "== machine: $(nproc) cores; PostgreSQL $(as_pg "$(pg_bin)/postgres" --version | awk '{print $3}') with fsync on (defaults)"
"$target/webhook-bench" "$owner" "http://127.0.0.1:$web_port/api/webhooks/stripe/connect" "$secret" \
  "${1:-20000}" "${2:-0.2}" "${3:-32}"
