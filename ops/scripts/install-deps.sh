#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the local stack need, only when missing.
# Usage: ops/scripts/install-deps.sh [package ...]   (default: the full set)
set -euo pipefail

want=("$@")
if [ ${#want[@]} -eq 0 ]; then
  want=(cmake pkg-config postgresql redis-server curl pebble)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a cluster on 5432 as a service; we run our own clusters
# on other ports, so the default one is left alone (and harmless).
