#!/usr/bin/env bash
# Tests release.sh's install / activate / rollback logic without systemd, then bundle.sh and
# deploy-hosts.sh across two hosts. Stand-ins, all under one temporary folder ($WORK):
#   systemctl  records each call and plays the units of the host at PLATFORM_ROOT: a release
#              whose platform binary says "bad", or one with a "fail-<version>" file on the
#              host, is not ready;
#              "migfail" fails its migration; a "backup-fails" file fails the backup;
#   smoke URL  file://<host>/ready, present while that host's services are ready;
#   ssh, scp   run the command here with the host's own PLATFORM_ROOT and /tmp;
#   container CLI (bundle.sh) copies binaries out of fake images under $WORK/images.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d /tmp/release-test.XXXXXX)
export WORK
trap '[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"' EXIT
fail() { printf 'release test FAILED: %s\n' "$*" >&2; exit 1; }

cat >"$WORK/systemctl" <<'EOF'
#!/usr/bin/env bash
host=$(dirname "$PLATFORM_ROOT")
echo "$*" >>"$host/calls"
case "$1 $2" in
  "cat platform-backup.service") exit 0 ;;
  "start platform-backup.service") [ ! -e "$host/backup-fails" ] ;;
  "start platform-migrate.service") ! grep -q migfail "$PLATFORM_ROOT/current/bin/platform" ;;
  "restart platform.service")
    version=$(basename "$(readlink "$PLATFORM_ROOT/current")")
    if grep -q bad "$PLATFORM_ROOT/current/bin/platform" || [ -e "$host/fail-$version" ]; then
      rm -f "$host/ready"
    else
      touch "$host/ready"
    fi ;;
  *) exit 0 ;;
esac
EOF
cat >"$WORK/ssh" <<'EOF'
#!/usr/bin/env bash
# ssh [options] USER@HOST COMMAND
cmd=${*: -1}
host=${*: -2:1}
h="$WORK/hosts/${host#*@}"
mkdir -p "$h/opt" "$h/tmp"
cmd=${cmd//sudo /}
cmd=${cmd//\/tmp\//$h/tmp/}
cmd=${cmd//\/opt\/platform/$h/opt}
PLATFORM_ROOT="$h/opt" RELEASE_SMOKE_URLS="file://$h/ready" bash -c "$cmd"
EOF
cat >"$WORK/scp" <<'EOF'
#!/usr/bin/env bash
# scp [options] FILE USER@HOST:PATH
src=${*: -2:1}
dst=${*: -1}
host=${dst%%:*}
cp "$src" "$WORK/hosts/${host#*@}${dst#*:}"
EOF
cat >"$WORK/container-cli" <<'EOF'
#!/usr/bin/env bash
# create IMAGE (the image name is the container id) | cp ID:PATH DEST | rm ...
case "$1" in
  create) echo "$2" ;;
  cp) cp "$WORK/images/${2%%:*}${2#*:}" "$3" ;;
  rm) exit 0 ;;
esac
EOF
chmod +x "$WORK/systemctl" "$WORK/ssh" "$WORK/scp" "$WORK/container-cli"

# ---- release.sh on one host
root="$WORK/hosts/local/opt"
h="$WORK/hosts/local"
mkdir -p "$root"
export SYSTEMCTL="$WORK/systemctl" PLATFORM_ROOT="$root" RELEASE_NO_ENV_FILE=1
export RELEASE_SMOKE_URLS="file://$h/ready" RELEASE_SMOKE_SECS=2

# tarball VERSION KIND: a release whose binaries are scripts saying KIND.
tarball() {
  local d="$WORK/build/$1"
  mkdir -p "$d/bin" "$d/backup"
  for b in router platform workers; do
    printf '#!/bin/sh\n# %s %s\n' "$2" "$1" >"$d/bin/$b"
    chmod +x "$d/bin/$b"
  done
  tar -C "$d" -czf "$WORK/$1.tar.gz" .
}
rel() { ops/systemd/release.sh "$@" 2>>"$WORK/log"; }
current() { basename "$(readlink "$root/current")"; }
previous() { basename "$(readlink "$root/previous" 2>/dev/null || echo none)"; }
expect_fail() { if rel "$@"; then fail "release.sh $* succeeded"; fi; }

for v in v1 v2; do tarball "$v" good; done
tarball v3 bad
tarball v4 migfail
rel install v1 "$WORK/v1.tar.gz"
rel activate v1
[ "$(current)" = v1 ] || fail "v1 not current"
[ -e "$h/ready" ] || fail "v1 not ready"
# Backup, then migrate, then the services with the router last.
want=$'cat platform-backup.service\nstart platform-backup.service\nstart platform-migrate.service\nrestart platform.service\nrestart workers.service\nrestart router.service'
[ "$(cat "$h/calls")" = "$want" ] || fail "call order: $(cat "$h/calls")"

rel install v2 "$WORK/v2.tar.gz"
rel activate v2
[ "$(current)/$(previous)" = v2/v1 ] || fail "after v2: $(current)/$(previous)"

