#!/usr/bin/env bash
# Restores a backup made by backup.sh into a new side database, verifies it, and then either
# swaps it in place of the live database (--swap) or prints how to use it. The live database
# is never written to: a damaged file or a failed restore leaves it as it was and leaves no
# side database behind.
#
# Usage: ops/backup/restore.sh FILE|s3://bucket/prefix/NAME.dump [options]
#   --target DB     the live database (default $PGDATABASE, else "platform")
#   --into DB       the side database (default <target>_restore_YYYYMMDD_HHMMSS, UTC); must
#                   not exist
#   --swap          after verification rename <target> to <target>_pre_restore_<UTC time> and
#                   the side database to <target> (ends the sessions on <target>: stop the
#                   services first)
#   --no-owner      restore objects owned by the connecting role (a cluster without the
#                   original owner role)
#   --allow-empty   accept a backup without tenants (a fresh installation)
#
# Steps: (1) checksum against FILE.sha256, (2) pg_restore --list, (3) the cluster-wide roles
# the schema grants to, (4) pg_restore into the side database in one transaction, stopping at
# the first error, (5) sanity queries: every table of the archive exists, migrations are
# recorded, row counts (beside the live database's, if there is one), money columns add up,
# (6) swap or instructions. Each step prints its time.
#
# Connection: libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSFILE/PGPASSWORD); the role
# must be able to create databases and read every row (a superuser, in practice).
# S3 downloads use BACKUP_S3_ENDPOINT like backup.sh. Exit: 0 restored and verified,
# 1 restore or verification failed, 2 the file is damaged or not a backup, 64 bad usage.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ops/backup/lib.sh
. "$here/lib.sh"

src=""
target=${PGDATABASE:-platform}
side=""
swap=0
no_owner=()
allow_empty=0
while [ $# -gt 0 ]; do
  case $1 in
    --target) target=${2:?--target needs a value}; shift 2 ;;
    --into) side=${2:?--into needs a value}; shift 2 ;;
    --swap) swap=1; shift ;;
    --no-owner) no_owner=(--no-owner); shift ;;
    --allow-empty) allow_empty=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "$EXIT_USAGE" "unknown option $1 (see --help)" ;;
    *) [ -z "$src" ] || die "$EXIT_USAGE" "one backup at a time"; src=$1; shift ;;
  esac
done
[ -n "$src" ] || die "$EXIT_USAGE" "which backup? (see --help)"
stamp=$(date -u +%Y%m%d_%H%M%S)
side=${side:-${target}_restore_$stamp}
old="${target}_pre_restore_$stamp"
for db in "$target" "$side"; do
  [[ $db =~ ^[a-z_][a-z0-9_]{0,62}$ ]] \
    || die "$EXIT_USAGE" "database name $db: use lower-case letters, digits and _ (at most 63)"
done
need pg_restore psql sha256sum
t_all=$(now_ns)

