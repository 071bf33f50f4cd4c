#!/usr/bin/env bash
# Backup and restore against a real PostgreSQL (a throwaway cluster on a free loopback port)
# and a real S3 API (moto's server on loopback, through the AWS CLI):
#   1. schema from migrations/ (as `platform migrate up` records it), seeded tenants,
#      donors, donations, jobs and outbox mail;
#   2. backup.sh (as a BYPASSRLS backup role, uploading to S3) while a writer keeps
#      committing donation+job pairs and records when each commit was acknowledged;
#   3. restore.sh from the S3 copy into a side database: every pair acknowledged before the
#      backup started is there, every pair is whole, nothing committed after it ended is;
#   4. restore.sh --swap from the local file: the live database becomes the restored one and
#      the previous one is kept under another name;
#   5. damaged backups (flipped bytes, truncated; with the original checksum and with one
#      made after the damage, not a dump at all, no checksum) fail with a clear error, leave
#      the live database as it was and no side database behind;
#   6. retention: fake-dated backups, pruned with a fixed "now", against the policy.
# Prints backup and restore timings (the RPO/RTO figures in docs/operations.md).
#
# Needs: postgresql, and in PATH `aws` and `moto_server` (ops/ci/backup.sh installs them).
# Scale: BACKUP_TEST_TENANTS (40) x BACKUP_TEST_DONORS (100) donors x BACKUP_TEST_GIFTS (50).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
# shellcheck source=ops/scripts/pg.sh
. ops/scripts/pg.sh
# shellcheck source=ops/backup/lib.sh
. ops/backup/lib.sh

tenants=${BACKUP_TEST_TENANTS:-40}
donors=${BACKUP_TEST_DONORS:-100}
gifts=${BACKUP_TEST_GIFTS:-50}

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'backup test FAILED: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/backup-test.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  local p
  touch "$work/stop-writer" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pg_stop "$work/pg"
  rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- servers
say "PostgreSQL and the S3 emulator on loopback"
pg_port=$(free_port)
pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$pw" >"$work/pw"
pg_init "$work/pg" "$work/pw"
pg_start "$work/pg" "$pg_port" -c fsync=off -c max_connections=50
export PGHOST=127.0.0.1 PGPORT=$pg_port PGUSER=postgres PGPASSWORD=$pw PGDATABASE=platform
export PGCONNECT_TIMEOUT=10

s3_port=$(free_port)
moto_server -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export BACKUP_S3_ENDPOINT="http://127.0.0.1:$s3_port"
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "$BACKUP_S3_ENDPOINT/" && break
  sleep 0.1
done
aws_s3 mb s3://platform-backups >/dev/null

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------- schema and data
say "schema from migrations/ and seed data"
t=$(now_ns)
q -d postgres -c "CREATE DATABASE platform"
q -c "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, name text NOT NULL,
        checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
