//! The storage contract against a real, freshly migrated PostgreSQL: every statement prepares,
//! migrations are idempotent, and the ingest state survives a round trip through the database
//! exactly (what makes a restart neither reset nor double-count anything).

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use visitorflow::config::Config;
use visitorflow::core::Core;
use visitorflow::decode::CountReport;
use visitorflow::registry::Registry;
use visitorflow::store::{self, sql};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_prepares_against_the_migrated_schema() {
    let stack = Stack::start();
    let url = stack.pg.url("vf");
    assert_eq!(
        store::migrate(&url, "Asia/Shanghai", false, 30)
            .await
            .unwrap(),
        store::Mode::Plain
    );
    // A second start finds nothing to do; asking for TimescaleDB where it is not installed keeps
    // the plain views (where it is, `timescaledb_path_*` below checks that path).
    let ask = !stack.pg.timescaledb_available();
    assert_eq!(
        store::migrate(&url, "Asia/Shanghai", ask, 30)
            .await
            .unwrap(),
        store::Mode::Plain
    );
    let db = stack.db().await;
    for stmt in sql::ALL_PLAIN
        .iter()
        .chain(sql::ALL_ALERTS)
        .chain(sql::ALL_DISPATCH)
        .chain(sql::ALL_REPORTS)
        .chain(sql::ALL_RECOUNTS)
        .chain(sql::ALL_PARTITION)
        .chain(sql::ALL_BOOKINGS)
        .chain(sql::ALL_FORECASTS)
        .chain(sql::ALL_LIVE_FEED)
    {
        db.prepare(stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}\n{e:?}"));
    }
    // Rows are read by column name: every statement returns the columns its row type reads.
    for (stmt, wants) in store::mappings() {
        let prepared = db.prepare(stmt).await.unwrap();
        let got: Vec<&str> = prepared.columns().iter().map(|c| c.name()).collect();
        for want in wants {
            assert!(got.contains(want), "{stmt}\nreturns {got:?}, not {want:?}");
        }
    }
    let sink = db.copy_in(sql::COPY_REPORTS).await.unwrap();
    let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &[]);
    drop(writer);
    // The daily view rolls days in the configured zone.
    let tz: String = db
        .query_one("SELECT vf_time_zone()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tz, "Asia/Shanghai");
}

fn reg() -> Arc<Registry> {
    Arc::new(Config::from_toml(REGISTRY).unwrap().registry().unwrap())
}

