//! Every SQL statement the service runs, in one place. `tests/store.rs` prepares each one against
//! a freshly migrated database, so a schema change that breaks a statement fails a test.

pub const COPY_REPORTS: &str = "COPY reports (device_id, seq, ts, received_at, space_id, entries, exits, \
     repaired_entries, repaired_exits, total_in, total_out, period_s, gap_from, repair_from) FROM STDIN (FORMAT binary)";

/// A minute bucket's change over one or more batches: counts add up, the newest known occupancy
/// wins, the peak is the highest seen (`store::checkpoint::MergedBucket` merges the same way).
pub const UPSERT_BUCKETS: &str = "INSERT INTO space_series_1m (space_id, bucket, entries, exits, occupancy, peak, correction) \
     SELECT s, b, e, x, o, p, c FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], \
         $7::int8[]) AS t(s, b, e, x, o, c, p) \
     ON CONFLICT (space_id, bucket) DO UPDATE SET \
         entries = space_series_1m.entries + EXCLUDED.entries, \
         exits = space_series_1m.exits + EXCLUDED.exits, \
         correction = space_series_1m.correction + EXCLUDED.correction, \
         occupancy = COALESCE(EXCLUDED.occupancy, space_series_1m.occupancy), \
         peak = GREATEST(space_series_1m.peak, EXCLUDED.peak)";

pub const UPSERT_DEVICE_STATE: &str = "INSERT INTO device_state (device_id, high_seq, window_hi, window_lo, last_ts, \
         run_start, totals_in, totals_out, missing, gaps_total, repaired_total, resets_total, last_received, online, \
         repaired_hi, repaired_lo, prev_run_start, jumps_total, last_jump_at, last_jump_seq, jumped_in, jumped_out, high_ts) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::timestamptz[], $6::timestamptz[], \
         $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::timestamptz[], $14::bool[], \
         $15::int8[], $16::int8[], $17::timestamptz[], $18::int8[], $19::timestamptz[], $20::int8[], $21::int8[], \
         $22::int8[], $23::timestamptz[]) \
     ON CONFLICT (device_id) DO UPDATE SET high_seq = EXCLUDED.high_seq, window_hi = EXCLUDED.window_hi, \
         window_lo = EXCLUDED.window_lo, last_ts = EXCLUDED.last_ts, run_start = EXCLUDED.run_start, \
         totals_in = EXCLUDED.totals_in, totals_out = EXCLUDED.totals_out, missing = EXCLUDED.missing, \
         gaps_total = EXCLUDED.gaps_total, repaired_total = EXCLUDED.repaired_total, \
         resets_total = EXCLUDED.resets_total, last_received = EXCLUDED.last_received, online = EXCLUDED.online, \
         repaired_hi = EXCLUDED.repaired_hi, repaired_lo = EXCLUDED.repaired_lo, \
         prev_run_start = EXCLUDED.prev_run_start, jumps_total = EXCLUDED.jumps_total, \
         last_jump_at = EXCLUDED.last_jump_at, last_jump_seq = EXCLUDED.last_jump_seq, \
         jumped_in = EXCLUDED.jumped_in, jumped_out = EXCLUDED.jumped_out, high_ts = EXCLUDED.high_ts";

pub const UPSERT_SPACE_STATE: &str = "INSERT INTO space_state (space_id, day, entries, exits, base, minute, min_in, \
         min_out, closed_drift, peak, peak_at, last_report, adjust, corrected) \
     SELECT * FROM unnest($1::text[], $2::date[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], \
         $8::int8[], $9::int8[], $10::int8[], $11::timestamptz[], $12::timestamptz[], $13::int8[], $14::int8[]) \
     ON CONFLICT (space_id) DO UPDATE SET day = EXCLUDED.day, entries = EXCLUDED.entries, exits = EXCLUDED.exits, \
         base = EXCLUDED.base, minute = EXCLUDED.minute, min_in = EXCLUDED.min_in, min_out = EXCLUDED.min_out, \
         closed_drift = EXCLUDED.closed_drift, peak = EXCLUDED.peak, peak_at = EXCLUDED.peak_at, \
         last_report = EXCLUDED.last_report, adjust = EXCLUDED.adjust, corrected = EXCLUDED.corrected";

/// One batch's changed state as one journal row (`store::journal`'s format).
pub const JOURNAL_STATE: &str = "INSERT INTO state_journal (seq, body) VALUES ($1, $2)";

/// The journal in the order it was written, for the fold at a session's start.
pub const READ_JOURNAL: &str = "SELECT body FROM state_journal ORDER BY id";

/// A checkpoint's last slice has written what these journal rows hold: deleted in its transaction.
pub const CLEAR_JOURNAL: &str = "DELETE FROM state_journal WHERE seq <= $1";

/// The fold at a session's start has written everything the journal holds.
pub const EMPTY_JOURNAL: &str = "DELETE FROM state_journal";

/// Folding the journal at a session's start runs under this lock, so two starting sessions never
/// fold the same rows (the second then finds the journal empty).
pub const FOLD_LOCK: &str = "SELECT pg_advisory_xact_lock(7460203)";

pub const LOAD_DEVICE_STATE: &str = "SELECT device_id, high_seq, window_hi, window_lo, last_ts, run_start, totals_in, \
     totals_out, missing, gaps_total, repaired_total, resets_total, last_received, online, repaired_hi, repaired_lo, \
     prev_run_start, jumps_total, last_jump_at, last_jump_seq, jumped_in, jumped_out, high_ts FROM device_state";

pub const LOAD_SPACE_STATE: &str = "SELECT space_id, day, entries, exits, base, minute, min_in, min_out, closed_drift, \
     peak, peak_at, last_report, adjust, corrected FROM space_state";

/// The raw table settling what the de-duplication window cannot, for a batch's reports at once:
/// per report (`i`), whether its `(device, seq)` is stored with timestamp `e` (or, for reports
/// stamped on receipt, `e` NULL, anywhere within its run `[lo, hi)`), and
/// otherwise the stored report whose repair covers it — by time for device-stamped reports (the
/// repair stands for what the device counted between its previous report and this one), by seq
/// for those stamped on receipt — with what is left of that repair. `reports_repairs` keeps the second part to the (few) rows that repaired a gap.
pub const LOOKUP_REPORTS: &str = "SELECT q.i, \
         EXISTS (SELECT 1 FROM reports r WHERE r.device_id = q.d AND r.seq = q.s \
             AND r.ts >= COALESCE(q.e, q.lo, '-infinity') AND r.ts <= COALESCE(q.e, 'infinity') AND CASE \
             WHEN q.e IS NOT NULL THEN r.ts = q.e \
             ELSE r.ts >= COALESCE(q.lo, '-infinity') AND r.ts < COALESCE(q.hi, 'infinity') END) AS present, \
         o.seq, o.ts, o.repaired_entries, o.repaired_exits \
     FROM unnest($1::text[], $2::int8[], $3::timestamptz[], $4::timestamptz[], $5::int4[], $6::timestamptz[]) \
         AS q(d, s, lo, hi, i, e) \
     LEFT JOIN LATERAL (SELECT r.seq, r.ts, r.repaired_entries, r.repaired_exits FROM reports r \
         WHERE r.device_id = q.d AND r.gap_from IS NOT NULL \
             AND r.ts >= COALESCE(q.e, q.lo, '-infinity') AND CASE WHEN q.e IS NOT NULL \
             THEN r.repair_from < q.e AND r.ts > q.e \
             ELSE r.seq > q.s AND r.gap_from <= q.s \
                 AND r.ts >= COALESCE(q.lo, '-infinity') AND r.ts < COALESCE(q.hi, 'infinity') END \
         ORDER BY r.ts, r.seq LIMIT 1) o ON true";

