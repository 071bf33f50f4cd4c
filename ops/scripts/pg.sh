#!/usr/bin/env bash
# Helpers for running a private PostgreSQL cluster in a folder; sourced by other scripts.
# Runs the server as the `postgres` user when invoked as root (initdb refuses root).

pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  local newest
  newest=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$newest" ]; then echo "$newest"; else dirname "$(command -v pg_ctl)"; fi
}

# Runs a PostgreSQL program as the cluster's owner.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_init DIR PASSWORD_FILE: creates a cluster whose superuser `postgres` has that password.
pg_init() {
  local dir=$1 pwfile=$2
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir" "$pwfile"; fi
  chmod 700 "$dir"
  as_pg "$(pg_bin)/initdb" -D "$dir" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" \
    -E UTF8 >/dev/null
}

# pg_start DIR PORT [extra -c options]: starts the cluster on 127.0.0.1:PORT and waits.
pg_start() {
  local dir=$1 port=$2; shift 2
  as_pg "$(pg_bin)/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir $*" start >/dev/null
}

pg_stop() {
  local dir=$1
  [ -f "$dir/postmaster.pid" ] || return 0
  as_pg "$(pg_bin)/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
}

# True when postgres can reach DIR (it cannot enter a root-only home directory, for example).
pg_can_use() {
  local dir=$1
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- test -x "$dir"; else test -w "$dir"; fi
}
