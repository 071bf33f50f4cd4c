#!/usr/bin/env bash
# Backs up one PostgreSQL database: pg_dump in custom format (compressed), a SHA-256 file
# beside it, both named by the UTC start time; optionally uploaded to S3-compatible storage
# with the AWS CLI; then local retention (prune.sh).
#
# Usage: ops/backup/backup.sh [--dir DIR] [--name NAME] [--no-prune]
#
# Connection: libpq's environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSFILE or
# PGPASSWORD, PGSSLMODE). The role needs to read every row: a superuser, or a dedicated
# `LOGIN BYPASSRLS` role in `pg_read_all_data` (the tables FORCE row-level security, so even
# their owner would get an error from pg_dump).
#
# Settings (environment):
#   BACKUP_DIR            where backups go (default /var/lib/platform-backup)
#   BACKUP_NAME           file name prefix (default $PGDATABASE, else "platform")
#   BACKUP_COMPRESS       pg_dump compression level 0-9 (default 6)
#   BACKUP_S3_URI         s3://bucket/prefix to upload to (unset: no upload)
#   BACKUP_S3_ENDPOINT    --endpoint-url for S3-compatible storage (unset: AWS)
#   BACKUP_KEEP_HOURS, BACKUP_KEEP_DAYS   retention, see prune.sh (48 and 30)
#   BACKUP_METRICS_FILE   write Prometheus metrics here after a success (node_exporter's
#                         textfile collector): platform_backup_last_success_timestamp_seconds,
#                         platform_backup_duration_seconds, platform_backup_size_bytes
#
# Prints the backup's path on stdout. Exit: 0 done, 1 failed (nothing half-written is left
# under the final name), 3 another backup is running, 64 bad usage.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ops/backup/lib.sh
. "$here/lib.sh"

dir=${BACKUP_DIR:-/var/lib/platform-backup}
name=${BACKUP_NAME:-${PGDATABASE:-platform}}
prune=1
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --no-prune) prune=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "$EXIT_USAGE" "unknown argument $1 (see --help)" ;;
  esac
done
[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "$EXIT_USAGE" "BACKUP_NAME must be letters, digits, . _ -"
level=${BACKUP_COMPRESS:-6}
[[ $level =~ ^[0-9]$ ]] || die "$EXIT_USAGE" "BACKUP_COMPRESS must be 0-9"
need pg_dump pg_restore sha256sum flock
if [ -n "${BACKUP_S3_URI:-}" ]; then
  [[ $BACKUP_S3_URI == s3://* ]] || die "$EXIT_USAGE" "BACKUP_S3_URI must start with s3://"
  need aws
fi

mkdir -p "$dir"
# One backup at a time per directory (a timer run and a manual one must not interleave).
exec 9>"$dir/.lock"
flock -n 9 || die "$EXIT_BUSY" "another backup is running in $dir"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
base="$name-$stamp.dump"
final="$dir/$base"
[ -e "$final" ] && die "$EXIT_FAILED" "$final already exists"
partial="$dir/.$base.partial"
cleanup() { rm -f "$partial" "$partial.sha256"; }
trap cleanup EXIT

t0=$(now_ns)
log "dumping ${PGDATABASE:-(libpq default)} to $final"
# --no-password: never wait on a prompt from a timer; a missing password is an error.
pg_dump --format=custom --compress="$level" --no-password --file="$partial" \
  || die "$EXIT_FAILED" "pg_dump failed; no backup written"
dump_s=$(elapsed "$t0")

# The archive must be readable before it counts as a backup.
pg_restore --list "$partial" >/dev/null \
  || die "$EXIT_FAILED" "the new archive cannot be read back (pg_restore --list)"
sum=$(sha256sum "$partial" | awk '{print $1}')
printf '%s  %s\n' "$sum" "$base" >"$partial.sha256"
# Dump first, checksum second: restore.sh refuses a dump without its checksum, so a crash
# between the two renames leaves nothing that could be restored by mistake.
mv "$partial" "$final"
mv "$partial.sha256" "$final.sha256"
size=$(stat -c %s "$final")
log "done in ${dump_s}s: $base ($size bytes, sha256 $sum)"

if [ -n "${BACKUP_S3_URI:-}" ]; then
  t1=$(now_ns)
  dest="${BACKUP_S3_URI%/}"
  # The checksum goes last, so a listing showing it means the dump is complete.
  aws_s3 cp --only-show-errors "$final" "$dest/$base" \
    || die "$EXIT_FAILED" "upload of $base to $dest failed (the local copy is kept)"
  aws_s3 cp --only-show-errors "$final.sha256" "$dest/$base.sha256" \
    || die "$EXIT_FAILED" "upload of $base.sha256 to $dest failed (the local copy is kept)"
  log "uploaded to $dest/$base in $(elapsed "$t1")s"
fi

if [ -n "${BACKUP_METRICS_FILE:-}" ]; then
  # Written whole, then renamed: the collector never reads half a file.
  {
    echo "# HELP platform_backup_last_success_timestamp_seconds End of the last successful backup."
    echo "# TYPE platform_backup_last_success_timestamp_seconds gauge"
    echo "platform_backup_last_success_timestamp_seconds{name=\"$name\"} $(date +%s)"
    echo "# HELP platform_backup_duration_seconds Time the last successful backup took (dump and upload)."
    echo "# TYPE platform_backup_duration_seconds gauge"
    echo "platform_backup_duration_seconds{name=\"$name\"} $(elapsed "$t0")"
    echo "# HELP platform_backup_size_bytes Size of the last successful backup."
    echo "# TYPE platform_backup_size_bytes gauge"
    echo "platform_backup_size_bytes{name=\"$name\"} $size"
  } >"$BACKUP_METRICS_FILE.tmp"
  mv "$BACKUP_METRICS_FILE.tmp" "$BACKUP_METRICS_FILE"
fi

if [ "$prune" -eq 1 ]; then
  "$here/prune.sh" --dir "$dir" --name "$name" >/dev/null
fi
echo "$final"