/// Takes counts out of stored repairs whose late originals arrived (`$4`/`$5` never exceed what
/// is left: the core takes at most that).
pub const MOVE_REPAIRS: &str = "UPDATE reports r SET repaired_entries = r.repaired_entries - m.e, \
         repaired_exits = r.repaired_exits - m.x \
     FROM (SELECT d, s, t, sum(e)::int AS e, sum(x)::int AS x \
         FROM unnest($1::text[], $2::int8[], $3::timestamptz[], $4::int4[], $5::int4[]) AS u(d, s, t, e, x) \
         GROUP BY d, s, t) m \
     WHERE r.device_id = m.d AND r.seq = m.s AND r.ts = m.t";

/// Finished days that late reports changed.
pub const UPSERT_REVISIONS: &str = "INSERT INTO day_revisions (space_id, day, revised_at, reports, entries, exits) \
     SELECT s, d, $6, n, e, x FROM unnest($1::text[], $2::date[], $3::int8[], $4::int8[], $5::int8[]) \
         AS t(s, d, n, e, x) \
     ON CONFLICT (space_id, day) DO UPDATE SET revised_at = EXCLUDED.revised_at, \
         reports = day_revisions.reports + EXCLUDED.reports, entries = day_revisions.entries + EXCLUDED.entries, \
         exits = day_revisions.exits + EXCLUDED.exits";

/// Head counts waiting for the ingester of their space.
pub const PENDING_RECOUNTS: &str = "SELECT id, space_id, inside, requested_at FROM recounts \
     WHERE applied_at IS NULL AND space_id = ANY($1) ORDER BY id LIMIT 100";
/// Completes the head counts a batch applied, in its transaction.
pub const COMPLETE_RECOUNTS: &str = "UPDATE recounts r SET applied_at = u.at, before = u.b, delta = u.d \
     FROM unnest($1::int8[], $2::timestamptz[], $3::int8[], $4::int8[]) AS u(id, at, b, d) \
     WHERE r.id = u.id AND r.applied_at IS NULL";

pub const SERIES_1M: &str = "SELECT bucket, entries, exits, occupancy, peak, correction FROM space_series_1m \
     WHERE space_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket LIMIT $4";
pub const SERIES_1H: &str = "SELECT bucket, entries, exits, occupancy, peak, correction FROM space_series_1h \
     WHERE space_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket LIMIT $4";
pub const SERIES_1D: &str = "SELECT bucket, entries, exits, occupancy, peak, correction FROM space_series_1d \
     WHERE space_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket LIMIT $4";

pub const PING: &str = "SELECT 1";
/// Replica lag: the primary's WAL position, and how far the replica's replay is behind it.
pub const PRIMARY_LSN: &str = "SELECT pg_current_wal_lsn()::text";
pub const REPLICA_LAG: &str = "SELECT CASE WHEN pg_is_in_recovery() \
         THEN pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn())::float8 END AS behind_bytes, \
     extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS age_s";
/// Failover losses, one row per missing seq range (arrays of equal length).
pub const INSERT_LOSSES: &str = "INSERT INTO report_losses (device_id, seq_from, seq_to, after_ts, until_ts) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::timestamptz[], $5::timestamptz[])";
/// The server a connection reached, `host:port` (`local:port` over a Unix socket).
pub const SERVER_ADDR: &str =
    "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || current_setting('port')";

/// The ingester's fence: ends the server side of connections that earlier sessions of the same
/// ingester (same `application_name`) left behind, e.g. a transaction whose client vanished into a
/// network black hole and that still holds row locks the new session needs.
pub const FENCE: &str = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
     WHERE application_name = current_setting('application_name') AND pid <> pg_backend_pid() \
     AND datname = current_database()";
pub const FENCED_LEFT: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE application_name = current_setting('application_name') AND pid <> pg_backend_pid() \
     AND datname = current_database()";

pub const PRUNE_REPORTS_PLAIN: &str = "DELETE FROM reports WHERE ts < $1";
/// Drops the `reports` chunks that end before `$1` (whole days: rows up to a day older than `$1`
/// can stay until the next run); returns how many chunks went.
pub const PRUNE_REPORTS_TIMESCALE: &str =
    "SELECT count(*) FROM drop_chunks('reports', older_than => $1::timestamptz)";

/// Sets the county time zone used by the daily view (a literal: functions cannot take parameters
/// in DDL); the caller has validated `tz` as an IANA name.
pub fn set_time_zone(tz: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION vf_time_zone() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT '{}'::text $$",
        tz.replace('\'', "''")
    )
}

/// Statements the plain-PostgreSQL path runs, for the prepare-everything test.
pub const ALL_PLAIN: &[&str] = &[
    UPSERT_BUCKETS,
    UPSERT_DEVICE_STATE,
    UPSERT_SPACE_STATE,
    JOURNAL_STATE,
    CLEAR_JOURNAL,
    EMPTY_JOURNAL,
    READ_JOURNAL,
    FOLD_LOCK,
    LOAD_DEVICE_STATE,
    LOAD_SPACE_STATE,
    LOOKUP_REPORTS,
    MOVE_REPAIRS,
    UPSERT_REVISIONS,
    PENDING_RECOUNTS,
    COMPLETE_RECOUNTS,
    SERIES_1M,
    SERIES_1H,
    SERIES_1D,
    PING,
    SERVER_ADDR,
    INSERT_LOSSES,
    PRIMARY_LSN,
    REPLICA_LAG,
    FENCE,
    FENCED_LEFT,
    PRUNE_REPORTS_PLAIN,
];

/// Statements only the TimescaleDB path runs (they need the extension to prepare).
pub const ALL_TIMESCALE: &[&str] = &[PRUNE_REPORTS_TIMESCALE];

// ---- alerts (src/store/alerts.rs) ----

