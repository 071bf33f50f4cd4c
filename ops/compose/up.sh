#!/usr/bin/env bash
# Builds the images locally and starts the compose stack (ops/compose/compose.yaml) in order:
# PostgreSQL, Redis, the mail catcher and the Stripe emulator until healthy; the migration
# one-shot, which must exit 0; the login-role/demo-seed one-shot, which must exit 0; two
# platform instances and the workers until ready; then the router and Prometheus.
# podman-compose (with podman < 4.6) neither waits for health nor checks a one-shot's exit code,
# so this script does both itself, service by service; docker compose would also honour the
# depends_on conditions written in the file.
#
#   ops/compose/up.sh [BINARY_DIR]     binaries built on the host, default target/debug
#
# Environment: COMPOSE_PROJECT (donations), SECRETS_DIR (ops/compose/.secrets), ROUTER_PORT
# (8000), ROUTER_ADMIN_PORT (9100), PROMETHEUS_PORT (9090), STRIPE_JS_PORT (8423, the
# emulator's Stripe.js for browsers), STACK_NET (10.213.47),
# SKIP_BUILD=1 to reuse the images already built. Safe to run again: a running stack is
# stopped first (volumes and secrets kept). Stop with ops/compose/down.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/docker/lib.sh
. ops/docker/lib.sh
# shellcheck source=ops/compose/lib.sh
. ops/compose/lib.sh

ct_install
if ! reason=$(ct_usable); then
  die "podman cannot run containers on this host: $reason"
fi
ct_base_image
if [ -z "${SKIP_BUILD:-}" ]; then
  say "Building the images (binaries from ${1:-target/debug})"
  ct_stage_binaries "${1:-${CARGO_TARGET_DIR:-target}/debug}" "$repo/target/ship-stage"
  ct_build_apps "$repo/target/ship-stage"
  ct_build_peers
fi

stack_secrets
if [ -n "$(podman ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT")" ]; then
  say "Stopping the running stack first (volumes and secrets are kept)"
  compose down -t 40
fi
say "Starting PostgreSQL, Redis, the mail catcher and the Stripe emulator (project $COMPOSE_PROJECT)"
compose up -d --no-build --no-deps postgres redis mail stripe
for s in postgres redis mail stripe; do
  wait_healthy "$s"
done

say "Migrations (one-shot: platform migrate up)"
run_oneshot migrate
say "Login roles and demo data (one-shot)"
run_oneshot db-setup

say "Starting two platform instances and the workers"
compose up -d --no-build --no-deps platform-1 platform-2 workers
compose up -d --no-build --no-deps platform-1-stripe platform-2-stripe workers-stripe
wait_app platform-1 platform-1-stripe 9180 /ready
wait_app platform-2 platform-2-stripe 9180 /ready
wait_app workers workers-stripe 9190 /ready

say "Starting the router and Prometheus"
compose up -d --no-build --no-deps router prometheus
wait_url "http://127.0.0.1:$ROUTER_ADMIN_PORT/ready" router

cat <<DONE

The compose stack is up (project $COMPOSE_PROJECT; secrets in $SECRETS_DIR).

  Demo tenant         curl -H 'host: grace.platform.localhost' http://127.0.0.1:$ROUTER_PORT/
  Give                curl -H 'host: grace.platform.localhost' -H 'content-type: application/json' \\
                        -d '{"amount_minor":2500,"currency":"usd","donor_name":"Ann","donor_email":"ann@example.org"}' \\
                        http://127.0.0.1:$ROUTER_PORT/api/donations
  Router ready        http://127.0.0.1:$ROUTER_ADMIN_PORT/ready   (operator listener: /health, /metrics)
  Prometheus          http://127.0.0.1:$PROMETHEUS_PORT/
  Stripe webhooks     podman exec $(cname stripe) python -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8421/_relay/log').read().decode())"
  Mail received       podman exec $(cname mail) ls /mail/new
  Logs                podman logs $(cname platform-1)   (or any service)
  Stop                ops/compose/down.sh   (--purge deletes the volumes and secrets)

DONE
