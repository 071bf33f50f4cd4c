#!/usr/bin/env bash
# CI: backup and restore against real PostgreSQL and a loopback S3 API (ops/backup/test.sh).
# Installs PostgreSQL (Debian) and, in a virtualenv kept under ~/.cache between runs, the AWS
# CLI and moto's S3 server (PyPI, pinned). Fails on the first error; prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)

ops/scripts/install-deps.sh postgresql postgresql-client curl
# Debian's python3 needs python3-venv for `-m venv`; other Pythons carry it.
python3 -c 'import ensurepip' 2>/dev/null || ops/scripts/install-deps.sh python3-venv

pins=(awscli==1.45.11 'moto[server]==5.2.1')
venv="${XDG_CACHE_HOME:-$HOME/.cache}/platform-ci/backup-venv"
stamp=$(printf '%s\n' "${pins[@]}" | sha256sum | cut -c 1-16)
if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}"
  echo "$stamp" >"$venv/.pins"
fi
export PATH="$venv/bin:$PATH"
aws --version

ops/backup/test.sh
echo "ops/ci/backup.sh: ok in $(( $(date +%s) - start ))s"