pub const LOAD_RULE_STATE: &str = "SELECT state FROM rule_state WHERE id = 1";
/// The rule engine's per-space states (`rule_state_spaces`), which override `rule_state`'s.
pub const LOAD_SPACE_RULE_STATES: &str = "SELECT version, state FROM rule_state_spaces";
pub const SAVE_SPACE_RULE_STATES: &str = "INSERT INTO rule_state_spaces (space_id, version, state, updated_at) \
     SELECT s, $2, j, $4 FROM unnest($1::text[], $3::jsonb[]) AS t(s, j) \
     ON CONFLICT (space_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state, \
         updated_at = EXCLUDED.updated_at";

/// Opens an alert, or updates the open one with the same identity (re-crossing while open).
/// An escalation fires it again even if it had been acknowledged.
pub const UPSERT_OPEN_ALERT: &str = "INSERT INTO alerts (space_id, kind, severity, state, level, started_at, updated_at, details) \
     VALUES ($1, $2, $3, 'firing', $4, $5, $6, $7) \
     ON CONFLICT (space_id, kind) WHERE state <> 'resolved' DO UPDATE SET severity = EXCLUDED.severity, \
         level = EXCLUDED.level, updated_at = EXCLUDED.updated_at, details = EXCLUDED.details, \
         state = CASE WHEN $8 THEN 'firing' ELSE alerts.state END \
     RETURNING id, state, started_at";
pub const RESOLVE_ALERT: &str = "UPDATE alerts SET state = 'resolved', ended_at = $3, updated_at = $3 \
     WHERE space_id = $1 AND kind = $2 AND state <> 'resolved' RETURNING id, state, started_at";
pub const INSERT_TRANSITION: &str = "INSERT INTO alert_transitions (alert_id, at, change, state, severity, level, load, \
         actor, message_zh, message_en, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";
pub const INSERT_OUTBOX: &str = "INSERT INTO webhook_outbox (delivery_id, subscription_id, transition_id, space_id, event) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id) DO NOTHING";

pub const DUE_ESCALATIONS: &str = "SELECT id FROM alerts WHERE state = 'firing' AND escalated_at IS NULL \
     AND severity IN ('major', 'critical') AND started_at <= $1 ORDER BY id";
pub const MARK_ESCALATED: &str = "UPDATE alerts SET escalated_at = $2 WHERE id = $1";
pub const LAST_TRANSITION: &str = "SELECT t.id, t.details FROM alert_transitions t WHERE t.alert_id = $1 \
     AND t.change <> 'acknowledge' ORDER BY t.id DESC LIMIT 1";

pub const DUE_DELIVERIES: &str = "SELECT id, delivery_id, event, attempts FROM webhook_outbox \
     WHERE subscription_id = $1 AND status = 'pending' AND next_attempt_at <= now() ORDER BY id LIMIT $2";
pub const NEXT_DUE: &str = "SELECT min(next_attempt_at) FROM webhook_outbox WHERE subscription_id = $1 AND status = 'pending'";
pub const MARK_DELIVERED: &str = "UPDATE webhook_outbox SET status = 'delivered', attempts = attempts + 1, \
     last_attempt_at = now(), delivered_at = now(), last_status = $2, latency_ms = $3, last_error = NULL WHERE id = $1";
pub const MARK_RETRY: &str = "UPDATE webhook_outbox SET attempts = attempts + 1, last_attempt_at = now(), \
     next_attempt_at = now() + make_interval(secs => $2), last_status = $3, last_error = $4 WHERE id = $1";
pub const MARK_DEAD: &str = "UPDATE webhook_outbox SET status = 'dead', attempts = attempts + 1, last_attempt_at = now(), \
     last_status = $2, last_error = $3 WHERE id = $1";
pub const REPLAY_DEAD: &str = "UPDATE webhook_outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), \
     last_error = NULL WHERE id = $1 AND status = 'dead' RETURNING subscription_id";
pub const LIST_DELIVERIES: &str = "SELECT id, delivery_id, subscription_id, space_id, status, attempts, created_at, \
     last_attempt_at, delivered_at, last_status, last_error, latency_ms, event->>'alert_id' AS alert_id \
     FROM webhook_outbox WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR subscription_id = $2) \
     ORDER BY id DESC LIMIT $3 OFFSET $4";
pub const OUTBOX_PENDING: &str =
    "SELECT subscription_id, count(*) FROM webhook_outbox WHERE status = 'pending' GROUP BY 1";

pub const LIST_ALERTS: &str = "SELECT id, space_id, kind, severity, state, level, started_at, updated_at, ended_at, \
         acknowledged_by, acknowledged_at, ack_comment, escalated_at, details \
     FROM alerts WHERE ($1::text IS NULL OR space_id = $1) AND ($2::text IS NULL OR state = $2) \
         AND ($3::text[] IS NULL OR severity = ANY($3)) AND ($4::timestamptz IS NULL OR updated_at >= $4) \
         AND ($5::timestamptz IS NULL OR started_at < $5) \
     ORDER BY updated_at DESC, id DESC LIMIT $6 OFFSET $7";
pub const GET_ALERT: &str = "SELECT id, space_id, kind, severity, state, level, started_at, updated_at, ended_at, \
         acknowledged_by, acknowledged_at, ack_comment, escalated_at, details FROM alerts WHERE id = $1";
pub const ALERT_TRANSITIONS: &str = "SELECT id, at, change, state, severity, level, load, actor, message_zh, message_en \
     FROM alert_transitions WHERE alert_id = $1 ORDER BY id";
pub const ACK_ALERT: &str = "UPDATE alerts SET state = 'acknowledged', acknowledged_by = $2, acknowledged_at = $3, \
     ack_comment = $4, updated_at = $3 WHERE id = $1 AND state = 'firing' \
     RETURNING id, severity, level";
pub const LEVEL_HISTORY: &str = "SELECT t.at, a.kind, t.change, t.severity, t.level, t.load, t.message_zh, t.message_en \
     FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id \
     WHERE a.space_id = $1 AND a.kind IN ('instant_level', 'daily_level') AND t.at >= $2 AND t.at < $3 \
     AND t.change <> 'acknowledge' ORDER BY t.at, t.id LIMIT $4 OFFSET $5";
/// The instantaneous level a space was at when `$2` began: the level of its last level transition
/// before then (none: normal).
pub const LEVEL_BEFORE: &str = "SELECT t.level FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id \
     WHERE a.space_id = $1 AND a.kind = 'instant_level' AND t.at < $2 AND t.change <> 'acknowledge' \
     ORDER BY t.at DESC, t.id DESC LIMIT 1";
