#!/usr/bin/env bash
# The constants below are used by the scripts that source this file.
# shellcheck disable=SC2034
# Shared by backup.sh, prune.sh and restore.sh (sourced, not run).
#
# A backup is two files side by side:
#   <name>-YYYYMMDDTHHMMSSZ.dump          pg_dump custom format (compressed), UTC time of the start
#   <name>-YYYYMMDDTHHMMSSZ.dump.sha256  "<hex>  <file name>", as sha256sum writes it
# The time in the name, not the file's mtime, is what retention reads: copies and downloads
# keep their age.

# Every message goes to stderr with the script's name, so callers can keep stdout for data.
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() {
  local code=$1
  shift
  log "error: $*"
  exit "$code"
}

# Exit codes shared by the three scripts.
readonly EXIT_FAILED=1    # the operation failed (database error, upload failed, ...)
readonly EXIT_BAD_FILE=2  # the backup file is damaged, incomplete or not a backup
readonly EXIT_BUSY=3      # another backup holds the lock; nothing done
readonly EXIT_USAGE=64    # bad arguments or configuration

readonly STAMP_RE='[0-9]{8}T[0-9]{6}Z'

# stamp_epoch 20250102T030405Z -> seconds since the epoch (UTC).
stamp_epoch() {
  local s=$1
  date -u -d "${s:0:4}-${s:4:2}-${s:6:2} ${s:9:2}:${s:11:2}:${s:13:2} UTC" +%s
}

# Seconds with nanoseconds, for timings printed by the scripts.
now_ns() { date +%s%N; }
# elapsed START_NS -> "1.234" seconds since START_NS.
elapsed() {
  local d=$(( $(now_ns) - $1 ))
  printf '%d.%03d' $((d / 1000000000)) $((d % 1000000000 / 1000000))
}

# The hex digest recorded in FILE.sha256 (first field), or nothing.
recorded_sha() { awk 'NR == 1 { print $1 }' "$1" 2>/dev/null; }

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || die "$EXIT_USAGE" "$c is not installed (Debian: postgresql-client, awscli)"
  done
}

# aws_s3 ARGS...: `aws s3 ...` with BACKUP_S3_ENDPOINT as --endpoint-url when set
# (S3-compatible storage: MinIO, Leaseweb Object Storage, ...).
aws_s3() {
  local endpoint=()
  if [ -n "${BACKUP_S3_ENDPOINT:-}" ]; then endpoint=(--endpoint-url "$BACKUP_S3_ENDPOINT"); fi
  aws "${endpoint[@]}" s3 "$@"
}
