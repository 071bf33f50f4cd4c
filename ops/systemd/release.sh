#!/usr/bin/env bash
# Installs, activates and rolls back releases on a host that runs the systemd units of this
# folder (the Leaseweb path). Run as root; ops/systemd/deploy-hosts.sh runs it over SSH.
#
#   release.sh install VERSION TARBALL   unpack a release (bin/, backup/, systemd/, docs/)
#                                        into $PLATFORM_ROOT/releases/VERSION
#   release.sh activate VERSION          back up, switch, migrate, restart, smoke-check; on a
#                                        failure after the switch, go back to the release
#                                        that was live and exit 1
#   release.sh rollback                  back to the release live before the current one,
#                                        and restart (migrations are not reverted: they are
#                                        additive, so the older binary runs on the newer schema)
#   release.sh status                    live release, history, installed releases
#
# Releases that went live are kept in $PLATFORM_ROOT/history (oldest first): activate adds
# one when it succeeds, rollback removes the newest. `current` and `previous` are symlinks to
# the last two entries.
#
# activate, step by step:
#   1. platform-backup.service (when installed and RELEASE_BACKUP=1): a failed backup stops
#      here with nothing changed;
#   2. $PLATFORM_ROOT/current -> releases/VERSION (an atomic rename);
#   3. platform-migrate.service with the new binary (RELEASE_MIGRATE=1; on one host per
#      environment is enough, the runner locks);
#   4. restart $RELEASE_SERVICES in order (router last: it keeps serving from its cache);
#   5. every URL in $RELEASE_SMOKE_URLS answers 2xx within $RELEASE_SMOKE_SECS.
# Settings (environment, or /etc/platform/release.env): PLATFORM_ROOT (/opt/platform),
# RELEASE_SERVICES ("platform workers router"), RELEASE_SMOKE_URLS (/ready on each binary's
# private operator listener: platform 9180, workers 9190, router 9100, all on 127.0.0.1),
# RELEASE_SMOKE_SECS (60),
# RELEASE_BACKUP (1), RELEASE_MIGRATE (1), SYSTEMCTL (systemctl; tests put a stand-in here).
set -euo pipefail

if [ -r /etc/platform/release.env ] && [ -z "${RELEASE_NO_ENV_FILE:-}" ]; then
  # shellcheck disable=SC1091
  . /etc/platform/release.env
fi
root=${PLATFORM_ROOT:-/opt/platform}
services=${RELEASE_SERVICES:-platform workers router}
smoke_urls=${RELEASE_SMOKE_URLS:-http://127.0.0.1:9180/ready http://127.0.0.1:9190/ready http://127.0.0.1:9100/ready}
smoke_secs=${RELEASE_SMOKE_SECS:-60}
do_backup=${RELEASE_BACKUP:-1}
do_migrate=${RELEASE_MIGRATE:-1}
systemctl=${SYSTEMCTL:-systemctl}
history="$root/history"

say() { printf 'release: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
valid_version() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$ ]] || die "bad version: $1"; }
current() { basename "$(readlink "$root/current" 2>/dev/null || echo none)"; }

# point NAME VERSION: $root/NAME -> releases/VERSION, replaced in one rename; "none" removes it.
point() {
  if [ "$2" = none ]; then rm -f "$root/$1"; return; fi
  ln -sfn "releases/$2" "$root/.$1.new"
  mv -T "$root/.$1.new" "$root/$1"
}

# nth_newest N: the Nth newest release in the history (1 = live), or "none".
nth_newest() {
  local lines
  lines=$(wc -l <"$history" 2>/dev/null || echo 0)
  if [ "$lines" -ge "$1" ]; then tail -n "$1" "$history" | head -n 1; else echo none; fi
}
# Symlinks from the history; a host set up by hand before the history existed starts one.
sync_links() {
  point current "$(nth_newest 1)"
  if [ "$(wc -l <"$history")" -ge 2 ]; then point previous "$(nth_newest 2)"; else point previous none; fi
}
init_history() {
  if [ ! -s "$history" ] && [ "$(current)" != none ]; then current >"$history"; fi
  touch "$history"
}

