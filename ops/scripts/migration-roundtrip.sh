#!/usr/bin/env bash
# Applies every migration, reverts every one, applies them again, with the real `platform
# migrate` command against a throwaway cluster. Fails on the first error.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/scripts/pg.sh
. ops/scripts/pg.sh

work=$(mktemp -d /tmp/migrate-roundtrip.XXXXXX)
chmod 755 "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { pg_stop "$work/pg"; rm -rf "$work"; }
trap cleanup EXIT

pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$pw" > "$work/pw"
pg_init "$work/pg" "$work/pw"
pg_start "$work/pg" "$port" -c fsync=off

cargo build -q -p platform
bin="${CARGO_TARGET_DIR:-target}/debug/platform"
export DATABASE_URL="postgresql://postgres:$pw@127.0.0.1:$port/postgres"
export REDIS_URL="redis://127.0.0.1:6379"
export EDGE_SIGNING_SECRET="roundtrip-only-secret-0123456789abcdef"

step() { echo "== platform migrate $*"; "$bin" migrate "$@"; }
step up
step status | tee "$work/status1"
step down --all
step status | tee "$work/status2"
grep -q applied "$work/status2" && { echo "roundtrip: migrations still applied after down --all" >&2; exit 1; }
step up
step status | tee "$work/status3"
grep -q pending "$work/status3" && { echo "roundtrip: migrations pending after second up" >&2; exit 1; }
diff "$work/status1" "$work/status3"
echo "migration round trip ok"
