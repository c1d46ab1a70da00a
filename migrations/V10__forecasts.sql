-- Day-ahead and week-ahead forecasts (`crate::forecasting`). Each run is kept with what it
-- forecast for each space and local day, so a day's forecast can be compared with what happened
-- (the daily report's forecast vs actual); the nightly run prunes all but the last forecast made
-- before each day began once the day is two weeks past.
CREATE TABLE forecast_runs (
    id           bigserial PRIMARY KEY,
    made_at      timestamptz NOT NULL DEFAULT now(),
    trigger      text        NOT NULL CHECK (trigger IN ('nightly', 'manual', 'input')),
    first_day    date        NOT NULL,
    days         integer     NOT NULL,
    requested_by text
);

-- One space's forecast for one local day: the day's entries and highest hourly occupancy, and per
-- local hour `{"entries": band, "occupancy": band}` (a band is the mean with its 80 % and 95 %
-- intervals: `{"mean", "lo80", "hi80", "lo95", "hi95"}`).
CREATE TABLE day_forecasts (
    run_id   bigint NOT NULL REFERENCES forecast_runs (id) ON DELETE CASCADE,
    space_id text   NOT NULL,
    day      date   NOT NULL,
    day_kind text   NOT NULL,
    holiday  text,
    entries  jsonb  NOT NULL,
    peak     jsonb  NOT NULL,
    hourly   jsonb  NOT NULL,
    PRIMARY KEY (run_id, space_id, day)
);
CREATE INDEX day_forecasts_space_day ON day_forecasts (space_id, day, run_id DESC);

-- What is known in advance about a day at a space (a closure, a weather outlook as a factor on
-- the expected level), set through the API; the next run takes it into account.
CREATE TABLE forecast_inputs (
    space_id text             NOT NULL,
    day      date             NOT NULL,
    closed   boolean          NOT NULL DEFAULT false,
    factor   double precision,
    note     text,
    set_by   text,
    set_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, day)
);

-- The latest forecast of every hour, one row per space and hour, for Grafana.
CREATE VIEW forecast_hourly AS
SELECT DISTINCT ON (f.space_id, f.day, h.ord)
       f.space_id,
       (f.day + (h.ord - 1) * interval '1 hour') AT TIME ZONE vf_time_zone() AS bucket,
       r.made_at,
       (h.v -> 'entries' ->> 'mean')::float8 AS entries,
       (h.v -> 'occupancy' ->> 'mean')::float8 AS occupancy,
       (h.v -> 'occupancy' ->> 'lo80')::float8 AS occupancy_lo80,
       (h.v -> 'occupancy' ->> 'hi80')::float8 AS occupancy_hi80,
       (h.v -> 'occupancy' ->> 'lo95')::float8 AS occupancy_lo95,
       (h.v -> 'occupancy' ->> 'hi95')::float8 AS occupancy_hi95
FROM day_forecasts f
JOIN forecast_runs r ON r.id = f.run_id
CROSS JOIN LATERAL jsonb_array_elements(f.hourly) WITH ORDINALITY AS h (v, ord)
ORDER BY f.space_id, f.day, h.ord, f.run_id DESC;
