#!/usr/bin/env bash
# CI: checks of the systemd path that need no systemd running.
#   1. `systemd-analyze verify` of every unit, timer and drop-in of ops/systemd, on copies
#      whose ExecStart points at staged stand-in binaries (verify wants them to exist); any
#      warning fails.
#   2. `systemd-analyze security --offline`: every service's exposure at most 2.5 (of 10).
#   3. Timers: each schedule is the one docs/operations.md promises, and each cron timer
#      names a job the workers binary knows (workers/src/cron.rs).
#   4. Every NAME_FILE the units set names a variable the configuration reads
#      (tenant-config/src/config*), so a renamed variable cannot silently drop a secret.
#   5. release.sh, bundle.sh and deploy-hosts.sh with stand-ins (ops/systemd/test-release.sh).
# Fails on the first error; prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
ops/scripts/install-deps.sh systemd curl

work=$(mktemp -d /tmp/lint-ops.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { printf 'lint-ops FAILED: %s\n' "$*" >&2; exit 1; }

echo "== systemd-analyze verify (staged binaries)"
mkdir -p "$work/units" "$work/root/bin" "$work/root/backup"
for b in router platform workers; do cp /bin/true "$work/root/bin/$b"; done
cp /bin/true "$work/root/backup/backup.sh"
for f in ops/systemd/*.service ops/systemd/*.timer; do
  sed "s#/opt/platform/current/#$work/root/#g" "$f" >"$work/units/${f##*/}"
done
# The S3 drop-in is verified as installed.
mkdir -p "$work/units/platform-backup.service.d"
cp ops/systemd/platform-backup.service.d/s3.conf.example "$work/units/platform-backup.service.d/s3.conf"
(
  cd "$work/units"
  # Templates are checked through their instances, which the timers pull in.
  mapfile -t units < <(find . -maxdepth 1 -type f \( -name '*.service' -o -name '*.timer' \) ! -name '*@.service' | sort)
  systemd-analyze verify --man=no "${units[@]}" >"$work/verify.out" 2>&1 || { cat "$work/verify.out"; exit 1; }
  if [ -s "$work/verify.out" ]; then cat "$work/verify.out"; exit 1; fi
  echo "verified: ${units[*]#./}"
) || fail "systemd-analyze verify reported problems"

echo "== systemd-analyze security --offline (exposure at most 2.5)"
(
  cd "$work/units"
  cp 'workers-cron@.service' 'workers-cron@process-emails.service'
  for u in router.service platform.service workers.service platform-migrate.service \
    platform-backup.service workers-cron@process-emails.service; do
    level=$(systemd-analyze security --offline=yes --no-pager "./$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    printf '  %-40s %s\n' "$u" "${level:-?}"
    systemd-analyze security --offline=yes --threshold=25 --no-pager "./$u" >/dev/null 2>&1 \
      || { echo "$u: exposure ${level:-?} is above 2.5"; exit 1; }
  done
) || fail "a unit is less hardened than allowed"

echo "== timer schedules and job names"
check_timer() { # FILE EXPECTED-NORMALIZED-FORM
  local cal norm
  cal=$(sed -n 's/^OnCalendar=//p' "ops/systemd/$1")
  norm=$(systemd-analyze calendar "$cal" | sed -n 's/^ *Normalized form: //p')
  [ "$norm" = "$2" ] || fail "$1: OnCalendar=$cal is '$norm', expected '$2'"
  printf '  %-42s %s\n' "$1" "$norm"
}
check_timer 'workers-cron@process-emails.timer' '*-*-* *:00/5:00 UTC'
check_timer 'workers-cron@process-donations.timer' '*-*-* *:00:00 UTC'
check_timer 'workers-cron@cleanup-sessions.timer' '*-*-* 03:00:00 UTC'
check_timer 'workers-cron@generate-reports.timer' 'Mon *-*-* 06:00:00 UTC'
check_timer 'platform-backup.timer' '*-*-* *:17:00 UTC'
for t in ops/systemd/workers-cron@*.timer; do
  job=${t##*@}
  job=${job%.timer}
  grep -q "=> \"$job\"" workers/src/cron.rs || fail "$t: workers knows no job named $job"
done
jobs_known=$(grep -c '^ *CronJob::[A-Za-z]* => "' workers/src/cron.rs)
timers=$(find ops/systemd -name 'workers-cron@*.timer' | wc -l)
[ "$jobs_known" = "$timers" ] || fail "workers has $jobs_known cron jobs but there are $timers timers"

echo "== credentials map to configuration variables"
while read -r name; do
  grep -rqs "var(\"$name\"\|\"$name\"," tenant-config/src/config.rs tenant-config/src/config/ \
    || fail "units set ${name}_FILE but the configuration reads no $name"
  echo "  ${name}_FILE"
done < <(grep -ho '^Environment=[A-Z_]*_FILE=%d/' ops/systemd/*.service | sed 's/^Environment=//; s/_FILE=%d\/$//' | sort -u)

echo "== release.sh, bundle.sh, deploy-hosts.sh (stand-ins)"
ops/systemd/test-release.sh

echo "ops/ci/lint-ops.sh: ok in $(( $(date +%s) - start ))s"
