#!/bin/sh
# The standby's start: on an empty volume, a copy of the primary with pg_basebackup (-R writes
# standby.signal and primary_conninfo; application_name standby1 is what the primary's
# synchronous_standby_names waits for), then PostgreSQL as a hot standby. A promoted standby
# (no standby.signal any more) simply starts as the primary it became.
set -eu
: "${PGDATA:?}" "${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is not set}"
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    PGPASSWORD="$REPLICATION_PASSWORD" su-exec postgres pg_basebackup \
        --pgdata="$PGDATA" --write-recovery-conf --wal-method=stream --checkpoint=fast \
        --dbname="host=timescaledb port=5432 user=replicator application_name=standby1"
fi
exec su-exec postgres postgres
