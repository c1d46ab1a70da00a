-- Partitioned ingest (src/partition.rs, docs/scaling.md). Unused by a single instance.

-- The partition map in force: each unit (a scenic area or other child of the county root, or the
-- root itself) and the partition that counts it. A session with a map that moves a unit elsewhere
-- may only adopt its map when no other session holds a partition (the fence against two maps).
CREATE TABLE partition_units (
    unit      text    PRIMARY KEY,
    partition integer NOT NULL
);

-- Who holds each partition now (the advisory lock is the truth; this row is for people).
CREATE TABLE partition_owner (
    partition integer     PRIMARY KEY,
    holder    text        NOT NULL,
    since     timestamptz NOT NULL,
    spaces    integer     NOT NULL,
    devices   integer     NOT NULL
);
