#!/usr/bin/env bash
# Brings up the whole local system: PostgreSQL and Redis in a local folder, migrations, the demo
# tenant, and the router, platform and workers binaries. Safe to run again (restarts services).
#
# Ports (override with env): router 8000, platform 8080, workers 8090, operator listeners (the
# private /metrics, /ready, /health of each binary) router 9100, platform 9180, workers 9190,
# PostgreSQL 54329,
# Redis 63799, SMTP sink 2525, Stripe emulator 8420 (and 8421 behind it), local DNS 8053 (its
# management API 8055), router HTTPS 8443, Pebble (local ACME CA) 14000 (management 15000). State lives in .dev/ (or $DEV_STATE); stop everything with ops/dev/down.sh.
# DEV_SKIP_BUILD=1 uses the binaries already in target/debug (e2e/run.sh builds them itself).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# shellcheck source=ops/scripts/pg.sh
. ops/scripts/pg.sh

ROUTER_PORT=${ROUTER_PORT:-8000}
PLATFORM_PORT=${PLATFORM_PORT:-8080}
WORKERS_PORT=${WORKERS_PORT:-8090}
ROUTER_METRICS_PORT=${ROUTER_METRICS_PORT:-9100}
PLATFORM_OPERATOR_PORT=${PLATFORM_OPERATOR_PORT:-9180}
WORKERS_OPERATOR_PORT=${WORKERS_OPERATOR_PORT:-9190}
PG_PORT=${PG_PORT:-54329}
REDIS_PORT=${REDIS_PORT:-63799}
SMTP_PORT=${SMTP_PORT:-2525}
STRIPE_PORT=${STRIPE_PORT:-8420}
DNS_PORT=${DNS_PORT:-8053}
DNS_API_PORT=${DNS_API_PORT:-8055}
ROUTER_HTTPS_PORT=${ROUTER_HTTPS_PORT:-8443}
PEBBLE_PORT=${PEBBLE_PORT:-14000}
PEBBLE_MGMT_PORT=${PEBBLE_MGMT_PORT:-15000}
state=${DEV_STATE:-$repo/.dev}
if [ "$(id -u)" -eq 0 ] && ! pg_can_use "$state"; then
  # An explicit DEV_STATE is used as given or not at all (another stack may own the fallback).
  [ -z "${DEV_STATE:-}" ] || { echo "up.sh: postgres cannot use DEV_STATE=$state" >&2; exit 1; }
  # postgres cannot enter this checkout (e.g. under /root); keep the state where it can.
  state=/var/tmp/platform-dev-$(printf '%s' "$repo" | sha1sum | cut -c1-8)
fi
mkdir -p "$state/logs" "$state/pids"
[ "$(id -u)" -eq 0 ] && chmod 755 "$state"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

say "Checking packages (postgresql, redis-server, cmake, pebble, openssl)"
ops/scripts/install-deps.sh cmake pkg-config postgresql postgresql-client redis-server curl pebble openssl

# Secrets for this machine's stack, generated once and kept out of git.
secrets="$state/secrets.env"
if [ ! -f "$secrets" ]; then
  gen() { head -c 24 /dev/urandom | base64 | tr -d '/+='; }
  umask 077
  cat > "$secrets" <<SECRETS
PG_SUPERUSER_PASSWORD=$(gen)
PG_WEB_PASSWORD=$(gen)
PG_ROUTER_PASSWORD=$(gen)
PG_WORKERS_PASSWORD=$(gen)
EDGE_SIGNING_SECRET=$(gen)$(gen)
CRON_SECRET=$(gen)$(gen)
ADMIN_PASSWORD=$(gen)
STAFF_PASSWORD=$(gen)
SECRETS
  umask 022
