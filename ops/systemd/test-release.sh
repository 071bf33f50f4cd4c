#!/usr/bin/env bash
# Tests release.sh's install / activate / rollback logic without systemd: SYSTEMCTL is a
# stand-in that records each call and plays the services (a release whose platform binary
# says "bad" fails its smoke check, "migfail" fails its migration), and the smoke URL is a
# file:// URL that exists while the stand-in considers the services ready.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/release-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { printf 'release test FAILED: %s\n' "$*" >&2; exit 1; }

root="$work/opt"
mkdir -p "$root"
cat >"$work/systemctl" <<EOF
#!/usr/bin/env bash
# Stand-in for systemctl: records the call, then plays the unit.
echo "\$*" >>"$work/calls"
case "\$1 \$2" in
  "cat platform-backup.service") exit 0 ;;
  "start platform-backup.service") [ ! -e "$work/backup-fails" ] ;;
  "start platform-migrate.service") ! grep -q migfail "$root/current/bin/platform" ;;
  "restart platform.service")
    if grep -q bad "$root/current/bin/platform"; then rm -f "$work/ready"; else touch "$work/ready"; fi ;;
  *) exit 0 ;;
esac
EOF
chmod +x "$work/systemctl"
export SYSTEMCTL="$work/systemctl" PLATFORM_ROOT="$root" RELEASE_NO_ENV_FILE=1
export RELEASE_SMOKE_URLS="file://$work/ready" RELEASE_SMOKE_SECS=2

# tarball VERSION KIND: a release whose binaries are scripts saying KIND.
tarball() {
  local d="$work/build/$1"
  mkdir -p "$d/bin" "$d/backup"
  for b in router platform workers; do printf '#!/bin/sh\n# %s %s\n' "$2" "$1" >"$d/bin/$b"; chmod +x "$d/bin/$b"; done
  tar -C "$d" -czf "$work/$1.tar.gz" .
}
rel() { ops/systemd/release.sh "$@" 2>>"$work/log"; }
current() { basename "$(readlink "$root/current")"; }
previous() { basename "$(readlink "$root/previous" 2>/dev/null || echo none)"; }
expect_fail() { if rel "$@"; then fail "release.sh $* succeeded"; fi; }

for v in v1 v2; do tarball "$v" good; done
tarball v3 bad
tarball v4 migfail
rel install v1 "$work/v1.tar.gz"
rel activate v1
[ "$(current)" = v1 ] || fail "v1 not current"
[ -e "$work/ready" ] || fail "v1 not ready"
# Backup, then migrate, then the services with the router last.
want=$'cat platform-backup.service\nstart platform-backup.service\nstart platform-migrate.service\nrestart platform.service\nrestart workers.service\nrestart router.service'
[ "$(cat "$work/calls")" = "$want" ] || fail "call order: $(cat "$work/calls")"

rel install v2 "$work/v2.tar.gz"
rel activate v2
[ "$(current)/$(previous)" = v2/v1 ] || fail "after v2: $(current)/$(previous)"

: >"$work/calls"
rel install v3 "$work/v3.tar.gz"
expect_fail activate v3
[ "$(current)/$(previous)" = v2/v1 ] || fail "failed v3 not rolled back: $(current)/$(previous)"
[ -e "$work/ready" ] || fail "v2 not serving after the rollback"
grep -q "v3 was rolled back; v2 is live again" "$work/log" || fail "no rollback message"

: >"$work/calls"
rel install v4 "$work/v4.tar.gz"
expect_fail activate v4
[ "$(current)/$(previous)" = v2/v1 ] || fail "failed migration not undone: $(current)/$(previous)"
if grep -q restart "$work/calls"; then fail "services restarted after a failed migration"; fi

: >"$work/calls"
touch "$work/backup-fails"
expect_fail activate v1
rm "$work/backup-fails"
[ "$(current)" = v2 ] || fail "a failed backup changed the release"
if grep -q migrate "$work/calls"; then fail "migrated after a failed backup"; fi

expect_fail install v2 "$work/v2.tar.gz"
grep -q "exists already" "$work/log" || fail "reinstall not refused"
mkdir -p "$work/build/empty" && tar -C "$work/build/empty" -czf "$work/empty.tar.gz" .
expect_fail install v5 "$work/empty.tar.gz"
[ ! -e "$root/releases/v5" ] || fail "incomplete release left installed"
expect_fail install '../x' "$work/v1.tar.gz"

rel rollback
[ "$(current)/$(previous)" = v1/v2 ] || fail "manual rollback: $(current)/$(previous)"
rel status >"$work/status"
grep -q "^current: v1$" "$work/status" || fail "status: $(cat "$work/status")"
echo "release.sh: install, activate, automatic and manual rollback ok"
