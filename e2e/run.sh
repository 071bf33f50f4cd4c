#!/usr/bin/env bash
# Browser tests: starts a private local stack (ops/dev/up.sh with its own state folder and free
# ports), drives Debian's chromium through the router on *.localhost with playwright-core, runs
# axe-core on every page, saves screenshots to target/e2e/screenshots/, and stops everything it
# started (ops/dev/down.sh --purge on that folder), also on failure or Ctrl-C.
#
# Usage: e2e/run.sh [scenario-name-substring ...]
# Env: E2E_SKIP_BUILD=1 uses the binaries already in target/debug; E2E_KEEP=1 leaves the stack
# running afterwards (prints how to stop it); E2E_HEADED=1 shows the browser (needs a display).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=$repo/target/e2e
t0=$(date +%s)
say() { printf '\033[1m[e2e t+%ss] %s\033[0m\n' "$(( $(date +%s) - t0 ))" "$*"; }

say "Packages (chromium) and npm modules"
ops/scripts/install-deps.sh chromium curl
command -v node >/dev/null || { echo "e2e: node (>= 20) is needed" >&2; exit 1; }
if [ ! -d e2e/node_modules/playwright-core ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${E2E_SKIP_BUILD:-0}" != 1 ]; then
  say "Building router, platform, workers"
  cargo build -q -p router -p platform -p workers
fi

# Free ports: one each, and a pair for the Stripe emulator (proxy, localstripe behind it).
read -r ROUTER_PORT PLATFORM_PORT WORKERS_PORT ROUTER_METRICS_PORT PLATFORM_OPERATOR_PORT WORKERS_OPERATOR_PORT PG_PORT REDIS_PORT SMTP_PORT DNS_PORT DNS_API_PORT ROUTER_HTTPS_PORT PEBBLE_PORT PEBBLE_MGMT_PORT STRIPE_PORT < <(
  python3 - <<'PY'
import random, socket
def takes(*ports):
    socks = []
    try:
        for p in ports:
            s = socket.socket(); socks.append(s); s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks: s.close()
ports = []
while len(ports) < 14:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p not in ports: ports.append(p)
while True:  # the emulator takes two neighbouring ports
    p = random.randrange(20000, 30000)
    if p not in ports and p + 1 not in ports and takes(p, p + 1): ports.append(p); break
print(*ports)
PY
)
export ROUTER_PORT PLATFORM_PORT WORKERS_PORT ROUTER_METRICS_PORT PLATFORM_OPERATOR_PORT WORKERS_OPERATOR_PORT PG_PORT REDIS_PORT SMTP_PORT DNS_PORT DNS_API_PORT ROUTER_HTTPS_PORT PEBBLE_PORT PEBBLE_MGMT_PORT STRIPE_PORT

# A state folder of its own that postgres can enter (when root, it runs as postgres).
state=$(mktemp -d /var/tmp/platform-e2e.XXXXXX)
chmod 755 "$state"
mkdir -p "$state/pids" "$state/logs"
export DEV_STATE=$state DEV_SKIP_BUILD=1
stop() {
  local rc=$?
  mkdir -p "$out"
  rm -rf "$out/logs"; cp -r "$state/logs" "$out/logs" 2>/dev/null || true
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    say "Stack left running: DEV_STATE=$state ops/dev/down.sh --purge   (router on :$ROUTER_PORT)"
  else
    ops/dev/down.sh --purge >/dev/null 2>&1 || echo "e2e: down.sh failed; state in $state" >&2
    rm -f "$out/stack.env"
  fi
  say "Finished (exit $rc); logs in $out/logs, screenshots in $out/screenshots"
  exit "$rc"
}
trap stop EXIT
trap 'exit 130' INT TERM

say "Starting the local stack (router :$ROUTER_PORT, state $state)"
if ! ops/dev/up.sh >"$state/logs/up.log" 2>&1; then
  tail -n 30 "$state/logs/up.log" >&2
  echo "e2e: ops/dev/up.sh failed (full log in $out/logs/up.log)" >&2
  exit 1
fi

# shellcheck disable=SC1091
. "$state/secrets.env"
rm -rf "$out/screenshots"
mkdir -p "$out/screenshots"
# What the scenarios need; with E2E_KEEP=1 the same file lets you rerun them against the kept
# stack: (set -a; . target/e2e/stack.env; node e2e/scenarios.mjs [name ...])
cat > "$out/stack.env" <<ENV
E2E_ROUTER_PORT=$ROUTER_PORT
E2E_WORKERS_PORT=$WORKERS_PORT
E2E_STRIPE_PORT=$STRIPE_PORT
E2E_PG_PORT=$PG_PORT
E2E_PG_PASSWORD=$PG_SUPERUSER_PASSWORD
E2E_CRON_SECRET=$CRON_SECRET
E2E_ADMIN_EMAIL=admin@platform.localhost
E2E_ADMIN_PASSWORD=$ADMIN_PASSWORD
E2E_STAFF_EMAIL=pastor@grace.localhost
E2E_STAFF_PASSWORD=$STAFF_PASSWORD
E2E_MAIL_DIR=$state/mail/new
E2E_OUT=$out
ENV
chmod 600 "$out/stack.env"
say "Running the browser scenarios"
# shellcheck disable=SC1091
(set -a; . "$out/stack.env"; node e2e/scenarios.mjs "$@")
# After the scenarios' traffic every metric family has samples: each binary's /metrics must
# pass promtool's lint (HELP text, names, types), as a Prometheus scrape would.
if command -v promtool >/dev/null; then
  for port in "$ROUTER_METRICS_PORT" "$PLATFORM_OPERATOR_PORT" "$WORKERS_OPERATOR_PORT"; do
    curl -fsS "http://127.0.0.1:$port/metrics" | promtool check metrics
  done
  say "promtool check metrics: router, platform and workers pass"
else
  say "promtool not installed (Debian package prometheus): metrics lint skipped"
fi
