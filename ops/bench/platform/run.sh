#!/usr/bin/env bash
# Platform benchmark (not a test): tenant profile requests (GET /api/tenant) per second with wrk,
# cached (one tenant, every request after the first served from the in-process cache) and
# uncached (a different tenant on every request: each one misses the in-process cache and
# Redis and reads PostgreSQL), straight to the platform with router-style signed headers and
# through the router (which also resolves the tenant from the Host header). Release builds, a
# private PostgreSQL cluster and Redis in a temp folder; everything is stopped by PID on exit.
# Usage: ops/bench/platform/run.sh [seconds=10] [connections=32] [tenants=200000]
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$(pwd)
ops/scripts/install-deps.sh cmake pkg-config postgresql redis-server wrk
cargo build -q --release -p platform -p router
target=${CARGO_TARGET_DIR:-$repo/target}/release
secs=${1:-10}; conns=${2:-32}; ntenants=${3:-200000}
# shellcheck source=ops/bench/cluster.sh
. ops/bench/cluster.sh
bench_cluster platform-bench
redis_port=$(free_port); web_port=$(free_port); router_port=$(free_port); metrics_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >/dev/null &
pids+=($!)
secret=bench-edge-secret-0123456789abcdef0123
export REDIS_URL="redis://127.0.0.1:$redis_port/0" EDGE_SIGNING_SECRET=$secret TENANT_BASE_DOMAIN=platform.test
psql_q -c "INSERT INTO tenants (slug, name, status, settings)
  SELECT 'bench' || g, 'Bench Church ' || g, 'active', '{\"donations\": {\"funds\": [\"general\", \"roof\"]}}'
  FROM generate_series(1, $ntenants) g" -c "ANALYZE tenants"
psql_q -tAF $'\t' -c "SELECT id, slug FROM tenants ORDER BY random()" > "$work/all.tsv"
head -n 1 "$work/all.tsv" > "$work/one.tsv"
# Separate halves for the two uncached runs, so the second never meets the first one's cache.
half=$((ntenants / 2))
head -n "$half" "$work/all.tsv" > "$work/first.tsv"
tail -n "+$((half + 1))" "$work/all.tsv" > "$work/second.tsv"

DATABASE_URL=$(db_url platform_web) DATABASE_MAX_CONNECTIONS=32 \
  PLATFORM_LISTEN=127.0.0.1:$web_port PLATFORM_OPERATOR_LISTEN=127.0.0.1:$(free_port) \
  EDGE_MAX_SKEW_SECS=600 LOG_LEVEL=warn \
  "$target/platform" serve >"$work/platform.log" 2>&1 &
pids+=($!)
DATABASE_URL=$(db_url platform_router) ROUTER_HTTP_LISTEN=127.0.0.1:$router_port \
  UPSTREAM_PLATFORM=127.0.0.1:$web_port UPSTREAM_WORKERS=127.0.0.1:$web_port ROUTER_OPERATOR_LISTEN=127.0.0.1:$metrics_port \
  ROUTER_PID_FILE="$work/router.pid" ROUTER_UPGRADE_SOCK="$work/router.sock" LOG_LEVEL=warn ROUTER_RATE_LIMITS=false \
  "$target/router" serve >"$work/router.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$web_port/api/health" 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$metrics_port/ready" 2>/dev/null && break; sleep 0.1; done

# Signed lists hold one request id per request (the platform refuses replays): enough for the
# run at well above the measured rates.
python3 ops/bench/platform/gen.py direct "$secret" "$work/one.tsv" "$work/direct-cached.txt" /api/tenant $((secs * 40000))
python3 ops/bench/platform/gen.py direct "$secret" "$work/first.tsv" "$work/direct-uncached.txt"
python3 ops/bench/platform/gen.py direct "$secret" "$work/one.tsv" "$work/direct-page.txt" / $((secs * 20000))
python3 ops/bench/platform/gen.py router "$work/one.tsv" "$work/router-cached.txt"
python3 ops/bench/platform/gen.py router "$work/second.tsv" "$work/router-uncached.txt"

run() {
  local name=$1 url=$2 list=$3 out threads=${RUN_THREADS:-2} c=${RUN_CONNS:-$conns}
  out=$(BENCH_REQUESTS=$list BENCH_THREADS=$threads wrk -t "$threads" -c "$c" -d "${secs}s" --latency \
    -s ops/bench/platform/requests.lua "$url" 2>&1)
  if grep -qi "error" <<<"$out"; then echo "$out" >&2; fi
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/not-200 responses/ {print $3, $4, $5, $6}' <<<"$out")
  local total
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%-28s %10s req/s   p50 %8s   p99 %8s   not-200 %s   requests %s\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}" "$total"
}
echo "== machine: $(nproc) cores; $ntenants tenants; wrk -t2 -c$conns -d${secs}s; GET /api/tenant"
# Uncached first: every tenant is new to every cache as long as "requests" stays below half the
# tenants (the script prints both; raise the tenant count if it does not).
echo "   ($half tenants per uncached run)"
run "direct, uncached"  "http://127.0.0.1:$web_port" "$work/direct-uncached.txt"
run "through router, uncached" "http://127.0.0.1:$router_port" "$work/router-uncached.txt"
run "direct, cached"    "http://127.0.0.1:$web_port" "$work/direct-cached.txt"
run "through router, cached" "http://127.0.0.1:$router_port" "$work/router-cached.txt"

# Page render (issue 20: p50 under 5 ms): the tenant landing page, server-rendered HTML with the
# donation form, one connection straight to the platform (signed), so the latency is the
# platform's own render and answer time rather than queueing behind other connections.
echo "== tenant landing page GET /, wrk -t1 -c1 -d${secs}s, direct (signed), cached tenant"
BENCH_PATH=/ RUN_THREADS=1 RUN_CONNS=1 run "landing page, 1 conn" "http://127.0.0.1:$web_port" "$work/direct-page.txt"
