#!/bin/sh
# Runs once, when the primary's container initialises an empty data volume: the role the
# standby replicates as, and its line in pg_hba.conf (scram, from the compose network).
set -eu
: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}" "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v pw="$REPLICATION_PASSWORD" <<'EOSQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
EOSQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
