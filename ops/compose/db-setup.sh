#!/bin/sh
# One-shot of the compose stack, after `platform migrate up`: creates the three services' login
# roles (ops/dev/login-roles.sql, idempotent) and sets their passwords from the secret files;
# with SEED_DEMO=1 it also seeds the demo tenants (ops/dev/seed.sql) and gives the demo tenant
# `grace` its emulated Stripe connected account, as ops/dev/up.sh does. Runs in the PostgreSQL
# image (it has psql); the passwords never appear on a command line. PGHOST: default postgres.
set -eu
PGPASSWORD=$(cat /run/secrets/pg_superuser_password)
export PGPASSWORD PGOPTIONS='-c client_min_messages=warning'
psql_owner() { psql -X -q -v ON_ERROR_STOP=1 -h "${PGHOST:-postgres}" -U postgres -d platform "$@"; }

psql_owner -f /setup/login-roles.sql
for r in web router workers; do
  psql_owner <<SQL
\set pw \`cat /run/secrets/pg_${r}_password\`
ALTER ROLE platform_${r} PASSWORD :'pw';
SQL
done
if [ "${SEED_DEMO:-0}" = 1 ]; then
  psql_owner -f /setup/seed.sql
  psql_owner -c "UPDATE tenants SET stripe_account_id = 'acct_gracelocal', stripe_account_status = 'enabled'
    WHERE slug = 'grace' AND stripe_account_id IS NULL"
fi
echo "db-setup: login roles ready${SEED_DEMO:+ (demo seed: $SEED_DEMO)}"
