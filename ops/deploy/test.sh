#!/usr/bin/env bash
# Tests ops/deploy/deploy.sh on loopback with real components: PostgreSQL, Redis,
# pebble-challtestsrv as the DNS server holding the upstream name, the router (resolving
# UPSTREAM_PLATFORM=platform.deploy.test:PORT through it) and platform instances from the debug
# build in target/debug (run `cargo build --bins` first; ops/test.sh has built them).
#   0. first deploy: two instances on the blue set (127.0.0.21/.22);
#   a. deploy under load: ops/deploy/load.py (8 keep-alive clients, 15 s, tenant page GETs and
#      donation POSTs the platform answers 4xx) while the green set replaces the blue one;
#      0 failed requests (5xx or connection errors) required, counts printed;
#   b. a build that fails its health gate (its database URL points at a closed port, so /ready
#      never turns 200) is rolled back: exit 1 with one line, the green PIDs still alive and
#      serving, the failed instances stopped; load runs through it too, 0 failed.
# Every process is stopped by PID on exit. Prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# shellcheck source=ops/scripts/pg.sh
. ops/scripts/pg.sh
start_time=$(date +%s)

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'deploy test FAILED: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bin="${CARGO_TARGET_DIR:-$repo/target}/debug"
for b in platform router; do [ -x "$bin/$b" ] || fail "$bin/$b missing: cargo build --bins first"; done
command -v pebble-challtestsrv >/dev/null || fail "pebble-challtestsrv missing (apt: pebble)"