work=$(mktemp -d)
side_created=0
cleanup() {
  local rc=$?
  if [ "$side_created" -eq 1 ] && [ "$rc" -ne 0 ]; then
    log "dropping the side database $side (the live database $target was not touched)"
    admin "DROP DATABASE IF EXISTS \"$side\" WITH (FORCE)" >/dev/null 2>&1 \
      || log "could not drop $side: drop it by hand"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# admin SQL: one statement on the maintenance database, tuples only.
admin() { psql -X -q -A -t -v ON_ERROR_STOP=1 --no-password -d postgres -c "$1"; }
# on_side SQL: the same on the side database, with row-level security off so a role that
# would only see part of a table gets an error rather than a wrong count.
on_side() {
  psql -X -q -A -t -v ON_ERROR_STOP=1 --no-password -d "$side" \
    -c "SET row_security = off" -c "$1"
}

# 0. Fetch a remote backup (with its checksum) into the work directory.
if [[ $src == s3://* ]]; then
  need aws
  t=$(now_ns)
  file="$work/${src##*/}"
  aws_s3 cp --only-show-errors "$src" "$file" || die "$EXIT_FAILED" "cannot download $src"
  aws_s3 cp --only-show-errors "$src.sha256" "$file.sha256" \
    || die "$EXIT_BAD_FILE" "cannot download $src.sha256: refusing a backup without its checksum"
  log "downloaded $src in $(elapsed "$t")s"
else
  file=$src
  [ -f "$file" ] || die "$EXIT_USAGE" "no such file: $file"
fi

# 1. Checksum: a damaged or half-copied file stops here, before anything is created.
t=$(now_ns)
[ -f "$file.sha256" ] || die "$EXIT_BAD_FILE" "$file.sha256 is missing: refusing a backup without its checksum"
want=$(recorded_sha "$file.sha256")
[[ $want =~ ^[0-9a-f]{64}$ ]] || die "$EXIT_BAD_FILE" "$file.sha256 does not hold a SHA-256 digest"
got=$(sha256sum "$file" | awk '{print $1}')
[ "$got" = "$want" ] || die "$EXIT_BAD_FILE" \
  "checksum mismatch for $file: the file is damaged or incomplete (expected $want, got $got); nothing was changed"
log "1/6 checksum ok ($(elapsed "$t")s)"

# 2. The archive's table of contents.
t=$(now_ns)
pg_restore --list "$file" >"$work/toc" 2>"$work/toc.err" \
  || die "$EXIT_BAD_FILE" "$file is not a readable pg_dump archive: $(head -n 1 "$work/toc.err"); nothing was changed"
awk '$4 == "TABLE" && $5 == "DATA" { print $7 }' "$work/toc" | sort -u >"$work/tables"
[ -s "$work/tables" ] || die "$EXIT_BAD_FILE" "$file holds no table data; nothing was changed"
log "2/6 archive readable: $(wc -l <"$work/tables") tables ($(elapsed "$t")s)"

# 3. Roles are cluster-wide, so a dump does not carry them; the schema grants to these three
# (created the same way by migration 0001). Login roles are deployment-specific: see
# docs/operations.md.
t=$(now_ns)
admin "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_app') THEN CREATE ROLE platform_app NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_service') THEN CREATE ROLE platform_service NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'platform_edge') THEN CREATE ROLE platform_edge NOLOGIN; END IF;
END \$\$" >/dev/null || die "$EXIT_FAILED" "cannot reach the server or create the schema's roles"
live_exists=$(admin "SELECT count(*) FROM pg_database WHERE datname = '$target'")
[ "$(admin "SELECT count(*) FROM pg_database WHERE datname = '$side'")" = 0 ] \
  || die "$EXIT_USAGE" "database $side already exists: choose another --into"
log "3/6 roles present ($(elapsed "$t")s)"

# 4. Restore into the side database: one transaction, first error ends it.
t=$(now_ns)
admin "CREATE DATABASE \"$side\" TEMPLATE template0 ENCODING 'UTF8'" >/dev/null \
  || die "$EXIT_FAILED" "cannot create database $side"
side_created=1
if ! pg_restore --dbname="$side" --single-transaction --exit-on-error --no-password \
  "${no_owner[@]}" "$file" 2>"$work/restore.err"; then
  log "pg_restore reported: $(grep -m 3 -E 'error|ERROR|FATAL' "$work/restore.err" || head -n 3 "$work/restore.err")"
  die "$EXIT_FAILED" "restore of $file failed; nothing was changed"
fi
restore_s=$(elapsed "$t")
log "4/6 restored into $side (${restore_s}s)"

# 5. Sanity: what the archive lists is there, the schema is the platform's, counts are shown.
t=$(now_ns)
on_side "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')" | sort -u >"$work/restored"
missing=$(comm -23 "$work/tables" "$work/restored")
[ -z "$missing" ] || die "$EXIT_FAILED" "tables in the archive but not restored: $missing"
migrations=$(on_side "SELECT count(*) || ' (newest ' || coalesce(max(version), 0) || ')' FROM schema_migrations") \
  || die "$EXIT_FAILED" "schema_migrations missing: not a platform database"
[[ $migrations != 0* ]] || die "$EXIT_FAILED" "no migrations recorded in the backup"
bad_money=$(on_side "SELECT count(*) FROM donations WHERE fee_minor + net_minor <> amount_minor")
[ "$bad_money" = 0 ] || die "$EXIT_FAILED" "$bad_money donations whose fee and net do not add up"
tenants=$(on_side "SELECT count(*) FROM tenants")
[ "$tenants" -gt 0 ] || [ "$allow_empty" -eq 1 ] \
  || die "$EXIT_FAILED" "the backup has no tenants (pass --allow-empty for a fresh installation)"
log "migrations applied: $migrations"
printf '%-24s %12s %12s\n' table restored live >&2
while IFS= read -r tbl; do
  n=$(on_side "SELECT count(*) FROM public.\"$tbl\"")
  l="-"
  if [ "$live_exists" = 1 ]; then
    # Row-level security off: an error (not a silently partial count) if the role is subject to it.
    l=$(psql -X -q -A -t --no-password -d "$target" -c "SET row_security = off" \
      -c "SELECT count(*) FROM public.\"$tbl\"" 2>/dev/null || echo "?")
  fi
  printf '%-24s %12s %12s\n' "$tbl" "$n" "$l" >&2
done <"$work/tables"
log "5/6 verified ($(elapsed "$t")s)"

# 6. Swap, or say how.
if [ "$swap" -eq 1 ]; then
  t=$(now_ns)
  if [ "$live_exists" = 1 ]; then
    # No new sessions, end the current ones, then both renames in one transaction.
    admin "ALTER DATABASE \"$target\" WITH ALLOW_CONNECTIONS false" >/dev/null
    admin "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = '$target' AND pid <> pg_backend_pid()" >/dev/null
    if ! psql -X -q -v ON_ERROR_STOP=1 --no-password -d postgres \
      -c "BEGIN" \
      -c "ALTER DATABASE \"$target\" RENAME TO \"$old\"" \
      -c "ALTER DATABASE \"$side\" RENAME TO \"$target\"" \
      -c "COMMIT" >/dev/null; then
      admin "ALTER DATABASE \"$target\" WITH ALLOW_CONNECTIONS true" >/dev/null || true
      die "$EXIT_FAILED" "swap failed; $target is unchanged and accepts connections again"
    fi
    admin "ALTER DATABASE \"$old\" WITH ALLOW_CONNECTIONS true" >/dev/null
    side_created=0
    log "6/6 swapped: $target is the restored copy, the previous one is $old ($(elapsed "$t")s)"
    log "database-level settings and grants (ALTER DATABASE ... SET, GRANT CONNECT) stay with $old: re-apply them if you had any"
  else
    admin "ALTER DATABASE \"$side\" RENAME TO \"$target\"" >/dev/null
    side_created=0
    log "6/6 $side renamed to $target ($(elapsed "$t")s)"
  fi
else
  side_created=0
  log "6/6 left as $side. To use it: stop the services, then either rerun with --swap, or"
  log "    point DATABASE_URL (and the router's and workers') at database $side and restart."
fi
log "total $(elapsed "$t_all")s (restore ${restore_s}s)"
