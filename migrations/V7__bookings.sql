-- Timed-entry reservations (issue 16): the latest version of every booking a ticketing system
-- reported, and when each area last heard from its ticketing system (stale booking data is
-- shown as stale, never as "no bookings").
CREATE TABLE bookings (
    space_id    text        NOT NULL,
    booking_id  text        NOT NULL,
    version     bigint      NOT NULL CHECK (version >= 1),
    day         date        NOT NULL,
    slot        time        NOT NULL,
    people      integer     NOT NULL CHECK (people BETWEEN 1 AND 1000),
    status      text        NOT NULL CHECK (status IN ('booked', 'cancelled', 'checked_in')),
    source      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, booking_id)
);
CREATE INDEX bookings_by_day ON bookings (day, space_id, slot);

CREATE TABLE booking_intake (
    space_id      text        PRIMARY KEY,
    last_received timestamptz NOT NULL,
    source        text        NOT NULL
);

-- An operator's confirmation that sales may resume, where `[admission]` asks for one.
CREATE TABLE admission_confirmations (
    id           bigserial   PRIMARY KEY,
    space_id     text        NOT NULL,
    confirmed_at timestamptz NOT NULL DEFAULT now(),
    actor        text        NOT NULL
);
CREATE INDEX admission_confirmations_by_space ON admission_confirmations (space_id, confirmed_at);
