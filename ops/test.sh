#!/usr/bin/env bash
# Runs every test: unit and property tests, integration tests against real PostgreSQL and Redis
# (started by testkit on free loopback ports), and the migration up/down/up round trip through
# the real `platform migrate` command; the Stripe emulator and SMTP sink come from PyPI.
# Installs missing packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
ops/scripts/install-deps.sh cmake pkg-config postgresql redis-server curl pebble openssl testssl.sh nginx bind9 bind9-dnsutils
# Stripe emulator (localstripe) and SMTP sink (aiosmtpd), started by testkit on loopback.
python3 -m pip install -q --disable-pip-version-check -r ops/requirements-test.txt
cargo test --workspace --no-fail-fast
ops/scripts/migration-roundtrip.sh