unit_exists() { "$systemctl" cat "$1" >/dev/null 2>&1; }

restart_all() {
  local s
  for s in $services; do
    say "restarting $s"
    "$systemctl" restart "$s.service" || return 1
  done
}

# Every URL answers 2xx within the time limit (bounded by smoke_secs).
smoke() {
  local deadline=$(( $(date +%s) + smoke_secs )) url
  for url in $smoke_urls; do
    until curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        say "smoke check failed: $url"
        return 1
      fi
      sleep 1
    done
    say "smoke ok: $url"
  done
}

cmd_install() {
  local version=$1 tarball=$2 dest tmp b
  valid_version "$version"
  [ -f "$tarball" ] || die "no such file: $tarball"
  dest="$root/releases/$version"
  [ -e "$dest" ] && die "$dest exists already (releases are never overwritten)"
  mkdir -p "$root/releases"
  tmp=$(mktemp -d "$root/releases/.install.XXXXXX")
  tar -xzf "$tarball" -C "$tmp" || { rm -rf "$tmp"; die "cannot unpack $tarball"; }
  for b in router platform workers; do
    [ -x "$tmp/bin/$b" ] || { rm -rf "$tmp"; die "$tarball has no executable bin/$b"; }
  done
  chmod -R go-w "$tmp"
  chmod 755 "$tmp"
  mv -T "$tmp" "$dest"
  say "installed $version in $dest"
}

cmd_activate() {
  local version=$1 live
  valid_version "$version"
  [ -d "$root/releases/$version" ] || die "release $version is not installed"
  init_history
  live=$(nth_newest 1)
  [ "$live" = "$version" ] && say "$version is already live: restarting and checking it"

  if [ "$do_backup" = 1 ] && unit_exists platform-backup.service; then
    say "backing up before the switch"
    "$systemctl" start platform-backup.service || die "backup failed; nothing changed"
  fi

  point current "$version"
  say "current -> $version (was $live)"

  if [ "$do_migrate" = 1 ]; then
    say "migrating with $version"
    if ! "$systemctl" start platform-migrate.service; then
      sync_links
      die "migrations failed; current is $live again, services untouched (journalctl -u platform-migrate)"
    fi
  fi

  if restart_all && smoke; then
    if [ "$live" != "$version" ]; then echo "$version" >>"$history"; fi
    sync_links
    say "release $version is live"
    return 0
  fi
  if [ "$live" = none ] || [ "$live" = "$version" ]; then
    die "release $version failed its checks and there is no other release to go back to"
  fi
  say "release $version failed: rolling back to $live"
  sync_links
  restart_all || die "rollback to $live: a service did not restart"
  smoke || die "rollback to $live: still failing its checks"
  die "release $version was rolled back; $live is live again"
}

cmd_rollback() {
  local cur back
  init_history
  cur=$(nth_newest 1)
  back=$(nth_newest 2)
  if [ "$back" = none ] || [ ! -d "$root/releases/$back" ]; then
    die "no earlier release in $history"
  fi
  head -n -1 "$history" >"$history.new"
  mv "$history.new" "$history"
  sync_links
  say "current -> $back (was $cur)"
  restart_all || die "a service did not restart"
  smoke || die "$back is not passing its checks either"
  say "rolled back to $back"
}

case ${1:-} in
  install) [ $# -eq 3 ] || die "usage: release.sh install VERSION TARBALL"; cmd_install "$2" "$3" ;;
  activate) [ $# -eq 2 ] || die "usage: release.sh activate VERSION"; cmd_activate "$2" ;;
  rollback) cmd_rollback ;;
  status)
    echo "current: $(current)"
    echo "previous: $(basename "$(readlink "$root/previous" 2>/dev/null || echo none)")"
    if [ -s "$history" ]; then sed 's/^/history: /' "$history"; fi
    if [ -d "$root/releases" ]; then
      find "$root/releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf 'installed: %f\n' | sort
    fi ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 64 ;;
esac
