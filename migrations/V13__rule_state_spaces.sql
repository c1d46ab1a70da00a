-- The rule engine's state one row per space (docs/performance.md, "Province scale"): an evaluation
-- saves the spaces whose alerts changed with those changes, and every space every 30 s, instead of
-- the whole engine as one document each time (at 10,000 spaces that document was most of the
-- alerting loop's cost). A row here overrides the space's entry in the older `rule_state`
-- document, which is still read so an upgrade carries on from it.
CREATE TABLE rule_state_spaces (
    space_id   text        PRIMARY KEY,
    version    integer     NOT NULL,
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL
);
