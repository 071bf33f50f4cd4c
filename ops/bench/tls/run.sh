#!/usr/bin/env bash
# TLS benchmark (not a test): our router's TLS listener with 10,000 certificates in its store
# against Debian's nginx with the same ECDSA P-256 certificate, in one run: full and resumed
# TLS 1.3 handshakes (rate and server CPU per handshake), keep-alive HTTP/2 through the proxy
# (h2load -c 64), the router's load time and RSS, and resumption on a second instance.
# Options go to bench.py (--seconds, --rounds, --certs). Results: docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../../.."
ops/scripts/install-deps.sh cmake pkg-config postgresql nginx nghttp2-client openssl util-linux python3-cryptography
# SKIP_BUILD=1 measures the release binaries already built (another build may be broken).
[ "${SKIP_BUILD:-}" = 1 ] || cargo build -q --release -p router -p platform
target=${CARGO_TARGET_DIR:-$PWD/target}/release
# shellcheck source=ops/bench/cluster.sh
. ops/bench/cluster.sh
bench_cluster tls-bench
# A copy, so a build finishing during the run cannot swap the binary under it.
cp "$target/router" "$work/router"
python3 ops/bench/tls/bench.py --bin "$work/router" --work "$work" \
  --db "$(db_url platform_router)" --owner "$owner" "$@"
