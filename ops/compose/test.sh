#!/usr/bin/env bash
# Compose stack test: brings the stack up with ops/compose/up.sh under its own project name,
# network range, ports and secrets (the migration one-shot must exit 0 before anything else
# starts; every service is polled until healthy/ready, since podman-compose enforces neither),
# then, through the router on loopback:
#   1. a one-time gift on the demo tenant (201, a PaymentIntent on the emulated connected account);
#   2. the emulator's webhook relay delivers the Stripe events the gift caused (customer.created)
#      through the router, naming the connected account and signed with the stack's webhook
#      secret, and the platform accepts them; localstripe cannot confirm a PaymentIntent created
#      for the browser, so the test sends Stripe's payment_intent.succeeded for it itself, signed
#      the same way -> applied, gift succeeded (a forged signature -> 400);
#   3. the seeds' cron call POST /api/cron/process-emails with the cron secret -> the workers send
#      the receipt, and it is in the mail catcher's Maildir;
# and checks that no secret value is in any container's environment, that Prometheus scrapes all
# four app targets, and that the whole stack is torn down (containers, network, volumes).
#
#   ops/compose/test.sh [BINARY_DIR]     default target/debug; SKIP_BUILD=1 reuses the images
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/docker/lib.sh
. ops/docker/lib.sh

export COMPOSE_PROJECT=shiptest$$
work=$(mktemp -d)
export SECRETS_DIR=$work/secrets
export COMPOSE_LOG=$work/compose.log
ROUTER_PORT=$(free_port)
ROUTER_ADMIN_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
STRIPE_JS_PORT=$(free_port)
export ROUTER_PORT ROUTER_ADMIN_PORT PROMETHEUS_PORT STRIPE_JS_PORT
export STACK_NET=${TEST_STACK_NET:-10.213.48}
# shellcheck source=ops/compose/lib.sh
. ops/compose/lib.sh

passed=0
pass() { printf '  ok  %s\n' "$*"; passed=$((passed + 1)); }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
teardown() {
  local code=$?
  if [ "$code" -ne 0 ]; then
    echo "--- compose log (last 30 lines): $COMPOSE_LOG" >&2
    tail -n 30 "$COMPOSE_LOG" >&2 || true
  fi
  podman-compose --in-pod=false -p "$COMPOSE_PROJECT" -f ops/compose/compose.yaml down -v -t 10 \
    >>"$COMPOSE_LOG" 2>&1 || true
  # Anything podman-compose left behind, by this project's label and names only.
  podman ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" | xargs -r podman rm -f >/dev/null 2>&1 || true
  podman volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
  podman network rm -f "${COMPOSE_PROJECT}_stack" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$code"
}
trap teardown EXIT

t0=$(date +%s)
ops/compose/up.sh "$@"
pass "stack up in $(( $(date +%s) - t0 )) s: migrate and db-setup exited 0, every service healthy/ready"

router=http://127.0.0.1:$ROUTER_PORT
tenant=grace.platform.localhost
apex=platform.localhost

say "Operator paths stay private; /api/health is status-only"
for host in "$tenant" "$apex" "admin.$apex"; do
  for path in /metrics /ready /health; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "host: $host" "$router$path")
    [ "$code" = 404 ] || fail "$host$path through the router answered $code, want 404"
  done
  body=$(curl -fsS -H "host: $host" "$router/api/health") || fail "$host/api/health failed"
  [ "$body" = '{"status":"ok"}' ] || fail "$host/api/health is not status-only: $body"
done
pass "/metrics, /ready, /health refused (404) on tenant, apex and admin hosts; /api/health {\"status\":\"ok\"}"

say "A gift through the router"
resp=$(curl -sS -w '\n%{http_code}' -H "host: $tenant" -H 'content-type: application/json' \
  -d '{"amount_minor":2500,"currency":"usd","donor_name":"Ann Giver","donor_email":"ann@example.org"}' \
  "$router/api/donations")
