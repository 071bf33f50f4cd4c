#!/usr/bin/env bash
# Local retention for backup.sh's files, by count and by age:
#   hourly  for the last BACKUP_KEEP_HOURS hours (48), the newest backup of each UTC hour;
#   daily   for the last BACKUP_KEEP_DAYS days (30), the newest backup of each UTC day;
#   newest  the most recent backup is always kept, however old (backups that stopped
#           running must not delete the last good copy).
# Everything else is deleted (dump and .sha256 together), as are .sha256 files whose dump is
# gone and temporary files of backups that died more than a day ago. Hourly runs therefore
# keep at most 48 + 30 + 1 backups. Age comes from the UTC time in the file name.
#
# Remote copies (BACKUP_S3_URI) are not deleted from here: give the bucket a lifecycle rule
# (expire after BACKUP_KEEP_DAYS days), so the host's credentials can be write-only.
#
# Usage: ops/backup/prune.sh [--dir DIR] [--name NAME] [--now YYYYMMDDTHHMMSSZ] [--dry-run]
# Prints one line per backup: "keep hourly|daily|newest FILE" or "delete FILE".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ops/backup/lib.sh
. "$here/lib.sh"

dir=${BACKUP_DIR:-/var/lib/platform-backup}
name=${BACKUP_NAME:-${PGDATABASE:-platform}}
keep_hours=${BACKUP_KEEP_HOURS:-48}
keep_days=${BACKUP_KEEP_DAYS:-30}
now=$(date -u +%s)
dry=0
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    --name) name=${2:?--name needs a value}; shift 2 ;;
    --now)
      [[ ${2:-} =~ ^$STAMP_RE$ ]] || die "$EXIT_USAGE" "--now wants YYYYMMDDTHHMMSSZ"
      now=$(stamp_epoch "$2"); shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "$EXIT_USAGE" "unknown argument $1 (see --help)" ;;
  esac
done
[[ $keep_hours =~ ^[0-9]+$ && $keep_days =~ ^[0-9]+$ ]] \
  || die "$EXIT_USAGE" "BACKUP_KEEP_HOURS and BACKUP_KEEP_DAYS must be whole numbers"
[ -d "$dir" ] || die "$EXIT_USAGE" "no such directory: $dir"

remove() {
  if [ "$dry" -eq 0 ]; then rm -f -- "$@"; fi
}

# Newest first: the stamp sorts as the time does.
mapfile -t dumps < <(find "$dir" -maxdepth 1 -type f -name "$name-*.dump" -printf '%f\n' \
  | grep -E "^$name-$STAMP_RE\.dump$" | sort -r)

declare -A hour_kept=() day_kept=()
first=1
for f in "${dumps[@]}"; do
  stamp=${f#"$name-"}
  stamp=${stamp%.dump}
  age=$(( now - $(stamp_epoch "$stamp") ))
  hour=${stamp:0:11}
  day=${stamp:0:8}
  verdict=delete
  if [ "$first" -eq 1 ]; then
    verdict=newest
  elif [ "$age" -lt 0 ]; then
    verdict=newest # from the future (clock skew): not ours to judge
  elif [ "$age" -lt $((keep_hours * 3600)) ] && [ -z "${hour_kept[$hour]:-}" ]; then
    verdict=hourly
  elif [ "$age" -lt $((keep_days * 86400)) ] && [ -z "${day_kept[$day]:-}" ]; then
    verdict=daily
  fi
  first=0
  if [ "$verdict" = delete ]; then
    echo "delete $f"
    remove "$dir/$f" "$dir/$f.sha256"
  else
    # A kept backup stands for its hour and its day: older ones of the same day only stay
    # for their own hour.
    hour_kept[$hour]=1
    day_kept[$day]=1
    echo "keep $verdict $f"
  fi
done

# Checksums without their dump, and leftovers of backups that died.
while IFS= read -r s; do
  [ -e "$dir/${s%.sha256}" ] && continue
  echo "delete $s"
  remove "$dir/$s"
done < <(find "$dir" -maxdepth 1 -type f -name "$name-*.dump.sha256" -printf '%f\n')
while IFS= read -r p; do
  echo "delete $p"
  remove "$dir/$p"
done < <(find "$dir" -maxdepth 1 -type f -name ".$name-*.partial*" -mmin +1440 -printf '%f\n')
