#!/usr/bin/env bash
# Builds the three runtime images from binaries built on the host, with buildah, on the locally
# bootstrapped Debian base (no registry is reachable here): localhost/{router,platform,workers}:dev.
#
#   ops/docker/build.sh [BINARY_DIR]     default target/debug (ops/test.sh builds it); the
#                                        binaries are copied to target/ship-stage first.
#
# The published build compiles inside the Dockerfile instead (see its header).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/docker/lib.sh
. ops/docker/lib.sh

from=${1:-${CARGO_TARGET_DIR:-target}/debug}
stage=$repo/target/ship-stage
ct_install
ct_base_image
say "Staging binaries from $from"
ct_stage_binaries "$from" "$stage"
say "Building localhost/{router,platform,workers}:$APP_TAG"
ct_build_apps "$stage"
for t in router platform workers; do
  printf '  %-24s %6s MB  (binary %s MB)\n' "localhost/$t:$APP_TAG" "$(ct_size_mb "localhost/$t:$APP_TAG")" \
    "$(stat -c %s "$stage/$t" | awk '{printf "%.1f", $1 / 1000000}')"
done