/// Art. 45 evidence: every orange-or-above announcement of a space on a local day, to whom it
/// went and when each receiver confirmed it.
pub const COMPLIANCE: &str = "SELECT t.at, a.kind, t.change, t.severity, t.level, t.message_zh, o.subscription_id, \
         o.status, o.delivered_at, o.last_status, o.attempts \
     FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id \
     LEFT JOIN webhook_outbox o ON o.transition_id = t.id \
     WHERE a.space_id = $1 AND t.at >= $2 AND t.at < $3 AND t.severity IN ('major', 'critical') \
     ORDER BY t.at, t.id, o.subscription_id LIMIT $4 OFFSET $5";

pub const ACTIVE_CAPS: &str = "SELECT id, space_id, percent, reason, starts_at, ends_at, created_by, created_at, \
     revoked_at, revoked_by FROM policy_caps \
     WHERE revoked_at IS NULL AND (ends_at IS NULL OR ends_at > now()) ORDER BY id";
pub const LIST_CAPS: &str = "SELECT id, space_id, percent, reason, starts_at, ends_at, created_by, created_at, \
     revoked_at, revoked_by FROM policy_caps WHERE space_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3";
pub const INSERT_CAP: &str = "INSERT INTO policy_caps (space_id, percent, reason, starts_at, ends_at, created_by) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
pub const REVOKE_CAP: &str = "UPDATE policy_caps SET revoked_at = now(), revoked_by = $3 \
     WHERE id = $1 AND space_id = $2 AND revoked_at IS NULL RETURNING id";

pub const ACTIVE_HAZARDS: &str = "SELECT id, space_id, kind, severity, message, since, until FROM hazards \
     WHERE cleared_at IS NULL AND (until IS NULL OR until > now()) ORDER BY id";
pub const INSERT_HAZARD: &str = "INSERT INTO hazards (space_id, kind, severity, message, since, until, source) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
pub const CLEAR_HAZARDS: &str =
    "UPDATE hazards SET cleared_at = $3 WHERE space_id = $1 AND kind = $2 AND cleared_at IS NULL";
pub const CLEAR_HAZARD_BY_ID: &str = "UPDATE hazards SET cleared_at = now() WHERE id = $1 AND space_id = $2 \
     AND cleared_at IS NULL RETURNING id";

pub const INSERT_AUDIT: &str =
    "INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4)";
pub const LIST_AUDIT: &str = "SELECT id, at, actor, action, target, details FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2";

/// Alert statements, for the prepare-everything test.
pub const ALL_ALERTS: &[&str] = &[
    LOAD_RULE_STATE,
    LOAD_SPACE_RULE_STATES,
    SAVE_SPACE_RULE_STATES,
    UPSERT_OPEN_ALERT,
    RESOLVE_ALERT,
    INSERT_TRANSITION,
    INSERT_OUTBOX,
    DUE_ESCALATIONS,
    MARK_ESCALATED,
    LAST_TRANSITION,
    DUE_DELIVERIES,
    NEXT_DUE,
    MARK_DELIVERED,
    MARK_RETRY,
    MARK_DEAD,
    REPLAY_DEAD,
    LIST_DELIVERIES,
    OUTBOX_PENDING,
    LIST_ALERTS,
    GET_ALERT,
    ALERT_TRANSITIONS,
    ACK_ALERT,
    LEVEL_HISTORY,
    LEVEL_BEFORE,
    COMPLIANCE,
    ACTIVE_CAPS,
    LIST_CAPS,
    INSERT_CAP,
    REVOKE_CAP,
    ACTIVE_HAZARDS,
    INSERT_HAZARD,
    CLEAR_HAZARDS,
    CLEAR_HAZARD_BY_ID,
    INSERT_AUDIT,
    LIST_AUDIT,
];

// ---- dispatch (src/store/dispatch.rs) ----

pub const INSERT_ADVICE: &str = "INSERT INTO dispatch_advice (at, hub_id, advice, change, shuttles, diversions) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
pub const LATEST_ADVICE: &str = "SELECT DISTINCT ON (hub_id) id, at, hub_id, advice, change, decision, decided_by, \
     decided_at, decision_reason FROM dispatch_advice ORDER BY hub_id, at DESC, id DESC";
pub const ADVICE_HISTORY: &str = "SELECT id, at, hub_id, advice, change, decision, decided_by, decided_at, decision_reason \
     FROM dispatch_advice WHERE ($1::text IS NULL OR hub_id = $1) AND at >= $2 AND at < $3 \
     ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5";
pub const DECIDE_ADVICE: &str = "UPDATE dispatch_advice SET decision = $2, decided_by = $3, decided_at = $4, \
     decision_reason = $5 WHERE id = $1 AND decision IS NULL RETURNING hub_id";
/// Advice followed recently: its shuttles are (or were) on the road.
pub const FOLLOWED_SINCE: &str = "SELECT advice, decided_at FROM dispatch_advice \
     WHERE decision = 'followed' AND decided_at >= $1 ORDER BY decided_at";

pub const ADVICE_HUB: &str = "SELECT hub_id FROM dispatch_advice WHERE id = $1";
pub const GET_ADVICE: &str = "SELECT id, at, hub_id, advice, change, decision, decided_by, decided_at, decision_reason \
     FROM dispatch_advice WHERE id = $1";

pub const ALL_DISPATCH: &[&str] = &[
    INSERT_ADVICE,
    LATEST_ADVICE,
    ADVICE_HISTORY,
    DECIDE_ADVICE,
    FOLLOWED_SINCE,
    ADVICE_HUB,
    GET_ADVICE,
];

// ---- daily report and its push upstream (src/store/reports.rs) ----

/// Per space, a day's alert notices: every transition but acknowledgements; of them the Tourism
/// Law art. 45 announcements (a capacity level or its forecast at orange or above, opening or
/// escalating); and of those the ones at least one receiver confirmed.
pub const DAY_NOTICES: &str = "SELECT a.space_id, count(*) AS alerts, \
         count(*) FILTER (WHERE t.severity IN ('major', 'critical') AND t.change IN ('open', 'escalate') \
             AND (a.kind IN ('instant_level', 'daily_level') OR starts_with(a.kind, 'early_warning.'))) AS art45, \
         count(*) FILTER (WHERE t.severity IN ('major', 'critical') AND t.change IN ('open', 'escalate') \
             AND (a.kind IN ('instant_level', 'daily_level') OR starts_with(a.kind, 'early_warning.')) \
             AND EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.transition_id = t.id AND o.status = 'delivered')) AS art45_confirmed \
     FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id \
     WHERE t.at >= $1 AND t.at < $2 AND t.change <> 'acknowledge' GROUP BY a.space_id";