fi
# The key sealing certificate private keys and ACME account credentials at rest (32 bytes, hex);
# added to secrets made before TLS existed.
if ! grep -q '^CERT_ENCRYPTION_KEY=' "$secrets"; then
  (umask 077; echo "CERT_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >>"$secrets")
fi
# shellcheck disable=SC1090
. "$secrets"

say "Starting PostgreSQL on 127.0.0.1:$PG_PORT"
if [ ! -f "$state/pg/PG_VERSION" ]; then
  printf '%s\n' "$PG_SUPERUSER_PASSWORD" > "$state/pgpass.tmp"
  pg_init "$state/pg" "$state/pgpass.tmp"
  rm -f "$state/pgpass.tmp"
fi
if ! as_pg "$(pg_bin)/pg_ctl" -D "$state/pg" status >/dev/null 2>&1; then
  pg_start "$state/pg" "$PG_PORT"
fi
export PGPASSWORD=$PG_SUPERUSER_PASSWORD
export PGOPTIONS='-c client_min_messages=warning'
psql_owner() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql_owner -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'platform'" | grep -q 1 \
  || psql_owner -d postgres -c "CREATE DATABASE platform"

say "Starting Redis on 127.0.0.1:$REDIS_PORT"
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize yes --pidfile "$state/pids/redis.pid" --logfile "$state/logs/redis.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

if [ "${DEV_SKIP_BUILD:-0}" != 1 ]; then
  say "Building the binaries (first build takes a few minutes)"
  cargo build -q --workspace --bins
fi
bin="${CARGO_TARGET_DIR:-$repo/target}/debug"

db_url() { echo "postgresql://$1:$2@127.0.0.1:$PG_PORT/platform"; }
export TENANT_BASE_DOMAIN=platform.localhost
export LOG_FORMAT=json LOG_LEVEL=info
export EDGE_SIGNING_SECRET CRON_SECRET
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

say "Applying migrations"
DATABASE_URL=$(db_url platform_web x) \
DATABASE_MIGRATION_URL=$(db_url postgres "$PG_SUPERUSER_PASSWORD") \
  "$bin/platform" migrate up
psql_owner -d platform -f ops/dev/login-roles.sql
psql_owner -d platform \
  -c "ALTER ROLE platform_web PASSWORD '$PG_WEB_PASSWORD'" \
  -c "ALTER ROLE platform_router PASSWORD '$PG_ROUTER_PASSWORD'" \
  -c "ALTER ROLE platform_workers PASSWORD '$PG_WORKERS_PASSWORD'"

say "Seeding the demo tenants and accounts"
psql_owner -d platform -f ops/dev/seed.sql
# Older state folders may predate these secrets.
grep -q '^ADMIN_PASSWORD=' "$secrets" || echo "ADMIN_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >> "$secrets"
grep -q '^STAFF_PASSWORD=' "$secrets" || echo "STAFF_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >> "$secrets"
# shellcheck disable=SC1090
. "$secrets"
web_url=$(db_url platform_web "$PG_WEB_PASSWORD")
if ! psql_owner -d platform -tAc "SELECT 1 FROM admin_users WHERE email = 'admin@platform.localhost'" | grep -q 1; then
  DATABASE_URL=$web_url ADMIN_PASSWORD=$ADMIN_PASSWORD \
    "$bin/platform" admin create-user --email admin@platform.localhost --role owner
fi
if ! psql_owner -d platform -tAc "SELECT 1 FROM tenant_users WHERE email = 'pastor@grace.localhost'" | grep -q 1; then
  DATABASE_URL=$web_url STAFF_PASSWORD=$STAFF_PASSWORD \
    "$bin/platform" tenant add-staff --slug grace --email pastor@grace.localhost --role owner
fi

stop_pid() {
  local f="$state/pids/$1.pid" pid
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}
start() {
  local name=$1; shift
  stop_pid "$name"
  nohup "$@" >>"$state/logs/$name.log" 2>&1 &
  echo $! > "$state/pids/$name.pid"
}

say "Starting the local SMTP sink and Stripe emulator (PyPI aiosmtpd, localstripe)"
python3 -m pip install -q --disable-pip-version-check -r ops/requirements-test.txt 2>/dev/null \
  || echo "up.sh: could not install the PyPI tools; mail and donations will not work locally" >&2
mkdir -p "$state/mail/tmp" "$state/mail/new" "$state/mail/cur"
start smtp-sink python3 -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$state/mail"
# Its webhooks go to the platform's Connect endpoint, naming the connected account and signed
# with the platform's webhook secret (see testkit/py/stripe_emulator.py), so a gift made in the
# browser reaches `succeeded` and its receipt on its own.
RELAY_TO_URL=http://127.0.0.1:$PLATFORM_PORT/api/webhooks/stripe/connect \
RELAY_PLATFORM_URL=http://127.0.0.1:$PLATFORM_PORT/api/webhooks/stripe \
RELAY_SECRET=whsec_local_demo_secret \
  start stripe-emulator python3 testkit/py/stripe_emulator.py "$STRIPE_PORT" "$((STRIPE_PORT + 1))"
# The demo tenant takes gifts on a (local, emulated) connected account.
psql_owner -d platform -c "UPDATE tenants SET stripe_account_id = 'acct_gracelocal', stripe_account_status = 'enabled'
  WHERE slug = 'grace' AND stripe_account_id IS NULL" >/dev/null
# The emulator holds its objects in memory only, so customer ids saved by an earlier run name
# nothing now (a second gift from the same donor would fail with Stripe's 404). Forget them.
psql_owner -d platform -c "UPDATE donors SET stripe_customer_id = NULL WHERE stripe_customer_id IS NOT NULL" >/dev/null
export STRIPE_SECRET_KEY=sk_test_local STRIPE_PUBLISHABLE_KEY=pk_test_local
export STRIPE_API_BASE="http://127.0.0.1:$STRIPE_PORT" STRIPE_WEBHOOK_SECRET=whsec_local_demo_secret
# Pages load localstripe's fake Stripe.js from its own port (not through the recording proxy,
# where its calls fail on CORS); the platform allows that origin in its CSP.
export STRIPE_JS_URL="http://127.0.0.1:$((STRIPE_PORT + 1))/js.stripe.com/v3/"
# Links in pages and e-mails: plain HTTP on the router's port.
export PUBLIC_SCHEME=http PUBLIC_PORT=$ROUTER_PORT
export SMTP_URL="smtp://127.0.0.1:$SMTP_PORT"

# A local DNS server (pebble-challtestsrv) that custom-domain verification asks, so a domain
# added in the console can be verified here: publish its TXT record through the server's
# management API (the command is printed below). Its other listeners are off.
# Every other name resolves to 127.0.0.1 (no AAAA), which is how Pebble reaches the router
# for the demo custom domain's HTTP-01 challenge.
start dns pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -management "127.0.0.1:$DNS_API_PORT" \
  -http01 '' -https01 '' -tlsalpn01 '' -defaultIPv4 127.0.0.1 -defaultIPv6 ''

# Pebble, a local ACME CA, so the demo custom domain gets a real ACME certificate on the router's
# TLS listener. Its own HTTPS certificate is made here once with openssl; the root it *issues*
# under is new on every start, so it is fetched again below into $state/pebble-root.pem.
# PEBBLE_VA_NOSLEEP: no random validation delay; PEBBLE_WFE_NONCEREJECT=0: it would otherwise
# refuse 5 % of nonces. httpPort is the router's plain-HTTP port (HTTP-01 is answered there).
say "Starting Pebble (local ACME CA)"
pebble_dir="$state/pebble"
mkdir -p "$pebble_dir"
if [ ! -f "$pebble_dir/cert.pem" ]; then
  (cd "$pebble_dir" && umask 077 &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
      -days 3650 -subj "/CN=local Pebble server CA" 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out server.csr \
      -subj /CN=localhost 2>/dev/null &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem \
      -days 3650 -extfile ext.cnf 2>/dev/null)
fi
cat >"$pebble_dir/pebble.json" <<PEBBLE
{"pebble": {
  "listenAddress": "127.0.0.1:$PEBBLE_PORT",
  "managementListenAddress": "127.0.0.1:$PEBBLE_MGMT_PORT",
  "certificate": "$pebble_dir/cert.pem",
  "privateKey": "$pebble_dir/key.pem",
  "httpPort": $ROUTER_PORT,
  "tlsPort": 5001,
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false
}}
PEBBLE
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
  start pebble pebble -config "$pebble_dir/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT"
pebble_root="$state/pebble-root.pem"
for _ in $(seq 100); do
  curl -fsS --cacert "$pebble_dir/ca.pem" -o "$pebble_root.new" \
    "https://127.0.0.1:$PEBBLE_MGMT_PORT/roots/0" 2>/dev/null && break
  sleep 0.1
done
[ -s "$pebble_root.new" ] || { echo "up.sh: Pebble did not start; see $state/logs/pebble.log" >&2; exit 1; }
mv "$pebble_root.new" "$pebble_root"
export DNS_RESOLVER=127.0.0.1:$DNS_PORT ALLOW_SPECIAL_USE_DOMAINS=true

say "Starting platform, workers and router"
DATABASE_URL=$(db_url platform_web "$PG_WEB_PASSWORD") PLATFORM_LISTEN=127.0.0.1:$PLATFORM_PORT \
  PLATFORM_OPERATOR_LISTEN=127.0.0.1:$PLATFORM_OPERATOR_PORT \
  start platform "$bin/platform" serve
DATABASE_URL=$(db_url platform_workers "$PG_WORKERS_PASSWORD") WORKERS_LISTEN=127.0.0.1:$WORKERS_PORT \
  WORKERS_OPERATOR_LISTEN=127.0.0.1:$WORKERS_OPERATOR_PORT \
  start workers "$bin/workers" run
DATABASE_URL=$(db_url platform_router "$PG_ROUTER_PASSWORD") ROUTER_HTTP_LISTEN=127.0.0.1:$ROUTER_PORT \
  UPSTREAM_PLATFORM=127.0.0.1:$PLATFORM_PORT UPSTREAM_WORKERS=127.0.0.1:$WORKERS_PORT \
  ROUTER_OPERATOR_LISTEN=127.0.0.1:$ROUTER_METRICS_PORT \
  ROUTER_HTTPS_LISTEN=127.0.0.1:$ROUTER_HTTPS_PORT CERT_ENCRYPTION_KEY=$CERT_ENCRYPTION_KEY \
  ACME_ENABLED=true ACME_DIRECTORY_URL="https://127.0.0.1:$PEBBLE_PORT/dir" \
  ACME_CA_ROOT_FILE="$pebble_dir/ca.pem" ACME_TRUSTED_ROOTS_FILE="$pebble_root" \
  ROUTER_PID_FILE="$state/pids/router-pingora.pid" ROUTER_UPGRADE_SOCK="$state/router-upgrade.sock" \
  start router "$bin/router" serve

wait_for() {
  local url=$1
  for _ in $(seq 100); do curl -fsS -o /dev/null "$url" 2>/dev/null && return 0; sleep 0.1; done
  echo "up.sh: $url did not answer; see $state/logs" >&2; return 1
}
wait_for "http://127.0.0.1:$PLATFORM_OPERATOR_PORT/ready"
wait_for "http://127.0.0.1:$WORKERS_OPERATOR_PORT/ready"
wait_for "http://127.0.0.1:$ROUTER_METRICS_PORT/ready"

# The demo custom domain's certificate: ordered from Pebble once the router's listeners are up
# (usually within seconds). Wait for it, bounded, so the HTTPS line below works when printed.
say "Waiting for the demo domain's certificate from Pebble (at most 30 s)"
https_demo="https://grace-church.localhost:$ROUTER_HTTPS_PORT/"
https_status="NOT served yet: the router is still ordering it (see $state/logs/router.log); retry the curl below in a minute"
https_deadline=$((SECONDS + 30))
while :; do
  if curl -sS -o /dev/null --max-time 2 --cacert "$pebble_root" \
      --resolve "grace-church.localhost:$ROUTER_HTTPS_PORT:127.0.0.1" "$https_demo" 2>/dev/null; then
    https_status="served, verified against Pebble's current root"
    break
  fi
  if [ "$SECONDS" -ge "$https_deadline" ]; then
    echo "up.sh: $https_demo has no certificate from Pebble's current root after 30 s; see $state/logs/router.log" >&2
    break
  fi
  sleep 0.5
done

cat <<DONE

The local system is up.

  Demo tenant (subdomain)    http://grace.platform.localhost:$ROUTER_PORT/
  Demo tenant (custom domain) http://grace-church.localhost:$ROUTER_PORT/
  The same over HTTPS         curl --cacert $pebble_root https://grace-church.localhost:$ROUTER_HTTPS_PORT/
                               Certificate: $https_status
                               (certificate from the local Pebble CA, ordered by the router within seconds;
                               Pebble's root is new on every start and fetched again into $pebble_root)
  Admin host                 http://admin.platform.localhost:$ROUTER_PORT/
  Unknown host (redirects)   http://nobody.platform.localhost:$ROUTER_PORT/
  Admin login                curl -i -H 'content-type: application/json' \\
                               -d '{"email":"admin@platform.localhost","password":"'"\$(grep ^ADMIN_PASSWORD $secrets | cut -d= -f2)"'"}' \\
                               http://admin.platform.localhost:$ROUTER_PORT/api/admin/login
  Staff login (grace)        same with pastor@grace.localhost and STAFF_PASSWORD at
                               http://grace.platform.localhost:$ROUTER_PORT/api/staff/login

  Operator listeners (private: /health, /ready, /metrics; never through the router)
    platform                 http://127.0.0.1:$PLATFORM_OPERATOR_PORT/health  (/ready, /metrics)
    workers                  http://127.0.0.1:$WORKERS_OPERATOR_PORT/health  (/ready, /metrics)
    router                   http://127.0.0.1:$ROUTER_METRICS_PORT/health  (/ready, /metrics)
  Public status (any host)   http://grace.platform.localhost:$ROUTER_PORT/api/health
  PostgreSQL                 PGPASSWORD=\$(grep SUPERUSER $secrets | cut -d= -f2) psql -h 127.0.0.1 -p $PG_PORT -U postgres platform
  Redis                      redis-cli -p $REDIS_PORT
  Give (one-time, 25.00 USD) curl -H 'content-type: application/json' \\
                               -d '{"amount_minor":2500,"currency":"usd","donor_name":"Ann","donor_email":"ann@example.org"}' \\
                               http://grace.platform.localhost:$ROUTER_PORT/api/donations
  Run the mail job now       curl -X POST -H "authorization: Bearer \$(grep ^CRON_SECRET $secrets | cut -d= -f2)" \\
                               http://127.0.0.1:$WORKERS_PORT/api/cron/process-emails
  Verify a custom domain     add it in the console to grace (e.g. give.grace.localhost), then publish its TXT record here:
                               curl -d '{"host":"_platform-verify.give.grace.localhost.","value":"<token from the console>"}' \\
                               http://127.0.0.1:$DNS_API_PORT/set-txt      and press "Verify now"
  Mail received locally      $state/mail/new/   (Stripe emulator: http://127.0.0.1:$STRIPE_PORT, webhook secret whsec_local_demo_secret)
  Stripe webhooks relayed    http://127.0.0.1:$STRIPE_PORT/_relay/log   (to the platform's /api/webhooks/stripe/connect)
  Logs                       $state/logs/
  Stop everything            ops/dev/down.sh

DONE
