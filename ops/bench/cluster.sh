# Shared by the platform, webhooks and workers benchmarks (sourced, not run): a private
# PostgreSQL cluster in a temp folder with the migrations applied and the login roles' password
# set to "bench", plus cleanup that stops every process a script started (by PID) on exit.
#
# bench_cluster NAME: sets work, pg_port, owner (superuser URL), db_url ROLE (login URL) and
# exports PGPASSWORD; append started PIDs to `pids`. Needs $target (release binaries).
# shellcheck shell=bash

# shellcheck source=ops/scripts/pg.sh
. ops/scripts/pg.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pg_stop "$work/pg"
  rm -rf "$work"
}

# Runs psql as the cluster's superuser against database `platform` (extra args follow).
psql_q() { psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d platform "$@"; }

db_url() { echo "postgresql://$1:bench@127.0.0.1:$pg_port/platform"; }

bench_cluster() {
  : "${target:?set target to the release binaries folder first}"
  work=$(mktemp -d "/var/tmp/$1.XXXXXX")
  chmod 755 "$work"
  trap bench_cleanup EXIT
  pg_port=$(free_port)
  printf 'bench\n' > "$work/pw"
  pg_init "$work/pg" "$work/pw"
  pg_start "$work/pg" "$pg_port" -c max_connections=200
  export PGPASSWORD=bench
  psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -c "CREATE DATABASE platform"
  owner="postgresql://postgres:bench@127.0.0.1:$pg_port/platform"
  # `migrate` reads the platform's whole configuration; Redis is not contacted.
  REDIS_URL=${REDIS_URL:-redis://127.0.0.1:1/0} \
    EDGE_SIGNING_SECRET=${EDGE_SIGNING_SECRET:-bench-edge-secret-0123456789abcdef0123} \
    DATABASE_URL=$(db_url platform_web) DATABASE_MIGRATION_URL=$owner \
    "$target/platform" migrate up >/dev/null
  psql_q -f ops/dev/login-roles.sql
  psql_q -c "ALTER ROLE platform_web PASSWORD 'bench'" -c "ALTER ROLE platform_router PASSWORD 'bench'" \
    -c "ALTER ROLE platform_workers PASSWORD 'bench'"
}