/// Per space, what the outbox did with the day's notices (escalations and dispatch advice
/// included): delivered, dead letters, still pending.
pub const DAY_DELIVERIES: &str = "SELECT space_id, count(*) FILTER (WHERE status = 'delivered') AS delivered, \
         count(*) FILTER (WHERE status = 'dead') AS dead, count(*) FILTER (WHERE status = 'pending') AS pending \
     FROM webhook_outbox WHERE created_at >= $1 AND created_at < $2 GROUP BY space_id";
/// The day's recorded dispatch advice, oldest first, with what dispatchers decided.
pub const DAY_ADVICE: &str = "SELECT hub_id, advice, decision FROM dispatch_advice \
     WHERE at >= $1 AND at < $2 ORDER BY at, id";
/// Each hub's last advice before `$1`: what was in force when the day began.
pub const ADVICE_BEFORE: &str = "SELECT DISTINCT ON (hub_id) hub_id, advice, decision FROM dispatch_advice \
     WHERE at < $1 ORDER BY hub_id, at DESC, id DESC";

/// Records the scheduled push of a day once (a restart or a second instance finds it there).
pub const INSERT_SCHEDULED_PUSH: &str = "INSERT INTO report_push (day, trigger, delivery_id, format, content_type, body) \
     VALUES ($1, 'schedule', $2, $3, $4, $5) ON CONFLICT (day) WHERE trigger = 'schedule' DO NOTHING RETURNING id";
/// An admin's push of a day: a delivery of its own, unless one for the day is still pending.
pub const INSERT_MANUAL_PUSH: &str = "INSERT INTO report_push (day, trigger, delivery_id, format, content_type, body, requested_by) \
     SELECT $1::date, 'manual', 'vf-report-' || to_char($1::date, 'YYYY-MM-DD') || '-m' || nextval('report_push_manual')::text, \
         $2, $3, $4, $5 \
     WHERE NOT EXISTS (SELECT 1 FROM report_push WHERE day = $1::date AND status = 'pending') \
     RETURNING id, delivery_id";
/// The latest day the schedule has taken on (whatever became of its push).
pub const LAST_SCHEDULED_DAY: &str = "SELECT max(day) FROM report_push WHERE trigger = 'schedule'";
/// Claims the next due push for `$1` seconds (its attempt's time-out and a margin): another
/// worker, or this one after a crash, tries it again only once the claim lapses.
pub const CLAIM_PUSH: &str = "UPDATE report_push SET next_attempt_at = now() + make_interval(secs => $1) \
     WHERE id = (SELECT id FROM report_push WHERE status = 'pending' AND next_attempt_at <= now() \
         ORDER BY day, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING id, day, delivery_id, content_type, body, attempts";
pub const NEXT_PUSH_DUE: &str =
    "SELECT min(next_attempt_at) FROM report_push WHERE status = 'pending'";
pub const INSERT_PUSH_ATTEMPT: &str = "INSERT INTO report_push_attempts (push_id, attempt, outcome, http_status, error, latency_ms) \
     VALUES ($1, $2, $3, $4, $5, $6)";
pub const MARK_PUSH_DELIVERED: &str = "UPDATE report_push SET status = 'delivered', attempts = attempts + 1, \
     last_attempt_at = now(), delivered_at = now(), last_status = $2, last_error = NULL WHERE id = $1";
pub const MARK_PUSH_RETRY: &str = "UPDATE report_push SET attempts = attempts + 1, last_attempt_at = now(), \
     next_attempt_at = now() + make_interval(secs => $2), last_status = $3, last_error = $4 WHERE id = $1";
pub const MARK_PUSH_DEAD: &str = "UPDATE report_push SET status = 'dead', attempts = attempts + 1, \
     last_attempt_at = now(), last_status = $2, last_error = $3 WHERE id = $1";

/// The statements that record one attempt of a push and its new state, per push table: the daily
/// report's ([`REPORT_PUSH`]) and the live feed's ([`LIVE_FEED`]) share the columns, so they
/// share the code that records (`store::reports::record_attempt`) through this.
#[derive(Debug)]
pub struct PushTable {
    /// `$1` push id, `$2` attempt, `$3` outcome, `$4` HTTP status, `$5` error, `$6` latency (ms).
    pub insert_attempt: &'static str,
    /// `$1` push id, `$2` HTTP status.
    pub mark_delivered: &'static str,
    /// `$1` push id, `$2` seconds until the next attempt, `$3` HTTP status, `$4` error.
    pub mark_retry: &'static str,
    /// `$1` push id, `$2` HTTP status, `$3` error.
    pub mark_dead: &'static str,
}

/// The daily report's push table.
pub const REPORT_PUSH: PushTable = PushTable {
    insert_attempt: INSERT_PUSH_ATTEMPT,
    mark_delivered: MARK_PUSH_DELIVERED,
    mark_retry: MARK_PUSH_RETRY,
    mark_dead: MARK_PUSH_DEAD,
};
pub const LIST_PUSHES: &str = "SELECT id, day, trigger, delivery_id, format, status, attempts, created_at, \
         last_attempt_at, delivered_at, last_status, last_error, requested_by \
     FROM report_push ORDER BY day DESC, id DESC LIMIT $1 OFFSET $2";

/// Report statements, for the prepare-everything test.
pub const ALL_REPORTS: &[&str] = &[
    DAY_NOTICES,
    DAY_DELIVERIES,
    DAY_ADVICE,
    ADVICE_BEFORE,
    INSERT_SCHEDULED_PUSH,
    INSERT_MANUAL_PUSH,
    LAST_SCHEDULED_DAY,
    CLAIM_PUSH,
    NEXT_PUSH_DUE,
    INSERT_PUSH_ATTEMPT,
    MARK_PUSH_DELIVERED,
    MARK_PUSH_RETRY,
    MARK_PUSH_DEAD,
    LIST_PUSHES,
];

// ---- forecasts (src/store/forecasts.rs) ----

pub const INSERT_FORECAST_RUN: &str = "INSERT INTO forecast_runs (trigger, first_day, days, requested_by) \
     VALUES ($1, $2, $3, $4) RETURNING id, made_at";
/// A run's days for every space at once (arrays of equal length).
pub const INSERT_DAY_FORECASTS: &str = "INSERT INTO day_forecasts (run_id, space_id, day, day_kind, holiday, entries, peak, hourly) \
     SELECT $1, u.* FROM unnest($2::text[], $3::date[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[], $8::jsonb[]) \
     AS u (space_id, day, day_kind, holiday, entries, peak, hourly)";
/// For each of the spaces and days, the last forecast made before `$4` (now for the latest; the
/// day's start for the forecast made the day before).
pub const LATEST_FORECASTS: &str = "SELECT DISTINCT ON (f.space_id, f.day) f.space_id, f.day, f.day_kind, f.holiday, \
         f.entries, f.peak, f.hourly, f.run_id, r.made_at, r.trigger \
     FROM day_forecasts f JOIN forecast_runs r ON r.id = f.run_id \
     WHERE f.space_id = ANY($1) AND f.day >= $2 AND f.day <= $3 AND r.made_at < $4 \
     ORDER BY f.space_id, f.day, f.run_id DESC";
