#!/usr/bin/env bash
# Stops the compose stack started by ops/compose/up.sh and removes its containers and network;
# --purge also deletes its volumes (database, Redis, mail, Prometheus) and the secret files.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=ops/docker/lib.sh
. ops/docker/lib.sh
# shellcheck source=ops/compose/lib.sh
. ops/compose/lib.sh

purge=""
[ "${1:-}" = --purge ] && purge=1
if [ -n "$purge" ]; then
  compose down -v -t 40
  rm -rf "$SECRETS_DIR"
else
  compose down -t 40
fi
left=$(podman ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" | wc -l)
[ "$left" -eq 0 ] || die "$left containers of $COMPOSE_PROJECT are still there"
say "Compose stack $COMPOSE_PROJECT stopped${purge:+ and purged}"
