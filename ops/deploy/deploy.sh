#!/usr/bin/env bash
# Zero-downtime deploy of the platform on one host (the systemd/bare-metal path), blue/green on
# addresses behind one DNS name:
#
#   ops/deploy/deploy.sh NEW_PLATFORM_BINARY
#
#   1. `platform migrate up` with the new binary (expand-only migrations: see README.md);
#   2. start the new instances on the address set not in use (DEPLOY_BLUE / DEPLOY_GREEN), same
#      ports, and wait for each one's operator `/ready`;
#   3. publish old + new under the upstream name (DEPLOY_DNS_NAME) and wait until the router's
#      `/metrics` shows them all as members (router_upstream_members{pool="platform"}) and every
#      new instance with router_upstream_healthy{pool="platform",upstream="ADDR:PORT"} 1;
#   4. publish only the new addresses and wait until the router's pool is the new set alone,
#      plus one health interval;
#   5. SIGTERM the old instances (they answer 503 to health checks for PLATFORM_DRAIN_DELAY_SECS,
#      then drain in-flight requests and exit), and verify the new ones are still healthy.
#
# Any failed gate rolls back: the old addresses are published alone again, the new instances are
# stopped by PID, the old ones keep serving, and the script exits 1 with one line on stderr
# ("deploy: rolled back: <reason>"). A first deploy (no old instances) just starts and publishes.
#
# Settings (environment):
#   DEPLOY_STATE        folder for pids, logs and the record of the live set   (required)
#   DEPLOY_ENV_FILE     the platform's environment file (DATABASE_URL, REDIS_URL, secrets, and
#                       DATABASE_MIGRATION_URL for the migration), as systemd's EnvironmentFile
#                                                                               (required)
#   DEPLOY_BLUE, DEPLOY_GREEN  the two address sets, space-separated   (127.0.0.21 127.0.0.22 /
#                       127.0.0.23 127.0.0.24)
#   DEPLOY_PORT, DEPLOY_OPERATOR_PORT  each instance's public and operator ports (8080 / 9180)
#   DEPLOY_DNS_NAME     the name in the router's UPSTREAM_PLATFORM, fully qualified with a dot
#   DEPLOY_DNS_API      management URL of the DNS server holding that name: pebble-challtestsrv's
#                       /add-a and /clear-a (http://127.0.0.1:8055)
#   DEPLOY_DNS_SET      instead of DEPLOY_DNS_API, a command run as `CMD NAME ADDR...` that makes
#                       NAME answer exactly those addresses (for another local DNS server)
#   DEPLOY_ROUTER_METRICS  router operator /metrics URLs, space-separated (every router must agree)
#                                                                  (http://127.0.0.1:9100/metrics)
#   DEPLOY_READY_TIMEOUT, DEPLOY_HEALTHY_TIMEOUT, DEPLOY_LEAVE_TIMEOUT, DEPLOY_STOP_TIMEOUT
#                       seconds for each gate (30, 30, 30, 60)
#   DEPLOY_HEALTH_INTERVAL_SECS  the router's health interval, waited once more after the old
#                       addresses left (1)
set -euo pipefail