work=$(mktemp -d /tmp/deploy-test.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  local p f
  for f in "$work"/deploy/pids/*.pid; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ -f "$work/redis.pid" ]; then kill "$(cat "$work/redis.pid")" 2>/dev/null || true; fi
  pg_stop "$work/pg"
  if [ "${KEEP_DEPLOY_TEST:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

say "PostgreSQL, Redis and the DNS server on loopback"
pg_port=$(free_port)
pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$pw" >"$work/pw"
pg_init "$work/pg" "$work/pw"
pg_start "$work/pg" "$pg_port" -c fsync=off -c max_connections=100
export PGPASSWORD=$pw PGOPTIONS='-c client_min_messages=warning'
psql_owner() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }
psql_owner -d postgres -c "CREATE DATABASE platform"

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"

dns_port=$(free_port)
dns_api_port=$(free_port)
pebble-challtestsrv -dns01 "127.0.0.1:$dns_port" -management "127.0.0.1:$dns_api_port" \
  -http01 '' -https01 '' -tlsalpn01 '' -defaultIPv4 '' -defaultIPv6 '' >"$work/dns.log" 2>&1 &
pids+=("$!")

say "Schema, login roles, demo tenant"
gen() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
web_pw=$(gen); router_pw=$(gen); edge_secret=$(gen)$(gen)
db_url() { echo "postgresql://$1:$2@127.0.0.1:$pg_port/platform"; }
DATABASE_URL=$(db_url platform_web x) DATABASE_MIGRATION_URL=$(db_url postgres "$pw") REDIS_URL=redis://127.0.0.1:$redis_port/0 EDGE_SIGNING_SECRET=$(gen)$(gen) \
  "$bin/platform" migrate up >/dev/null
psql_owner -d platform -f ops/dev/login-roles.sql
psql_owner -d platform -c "ALTER ROLE platform_web PASSWORD '$web_pw'" \
  -c "ALTER ROLE platform_router PASSWORD '$router_pw'"
psql_owner -d platform -f ops/dev/seed.sql >/dev/null

# The platform's environment file, as an operator keeps it next to the systemd unit.
port=$(free_port)
op_port=$(free_port)
cat >"$work/platform.env" <<ENV
DATABASE_URL=$(db_url platform_web "$web_pw")
DATABASE_MIGRATION_URL=$(db_url postgres "$pw")
REDIS_URL=redis://127.0.0.1:$redis_port/0
EDGE_SIGNING_SECRET=$edge_secret
TENANT_BASE_DOMAIN=platform.localhost
PLATFORM_DRAIN_DELAY_SECS=2
LOG_FORMAT=json
LOG_LEVEL=info
ENV

say "Router resolving platform.deploy.test through the DNS server"
router_port=$(free_port)
metrics_port=$(free_port)
cat >"$work/router.toml" <<TOML
[domain]
base_domain = "platform.localhost"
allow_special_use_domains = true
[listen]
http = "127.0.0.1:$router_port"
metrics = "127.0.0.1:$metrics_port"
[edge]
signing_secret = "$edge_secret"
[database]
url = "$(db_url platform_router "$router_pw")"
[lifecycle]
threads = 2
shutdown_timeout_secs = 5
upgrade_sock = "$work/router-upgrade.sock"
pid_file = "$work/router.pid"
[upstreams]
platform = ["platform.deploy.test:$port"]
workers = ["127.0.0.1:$(free_port)"]
health_interval_ms = 500
dns_server = "127.0.0.1:$dns_port"
dns_min_ttl_secs = 1
dns_max_ttl_secs = 5
[rate_limits]
enabled = false
[log]
format = "json"
TOML
env -i PATH="$PATH" "$bin/router" --config "$work/router.toml" serve >"$work/router.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$metrics_port/health" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "http://127.0.0.1:$metrics_port/health" || fail "router did not start (see $work/router.log)"

export DEPLOY_STATE=$work/deploy DEPLOY_ENV_FILE=$work/platform.env
export DEPLOY_PORT=$port DEPLOY_OPERATOR_PORT=$op_port
export DEPLOY_DNS_NAME=platform.deploy.test. DEPLOY_DNS_API=http://127.0.0.1:$dns_api_port
export DEPLOY_ROUTER_METRICS=http://127.0.0.1:$metrics_port/metrics
export DEPLOY_HEALTH_INTERVAL_SECS=1 DEPLOY_STOP_TIMEOUT=20
host=grace.platform.localhost
load() { python3 ops/deploy/load.py "127.0.0.1:$router_port" "$host" "$@"; }

say "0. First deploy (blue set)"
ops/deploy/deploy.sh "$bin/platform" || fail "first deploy"
read -r -a blue_pids <<<"$(awk '{print $2}' "$DEPLOY_STATE/live" | tr '\n' ' ')"
load 1 2 >/dev/null || fail "the tenant is not served through the router after the first deploy"
status=$(curl -s -o /dev/null -w '%{http_code}' -H "host: $host" -H 'content-type: application/json' \
  -d '{"amount_minor": -1}' "http://127.0.0.1:$router_port/api/donations")
case $status in 4??) ;; *) fail "a bad donation POST gives $status, want a 4xx from the platform" ;; esac

say "a. Deploy under load (green replaces blue)"
load 15 8 >"$work/load-a.json" &
load_pid=$!
sleep 2
t0=$(date +%s)
ops/deploy/deploy.sh "$bin/platform" || fail "deploy under load"
echo "deploy took $(( $(date +%s) - t0 ))s"
load_rc=0; wait "$load_pid" || load_rc=$?
echo "load during the deploy: $(cat "$work/load-a.json")"
[ "$load_rc" -eq 0 ] || fail "requests failed during the deploy"
for p in "${blue_pids[@]}"; do
  ! kill -0 "$p" 2>/dev/null || fail "old instance $p still running"
done
grep -q '^127.0.0.23 ' "$DEPLOY_STATE/live" || fail "live set is not the green one"
read -r -a green_pids <<<"$(awk '{print $2}' "$DEPLOY_STATE/live" | tr '\n' ' ')"
grep -q 'lame duck' "$DEPLOY_STATE/logs/platform-127.0.0.21.log" || fail "old instance did not lame-duck"
# The 4xx answers count as served only because the platform gave them: every POST in the
# router's access log names the instance that answered.
posts=$(grep -c '"method":"POST"' "$work/router.log" || true)
unanswered=$(grep '"method":"POST"' "$work/router.log" | grep -vc '"upstream":"127\.' || true)
echo "router access log: $posts POSTs, $unanswered without an upstream"
{ [ "$posts" -gt 0 ] && [ "$unanswered" -eq 0 ]; } || fail "POSTs answered by the router itself"

say "b. A build that fails its health gate is rolled back"
cat >"$work/bad-platform" <<BAD
#!/bin/sh
# A "build" whose instances never get ready: its database is a closed port.
[ "\$1" = serve ] && export DATABASE_URL=postgresql://platform_web:x@127.0.0.1:1/platform
exec "$bin/platform" "\$@"
BAD
chmod +x "$work/bad-platform"
load 12 4 >"$work/load-b.json" &
load_pid=$!
sleep 1
rc=0
DEPLOY_READY_TIMEOUT=6 ops/deploy/deploy.sh "$work/bad-platform" 2>"$work/bad.err" || rc=$?
load_rc=0; wait "$load_pid" || load_rc=$?
echo "deploy exit $rc: $(tail -n 1 "$work/bad.err")"
echo "load during the failed deploy: $(cat "$work/load-b.json")"
[ "$rc" -ne 0 ] || fail "a deploy whose instances never get ready succeeded"
grep -q '^deploy: rolled back: ' "$work/bad.err" || fail "no rollback line"
[ "$load_rc" -eq 0 ] || fail "requests failed during the rolled-back deploy"
for p in "${green_pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "old instance $p was stopped"; done
for f in "$DEPLOY_STATE"/pids/platform-127.0.0.2[12].pid; do
  ! kill -0 "$(cat "$f")" 2>/dev/null || fail "failed instance $(cat "$f") still running"
done
grep -q '^127.0.0.23 ' "$DEPLOY_STATE/live" || fail "live set changed"
load 2 2 >/dev/null || fail "the old version does not serve after the rollback"

echo
echo "ops/deploy/test.sh: ok in $(( $(date +%s) - start_time ))s"
