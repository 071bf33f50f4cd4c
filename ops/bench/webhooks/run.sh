#!/usr/bin/env bash
# Webhook ingestion benchmark (not a test): a private PostgreSQL cluster and Redis in a temp
# folder, the release `platform` binary, then `webhook-bench`, which posts signed
# payment_intent.succeeded events (20 % redeliveries by default) and verifies every unique event
# was applied once with one receipt queued. Everything started here is stopped by PID on exit.
# Usage: [BENCH_SQL=...] [POOL_MAX=n] ops/bench/webhooks/run.sh [events] [duplicate-share] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$(pwd)
ops/scripts/install-deps.sh cmake pkg-config postgresql redis-server
cargo build -q --release -p platform -p bench-tools
target=${CARGO_TARGET_DIR:-$repo/target}/release
# shellcheck source=ops/bench/cluster.sh
. ops/bench/cluster.sh
bench_cluster webhook-bench
# BENCH_SQL: extra SQL run as the superuser after the migrations, to measure a schema variant
# (docs/benchmarks.md uses it to put back constraints an earlier schema had).
if [[ -n "${BENCH_SQL:-}" ]]; then psql_q -c "$BENCH_SQL"; fi
redis_port=$(free_port); web_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >/dev/null &
pids+=($!)
export REDIS_URL="redis://127.0.0.1:$redis_port/0" EDGE_SIGNING_SECRET=bench-edge-secret-0123456789abcdef0123

secret=whsec_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
DATABASE_URL=$(db_url platform_web) \
  DATABASE_MAX_CONNECTIONS=${POOL_MAX:-32} \
  PLATFORM_LISTEN=127.0.0.1:$web_port PLATFORM_OPERATOR_LISTEN=127.0.0.1:$(free_port) \
  STRIPE_WEBHOOK_SECRET=$secret LOG_LEVEL=warn \
  "$target/platform" serve >"$work/platform.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$web_port/api/health" 2>/dev/null && break; sleep 0.1; done

echo "== machine: $(nproc) cores; PostgreSQL $(as_pg "$(pg_bin)/postgres" --version | awk '{print $3}') with fsync on (defaults)"
"$target/webhook-bench" "$owner" "http://127.0.0.1:$web_port/api/webhooks/stripe/connect" "$secret" \
  "${1:-20000}" "${2:-0.2}" "${3:-32}"