die() { echo "deploy: $*" >&2; exit 1; }
log() { printf '%s deploy: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

[ $# -eq 1 ] || die "usage: deploy.sh NEW_PLATFORM_BINARY"
new_bin=$1
[ -x "$new_bin" ] || die "not an executable: $new_bin"
state=${DEPLOY_STATE:?DEPLOY_STATE is required}
env_file=${DEPLOY_ENV_FILE:?DEPLOY_ENV_FILE is required}
[ -r "$env_file" ] || die "cannot read DEPLOY_ENV_FILE $env_file"
blue=${DEPLOY_BLUE:-127.0.0.21 127.0.0.22}
green=${DEPLOY_GREEN:-127.0.0.23 127.0.0.24}
port=${DEPLOY_PORT:-8080}
op_port=${DEPLOY_OPERATOR_PORT:-9180}
name=${DEPLOY_DNS_NAME:?DEPLOY_DNS_NAME is required}
dns_api=${DEPLOY_DNS_API:-http://127.0.0.1:8055}
metrics_urls=${DEPLOY_ROUTER_METRICS:-http://127.0.0.1:9100/metrics}
ready_timeout=${DEPLOY_READY_TIMEOUT:-30}
healthy_timeout=${DEPLOY_HEALTHY_TIMEOUT:-30}
leave_timeout=${DEPLOY_LEAVE_TIMEOUT:-30}
stop_timeout=${DEPLOY_STOP_TIMEOUT:-60}
interval=${DEPLOY_HEALTH_INTERVAL_SECS:-1}
mkdir -p "$state/pids" "$state/logs"
live_file=$state/live

# Serialise deploys on this host.
exec 9>"$state/lock"
flock -n 9 || die "another deploy holds $state/lock"

# The live set: "addr pid" lines, written only by a deploy that completed.
old_addrs=()
old_pids=()
if [ -s "$live_file" ]; then
  while read -r a p; do old_addrs+=("$a"); old_pids+=("$p"); done <"$live_file"
fi
read -r -a blue_set <<<"$blue"
read -r -a green_set <<<"$green"
if [ "${#old_addrs[@]}" -gt 0 ] && [ "${old_addrs[0]}" = "${blue_set[0]}" ]; then
  new_addrs=("${green_set[@]}")
else
  new_addrs=("${blue_set[@]}")
fi
for a in "${new_addrs[@]}"; do
  for o in "${old_addrs[@]}"; do [ "$a" != "$o" ] || die "address $a is in use by the live set"; done
done

# Makes the name answer exactly the given addresses.
dns_set() {
  if [ -n "${DEPLOY_DNS_SET:-}" ]; then
    # shellcheck disable=SC2086 # the command may carry its own arguments
    $DEPLOY_DNS_SET "$name" "$@"
    return
  fi
  curl -fsS -o /dev/null -d "{\"host\":\"$name\"}" "$dns_api/clear-a"
  [ $# -eq 0 ] && return 0
  local list
  list=$(printf '"%s",' "$@")
  curl -fsS -o /dev/null -d "{\"host\":\"$name\",\"addresses\":[${list%,}]}" "$dns_api/add-a"
}

# healthy ADDR: every router reports ADDR:port up in the platform pool.
healthy() {
  local url
  for url in $metrics_urls; do
    curl -fsS --max-time 2 "$url" 2>/dev/null | grep '^router_upstream_healthy{' | grep 'pool="platform"' \
      | grep -q "upstream=\"$1:$port\"} 1\$" || return 1
  done
}

# members N: every router has exactly N instances in its platform pool. (A departed instance's
# router_upstream_healthy series keeps its last value, so that gauge is read only for addresses
# known to be members.)
members() {
  local url n
  for url in $metrics_urls; do
    n=$(curl -fsS --max-time 2 "$url" 2>/dev/null | grep '^router_upstream_members{' \
      | grep 'pool="platform"' | awk '{print $2}')
    [ "$n" = "$1" ] || return 1
  done
}

# stop_pids TIMEOUT PID...: SIGTERM, wait up to TIMEOUT seconds, then SIGKILL what is left.
stop_pids() {
  local limit=$1 p waited=0; shift
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  while [ "$waited" -lt $((limit * 10)) ]; do
    local alive=0
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && return 0
    sleep 0.1; waited=$((waited + 1))
  done
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
  log "killed after ${limit}s: $*"
  return 0
}

new_pids=()
rollback() {
  log "rolling back: $1"
  if [ "${#old_addrs[@]}" -gt 0 ]; then dns_set "${old_addrs[@]}" || true; else dns_set || true; fi
  # The new instances lame-duck first, so a router that already took them in stops using them.
  [ "${#new_pids[@]}" -eq 0 ] || stop_pids "$stop_timeout" "${new_pids[@]}"
  echo "deploy: rolled back: $1" >&2
  exit 1
}

# wait_for SECONDS CMD...: true once CMD succeeds within SECONDS, polling every 200 ms.
wait_for() {
  local end=$((SECONDS + $1)); shift
  while [ "$SECONDS" -lt "$end" ]; do "$@" && return 0; sleep 0.2; done
  return 1
}
ready() { curl -fsS --max-time 2 -o /dev/null "http://$1:$op_port/ready" 2>/dev/null; }

log "old set: ${old_addrs[*]:-(none)}; new set: ${new_addrs[*]} (binary $new_bin)"

# 1. Migrations, expand-only, before any new code runs; old instances keep working on them.
log "migrations"
# shellcheck disable=SC1090 # the operator's environment file
if ! (set -a; . "$env_file"; set +a; "$new_bin" migrate up 9>&-) >>"$state/logs/migrate.log" 2>&1; then
  echo "deploy: failed: migrate up (see $state/logs/migrate.log); nothing was changed" >&2
  exit 1
fi

# 2. New instances beside the old.
for a in "${new_addrs[@]}"; do
  (
    set -a
    # shellcheck disable=SC1090 # the operator's environment file
    . "$env_file"
    set +a
    export PLATFORM_LISTEN="$a:$port" PLATFORM_OPERATOR_LISTEN="$a:$op_port"
    exec "$new_bin" serve 9>&-
  ) >>"$state/logs/platform-$a.log" 2>&1 </dev/null &
  new_pids+=("$!")
  echo "$!" >"$state/pids/platform-$a.pid"
done
log "started ${new_pids[*]}; waiting for /ready"
for i in "${!new_addrs[@]}"; do
  a=${new_addrs[$i]}
  wait_for "$ready_timeout" ready "$a" \
    || rollback "$a never became ready within ${ready_timeout}s (log: $state/logs/platform-$a.log)"
  kill -0 "${new_pids[$i]}" 2>/dev/null || rollback "$a exited after becoming ready"
done

# 3. Take them in beside the old ones.
dns_set "${old_addrs[@]}" "${new_addrs[@]}" || rollback "could not publish the new addresses"
both=$((${#old_addrs[@]} + ${#new_addrs[@]}))
wait_for "$healthy_timeout" members "$both" \
  || rollback "the router's platform pool did not reach $both members within ${healthy_timeout}s"
for a in "${new_addrs[@]}"; do
  wait_for "$healthy_timeout" healthy "$a" \
    || rollback "the router did not report $a:$port healthy within ${healthy_timeout}s"
done
log "router reports the new set healthy"

if [ "${#old_addrs[@]}" -gt 0 ]; then
  # 4. Take the old ones out of the name; the router re-resolves it (TTL clamps) and drops them.
  dns_set "${new_addrs[@]}" || rollback "could not withdraw the old addresses"
  wait_for "$leave_timeout" members "${#new_addrs[@]}" \
    || rollback "the router still lists the old set after ${leave_timeout}s"
  sleep "$interval"
  log "old set out of the router's pool"

  # 5. Stop the old ones: lame duck, then drain.
  stop_pids "$stop_timeout" "${old_pids[@]}"
  log "old instances stopped"
fi

# The old set is gone now: a failure here cannot roll back, only report.
for i in "${!new_addrs[@]}"; do
  a=${new_addrs[$i]}
  if ! { kill -0 "${new_pids[$i]}" 2>/dev/null && ready "$a" && healthy "$a"; }; then
    die "failed: $a failed the final check after the old set was stopped"
  fi
done
for i in "${!new_addrs[@]}"; do echo "${new_addrs[$i]} ${new_pids[$i]}"; done >"$live_file.tmp"
mv "$live_file.tmp" "$live_file"
log "done: live set ${new_addrs[*]}"