/// One forecast run at a time across instances: a run waits for the one storing (the lock is
/// held until the run's transaction ends).
pub const FORECAST_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('visitorflow.forecast'))";
pub const LAST_RUN: &str = "SELECT max(id) FROM forecast_runs";
pub const LAST_NIGHTLY_RUN: &str =
    "SELECT max(made_at) FROM forecast_runs WHERE trigger = 'nightly'";
/// Days before `$1`: only the last forecast made before the day began is kept (forecast vs actual).
pub const PRUNE_DAY_FORECASTS: &str = "DELETE FROM day_forecasts f USING forecast_runs r \
     WHERE r.id = f.run_id AND f.day < $1 \
       AND (r.made_at >= (f.day::timestamp AT TIME ZONE vf_time_zone()) \
            OR EXISTS (SELECT 1 FROM day_forecasts g JOIN forecast_runs q ON q.id = g.run_id \
                       WHERE g.space_id = f.space_id AND g.day = f.day AND g.run_id > f.run_id \
                         AND q.made_at < (f.day::timestamp AT TIME ZONE vf_time_zone())))";
pub const PRUNE_FORECAST_RUNS: &str = "DELETE FROM forecast_runs r WHERE r.made_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM day_forecasts f WHERE f.run_id = r.id)";
pub const UPSERT_FORECAST_INPUT: &str = "INSERT INTO forecast_inputs (space_id, day, closed, factor, note, set_by) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (space_id, day) DO UPDATE SET closed = EXCLUDED.closed, \
         factor = EXCLUDED.factor, note = EXCLUDED.note, set_by = EXCLUDED.set_by, set_at = now() \
     RETURNING space_id, day, closed, factor, note, set_by, set_at";
pub const DELETE_FORECAST_INPUT: &str =
    "DELETE FROM forecast_inputs WHERE space_id = $1 AND day = $2";
pub const FORECAST_INPUTS: &str = "SELECT space_id, day, closed, factor, note, set_by, set_at FROM forecast_inputs \
     WHERE day >= $1 AND day <= $2 ORDER BY space_id, day";

/// Forecast statements, for the prepare-everything test.
pub const ALL_FORECASTS: &[&str] = &[
    INSERT_FORECAST_RUN,
    INSERT_DAY_FORECASTS,
    LATEST_FORECASTS,
    LAST_NIGHTLY_RUN,
    LAST_RUN,
    FORECAST_LOCK,
    PRUNE_DAY_FORECASTS,
    PRUNE_FORECAST_RUNS,
    UPSERT_FORECAST_INPUT,
    DELETE_FORECAST_INPUT,
    FORECAST_INPUTS,
];

// ---- recounts (src/store/recounts.rs) ----

/// A head count asked for through the API, pending until the ingester applies it.
pub const INSERT_RECOUNT: &str = "INSERT INTO recounts (space_id, inside, reason, actor) VALUES ($1, $2, $3, $4) \
     RETURNING id, space_id, inside, reason, actor, requested_at, applied_at, before, delta";
pub const GET_RECOUNT: &str = "SELECT id, space_id, inside, reason, actor, requested_at, applied_at, before, delta \
     FROM recounts WHERE id = $1";
pub const LIST_RECOUNTS: &str = "SELECT id, space_id, inside, reason, actor, requested_at, applied_at, before, delta \
     FROM recounts WHERE space_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3";
/// Per space, the head-count corrections of the minutes in `[$1, $2)`.
pub const DAY_CORRECTIONS: &str = "SELECT space_id, sum(correction)::bigint AS correction FROM space_series_1m \
     WHERE bucket >= $1 AND bucket < $2 AND correction <> 0 GROUP BY space_id";
/// The spaces whose figures of local day `$1` late reports changed after it ended.
pub const DAY_REVISIONS: &str =
    "SELECT space_id, revised_at, reports FROM day_revisions WHERE day = $1 ORDER BY space_id";

/// Recount statements, for the prepare-everything test.
pub const ALL_RECOUNTS: &[&str] = &[
    INSERT_RECOUNT,
    GET_RECOUNT,
    LIST_RECOUNTS,
    DAY_CORRECTIONS,
    DAY_REVISIONS,
];

// ---- partitioned ingest: advisory locks and the partition map (src/partition/mod.rs) ----

pub const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1::int4, $2::int4)";
pub const LOCK: &str = "SELECT pg_advisory_lock($1::int4, $2::int4)";
pub const LOCK_UNITS: &str = "LOCK TABLE partition_units IN SHARE ROW EXCLUSIVE MODE";
pub const LOAD_UNITS: &str = "SELECT unit, partition FROM partition_units";
/// Partitions held by sessions other than this one.
pub const OTHER_HOLDERS: &str = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
     AND classid::int8 = $1::int8 AND objsubid = 2 AND granted AND pid <> pg_backend_pid()";
pub const SAVE_UNITS: &str = "INSERT INTO partition_units (unit, partition) \
     SELECT * FROM unnest($1::text[], $2::int4[]) \
     ON CONFLICT (unit) DO UPDATE SET partition = EXCLUDED.partition \
     WHERE partition_units.partition <> EXCLUDED.partition";
pub const SAVE_OWNER: &str = "INSERT INTO partition_owner (partition, holder, since, spaces, devices) \
     VALUES ($1, $2, now(), $3, $4) ON CONFLICT (partition) DO UPDATE SET holder = EXCLUDED.holder, \
     since = EXCLUDED.since, spaces = EXCLUDED.spaces, devices = EXCLUDED.devices";

/// Every partition statement, for the prepare-everything test.
pub const ALL_PARTITION: &[&str] = &[
    TRY_LOCK,
    LOCK,
    LOCK_UNITS,
    LOAD_UNITS,
    OTHER_HOLDERS,
    SAVE_UNITS,
    SAVE_OWNER,
];

// ---- bookings from ticketing systems (src/store/bookings.rs) ----

/// Serialises intake per area, so the merge decided in `admission::merge` sees the stored
/// versions no other transaction is changing.
pub const LOCK_AREA_BOOKINGS: &str =
    "SELECT pg_advisory_xact_lock(hashtext('bookings:' || $1::text)::int8)";
pub const STORED_BOOKINGS: &str = "SELECT booking_id, version, day, slot, people, status FROM bookings \
     WHERE space_id = $1 AND booking_id = ANY($2::text[])";
