#!/usr/bin/env bash
# Image test: lints both Dockerfiles, builds the three runtime images from the host's binaries
# (ops/docker/build.sh), then checks what an operator relies on:
#   - metadata: numeric non-root user, STOPSIGNAL SIGTERM, HEALTHCHECK running "<bin> healthcheck",
#     OCI labels source/revision/version (revision = this checkout's HEAD), entrypoint;
#   - each binary runs in the slim image as user 65532 with a read-only root, no capabilities,
#     and reads its secrets from files (NAME_FILE): `check-config` exits 0;
#   - the router serves from a read-only root (its PID file and upgrade socket on a /tmp tmpfs),
#     answers /health on its operator port (published on loopback), refuses /metrics on its
#     public port, and on `podman stop` (SIGTERM) exits 0 well inside the stop timeout;
#   - its HEALTHCHECK (`router healthcheck`, /ready) fails while no platform instance is up, and
#     `router healthcheck --live` (/health) passes.
# Prints the image sizes. Every container it starts is removed by name on exit.
#
#   ops/docker/test.sh [BINARY_DIR]      default target/debug
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/docker/lib.sh
. ops/docker/lib.sh

name=ship-image-test-$$
work=$(mktemp -d)
cleanup() {
  podman rm -f -t 2 "$name-router" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
pass() { printf '  ok  %s\n' "$*"; passed=$((passed + 1)); }
passed=0

say "hadolint (ops/docker/Dockerfile, ops/compose/images/Containerfile)"
ct_install
hadolint ops/docker/Dockerfile ops/compose/images/Containerfile
pass "hadolint clean"

ops/docker/build.sh "${1:-${CARGO_TARGET_DIR:-target}/debug}"

say "Image metadata"
head=$(git rev-parse HEAD 2>/dev/null || echo unknown)
for b in router platform workers; do
  img=localhost/$b:$APP_TAG
  user=$(podman image inspect --format '{{.Config.User}}' "$img")
  [ "$user" = 65532:65532 ] || fail "$img runs as '$user', want 65532:65532"
  sig=$(podman image inspect --format '{{.Config.StopSignal}}' "$img")
  [ "$sig" = SIGTERM ] || fail "$img STOPSIGNAL is '$sig'"
  hc=$(podman image inspect --format '{{.HealthCheck.Test}}' "$img")
  [ "$hc" = "[CMD /usr/local/bin/$b healthcheck]" ] || fail "$img HEALTHCHECK is '$hc'"
  for l in source revision version; do
    v=$(podman image inspect --format "{{index .Labels \"org.opencontainers.image.$l\"}}" "$img")
    case $v in ''|unknown) fail "$img label org.opencontainers.image.$l is '$v'" ;; esac
  done
  rev=$(podman image inspect --format '{{index .Labels "org.opencontainers.image.revision"}}' "$img")
  [ "$rev" = "$head" ] || fail "$img revision label $rev, checkout is $head"
  ep=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$img")
  [ "$ep" = "[\"/usr/local/bin/$b\"]" ] || fail "$img entrypoint $ep"
  # Nothing else executable: no shell, no package manager.
  if podman run --rm --no-healthcheck --entrypoint /bin/sh "$img" -c true >/dev/null 2>&1; then
    fail "$img has a shell"
  fi
  pass "$img: user 65532:65532, SIGTERM, HEALTHCHECK $b healthcheck, labels (revision ${rev:0:12}), no shell"
done

