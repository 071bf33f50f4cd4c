# shellcheck shell=bash
# Helpers for ops/compose/{up,down,test}.sh; source after ops/docker/lib.sh.

export COMPOSE_PROJECT=${COMPOSE_PROJECT:-donations}
export SECRETS_DIR=${SECRETS_DIR:-$repo/ops/compose/.secrets}
export ROUTER_PORT=${ROUTER_PORT:-8000}
export ROUTER_ADMIN_PORT=${ROUTER_ADMIN_PORT:-9100}
export PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
export STRIPE_JS_PORT=${STRIPE_JS_PORT:-8423}
export STACK_NET=${STACK_NET:-10.213.47}
export TAG=${APP_TAG}
COMPOSE_LOG=${COMPOSE_LOG:-/tmp/compose-$COMPOSE_PROJECT.log}

# podman-compose, one container per service, no pod (the ambassadors join their app's network
# namespace instead). Its chatter goes to $COMPOSE_LOG.
compose() {
  if ! podman-compose --in-pod=false -p "$COMPOSE_PROJECT" -f "$repo/ops/compose/compose.yaml" "$@" \
      >>"$COMPOSE_LOG" 2>&1; then
    tail -n 20 "$COMPOSE_LOG" >&2
    die "podman-compose $* failed (log: $COMPOSE_LOG)"
  fi
}

# The container of a service in this project.
cname() {
  podman ps -a --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}

show_logs() {
  local c
  c=$(cname "$1")
  if [ -n "$c" ]; then podman logs --tail 30 "$c" >&2 || true; fi
}

# Writes the stack's secret files once: passwords, connection URLs that contain them, the edge
# signing key, the cron secret and the (emulated) Stripe keys.
stack_secrets() {
  [ -f "$SECRETS_DIR/stripe_webhook_secret" ] && return 0
  local pg_su pg_web pg_router pg_workers redis_pw
  gen() { head -c 36 /dev/urandom | base64 | tr -d '/+=\n'; }
  mkdir -p "$SECRETS_DIR"
  chmod 0700 "$SECRETS_DIR"
  pg_su=$(gen) pg_web=$(gen) pg_router=$(gen) pg_workers=$(gen) redis_pw=$(gen)
  (
    cd "$SECRETS_DIR" || exit 1
    printf '%s\n' "$pg_su" > pg_superuser_password
    printf '%s\n' "$pg_web" > pg_web_password
    printf '%s\n' "$pg_router" > pg_router_password
    printf '%s\n' "$pg_workers" > pg_workers_password
    printf '%s\n' "$redis_pw" > redis_password
    printf 'postgresql://postgres:%s@postgres:5432/platform\n' "$pg_su" > database_migration_url
    printf 'postgresql://platform_web:%s@postgres:5432/platform\n' "$pg_web" > platform_database_url
    printf 'postgresql://platform_router:%s@postgres:5432/platform\n' "$pg_router" > router_database_url
    printf 'postgresql://platform_workers:%s@postgres:5432/platform\n' "$pg_workers" > workers_database_url
    printf 'redis://:%s@redis:6379/0\n' "$redis_pw" > redis_url
    printf '%s%s\n' "$(gen)" "$(gen)" > edge_signing_secret
    printf '%s%s\n' "$(gen)" "$(gen)" > cron_secret
    printf 'sk_test_local\n' > stripe_secret_key
    printf 'whsec_%s\n' "$(gen)" > stripe_webhook_secret
    # Readable by the containers' users (the folder itself is 0700, root's).
    chmod 0644 ./*
  )
}

# Polls a service's own HEALTHCHECK (podman runs it on request; it never schedules it here).
wait_healthy() {
  local c
  c=$(cname "$1")
  [ -n "$c" ] || die "no container for service $1"
  for _ in $(seq 120); do
    if podman healthcheck run "$c" >/dev/null 2>&1; then
      printf '  %-18s healthy\n' "$1"
      return 0
    fi
    sleep 0.5
  done
  show_logs "$1"
  die "$1 did not become healthy in 60 s"
}

# Starts a one-shot service and requires exit code 0.
run_oneshot() {
  local c code
  compose up -d --no-build --no-deps "$1"
  c=$(cname "$1")
  [ -n "$c" ] || die "no container for service $1"
  code=$(timeout 300 podman wait "$c")
  if [ "$code" != 0 ]; then
    show_logs "$1"
    die "$1 exited with $code"
  fi
  printf '  %-18s exited 0\n' "$1"
}

# An app's readiness: GET http://127.0.0.1:PORT/PATH from inside its network namespace (the
# ambassador container shares it and has Python; the app image has no shell or client), and,
# where the binary has the subcommand, its own HEALTHCHECK.
wait_app() {
  local svc=$1 probe=$2 port=$3 path=$4 c pc
  c=$(cname "$svc")
  pc=$(cname "$probe")
  for _ in $(seq 120); do
    if podman exec "$pc" python -c "import urllib.request, sys
sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port$path', timeout=2).status == 200 else 1)" \
        >/dev/null 2>&1; then
      if podman run --rm --no-healthcheck --entrypoint "/usr/local/bin/${svc%-[0-9]}" \
          "localhost/${svc%-[0-9]}:$APP_TAG" healthcheck --help >/dev/null 2>&1; then
        podman healthcheck run "$c" >/dev/null || die "$svc: $path answers 200 but its HEALTHCHECK fails"
      fi
      printf '  %-18s %s 200\n' "$svc" "$path"
      return 0
    fi
    sleep 0.5
  done
  show_logs "$svc"
  die "$svc did not answer $path with 200 in 60 s"
}

wait_url() {
  for _ in $(seq 120); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then
      printf '  %-18s %s 200\n' "$2" "$1"
      return 0
    fi
    sleep 0.5
  done
  show_logs "$2"
  die "$1 did not answer 200 in 60 s"
}