code=${resp##*$'\n'}
body=${resp%$'\n'*}
[ "$code" = 201 ] || fail "POST /api/donations answered $code: $body"
donation=$(printf '%s' "$body" | python3 -c 'import json, sys; print(json.load(sys.stdin)["donation_id"])')
intent=$(printf '%s' "$body" | python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"].split("_secret_")[0])')
account=$(printf '%s' "$body" | python3 -c 'import json, sys; print(json.load(sys.stdin)["stripe_account"])')
[[ "$intent" == pi_* ]] || fail "no PaymentIntent in $body"
pass "gift $donation started: $intent on $account (201)"

say "The emulator's webhook relay: Stripe events through the router, verified by the platform"
relayed=""
for _ in $(seq 40); do
  relayed=$(podman exec "$(cname stripe)" python -c "
import json, urllib.request
log = json.load(urllib.request.urlopen('http://127.0.0.1:8421/_relay/log', timeout=2))
print(' '.join(e['type'] for e in log if e.get('account') == '$account' and e.get('status') == 200))" 2>/dev/null || true)
  [ -n "$relayed" ] && break
  sleep 0.25
done
[ -n "$relayed" ] || fail "no event for $account relayed through the router with 200"
pass "relayed through the router and accepted (signature verified): $relayed"

say "Stripe's payment_intent.succeeded, signed with the webhook secret"
event=$(python3 - "$donation" "$intent" "$account" <<'PY'
import json, sys, time, uuid
donation, intent, account = sys.argv[1:4]
print(json.dumps({
    "id": "evt_" + uuid.uuid4().hex, "object": "event", "type": "payment_intent.succeeded",
    "created": int(time.time()), "livemode": False, "account": account,
    "data": {"object": {"id": intent, "object": "payment_intent", "amount": 2500,
                        "amount_received": 2500, "currency": "usd",
                        "latest_charge": "ch_" + intent[3:],
                        "metadata": {"donation_id": donation}}},
}, separators=(",", ":")))
PY
)
signature=$(printf '%s' "$event" | python3 -c '
import hashlib, hmac, sys, time
secret = open(sys.argv[1]).read().strip().encode()
payload = sys.stdin.buffer.read()
t = int(time.time())
mac = hmac.new(secret, str(t).encode() + b"." + payload, hashlib.sha256).hexdigest()
print(f"t={t},v1={mac}")' "$SECRETS_DIR/stripe_webhook_secret")
resp=$(curl -sS -w '\n%{http_code}' -H "host: $apex" -H 'content-type: application/json' \
  -H "stripe-signature: $signature" --data-binary "$event" "$router/api/webhooks/stripe/connect")
code=${resp##*$'\n'}
body=${resp%$'\n'*}
[ "$code" = 200 ] || fail "webhook answered $code: $body"
[[ "$body" == *'"applied"'* ]] || fail "webhook not applied: $body"
pass "webhook applied (200 $body)"
# The same body with a wrong signature changes nothing.
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "host: $apex" -H 'content-type: application/json' \
  -H "stripe-signature: t=$(date +%s),v1=$(printf '0%.0s' $(seq 64))" --data-binary "$event" \
  "$router/api/webhooks/stripe/connect")
[ "$code" = 400 ] || fail "forged webhook answered $code, want 400"
pass "forged signature refused (400)"
status=$(podman exec "$(cname postgres)" psql -X -qtA -U postgres -d platform \
  -c "SELECT status FROM donations WHERE id = '$donation'")
[ "$status" = succeeded ] || fail "donation status is '$status'"
pass "donation $donation is succeeded"

say "The receipt: workers' process-emails through the router, then the mail catcher"
cron=$(cat "$SECRETS_DIR/cron_secret")
resp=$(curl -sS -w '\n%{http_code}' -X POST -H "host: $apex" -H "authorization: Bearer $cron" \
  "$router/api/cron/process-emails")
code=${resp##*$'\n'}
body=${resp%$'\n'*}
[ "$code" = 200 ] || fail "POST /api/cron/process-emails answered $code: $body"
pass "process-emails ran (200 $body)"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "host: $apex" -H 'authorization: Bearer wrong' \
  "$router/api/cron/process-emails")
[ "$code" = 401 ] || fail "cron call with a wrong secret answered $code, want 401"
mail=""
for _ in $(seq 40); do
  mail=$(podman exec "$(cname mail)" sh -c 'cat /mail/new/* 2>/dev/null' || true)
  [ -n "$mail" ] && break
  sleep 0.25
done
if [ -z "$mail" ]; then
  podman exec "$(cname postgres)" psql -X -qtA -U postgres -d platform \
    -c "SELECT status, attempts, last_error FROM email_outbox" >&2 || true
  show_logs workers
  fail "no message in the mail catcher"
fi
grep -qi '^To:.*ann@example.org' <<<"$mail" || fail "the message is not to ann@example.org: $(head -c 600 <<<"$mail")"
grep -q '25\.00' <<<"$mail" || fail "the receipt does not show 25.00: $(head -c 1200 <<<"$mail")"
pass "receipt to ann@example.org (25.00) in the mail catcher: $(grep -m1 -i '^Subject:' <<<"$mail")"

say "Secrets only as files"
leaks=0
for f in "$SECRETS_DIR"/*; do
  v=$(cat "$f")
  [ "${#v}" -ge 16 ] || continue
  for s in migrate db-setup platform-1 platform-2 workers router stripe; do
    if podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$(cname "$s")" | grep -qF -- "$v"; then
      echo "  secret $(basename "$f") is in $s's environment" >&2
      leaks=$((leaks + 1))
    fi
  done
done
[ "$leaks" -eq 0 ] || fail "$leaks secret values found in container environments"
pass "no secret value in any app container's environment (NAME_FILE everywhere)"

say "Prometheus scrapes router, both platform instances and workers"
up=""
for _ in $(seq 60); do
  up=$(curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets" 2>/dev/null | python3 -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
print(sum(1 for x in t if x["health"] == "up"))' 2>/dev/null || echo 0)
  [ "$up" = 4 ] && break
  sleep 0.5
done
[ "$up" = 4 ] || fail "Prometheus has $up of 4 targets up"
pass "4 of 4 Prometheus targets up"

say "Teardown"
podman-compose --in-pod=false -p "$COMPOSE_PROJECT" -f ops/compose/compose.yaml down -v -t 40 >>"$COMPOSE_LOG" 2>&1
left=$(podman ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" | wc -l)
vols=$(podman volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" | wc -l)
[ "$((left + vols))" -eq 0 ] || fail "after down: $left containers, $vols volumes left"
pass "down -v: no container or volume left"

printf '\nops/compose/test.sh: %d passed, 0 failed (%s s)\n' "$passed" "$(( $(date +%s) - t0 ))"
