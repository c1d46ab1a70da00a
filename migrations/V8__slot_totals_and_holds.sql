-- Slot totals from ticketing channels that count rather than list bookings (issue 16): per area,
-- channel, day and slot, the newest count (by the channel's own `as_of`). The per-slot figures
-- add them to the listed bookings' tally.
CREATE TABLE slot_totals (
    space_id    text        NOT NULL,
    channel     text        NOT NULL,
    day         date        NOT NULL,
    slot        time        NOT NULL,
    booked      bigint      NOT NULL CHECK (booked >= 0),
    checked_in  bigint      NOT NULL CHECK (checked_in >= 0),
    cancelled   bigint      NOT NULL CHECK (cancelled >= 0),
    as_of       timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, channel, day, slot)
);
CREATE INDEX slot_totals_by_day ON slot_totals (day, space_id);

-- An operator's hold on an area's ticket sales (POST /api/v1/spaces/{id}/admission/pause): in
-- force until released by a resumption (POST …/admission/resume).
CREATE TABLE admission_holds (
    id          bigserial   PRIMARY KEY,
    space_id    text        NOT NULL,
    reason      text        NOT NULL,
    actor       text        NOT NULL,
    held_at     timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    released_by text
);
CREATE INDEX admission_holds_active ON admission_holds (space_id) WHERE released_at IS NULL;