/// The raw table's answers (`store::lookup`, SQL) are the ones the core's in-memory model gives
/// (`core::lookup_rows`, which the property tests use), batch after batch of a hostile stream:
/// a backlog sent after live reports, reports lost for good (repaired from totals), replays far
/// below the window, a reboot to an old seq, a seq jump. And the stream ends stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_table_answers_as_the_core_models_it() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use visitorflow::core::{lookup_rows, move_repairs};

    let stack = Stack::start();
    let url = stack.pg.url("vf");
    store::migrate(&url, "Asia/Shanghai", want_timescaledb(), 30)
        .await
        .unwrap();
    let mut db = stack.db().await;
    let registry = reg();
    let gate = registry.device_idx("gate-1").unwrap();
    let mut core = Core::new(Arc::clone(&registry));
    // Microseconds, as decoded reports carry (PostgreSQL keeps no more).
    let start = chrono::SubsecRound::trunc_subsecs(Utc::now() - TimeDelta::hours(12), 6);
    // 600 reports a minute apart with cumulative totals; a reboot back to seq 40 at report 450.
    let (mut seq, mut total) = (0u64, 0u64);
    let mut life: Vec<CountReport> = (0..600)
        .map(|i| {
            seq = if i == 450 { 40 } else { seq + 1 };
            let e = (i % 7) as u32;
            total += u64::from(e);
            CountReport {
                seq,
                ts: start + TimeDelta::minutes(i),
                entries: e,
                exits: 0,
                period_s: Some(60),
                total_entries: Some(total),
                total_exits: Some(0),
                ts_from_device: true,
            }
        })
        .collect();
    life[300].seq += 1 << 40;
    // Live: 0–99 and 400–599; then the backlog 100–399, less three lost reports; then the first
    // 100 replayed.
    let mut arrival: Vec<CountReport> = life[..100].to_vec();
    arrival.extend_from_slice(&life[400..]);
    arrival.extend(
        life[100..400]
            .iter()
            .enumerate()
            .filter(|(i, _)| ![50, 120, 250].contains(i))
            .map(|(_, r)| *r),
    );
    arrival.extend_from_slice(&life[..100]);
    let mut rng = StdRng::seed_from_u64(7);
    let mut rows = Vec::new();
    let mut rest = &arrival[..];
    let mut lookups = 0;
    while !rest.is_empty() {
        let n = rng.random_range(1..=64).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let mut batch = core.new_batch();
        for r in chunk {
            core.apply(gate, r, r.ts, &mut batch);
        }
        let from_db = store::lookup(&db, &registry, &batch.pending).await.unwrap();
        let modelled: Vec<_> = batch
            .pending
            .iter()
            .map(|p| lookup_rows(&rows, p))
            .collect();
        assert_eq!(from_db, modelled, "pending {:?}", batch.pending);
        lookups += from_db.len();
        core.settle(&mut batch, &from_db);
        core.finish_batch(&mut batch);
        store::commit_batch(&mut db, &core, &batch).await.unwrap();
        move_repairs(&mut rows, &batch.repair_moves);
        rows.extend(batch.rows.iter().copied());
    }
    assert!(lookups > 300, "{lookups}");
    let everything: u64 = life.iter().map(|r| u64::from(r.entries)).sum();
    // The reboot uses seqs 40–189 again: distinct (device, seq) are the first run's 447 stored
    // plus seq 151, lost in the first run and sent in the second.
    let distinct = 448;
    assert_eq!(stored(&db).await, (597, distinct, everything as i64, 0));
    let stored_repairs: Vec<(i64, i32)> = db
        .query(
            "SELECT seq, repaired_entries FROM reports WHERE gap_from IS NOT NULL ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let modelled: Vec<(i64, i32)> = rows
        .iter()
        .filter(|r| r.gap_from.is_some())
        .map(|r| (r.seq as i64, r.repaired_entries as i32))
        .collect();
    assert_eq!(stored_repairs, modelled);
    // What remains in the repairs is what the lost reports carried.
    let lost: u32 = [150, 220, 350].iter().map(|&i| life[i].entries).sum();
    assert_eq!(stored_repairs.iter().map(|r| r.1 as u32).sum::<u32>(), lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_state_round_trips_through_the_database() {
    let stack = Stack::start();
    let url = stack.pg.url("vf");
    let mode = store::migrate(&url, "Asia/Shanghai", want_timescaledb(), 30)
        .await
        .unwrap();
    assert_eq!(mode, expected_mode(&stack.pg));
    let mut db = stack.db().await;

    // Arbitrary report streams (gaps, repairs, late fills, duplicates, day changes) applied in
    // committed batches: loading the database into a fresh core must give the same state.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    });
    let strategy = proptest::collection::vec(
        (
            0usize..3,
            0u64..6,
            0u32..40,
            0u32..40,
            0i64..200,
            any::<bool>(),
        ),
        1..120,
    );
    let cases: Vec<_> = (0..12)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    for (case, reports) in cases.into_iter().enumerate() {
        db.batch_execute("TRUNCATE reports, space_series_1m, device_state, space_state")
            .await
            .unwrap();
        let registry = reg();
        let mut core = Core::new(Arc::clone(&registry));
        let mut batch = core.new_batch();
        let devices = ["gate-1", "cam-pines", "door"];
        let mut seq = [0u64; 3];
        let base = DateTime::parse_from_rfc3339("2026-05-01T09:00:00.123456+08:00")
            .unwrap()
            .with_timezone(&Utc);
        for (i, (d, step, e, x, minutes, totals)) in reports.iter().enumerate() {
            seq[*d] += step;
            let ts = base + TimeDelta::minutes(*minutes * 10);
            let r = CountReport {
                seq: seq[*d],
                ts,
                entries: *e,
                exits: *x,
                period_s: Some(60),
                total_entries: totals.then_some(seq[*d] * 50),
                total_exits: totals.then_some(seq[*d] * 20),
                ts_from_device: true,
            };
            core.apply(
                registry.device_idx(devices[*d]).unwrap(),
                &r,
                ts,
                &mut batch,
            );
            if i % 17 == 16 || i == reports.len() - 1 {
                core.finish_batch(&mut batch);
                store::commit_batch(&mut db, &core, &batch).await.unwrap();
                batch.clear();
            }
        }
        let mut loaded = Core::new(Arc::clone(&registry));
        store::load_state(&db, &mut loaded).await.unwrap();
        for dev in &registry.devices {
            let st = core.seq.get(dev.idx);
            if st.started {
                assert_eq!(
                    loaded.seq.get(dev.idx),
                    st,
                    "case {case}: device {}",
                    dev.id
                );
            }
        }
        for (i, sp) in registry.spaces.iter().enumerate() {
            if core.counts[i].day.is_some() {
                assert_eq!(
                    loaded.counts[i], core.counts[i],
                    "case {case}: space {}",
                    sp.id
                );
            }
        }
        // Raw rows and buckets agree with each other.
        let (_, _, e, x) = stored(&db).await;
        let (be, bx): (i64, i64) = {
            let r = db
                .query_one(
                    "SELECT coalesce(sum(entries),0)::int8, coalesce(sum(exits),0)::int8 FROM space_series_1m \
                     WHERE space_id IN ('canyon', 'canyon-pines', 'village')",
                    &[],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!(
            (be, bx),
            (e, x),
            "case {case}: buckets equal the raw reports"
        );
    }
}

// ---- The TimescaleDB path ----------------------------------------------------------------------
//
// TimescaleDB is in no package archive, so CI (plain Debian PostgreSQL) cannot run this test: it
// prints "skipped: TimescaleDB not installed" there and passes. Where the extension is installed
// next to the server binaries (docs/timescaledb.md: built from source against PostgreSQL 15), it
// checks that path against the plain one.

/// One row of a series view: space, bucket, entries, exits, occupancy, peak. Read with the types
/// the API reads them with, so a numeric where the plain view has a bigint fails here.
type SeriesRow = (String, DateTime<Utc>, i64, i64, Option<i64>, Option<i64>);

/// The plain views' definitions (migrations/V1__schema.sql) over the minutes: what
/// `space_series_1h` / `space_series_1d` must return, whatever they are.
const PLAIN_1H: &str = "SELECT space_id, date_trunc('hour', bucket) AS b, sum(entries)::bigint, sum(exits)::bigint, \
     (array_agg(occupancy ORDER BY bucket DESC) FILTER (WHERE occupancy IS NOT NULL))[1], max(peak) \
     FROM space_series_1m GROUP BY 1, 2 ORDER BY 1, 2";
const PLAIN_1D: &str = "SELECT space_id, date_trunc('day', bucket, vf_time_zone()) AS b, sum(entries)::bigint, \
     sum(exits)::bigint, (array_agg(occupancy ORDER BY bucket DESC) FILTER (WHERE occupancy IS NOT NULL))[1], \
     max(peak) FROM space_series_1m GROUP BY 1, 2 ORDER BY 1, 2";

async fn series_rows(db: &tokio_postgres::Client, sql: &str) -> Vec<SeriesRow> {
    db.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}\n{e:?}"))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

/// The hourly and daily series equal the plain views' rows computed from the minutes.
async fn assert_rollups_match(db: &tokio_postgres::Client, when: &str) {
    for (view, plain) in [("space_series_1h", PLAIN_1H), ("space_series_1d", PLAIN_1D)] {
        let want = series_rows(db, plain).await;
        let got = series_rows(
            db,
            &format!(
                "SELECT space_id, bucket, entries, exits, occupancy, peak FROM {view} ORDER BY 1, 2"
            ),
        )
        .await;
        assert!(!want.is_empty(), "{when}: no minutes");
        if got != want {
            let diff: Vec<String> = want
                .iter()
                .filter(|w| !got.contains(w))
                .map(|w| format!("  want {w:?}"))
                .chain(
                    got.iter()
                        .filter(|g| !want.contains(g))
                        .map(|g| format!("  got  {g:?}")),
                )
                .take(12)
                .collect();
            panic!(
                "{when}: {view} differs from the plain view ({} rows wanted, {} got):\n{}",
                want.len(),
                got.len(),
                diff.join("\n")
            );
        }
    }
}

/// Runs the refresh policies now, as their schedule would (`run_job`), retrying while a scheduled
/// run of the same policy holds the window.
async fn run_policies(db: &tokio_postgres::Client) {
    let jobs: Vec<i32> = db
        .query(
            "SELECT job_id FROM timescaledb_information.jobs \
             WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY job_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(jobs.len(), 2, "one refresh policy per aggregate");
    for job in jobs {
        let mut tries = 0;
        loop {
            match db.execute("CALL run_job($1)", &[&job]).await {
                Ok(_) => break,
                Err(e)
                    if tries < 50
                        && e.code()
                            == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("run_job({job}): {e:?}"),
            }
        }
    }
}

/// Applies reports `(device, ts, in, out)` through the core and commits them with the ingester's
/// writer, `per_batch` at a time (only a batch's newest minute carries occupancy, so most minutes
/// have none, as in production).
async fn ingest(
    db: &mut tokio_postgres::Client,
    core: &mut Core,
    seqs: &mut std::collections::HashMap<&'static str, u64>,
    reports: &[(&'static str, DateTime<Utc>, u32, u32)],
    per_batch: usize,
) {
    let registry = Arc::clone(&core.registry);
    let mut batch = core.new_batch();
    for chunk in reports.chunks(per_batch) {
        for &(device, ts, e, x) in chunk {
            let seq = seqs.entry(device).or_insert(0);
            *seq += 1;
            let r = CountReport {
                seq: *seq,
                ts,
                entries: e,
                exits: x,
                period_s: Some(60),
                total_entries: None,
                total_exits: None,
                ts_from_device: true,
            };
            core.apply(registry.device_idx(device).unwrap(), &r, ts, &mut batch);
        }
        core.finish_batch(&mut batch);
        store::commit_batch(db, core, &batch).await.unwrap();
        batch.clear();
    }
}

/// What `migrate` built, to tell that a second one changed nothing.
async fn timescale_objects(db: &tokio_postgres::Client) -> Vec<String> {
    db.query(
        "SELECT format('%s %s %s', view_name, format('%I.%I', view_schema, view_name)::regclass::oid, \
                obj_description(format('%I.%I', view_schema, view_name)::regclass, 'pg_class')) \
         FROM timescaledb_information.continuous_aggregates \
         UNION ALL SELECT format('job %s %s %s %s', job_id, proc_name, schedule_interval, config) \
         FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL \
         UNION ALL SELECT format('hypertable %s %s', hypertable_name, num_dimensions) \
         FROM timescaledb_information.hypertables ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Hypertables, real-time aggregates and their policies and specs as `migrate` leaves them for
/// the county time zone `tz` and the horizon `horizon_days`.
async fn assert_timescale_schema(db: &tokio_postgres::Client, tz: &str, horizon_days: i64) {
    let hypertables: Vec<String> = db
        .query(
            "SELECT hypertable_name::text FROM timescaledb_information.hypertables \
             WHERE hypertable_schema = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hypertables, ["reports", "space_series_1m"]);
    let caggs: Vec<(String, bool, String)> = db
        .query(
            "SELECT view_name::text, materialized_only, hypertable_name::text \
             FROM timescaledb_information.continuous_aggregates ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        caggs,
        [
            ("space_series_1d".into(), false, "space_series_1m".into()),
            ("space_series_1h".into(), false, "space_series_1m".into()),
        ],
        "real-time continuous aggregates over the minutes"
    );
    // The policies materialise up to the horizon (max_age_days + 1: older buckets can no longer
    // change) and reach back without limit, so a correction behind it is folded in too.
    let policies: Vec<(String, Option<String>, String, String)> = db
        .query(
            "SELECT hypertable_name::text, config->>'start_offset', config->>'end_offset', \
                    obj_description(format('%I.%I', hypertable_schema, hypertable_name)::regclass, 'pg_class') \
             FROM timescaledb_information.jobs \
             WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let horizon = format!("{horizon_days} days");
    let spec = |bucket: &str| {
        format!("visitorflow v2: {bucket}, materialised up to {horizon_days} days ago")
    };
    assert_eq!(
        policies,
        [
            (
                "space_series_1d".into(),
                None,
                horizon.clone(),
                spec(&format!("time_bucket(INTERVAL '1 day', bucket, '{tz}')"))
            ),
            (
                "space_series_1h".into(),
                None,
                horizon,
                spec("time_bucket(INTERVAL '1 hour', bucket)")
            ),
        ]
    );
}

/// Column names and types of the series views, in order.
async fn view_columns(db: &tokio_postgres::Client) -> Vec<(String, String, String)> {
    db.query(
        "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name IN ('space_series_1h', 'space_series_1d') \
         ORDER BY table_name, ordinal_position",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// The `max_age_days` the TimescaleDB test migrates with: buckets older than this plus a day are
/// materialised.
const MAX_AGE_DAYS: i64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timescaledb_path_matches_the_plain_views() {
    let stack = Stack::start();
    if !stack.pg.timescaledb_available() {
        // CI has no TimescaleDB (it is not in Debian's archive): this path is checked by hand.
        println!("skipped: TimescaleDB not installed");
        return;
    }
    let tz = "Asia/Shanghai";
    let shanghai = chrono_tz::Asia::Shanghai;
    let horizon = MAX_AGE_DAYS + 1;
    // `days_ago` local days before today, at a local time of day, in UTC.
    let today = Utc::now().with_timezone(&shanghai).date_naive();
    let local = |days_ago: i64, time: &str| -> DateTime<Utc> {
        let t = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").unwrap();
        (today - TimeDelta::days(days_ago))
            .and_time(t)
            .and_local_timezone(shanghai)
            .unwrap()
            .with_timezone(&Utc)
    };

    // A fresh database: TimescaleDB from the first start.
    stack.pg.create_database("fresh").unwrap();
    let fresh_url = stack.pg.url("fresh");
    assert_eq!(
        store::migrate(&fresh_url, tz, true, MAX_AGE_DAYS)
            .await
            .unwrap(),
        store::Mode::Timescale
    );
    let fresh = store::connect(&fresh_url).await.unwrap();
    assert_timescale_schema(&fresh, tz, horizon).await;
    // The aggregates have the plain views' columns and types.
    stack.pg.create_database("plain").unwrap();
    let plain_url = stack.pg.url("plain");
    assert_eq!(
        store::migrate(&plain_url, tz, false, MAX_AGE_DAYS)
            .await
            .unwrap(),
        store::Mode::Plain
    );
    let plain = store::connect(&plain_url).await.unwrap();
    let plain_columns = view_columns(&plain).await;
    assert_eq!(plain_columns.len(), 12);
    assert_eq!(view_columns(&fresh).await, plain_columns);

    // An existing plain database with history, then switched to TimescaleDB.
    let url = stack.pg.url("vf");
    store::migrate(&url, tz, false, MAX_AGE_DAYS).await.unwrap();
    let mut db = stack.db().await;
    let registry = reg();
    let mut core = Core::new(Arc::clone(&registry));
    let mut seqs = std::collections::HashMap::new();
    // Three local days, 60 days back (behind the horizon), across local midnights (16:00 UTC):
    // every 7 minutes on the gates, on the reversed camera and the door in between, committed a
    // few reports at a time.
    let start = local(60, "21:00:00");
    let mut history = Vec::new();
    for k in 0..(3 * 24 * 60 / 7) {
        let ts = start + TimeDelta::minutes(k * 7) + TimeDelta::seconds(k % 50);
        let gate = if k % 3 == 0 { "gate-2" } else { "gate-1" };
        history.push((gate, ts, (k % 13) as u32, (k % 11) as u32));
        if k % 3 == 1 {
            history.push(("cam-pines", ts + TimeDelta::minutes(4), 2, (k % 5) as u32));
        }
        if k % 5 == 2 {
            history.push(("door", ts + TimeDelta::seconds(30), (k % 7) as u32, 1));
        }
    }
    // A report stamped exactly at local midnight counts for the day before; one a second later
    // for the new day.
    history.push(("door", local(58, "00:00:00"), 5, 0));
    history.push(("door", local(58, "00:00:01"), 7, 0));
    history.sort_by_key(|r| r.1);
    ingest(&mut db, &mut core, &mut seqs, &history, 9).await;
    // And the last hour.
    let now = Utc::now();
    let recent: Vec<_> = (0..6)
        .map(|i| ("gate-1", now - TimeDelta::minutes(50 - i * 8), 3, 1))
        .collect();
    ingest(&mut db, &mut core, &mut seqs, &recent, 2).await;

    assert_eq!(
        store::migrate(&url, tz, true, MAX_AGE_DAYS).await.unwrap(),
        store::Mode::Timescale
    );
    assert_timescale_schema(&db, tz, horizon).await;
    let built = timescale_objects(&db).await;
    // A second start finds nothing to do.
    assert_eq!(
        store::migrate(&url, tz, true, MAX_AGE_DAYS).await.unwrap(),
        store::Mode::Timescale
    );
    assert_eq!(
        timescale_objects(&db).await,
        built,
        "second migrate changed something"
    );

    // Every statement prepares against the converted schema.
    for stmt in sql::ALL_PLAIN
        .iter()
        .chain(sql::ALL_TIMESCALE)
        .chain(sql::ALL_ALERTS)
        .chain(sql::ALL_DISPATCH)
        .chain(sql::ALL_REPORTS)
        .chain(sql::ALL_RECOUNTS)
        .chain(sql::ALL_PARTITION)
        .chain(sql::ALL_BOOKINGS)
        .chain(sql::ALL_FORECASTS)
        .chain(sql::ALL_LIVE_FEED)
    {
        db.prepare(stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}\n{e:?}"));
    }
    let copy = stack.db().await;
    let sink = copy.copy_in(sql::COPY_REPORTS).await.unwrap();
    drop(tokio_postgres::binary_copy::BinaryCopyInWriter::new(
        sink,
        &[],
    ));

    // The history has hours whose last minute has no occupancy: the aggregate must still give the
    // last known one, as the plain view does.
    let unknown_last: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT (array_agg(occupancy ORDER BY bucket DESC))[1] AS last_any, \
             (array_agg(occupancy ORDER BY bucket DESC) FILTER (WHERE occupancy IS NOT NULL))[1] AS last_known \
             FROM space_series_1m GROUP BY space_id, date_trunc('hour', bucket)) t \
             WHERE last_any IS NULL AND last_known IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        unknown_last > 0,
        "the data must exercise a trailing unknown occupancy"
    );

    // The switch materialised the history (behind the horizon) and nothing newer.
    let materialised = async |view: &str| -> (i64, Option<DateTime<Utc>>) {
        let table: String = db
            .query_one(
                "SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name) \
                 FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
                &[&view],
            )
            .await
            .unwrap()
            .get(0);
        let r = db
            .query_one(&format!("SELECT count(*), max(bucket) FROM {table}"), &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    for view in ["space_series_1h", "space_series_1d"] {
        let (rows, newest) = materialised(view).await;
        assert!(rows > 0, "{view}: history not materialised");
        assert!(
            newest.unwrap() < Utc::now() - TimeDelta::days(horizon),
            "{view}: materialised up to {newest:?}"
        );
    }
    assert_rollups_match(&db, "after the switch").await;

    // Late reports — as old as the ingester accepts — show at once, no refresh needed.
    let late = vec![
        ("gate-2", local(MAX_AGE_DAYS - 1, "10:59:30"), 6, 0),
        ("barrier", local(20, "10:15:00"), 40, 3),
        ("gate-2", local(3, "23:59:59"), 2, 2),
        ("gate-1", Utc::now() - TimeDelta::seconds(20), 4, 2),
        ("gate-1", Utc::now() - TimeDelta::seconds(10), 1, 0),
    ];
    ingest(&mut db, &mut core, &mut seqs, &late, 1).await;
    assert_rollups_match(&db, "late reports, before any refresh").await;

    // The policies (run now, as their schedule would) change nothing visible.
    run_policies(&db).await;
    assert_rollups_match(&db, "after the policies ran").await;

    // A correction behind the horizon (the ingester refuses reports that old: a fix by hand
    // through the same writer) is folded in by the next policy run.
    let correction = vec![("door", local(59, "12:00:30"), 9, 4)];
    ingest(&mut db, &mut core, &mut seqs, &correction, 1).await;
    run_policies(&db).await;
    assert_rollups_match(
        &db,
        "a correction behind the horizon, after the next policy run",
    )
    .await;

    // The API's series read the aggregates with the plain types.
    let pool = store::pool(&url, 2).unwrap();
    let from = local(70, "00:00:00");
    let to = Utc::now() + TimeDelta::days(1);
    for (step, plain) in [(store::Step::Hour, PLAIN_1H), (store::Step::Day, PLAIN_1D)] {
        let want: Vec<SeriesRow> = series_rows(&db, plain)
            .await
            .into_iter()
            .filter(|r| r.0 == "canyon")
            .collect();
        let got: Vec<SeriesRow> = store::series(&pool, "canyon", from, to, step, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|p| {
                (
                    "canyon".to_string(),
                    p.bucket,
                    p.entries,
                    p.exits,
                    p.occupancy,
                    p.peak,
                )
            })
            .collect();
        assert_eq!(got, want, "{step:?}");
    }
    // Daily buckets start at local midnight; the midnight reports fell on either side.
    let days = series_rows(
        &db,
        "SELECT space_id, bucket, entries, exits, occupancy, peak FROM space_series_1d \
         WHERE space_id = 'village' ORDER BY bucket",
    )
    .await;
    assert!(days.len() >= 4, "{days:?}");
    for d in &days {
        let local = d.1.with_timezone(&shanghai);
        assert_eq!(
            local.time(),
            chrono::NaiveTime::MIN,
            "day bucket {} is not a local midnight",
            d.1
        );
    }
    let village_day = |days_ago: i64| {
        let b = local(days_ago, "00:00:00");
        days.iter().find(|d| d.1 == b).map(|d| d.2)
    };
    let minutes_between = async |from: DateTime<Utc>, to: DateTime<Utc>| -> i64 {
        db.query_one(
            "SELECT coalesce(sum(entries), 0)::int8 FROM space_series_1m WHERE space_id = 'village' \
             AND bucket >= $1 AND bucket < $2",
            &[&from, &to],
        )
        .await
        .unwrap()
        .get(0)
    };
    for days_ago in [59, 58] {
        let (from, to) = (local(days_ago, "00:00:00"), local(days_ago - 1, "00:00:00"));
        assert_eq!(
            village_day(days_ago),
            Some(minutes_between(from, to).await),
            "{days_ago} days ago"
        );
    }
    // The report stamped at midnight belongs to the day before.
    let midnight = local(58, "00:00:00");
    let first_minute: i64 = minutes_between(midnight, midnight + TimeDelta::minutes(1)).await;
    let last_minute: i64 = minutes_between(midnight - TimeDelta::minutes(1), midnight).await;
    assert!(first_minute >= 7 && last_minute >= 5);

    // Retention drops whole chunks of raw reports older than the cutoff, and nothing newer.
    let count = async |sql: &str| -> i64 { db.query_one(sql, &[]).await.unwrap().get(0) };
    let chunks_before = count("SELECT count(*) FROM show_chunks('reports')").await;
    let cutoff = local(58, "12:00:00");
    let newer = count(&format!(
        "SELECT count(*) FROM reports WHERE ts >= '{}'",
        cutoff.to_rfc3339()
    ))
    .await;
    let dropped = store::prune_reports(&pool, store::Mode::Timescale, cutoff)
        .await
        .unwrap();
    assert!(dropped >= 2, "dropped {dropped} chunks");
    let chunks_after = count("SELECT count(*) FROM show_chunks('reports')").await;
    assert_eq!(chunks_after, chunks_before - dropped as i64);
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM reports WHERE ts < '{}'",
            (cutoff - TimeDelta::days(1)).to_rfc3339()
        ))
        .await,
        0,
        "rows a day older than the cutoff are gone"
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM reports WHERE ts >= '{}'",
            cutoff.to_rfc3339()
        ))
        .await,
        newer,
        "rows from the cutoff on are kept"
    );
    // The series live on the minutes, which retention does not touch.
    assert_rollups_match(&db, "after retention").await;

    // Aggregates an older release built (no spec), or built for another county time zone or
    // another max_age_days, are rebuilt from the minutes at start; the others are left alone.
    let oids = async || -> Vec<u32> {
        let mut v = Vec::new();
        for view in ["space_series_1h", "space_series_1d"] {
            let row = db
                .query_one("SELECT $1::text::regclass::oid", &[&view])
                .await
                .unwrap();
            v.push(row.get(0));
        }
        v
    };
    let before = oids().await;
    db.batch_execute("COMMENT ON VIEW space_series_1h IS NULL")
        .await
        .unwrap();
    assert_eq!(
        store::migrate(&url, tz, true, MAX_AGE_DAYS).await.unwrap(),
        store::Mode::Timescale
    );
    let after = oids().await;
    assert_ne!(
        after[0], before[0],
        "the hourly aggregate without a spec is rebuilt"
    );
    assert_eq!(after[1], before[1], "the daily aggregate is current");
    assert_timescale_schema(&db, tz, horizon).await;
    assert_rollups_match(&db, "after rebuilding the hourly aggregate").await;

    let urumqi = "Asia/Urumqi";
    assert_eq!(
        store::migrate(&url, urumqi, true, MAX_AGE_DAYS)
            .await
            .unwrap(),
        store::Mode::Timescale
    );
    let moved = oids().await;
    assert_eq!(moved[0], after[0], "hours do not depend on the zone");
    assert_ne!(
        moved[1], after[1],
        "the daily aggregate follows the county time zone"
    );
    assert_timescale_schema(&db, urumqi, horizon).await;
    // PLAIN_1D follows vf_time_zone(), now Asia/Urumqi (UTC+6): days start two hours later.
    assert_rollups_match(&db, "after the county time zone changed").await;
    let first_day: DateTime<Utc> = db
        .query_one(
            "SELECT min(bucket) FROM space_series_1d WHERE space_id = 'village'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        first_day.with_timezone(&chrono_tz::Asia::Urumqi).time(),
        chrono::NaiveTime::MIN
    );

    assert_eq!(
        store::migrate(&url, urumqi, true, 90).await.unwrap(),
        store::Mode::Timescale
    );
    let longer = oids().await;
    assert!(
        longer[0] != moved[0] && longer[1] != moved[1],
        "a longer max_age_days moves the horizon of both"
    );
    assert_timescale_schema(&db, urumqi, 91).await;
    assert_rollups_match(&db, "after max_age_days changed").await;
}
