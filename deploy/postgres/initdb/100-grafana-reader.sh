#!/bin/sh
# Runs once, when the TimescaleDB container initialises an empty data volume (the image runs
# every script in /docker-entrypoint-initdb.d/). Creates the read-only role Grafana's PostgreSQL
# datasource logs in as: it may read every table and view the service creates later (default
# privileges), and write nothing. tests/dashboards.rs runs this script against a real cluster and
# every dashboard query as this role.
set -eu
: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}" "${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD is not set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner="$POSTGRES_USER" -v db="$POSTGRES_DB" -v pw="$GRAFANA_DB_PASSWORD" <<'EOSQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'pw' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"db" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
EOSQL
