#!/usr/bin/env bash
# Queue and mail benchmark (not a test): a private PostgreSQL 15 cluster (defaults, fsync on)
# in a temp folder, then
#   1. the raw SQL ceiling with pgbench: claim + complete 50 jobs per transaction;
#   2. queue-bench: no-op jobs/s through the real consumer loop with 1, 2, 4, 8 consumers;
#   3. queue-bench: receipts/s through process-emails to a local aiosmtpd sink.
# Everything started here is stopped by PID on exit.
# Usage: ops/bench/workers/run.sh [jobs=200000] [consumers=1,2,4,8] [batch=50] [emails=2000]
set -euo pipefail
cd "$(dirname "$0")/../../.."
repo=$(pwd)
ops/scripts/install-deps.sh cmake pkg-config postgresql
python3 -m pip install -q --disable-pip-version-check -r ops/requirements-test.txt
cargo build -q --release -p platform -p bench-tools
target=${CARGO_TARGET_DIR:-$repo/target}/release
# shellcheck source=ops/bench/cluster.sh
. ops/bench/cluster.sh
bench_cluster queue-bench
smtp_port=$(free_port)
python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Sink >/dev/null 2>&1 &
pids+=($!)

echo "== machine: $(nproc) cores; PostgreSQL $(as_pg "$(pg_bin)/postgres" --version | awk '{print $3}'), fsync on"
echo "== raw SQL ceiling (pgbench, 4 clients, 10 s): claim + complete 50 no-op jobs per transaction"
psql_q \
  -c "INSERT INTO jobs (kind) SELECT 'noop' FROM generate_series(1, 1000000)" -c "VACUUM ANALYZE jobs"
cat > "$work/claim.sql" <<'SQL'
WITH picked AS (SELECT id FROM jobs WHERE state IN ('available', 'retryable') AND tenant_id IS NULL AND run_at <= now()
                ORDER BY priority, run_at, id LIMIT 50 FOR UPDATE SKIP LOCKED)
UPDATE jobs j SET state = 'completed', finished_at = now() FROM picked WHERE j.id = picked.id;
SQL
tps=$(as_pg "$(pg_bin)/pgbench" -n -h 127.0.0.1 -p "$pg_port" -U postgres -c 4 -j 2 -T 10 -M prepared \
  -f "$work/claim.sql" platform 2>/dev/null | awk '/^tps/ {print $3}')
awk -v t="$tps" 'BEGIN { printf "pgbench: %.0f transactions/s = %.0f jobs/s\n", t, t * 50 }'

echo "== ours"
"$target/queue-bench" "$(db_url platform_workers)" "$owner" \
  "smtp://127.0.0.1:$smtp_port" "${1:-200000}" "${2:-1,2,4,8}" "${3:-50}" "${4:-2000}"
