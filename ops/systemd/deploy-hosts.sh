#!/usr/bin/env bash
# Rolls a release bundle (bundle.sh) out to the hosts of one environment, one host at a time,
# over SSH; run by .github/workflows/deploy.yml, usable by hand.
#
#   ops/systemd/deploy-hosts.sh VERSION BUNDLE.tar.gz     deploy
#   ops/systemd/deploy-hosts.sh --rollback                 every host deployed by the last run
#                                                          goes back to its previous release
#
# Per host: copy the bundle and its release.sh, `release.sh install`, `release.sh activate`
# (backup and migrations on the first host only: the schema is shared). A host that fails its
# checks has already rolled itself back (release.sh); the hosts done before it are rolled back
# here too, so the environment stays on one version, and the state file is emptied (a later
# --rollback must not step back a second time). Exit 0 all hosts live, 1 otherwise.
#
# Environment: DEPLOY_HOSTS (space-separated, in rollout order), DEPLOY_USER (a user who may
# `sudo` release.sh), DEPLOY_SSH_KEY_FILE, DEPLOY_KNOWN_HOSTS_FILE (host keys are checked,
# never learnt), DEPLOY_STATE (file listing the hosts deployed; default ./deploy-hosts.state).
# DEPLOY_SSH / DEPLOY_SCP replace ssh / scp (tests).
set -euo pipefail

state=${DEPLOY_STATE:-deploy-hosts.state}
user=${DEPLOY_USER:-deploy}
ssh_opts=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=15)
if [ -n "${DEPLOY_SSH_KEY_FILE:-}" ]; then ssh_opts+=(-i "$DEPLOY_SSH_KEY_FILE" -o IdentitiesOnly=yes); fi
if [ -n "${DEPLOY_KNOWN_HOSTS_FILE:-}" ]; then ssh_opts+=(-o UserKnownHostsFile="$DEPLOY_KNOWN_HOSTS_FILE"); fi
read -r -a ssh_cmd <<<"${DEPLOY_SSH:-ssh}"
read -r -a scp_cmd <<<"${DEPLOY_SCP:-scp}"

say() { printf 'deploy: %s\n' "$*" >&2; }
on() { local host=$1; shift; "${ssh_cmd[@]}" "${ssh_opts[@]}" "$user@$host" "$*"; }

rollback_hosts() {
  local host rc=0
  [ -s "$state" ] || { say "no deployed hosts recorded in $state"; return 0; }
  while read -r host; do
    say "$host: rolling back"
    on "$host" "sudo /opt/platform/current/systemd/release.sh rollback" || { say "$host: rollback failed"; rc=1; }
  done < <(tac "$state")
  : >"$state"
  return "$rc"
}

if [ "${1:-}" = --rollback ]; then
  rollback_hosts
  exit $?
fi
[ $# -eq 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 64; }
version=$1 bundle=$2
[[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$ ]] || { say "bad version $version"; exit 64; }
[ -f "$bundle" ] || { say "no such bundle: $bundle"; exit 64; }
read -r -a hosts <<<"${DEPLOY_HOSTS:-}"
[ ${#hosts[@]} -gt 0 ] || { say "DEPLOY_HOSTS is empty"; exit 64; }
for host in "${hosts[@]}"; do
  [[ $host =~ ^[A-Za-z0-9.:-]+$ ]] || { say "bad host name $host"; exit 64; }
done

stage_dir="/tmp/platform-release-$version"
tar -xzf "$bundle" -O ./systemd/release.sh >"$bundle.release.sh"
: >"$state"
first=1
for host in "${hosts[@]}"; do
  say "$host: installing $version"
  flags="RELEASE_BACKUP=$first RELEASE_MIGRATE=$first"
  if ! on "$host" "mkdir -p -m 700 $stage_dir" \
    || ! "${scp_cmd[@]}" "${ssh_opts[@]}" "$bundle" "$user@$host:$stage_dir/bundle.tar.gz" \
    || ! "${scp_cmd[@]}" "${ssh_opts[@]}" "$bundle.release.sh" "$user@$host:$stage_dir/release.sh" \
    || ! on "$host" "test -d /opt/platform/releases/$version || sudo bash $stage_dir/release.sh install $version $stage_dir/bundle.tar.gz"; then
    say "$host: could not install $version"
    rollback_hosts || true
    exit 1
  fi
  if ! on "$host" "sudo env $flags bash $stage_dir/release.sh activate $version"; then
    say "$host: $version failed there (the host rolled itself back)"
    rollback_hosts || true
    exit 1
  fi
  echo "$host" >>"$state"
  on "$host" "rm -rf $stage_dir" || true
  first=0
  say "$host: $version live"
done
say "$version live on ${#hosts[@]} host(s)"