pub const UPSERT_BOOKINGS: &str = "INSERT INTO bookings (space_id, booking_id, version, day, slot, people, status, source) \
     SELECT $1, u.* , $8 FROM unnest($2::text[], $3::int8[], $4::date[], $5::time[], $6::int4[], $7::text[]) \
         AS u(booking_id, version, day, slot, people, status) \
     ON CONFLICT (space_id, booking_id) DO UPDATE SET version = EXCLUDED.version, day = EXCLUDED.day, \
         slot = EXCLUDED.slot, people = EXCLUDED.people, status = EXCLUDED.status, source = EXCLUDED.source, \
         updated_at = now()";
pub const TOUCH_INTAKE: &str = "INSERT INTO booking_intake (space_id, last_received, source) VALUES ($1, now(), $2) \
     ON CONFLICT (space_id) DO UPDATE SET last_received = EXCLUDED.last_received, source = EXCLUDED.source \
     RETURNING last_received";
/// People per status in each slot of the given areas' days (`$1` areas, `$2` their days): the
/// listed bookings' tally, and beside it one row per channel's slot totals (the tally adds them).
pub const SLOT_COUNTS: &str = "SELECT b.space_id, b.day, b.slot, \
         coalesce(sum(b.people) FILTER (WHERE b.status = 'booked'), 0)::int8 AS booked, \
         coalesce(sum(b.people) FILTER (WHERE b.status = 'checked_in'), 0)::int8 AS checked_in, \
         coalesce(sum(b.people) FILTER (WHERE b.status = 'cancelled'), 0)::int8 AS cancelled \
     FROM bookings b JOIN unnest($1::text[], $2::date[]) AS q(space_id, day) \
         ON b.space_id = q.space_id AND b.day = q.day \
     GROUP BY b.space_id, b.day, b.slot \
     UNION ALL \
     SELECT t.space_id, t.day, t.slot, t.booked, t.checked_in, t.cancelled \
     FROM slot_totals t JOIN unnest($1::text[], $2::date[]) AS q(space_id, day) \
         ON t.space_id = q.space_id AND t.day = q.day";
/// The stored `as_of` of one channel's slot totals (`$2` channel; `$3`, `$4` days and slots).
pub const STORED_SLOT_TOTALS: &str = "SELECT t.day, t.slot, t.as_of FROM slot_totals t \
     JOIN unnest($3::date[], $4::time[]) AS q(day, slot) ON t.day = q.day AND t.slot = q.slot \
     WHERE t.space_id = $1 AND t.channel = $2";
pub const UPSERT_SLOT_TOTALS: &str = "INSERT INTO slot_totals (space_id, channel, day, slot, booked, checked_in, cancelled, as_of) \
     SELECT $1, $2, u.* FROM unnest($3::date[], $4::time[], $5::int8[], $6::int8[], $7::int8[], $8::timestamptz[]) \
         AS u(day, slot, booked, checked_in, cancelled, as_of) \
     ON CONFLICT (space_id, channel, day, slot) DO UPDATE SET booked = EXCLUDED.booked, \
         checked_in = EXCLUDED.checked_in, cancelled = EXCLUDED.cancelled, as_of = EXCLUDED.as_of, \
         received_at = now() \
     WHERE slot_totals.as_of < EXCLUDED.as_of";
pub const INTAKE_LAST: &str = "SELECT space_id, last_received FROM booking_intake";
/// Areas whose ticket sales are paused or closed, or whose slots are over-sold (the open
/// `admission` and `oversold` alerts), with the signal last sent.
pub const OPEN_ADMISSION: &str = "SELECT space_id, kind, details, started_at FROM alerts \
     WHERE kind IN ('admission', 'oversold') AND state <> 'resolved'";

pub const INSERT_CONFIRMATION: &str = "INSERT INTO admission_confirmations (space_id, actor) VALUES ($1, $2) \
     RETURNING confirmed_at";
/// Each area's latest confirmation that sales may resume.
pub const LAST_CONFIRMATIONS: &str = "SELECT space_id, max(confirmed_at) AS confirmed_at \
     FROM admission_confirmations GROUP BY space_id";

pub const INSERT_HOLD: &str = "INSERT INTO admission_holds (space_id, reason, actor) VALUES ($1, $2, $3) \
     RETURNING held_at";
pub const RELEASE_HOLDS: &str = "UPDATE admission_holds SET released_at = now(), released_by = $2 \
     WHERE space_id = $1 AND released_at IS NULL";
/// Each area's oldest hold in force, with its reason.
pub const ACTIVE_HOLDS: &str = "SELECT DISTINCT ON (space_id) space_id, reason, held_at FROM admission_holds \
     WHERE released_at IS NULL ORDER BY space_id, held_at";

/// Booking statements, for the prepare-everything test.
pub const ALL_BOOKINGS: &[&str] = &[
    LOCK_AREA_BOOKINGS,
    STORED_BOOKINGS,
    UPSERT_BOOKINGS,
    TOUCH_INTAKE,
    SLOT_COUNTS,
    STORED_SLOT_TOTALS,
    UPSERT_SLOT_TOTALS,
    INTAKE_LAST,
    OPEN_ADMISSION,
    INSERT_CONFIRMATION,
    LAST_CONFIRMATIONS,
    INSERT_HOLD,
    RELEASE_HOLDS,
    ACTIVE_HOLDS,
];

// ---- live feed to the provincial platform (src/store/live_feed.rs, src/report/live) ----

/// The latest period taken on (whatever became of it): the schedule goes on from there.
pub const LIVE_LAST_PERIOD: &str =
    "SELECT max(period_start) FROM live_feed WHERE trigger = 'period'";
/// A period with its body, once (a restart or a second instance finds it there).
pub const LIVE_INSERT_PERIOD: &str = "INSERT INTO live_feed (trigger, period_start, delivery_id, content_type, body) \
     VALUES ('period', $1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id";
/// Boundaries nobody was running at (`$1` starts, `$2` delivery ids, `$3` why): recorded, not sent.
pub const LIVE_INSERT_SKIPPED: &str = "INSERT INTO live_feed (trigger, period_start, delivery_id, content_type, body, status, last_error) \
     SELECT 'period', u.p, u.d, '', ''::bytea, 'skipped', $3 FROM unnest($1::timestamptz[], $2::text[]) AS u(p, d) \
     ON CONFLICT DO NOTHING";
/// Gives up the waiting periods older than the `$1` newest (the catch-up bound), with `$2` as
/// their error: dead letters.
pub const LIVE_GIVE_UP: &str = "UPDATE live_feed SET status = 'dead', last_error = $2 \
     WHERE trigger = 'period' AND status = 'pending' AND period_start < (SELECT min(k.period_start) FROM \
         (SELECT period_start FROM live_feed WHERE trigger = 'period' AND status = 'pending' \
          ORDER BY period_start DESC LIMIT $1) AS k) \
     RETURNING delivery_id";
