#!/bin/sh
# Redis for the compose stack: the password comes from REDIS_PASSWORD_FILE (a compose secret)
# and goes into a configuration file under /tmp, so it never shows in the process list.
# `redis-entrypoint ping` is the health check.
set -eu
if [ ! -r "${REDIS_PASSWORD_FILE:-}" ]; then
  echo "redis-entrypoint: REDIS_PASSWORD_FILE must name a readable file" >&2
  exit 64
fi
pass=$(cat "$REDIS_PASSWORD_FILE")
if [ "${1:-}" = ping ]; then
  [ "$(REDISCLI_AUTH=$pass redis-cli -h 127.0.0.1 ping)" = PONG ]
  exit
fi
umask 077
conf=/tmp/redis.conf
printf 'bind 0.0.0.0 ::\nport 6379\nprotected-mode no\ndir /data\nappendonly yes\nrequirepass %s\n' "$pass" > "$conf"
exec redis-server "$conf" "$@"