: >"$h/calls"
rel install v3 "$WORK/v3.tar.gz"
expect_fail activate v3
[ "$(current)/$(previous)" = v2/v1 ] || fail "failed v3 not rolled back: $(current)/$(previous)"
[ -e "$h/ready" ] || fail "v2 not serving after the rollback"
grep -q "v3 was rolled back; v2 is live again" "$WORK/log" || fail "no rollback message"

: >"$h/calls"
rel install v4 "$WORK/v4.tar.gz"
expect_fail activate v4
[ "$(current)/$(previous)" = v2/v1 ] || fail "failed migration not undone: $(current)/$(previous)"
if grep -q restart "$h/calls"; then fail "services restarted after a failed migration"; fi

: >"$h/calls"
touch "$h/backup-fails"
expect_fail activate v1
rm "$h/backup-fails"
[ "$(current)" = v2 ] || fail "a failed backup changed the release"
if grep -q migrate "$h/calls"; then fail "migrated after a failed backup"; fi

expect_fail install v2 "$WORK/v2.tar.gz"
grep -q "exists already" "$WORK/log" || fail "reinstall not refused"
mkdir -p "$WORK/build/empty"
tar -C "$WORK/build/empty" -czf "$WORK/empty.tar.gz" .
expect_fail install v5 "$WORK/empty.tar.gz"
[ ! -e "$root/releases/v5" ] || fail "incomplete release left installed"
expect_fail install '../x' "$WORK/v1.tar.gz"

rel rollback
[ "$(current)/$(previous)" = v1/none ] || fail "manual rollback: $(current)/$(previous)"
expect_fail rollback
rel status >"$WORK/status"
grep -q "^current: v1$" "$WORK/status" || fail "status: $(cat "$WORK/status")"
echo "release.sh: install, activate, automatic and manual rollback ok"

# ---- bundle.sh from fake images, deploy-hosts.sh to hosts a and b
for b in router platform workers; do
  mkdir -p "$WORK/images/$b/usr/local/bin"
  printf '#!/bin/sh\n# good bundled\n' >"$WORK/images/$b/usr/local/bin/$b"
done
bundle() {
  CONTAINER_CLI="$WORK/container-cli" ops/systemd/bundle.sh "$1" "$WORK/$1.tar.gz" \
    router platform workers 2>>"$WORK/log"
}
bundle b1
(cd "$WORK" && sha256sum -c --quiet b1.tar.gz.sha256) || fail "bundle checksum"
tar -tzf "$WORK/b1.tar.gz" >"$WORK/b1.list"
for f in ./bin/router ./bin/platform ./bin/workers ./backup/restore.sh ./systemd/release.sh \
  ./systemd/platform.service ./docs/operations.md ./VERSION; do
  grep -qx "$f" "$WORK/b1.list" || fail "bundle lacks $f"
done

unset PLATFORM_ROOT RELEASE_SMOKE_URLS
export DEPLOY_SSH="$WORK/ssh" DEPLOY_SCP="$WORK/scp" DEPLOY_HOSTS="a b" DEPLOY_STATE="$WORK/deploy.state"
deploy() { ops/systemd/deploy-hosts.sh "$@" 2>>"$WORK/log"; }
hcur() { basename "$(readlink "$WORK/hosts/$1/opt/current")"; }

deploy b1 "$WORK/b1.tar.gz" || fail "deploy b1: $(tail -n 5 "$WORK/log")"
[ "$(hcur a)/$(hcur b)" = b1/b1 ] || fail "b1 not on both hosts"
grep -q platform-migrate "$WORK/hosts/a/calls" || fail "host a did not migrate"
if grep -q -e platform-migrate -e platform-backup "$WORK/hosts/b/calls"; then
  fail "host b migrated or backed up too"
fi

bundle b2
deploy b2 "$WORK/b2.tar.gz" || fail "deploy b2: $(tail -n 5 "$WORK/log")"
[ "$(hcur a)/$(hcur b)" = b2/b2 ] || fail "b2 not on both hosts"

bundle b3
touch "$WORK/hosts/b/fail-b3"
if deploy b3 "$WORK/b3.tar.gz"; then fail "b3 deploy succeeded with host b failing"; fi
rm "$WORK/hosts/b/fail-b3"
[ "$(hcur a)/$(hcur b)" = b2/b2 ] || fail "after a failure on b: a=$(hcur a) b=$(hcur b), expected both on b2"
[ -e "$WORK/hosts/a/ready" ] || fail "host a not serving after the rollback"
[ -e "$WORK/hosts/b/ready" ] || fail "host b not serving after the rollback"
# The failed run rolled back already: a --rollback after it must not step back again.
deploy --rollback || fail "--rollback after a failed run"
[ "$(hcur a)/$(hcur b)" = b2/b2 ] || fail "second rollback: a=$(hcur a) b=$(hcur b)"

deploy b2 "$WORK/b2.tar.gz" || fail "redeploy b2: $(tail -n 5 "$WORK/log")"
deploy --rollback || fail "--rollback: $(tail -n 5 "$WORK/log")"
[ "$(hcur a)/$(hcur b)" = b1/b1 ] || fail "--rollback: a=$(hcur a) b=$(hcur b)"
echo "bundle.sh and deploy-hosts.sh: two hosts, one migration, a failing host rolls both back, --rollback ok"
