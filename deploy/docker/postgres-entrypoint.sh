#!/bin/sh
# Creates the cluster on first start (empty volume), then runs PostgreSQL
# in the foreground. Clients on the compose network log in with a password
# (scram-sha-256); the local socket trusts the postgres user.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (see .env.example)}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pw"
  initdb -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$pw" --encoding=UTF8 >/dev/null
  rm -f "$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql -v ON_ERROR_STOP=1 -U postgres -q -v pw="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE dialgate LOGIN PASSWORD :'pw';
CREATE DATABASE dialgate OWNER dialgate;
SQL
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres: cluster created"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