say "Each binary runs read-only, unprivileged, with secrets from files"
secrets=$work/secrets
mkdir -p "$secrets"
printf 'postgresql://platform_web:pw@db.internal:5432/platform\n' > "$secrets/database_url"
printf 'redis://:pw@redis.internal:6379/0\n' > "$secrets/redis_url"
head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$secrets/edge"
head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$secrets/cron"
printf '[[tenant]]\nslug = "grace"\nname = "Grace"\n' > "$secrets/tenants.toml"
chmod 0644 "$secrets"/*
run_locked() {
  podman run --rm --no-healthcheck --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
    -v "$secrets:/run/secrets:ro" "$@"
}
for b in router platform workers; do
  out=$(run_locked "localhost/$b:$APP_TAG" --version)
  [[ "$out" == "$b "* ]] || fail "$b --version printed '$out'"
done
run_locked -e DATABASE_URL_FILE=/run/secrets/database_url -e REDIS_URL_FILE=/run/secrets/redis_url \
  -e EDGE_SIGNING_SECRET_FILE=/run/secrets/edge "localhost/platform:$APP_TAG" check-config >/dev/null \
  || fail "platform check-config with secrets from files"
run_locked -e DATABASE_URL_FILE=/run/secrets/database_url -e CRON_SECRET_FILE=/run/secrets/cron \
  "localhost/workers:$APP_TAG" check-config >/dev/null || fail "workers check-config with secrets from files"
run_locked -e ROUTER_STATIC_TENANTS=/run/secrets/tenants.toml -e EDGE_SIGNING_SECRET_FILE=/run/secrets/edge \
  "localhost/router:$APP_TAG" check-config >/dev/null || fail "router check-config with secrets from files"
set +e
run_locked "localhost/platform:$APP_TAG" check-config >/dev/null 2>&1
code=$?
set -e
[ "$code" -eq 64 ] || fail "platform check-config without configuration exited $code, want 64"
pass "--version and check-config (secrets via NAME_FILE) as 65532 on a read-only root; bad config exits 64"

say "The router serves from a read-only root and stops on SIGTERM"
http=$(free_port)
admin=$(free_port)
podman run -d --name "$name-router" --read-only --tmpfs /tmp --cap-drop ALL \
  --security-opt no-new-privileges -v "$secrets:/run/secrets:ro" \
  -e ROUTER_STATIC_TENANTS=/run/secrets/tenants.toml -e EDGE_SIGNING_SECRET_FILE=/run/secrets/edge \
  -e TENANT_BASE_DOMAIN=platform.localhost \
  -p "127.0.0.1:$http:8000" -p "127.0.0.1:$admin:9100" "localhost/router:$APP_TAG" >/dev/null
ok=""
for _ in $(seq 100); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$admin/health" 2>/dev/null; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || { podman logs "$name-router" | tail -n 20 >&2; fail "router /health did not answer"; }
# No platform instance is up, so the tenant page is the router's own 502/503, not a crash.
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'host: grace.platform.localhost' "http://127.0.0.1:$http/")
case $code in 502|503) ;; *) fail "tenant request without upstreams answered $code" ;; esac
pass "router /health 200 on the operator listener, tenant request without platform answers $code"
# Operator paths never answer on the public port.
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'host: grace.platform.localhost' "http://127.0.0.1:$http/metrics")
[ "$code" = 404 ] || fail "/metrics on the public port answered $code, want 404"
pass "/metrics refused (404) on the public port"
# HEALTHCHECK probes /ready: with no platform instance the router is alive but not ready, so
# the check must fail; `healthcheck --live` (for runtimes that restart) passes.
if podman healthcheck run "$name-router" >/dev/null 2>&1; then
  fail "HEALTHCHECK (router healthcheck) passed with no platform instance: /ready must be 503"
fi
podman exec "$name-router" /usr/local/bin/router healthcheck --live >/dev/null \
  || fail "router healthcheck --live failed on the running container"
pass "HEALTHCHECK fails while not ready (no platform), healthcheck --live passes"

t0=$(date +%s%N)
podman stop -t 20 "$name-router" >/dev/null
elapsed_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
code=$(podman inspect --format '{{.State.ExitCode}}' "$name-router")
[ "$code" -eq 0 ] || fail "router exited $code after SIGTERM"
[ "$elapsed_ms" -lt 10000 ] || fail "router took ${elapsed_ms} ms to stop (SIGKILL at 20 s)"
pass "SIGTERM: router exited 0 in ${elapsed_ms} ms"

say "Image sizes"
for b in router platform workers; do
  printf '  %-24s %6s MB\n' "localhost/$b:$APP_TAG" "$(ct_size_mb "localhost/$b:$APP_TAG")"
done
printf '\nops/docker/test.sh: %d passed, 0 failed\n' "$passed"
