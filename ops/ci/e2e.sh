#!/usr/bin/env bash
# CI: the Stripe emulator's webhook relay (testkit/py/test_stripe_relay.py), then the browser
# tests (e2e/run.sh): a private local stack (ops/dev/up.sh on free ports), Debian
# chromium driven by npm playwright-core through the router on *.localhost, axe-core on every
# page. Screenshots (desktop and mobile) and the axe report stay in target/e2e/ as artefacts.
# Prints its wall time, also on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
took() { echo "ops/ci/e2e.sh: exit $? after $(( $(date +%s) - start ))s (artefacts in target/e2e/)"; }
trap took EXIT
# The Stripe emulator's webhook relay on its own first (the gifts below depend on it).
python3 -m pip install -q --disable-pip-version-check -r ops/requirements-test.txt
python3 -B testkit/py/test_stripe_relay.py
e2e/run.sh