/// An immediate push (a change to red, a closure), once per transition.
pub const LIVE_INSERT_EVENT: &str = "INSERT INTO live_feed (trigger, period_start, space_id, transition_id, delivery_id, content_type, body) \
     VALUES ('event', $1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id";
/// The latest transition announced by an immediate push.
pub const LIVE_LAST_EVENT: &str =
    "SELECT max(transition_id) FROM live_feed WHERE trigger = 'event'";
/// Transitions after `$1` and not before `$2`, of the areas `$3`, that are a change to red (either
/// load) or a closure (a hazard opening), oldest first, at most `$4`.
pub const LIVE_RED_OR_CLOSED: &str = "SELECT t.id AS transition_id, a.space_id, a.kind, t.at FROM alert_transitions t \
     JOIN alerts a ON a.id = t.alert_id \
     WHERE t.id > $1 AND t.at >= $2 AND a.space_id = ANY($3::text[]) AND ( \
         (a.kind IN ('instant_level', 'daily_level') AND t.level = 'red' AND t.change IN ('open', 'escalate')) \
         OR (starts_with(a.kind, 'hazard.') AND t.change = 'open')) \
     ORDER BY t.id LIMIT $4";
/// Claims the oldest due immediate push for `$1` seconds.
pub const LIVE_CLAIM_EVENT: &str = "UPDATE live_feed SET next_attempt_at = now() + make_interval(secs => $1) \
     WHERE id = (SELECT id FROM live_feed WHERE trigger = 'event' AND status = 'pending' AND next_attempt_at <= now() \
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING id, delivery_id, content_type, body, attempts";
/// Claims the latest period taken on, while it waits and is due, for `$1` seconds: the current
/// figures first.
pub const LIVE_CLAIM_NEWEST: &str = "UPDATE live_feed SET next_attempt_at = now() + make_interval(secs => $1) \
     WHERE id = (SELECT id FROM live_feed WHERE trigger = 'period' \
         ORDER BY period_start DESC LIMIT 1 FOR UPDATE SKIP LOCKED) \
         AND status = 'pending' AND next_attempt_at <= now() \
     RETURNING id, delivery_id, content_type, body, attempts";
/// Claims the oldest due waiting period before the latest (the backlog) for `$1` seconds.
pub const LIVE_CLAIM_BACKLOG: &str = "UPDATE live_feed SET next_attempt_at = now() + make_interval(secs => $1) \
     WHERE id = (SELECT id FROM live_feed WHERE trigger = 'period' AND status = 'pending' AND next_attempt_at <= now() \
         AND period_start < (SELECT max(period_start) FROM live_feed WHERE trigger = 'period') \
         ORDER BY period_start LIMIT 1 FOR UPDATE SKIP LOCKED) \
     RETURNING id, delivery_id, content_type, body, attempts";
/// The receiver answered again: the waiting periods are due now (at the catch-up pace).
pub const LIVE_RELEASE_BACKLOG: &str = "UPDATE live_feed SET next_attempt_at = now() \
     WHERE trigger = 'period' AND status = 'pending' AND next_attempt_at > now()";
/// What waits: when the next event, the latest period and the backlog are due, and how many
/// periods wait.
pub const LIVE_QUEUE: &str = "SELECT \
     (SELECT min(next_attempt_at) FROM live_feed WHERE trigger = 'event' AND status = 'pending') AS event_due, \
     (SELECT CASE WHEN status = 'pending' THEN next_attempt_at END FROM live_feed WHERE trigger = 'period' \
         ORDER BY period_start DESC LIMIT 1) AS newest_due, \
     (SELECT min(next_attempt_at) FROM live_feed WHERE trigger = 'period' AND status = 'pending' \
         AND period_start < (SELECT max(period_start) FROM live_feed WHERE trigger = 'period')) AS backlog_due, \
     (SELECT count(*) FROM live_feed WHERE trigger = 'period' AND status = 'pending') AS waiting";
pub const LIVE_INSERT_ATTEMPT: &str = "INSERT INTO live_feed_attempts (push_id, attempt, outcome, http_status, error, latency_ms) \
     VALUES ($1, $2, $3, $4, $5, $6)";
pub const LIVE_MARK_DELIVERED: &str = "UPDATE live_feed SET status = 'delivered', attempts = attempts + 1, \
     last_attempt_at = now(), delivered_at = now(), last_status = $2, last_error = NULL WHERE id = $1";
pub const LIVE_MARK_RETRY: &str = "UPDATE live_feed SET attempts = attempts + 1, last_attempt_at = now(), \
     next_attempt_at = now() + make_interval(secs => $2), last_status = $3, last_error = $4 WHERE id = $1";
pub const LIVE_MARK_DEAD: &str = "UPDATE live_feed SET status = 'dead', attempts = attempts + 1, \
     last_attempt_at = now(), last_status = $2, last_error = $3 WHERE id = $1";
/// Deliveries, newest period first, optionally of one status (`$1`) and trigger (`$2`).
pub const LIVE_LIST: &str = "SELECT id, trigger, period_start, space_id, transition_id, delivery_id, status, attempts, \
         created_at, last_attempt_at, delivered_at, last_status, last_error \
     FROM live_feed WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR trigger = $2) \
     ORDER BY period_start DESC, id DESC LIMIT $3 OFFSET $4";
/// Deletes what is settled (delivered, dead, skipped) and older than `$1` days.
pub const LIVE_PRUNE: &str = "DELETE FROM live_feed WHERE status <> 'pending' \
     AND created_at < now() - make_interval(days => $1)";

/// The live feed's push table: attempts recorded as the daily report's are.
pub const LIVE_FEED: PushTable = PushTable {
    insert_attempt: LIVE_INSERT_ATTEMPT,
    mark_delivered: LIVE_MARK_DELIVERED,
    mark_retry: LIVE_MARK_RETRY,
    mark_dead: LIVE_MARK_DEAD,
};

/// Live feed statements, for the prepare-everything test.
pub const ALL_LIVE_FEED: &[&str] = &[
    LIVE_LAST_PERIOD,
    LIVE_INSERT_PERIOD,
    LIVE_INSERT_SKIPPED,
    LIVE_GIVE_UP,
    LIVE_INSERT_EVENT,
    LIVE_LAST_EVENT,
    LIVE_RED_OR_CLOSED,
    LIVE_CLAIM_EVENT,
    LIVE_CLAIM_NEWEST,
    LIVE_CLAIM_BACKLOG,
    LIVE_RELEASE_BACKLOG,
    LIVE_QUEUE,
    LIVE_INSERT_ATTEMPT,
    LIVE_MARK_DELIVERED,
    LIVE_MARK_RETRY,
    LIVE_MARK_DEAD,
    LIVE_LIST,
    LIVE_PRUNE,
];
