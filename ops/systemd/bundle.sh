#!/usr/bin/env bash
# Makes the release tarball for hosts without containers from the published images, so those
# hosts run the very binaries the containers run:
#   bin/{router,platform,workers}   from /usr/local/bin/<name> of each image
#   backup/                         ops/backup/{backup,prune,restore,lib}.sh
#   systemd/                        the units, timers and release.sh of this folder
#   docs/operations.md
#
# Usage: ops/systemd/bundle.sh VERSION OUT.tar.gz ROUTER_IMAGE PLATFORM_IMAGE WORKERS_IMAGE
# (images by digest: ghcr.io/owner/repo/router@sha256:...). Writes OUT.tar.gz and
# OUT.tar.gz.sha256. CONTAINER_CLI picks docker (default) or podman.
set -euo pipefail
[ $# -eq 5 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64; }
version=$1 out=$2
cli=${CONTAINER_CLI:-docker}
[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$ ]] || { echo "bundle: bad version $version" >&2; exit 64; }
repo=$(cd "$(dirname "$0")/../.." && pwd)

stage=$(mktemp -d)
containers=()
cleanup() {
  local c
  for c in "${containers[@]}"; do "$cli" rm -f "$c" >/dev/null 2>&1 || true; done
  rm -rf "$stage"
}
trap cleanup EXIT
mkdir -p "$stage/bin" "$stage/backup" "$stage/systemd" "$stage/docs"

shift 2
for pair in "router=$1" "platform=$2" "workers=$3"; do
  name=${pair%%=*}
  image=${pair#*=}
  # create, not run: nothing from the image executes here.
  id=$("$cli" create "$image")
  containers+=("$id")
  "$cli" cp "$id:/usr/local/bin/$name" "$stage/bin/$name"
  chmod 755 "$stage/bin/$name"
  echo "bundle: bin/$name from $image" >&2
done

cp "$repo"/ops/backup/{backup,prune,restore,lib}.sh "$stage/backup/"
cp "$repo"/ops/systemd/*.service "$repo"/ops/systemd/*.timer "$repo"/ops/systemd/release.sh "$stage/systemd/"
cp -r "$repo/ops/systemd/platform-backup.service.d" "$stage/systemd/"
cp "$repo/docs/operations.md" "$stage/docs/"
printf '%s\n' "$version" >"$stage/VERSION"

tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$out" .
(cd "$(dirname "$out")" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
echo "bundle: $out ($(stat -c %s "$out") bytes)" >&2