for up in migrations/*.up.sql; do
  f=${up##*/}
  version=$((10#${f%%_*}))
  mname=${f#*_}
  mname=${mname%.up.sql}
  sum=$(sha256sum "$up" | awk '{print $1}')
  # One transaction per migration with its bookkeeping row, as the runner does.
  q -1 -f "$up" -c "INSERT INTO schema_migrations (version, name, checksum)
                    VALUES ($version, '$mname', '$sum')" >/dev/null
done
q <<SQL
INSERT INTO tenants (slug, name, status, plan_id)
  SELECT 'tenant-' || g, 'Tenant ' || g, 'active', 'growth' FROM generate_series(1, $tenants) g;
INSERT INTO donors (tenant_id, email, name)
  SELECT t.id, 'donor' || g || '@' || t.slug || '.example', 'Donor ' || g
  FROM tenants t, generate_series(1, $donors) g;
INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor, net_minor,
                       status, stripe_payment_intent_id, created_at, succeeded_at)
  SELECT d.tenant_id, d.id, 'one_time', a, 'usd', a * 2 / 100, a - a * 2 / 100, 'succeeded',
         'pi_seed_' || md5(d.id::text || g), now() - g * interval '1 hour', now() - g * interval '1 hour'
  FROM donors d, generate_series(1, $gifts) g, LATERAL (SELECT 500 + (g * 7919) % 20000 AS a) x;
INSERT INTO jobs (kind, tenant_id, payload, state, attempt, finished_at)
  SELECT 'email.receipt', tenant_id, jsonb_build_object('donation', id), 'completed', 1, now()
  FROM donations WHERE (hashtext(id::text) & 7) = 0;
INSERT INTO email_outbox (tenant_id, idempotency_key, template, to_address, status, sent_at)
  SELECT tenant_id, 'receipt:' || id, 'donation_receipt', 'donor@example.org', 'sent', now()
  FROM donations WHERE (hashtext(id::text) & 7) = 1;
ANALYZE;
SQL
seeded=$(q -c "SELECT count(*) FROM donations")
db_size=$(q -c "SELECT pg_size_pretty(pg_database_size('platform'))")
echo "seeded $tenants tenants, $((tenants * donors)) donors, $seeded donations, $(q -c "SELECT count(*) FROM jobs") jobs, $(q -c "SELECT count(*) FROM email_outbox") emails: database $db_size ($(elapsed "$t")s)"

# The documented backup role: reads everything, changes nothing, and is not stopped by
# FORCE ROW LEVEL SECURITY.
backup_pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
q -c "CREATE ROLE platform_backup LOGIN BYPASSRLS PASSWORD '$backup_pw'" -c "GRANT pg_read_all_data TO platform_backup"

# ---------------------------------------------------------------- backup under writes
say "backup while a writer commits"
read -r w_tenant w_donor < <(q -F ' ' -c "SELECT tenant_id, id FROM donors ORDER BY email LIMIT 1")
writer() {
  local n=0 deadline=$(( $(date +%s) + 120 ))
  while [ ! -e "$work/stop-writer" ] && [ "$(date +%s)" -lt "$deadline" ] && [ "$n" -lt 20000 ]; do
    n=$((n + 1))
    # A donation and its job in one transaction: the restore must have both or neither.
    q -c "WITH d AS (
            INSERT INTO donations (tenant_id, donor_id, kind, amount_minor, currency, fee_minor,
                                   net_minor, stripe_payment_intent_id)
            VALUES ('$w_tenant', '$w_donor', 'one_time', 1000, 'usd', 20, 980, 'pi_writer_$n')
            RETURNING tenant_id)
          INSERT INTO jobs (kind, tenant_id, payload)
          SELECT 'writer.receipt', tenant_id, jsonb_build_object('n', $n) FROM d" >/dev/null
    # Written after psql returned, so never earlier than the commit itself.
    echo "$n $(now_ns)" >>"$work/acked"
  done
}
writer &
writer_pid=$!
pids+=("$writer_pid")
for _ in $(seq 1 100); do
  if [ -f "$work/acked" ] && [ "$(wc -l <"$work/acked")" -ge 50 ]; then break; fi
  sleep 0.1
done

mkdir -p "$work/backups"
b_start=$(now_ns)
backup_file=$(PGUSER=platform_backup PGPASSWORD=$backup_pw BACKUP_DIR="$work/backups" \
  BACKUP_S3_URI=s3://platform-backups/db BACKUP_METRICS_FILE="$work/backup.prom" ops/backup/backup.sh)
b_end=$(now_ns)
backup_s=$(elapsed "$b_start")
sleep 1
touch "$work/stop-writer"
wait "$writer_pid"
backup_base=${backup_file##*/}
dump_bytes=$(stat -c %s "$backup_file")
echo "backup: $backup_base, $dump_bytes bytes, ${backup_s}s (while $(wc -l <"$work/acked") writes were acknowledged in all)"
[ -f "$backup_file.sha256" ] || fail "no checksum file beside $backup_file"
grep -q "^platform_backup_size_bytes{name=\"platform\"} $dump_bytes$" "$work/backup.prom" \
  || fail "metrics file: $(cat "$work/backup.prom")"
if command -v promtool >/dev/null; then promtool check metrics <"$work/backup.prom"; fi
(cd "$work/backups" && sha256sum --quiet -c "$backup_base.sha256") || fail "checksum file does not match"
aws_s3 ls s3://platform-backups/db/ >"$work/s3.list"
if ! grep -q " $backup_base$" "$work/s3.list" || ! grep -q " $backup_base.sha256$" "$work/s3.list"; then
  fail "upload missing from the bucket: $(cat "$work/s3.list")"
fi

# ---------------------------------------------------------------- restore into a side database
say "restore from S3 into a side database"
r_start=$(now_ns)
ops/backup/restore.sh "s3://platform-backups/db/$backup_base" --into platform_check
side_restore_s=$(elapsed "$r_start")
q -d platform_check -c "SELECT substring(stripe_payment_intent_id from 11) FROM donations
                        WHERE stripe_payment_intent_id LIKE 'pi_writer_%'" | sort -n >"$work/restored.donations"
q -d platform_check -c "SELECT payload->>'n' FROM jobs WHERE kind = 'writer.receipt'" | sort -n >"$work/restored.jobs"
cmp -s "$work/restored.donations" "$work/restored.jobs" \
  || fail "a writer transaction was restored in part (donation without job or the reverse)"
[ "$(q -d platform_check -c "SELECT count(*) FROM donations WHERE stripe_payment_intent_id LIKE 'pi_seed_%'")" = "$seeded" ] \
  || fail "seeded donations missing from the restore"
before=0 during=0 during_in=0 after=0
declare -A restored=()
while read -r n; do restored[$n]=1; done <"$work/restored.donations"
while read -r n ack; do
  if [ "$ack" -lt "$b_start" ]; then
    before=$((before + 1))
    [ -n "${restored[$n]:-}" ] || fail "write $n was acknowledged before the backup started but is not in it"
  elif [ "$ack" -le $((b_end + 1000000000)) ]; then
    during=$((during + 1))
    if [ -n "${restored[$n]:-}" ]; then during_in=$((during_in + 1)); fi
  else
    after=$((after + 1))
    [ -z "${restored[$n]:-}" ] || fail "write $n was acknowledged after the backup ended but is in it"
  fi
done <"$work/acked"
[ "$before" -ge 50 ] || fail "only $before writes before the backup: the writer did not run"
echo "writes acknowledged before the backup started: $before, all restored"
echo "writes acknowledged while it ran: $during, of which $during_in are in it (the dump is one snapshot, taken at its start)"
echo "writes acknowledged after it ended: $after, none in it"
q -d postgres -c "DROP DATABASE platform_check"

# ---------------------------------------------------------------- swap
say "restore --swap from the local file"
live_writes=$(q -c "SELECT count(*) FROM donations WHERE stripe_payment_intent_id LIKE 'pi_writer_%'")
s_start=$(now_ns)
ops/backup/restore.sh "$backup_file" --swap
swap_restore_s=$(elapsed "$s_start")
now_writes=$(q -c "SELECT count(*) FROM donations WHERE stripe_payment_intent_id LIKE 'pi_writer_%'")
[ "$now_writes" = "$(wc -l <"$work/restored.donations")" ] \
  || fail "after the swap, platform has $now_writes writer rows, expected the backup's $(wc -l <"$work/restored.donations")"
old_db=$(q -d postgres -c "SELECT datname FROM pg_database WHERE datname LIKE 'platform_pre_restore_%'")
[ -n "$old_db" ] || fail "the previous database was not kept"
[ "$(q -d "$old_db" -c "SELECT count(*) FROM donations WHERE stripe_payment_intent_id LIKE 'pi_writer_%'")" = "$live_writes" ] \
  || fail "the kept previous database lost rows"
echo "platform is the restored copy ($now_writes writer rows); the previous one ($live_writes) is $old_db"
q -d postgres -c "DROP DATABASE \"$old_db\""

# ---------------------------------------------------------------- damaged backups
say "damaged backups are refused and change nothing"
fingerprint() {
  q -c "SELECT count(*) || ':' || sum(amount_minor) || ':' || max(created_at) FROM donations"
  q -d postgres -c "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"
}
before_fp=$(fingerprint)
half=$((dump_bytes / 2))
d="$work/damaged"
mkdir -p "$d"
# flipped: four bytes in the middle changed; the original checksum
cp "$backup_file" "$d/flipped.dump"
printf '\x00\xff\x00\xff' | dd of="$d/flipped.dump" bs=1 seek="$half" conv=notrunc status=none
cp "$backup_file.sha256" "$d/flipped.dump.sha256"
# truncated: the first half (an interrupted copy); the original checksum
head -c "$half" "$backup_file" >"$d/truncated.dump"
cp "$backup_file.sha256" "$d/truncated.dump.sha256"
# the same two damaged before the checksum was taken, so only the restore can notice
cp "$d/flipped.dump" "$d/flipped-resummed.dump"
sha256sum "$d/flipped-resummed.dump" >"$d/flipped-resummed.dump.sha256"
cp "$d/truncated.dump" "$d/truncated-resummed.dump"
sha256sum "$d/truncated-resummed.dump" >"$d/truncated-resummed.dump.sha256"
# not a dump at all; and a dump without its checksum
head -c 65536 /dev/urandom >"$d/noise.dump"
sha256sum "$d/noise.dump" >"$d/noise.dump.sha256"
cp "$backup_file" "$d/unsummed.dump"

expect_refusal() { # FILE CODE MESSAGE
  local f=$1 code=$2 msg=$3 rc=0
  ops/backup/restore.sh "$f" --swap 2>"$work/err" || rc=$?
  [ "$rc" = "$code" ] || { cat "$work/err" >&2; fail "${f##*/}: exit $rc, expected $code"; }
  grep -q "$msg" "$work/err" || { cat "$work/err" >&2; fail "${f##*/}: no '$msg' in the error"; }
  [ "$(fingerprint)" = "$before_fp" ] || fail "${f##*/}: the live database or the database list changed"
  echo "${f##*/}: exit $rc, $(grep -m 1 'error:' "$work/err" | cut -c 1-150)"
}
expect_refusal "$d/flipped.dump" 2 "checksum mismatch"
expect_refusal "$d/truncated.dump" 2 "checksum mismatch"
expect_refusal "$d/flipped-resummed.dump" 1 "restore of .* failed; nothing was changed"
expect_refusal "$d/truncated-resummed.dump" 1 "restore of .* failed; nothing was changed"
expect_refusal "$d/noise.dump" 2 "not a readable pg_dump archive"
expect_refusal "$d/unsummed.dump" 2 "sha256 is missing"

# ---------------------------------------------------------------- retention
say "retention: fake-dated backups pruned with a fixed now"
r="$work/retention"
mkdir -p "$r"
now_stamp=20250315T123000Z
now_epoch=$(stamp_epoch "$now_stamp")
# Every hour for 40 days back from now, plus a second backup at :45 in each of the last six
# hours, plus a stray checksum and an old partial file.
for h in $(seq 0 $((40 * 24))); do
  s=$(date -u -d "@$((now_epoch - h * 3600))" +%Y%m%dT%H%M%SZ)
  : >"$r/platform-$s.dump"
  : >"$r/platform-$s.dump.sha256"
done
for h in $(seq 1 6); do
  s=$(date -u -d "@$((now_epoch - h * 3600 + 900))" +%Y%m%dT%H%M%SZ)
  : >"$r/platform-$s.dump"
  : >"$r/platform-$s.dump.sha256"
done
: >"$r/platform-20250101T000000Z.dump.sha256"
: >"$r/.platform-20250314T000000Z.dump.partial"
touch -d '2 days ago' "$r/.platform-20250314T000000Z.dump.partial"
: >"$r/other-20250101T000000Z.dump"
ops/backup/prune.sh --dir "$r" --name platform --now "$now_stamp" >"$work/prune.out"
kept=$(grep -c '^keep' "$work/prune.out")
hourly=$(grep -c '^keep hourly' "$work/prune.out")
daily=$(grep -c '^keep daily' "$work/prune.out")
# Younger than 48 h: 12:30 (newest) and 47 more hours, each by its newest backup. Older: the
# newest backup (23:30) of each day younger than 30 days, the oldest being 13 February
# (29.5 days); 13 March already has hourly ones, so its older backups go.
[ "$(grep -c '^keep newest' "$work/prune.out")" = 1 ] || fail "newest not kept"
[ "$hourly" = 47 ] || fail "kept $hourly hourly backups, expected 47"
oldest_kept=$(find "$r" -name 'platform-*.dump' -printf '%f\n' | sort | head -n 1)
[ "$oldest_kept" = "platform-20250213T233000Z.dump" ] || fail "oldest kept is $oldest_kept"
for f in "$r"/platform-*.dump; do
  s=${f##*/platform-}; s=${s%.dump}
  age=$(( now_epoch - $(stamp_epoch "$s") ))
  if [ "$age" -ge $((48 * 3600)) ]; then
    [[ $s == *T233000Z ]] || fail "daily backup $s is not the newest of its day"
  fi
  [ -e "$f.sha256" ] || fail "kept ${f##*/} without its checksum"
done
[ "$(find "$r" -name 'platform-*.dump' | wc -l)" = "$kept" ] || fail "files on disk differ from the keep list"
[ ! -e "$r/platform-20250101T000000Z.dump.sha256" ] || fail "stray checksum not removed"
[ ! -e "$r/.platform-20250314T000000Z.dump.partial" ] || fail "old partial file not removed"
[ -e "$r/other-20250101T000000Z.dump" ] || fail "a file of another name was touched"
for h in $(seq 1 6); do
  s=$(date -u -d "@$((now_epoch - h * 3600 + 900))" +%Y%m%dT%H%M%SZ)
  [ -e "$r/platform-$s.dump" ] || fail "the newest backup of its hour ($s) was pruned"
  s=$(date -u -d "@$((now_epoch - h * 3600))" +%Y%m%dT%H%M%SZ)
  [ ! -e "$r/platform-$s.dump" ] || fail "an older backup of an already kept hour ($s) was kept"
done
echo "kept $kept of $(( 40 * 24 + 1 + 6 )): 1 newest, $hourly hourly, $daily daily; stray and partial files removed"
# Backups that stopped 40 days ago: the last one stays.
r2="$work/retention-stopped"
mkdir -p "$r2"
: >"$r2/platform-20250201T000000Z.dump"
: >"$r2/platform-20250202T000000Z.dump"
ops/backup/prune.sh --dir "$r2" --name platform --now 20250315T000000Z >/dev/null
if [ ! -e "$r2/platform-20250202T000000Z.dump" ] || [ -e "$r2/platform-20250201T000000Z.dump" ]; then
  fail "with backups stopped, the last one must stay and older ones go"
fi
echo "backups stopped 41 days ago: the last one is kept"

say "figures"
echo "data: $seeded seeded donations, database $db_size, dump $dump_bytes bytes"
echo "backup (pg_dump -Fc, checksum, upload to S3): ${backup_s}s"
echo "restore from S3 into a side database with verification: ${side_restore_s}s"
echo "restore from a local file with verification and swap: ${swap_restore_s}s"
echo "backup and restore ok"
cd "$root"
