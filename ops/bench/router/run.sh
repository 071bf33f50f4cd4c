#!/usr/bin/env bash
# Router benchmark (not a test): builds release binaries, then runs bench.py, which prints
# req/s, p50, p99, CPU per request and peak RSS for the upstream direct, a bare Pingora proxy,
# our router and nginx, side by side, then the tenant-resolution figures with 100,000 tenants.
# Options are passed to bench.py (--seconds, --rounds, --connections, --tenants, --instructions:
# instructions per request under callgrind instead of the wall-clock rounds, including a run
# behind a trusted proxy (loopback trusted, X-Forwarded-For on every request: the production
# shape); --alt-router BINARY: the same runs of another build, for before/after; --no-limits skips
# the rate-limit runs: one zone checked locally and through Redis, against nginx with limit_req).
set -euo pipefail
cd "$(dirname "$0")/../../.."
ops/scripts/install-deps.sh cmake pkg-config nginx wrk util-linux valgrind redis-server
cargo build -q --release -p router -p bench-tools
target=${CARGO_TARGET_DIR:-$PWD/target}
python3 ops/bench/router/bench.py --target-dir "$target" "$@"
echo
echo "== tenant resolution with 100,000 tenants (release build)"
"$target/release/resolve-bench" 100000 1000000
