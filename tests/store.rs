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
        store::migrate(&url, "Asia/Shanghai", false).await.unwrap(),
        store::Mode::Plain
    );
    // A second start finds nothing to do.
    assert_eq!(
        store::migrate(&url, "Asia/Shanghai", true).await.unwrap(),
        store::Mode::Plain
    );
    let db = stack.db().await;
    for stmt in sql::ALL_PLAIN
        .iter()
        .chain(sql::ALL_ALERTS)
        .chain(sql::ALL_DISPATCH)
    {
        db.prepare(stmt)
            .await
            .unwrap_or_else(|e| panic!("{stmt}\n{e:?}"));
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
    Arc::new(Registry::build(&Config::from_toml(REGISTRY).unwrap()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_state_round_trips_through_the_database() {
    let stack = Stack::start();
    let url = stack.pg.url("vf");
    store::migrate(&url, "Asia/Shanghai", false).await.unwrap();
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
        for (i, dev) in registry.devices.iter().enumerate() {
            if core.seq[i].started {
                assert_eq!(loaded.seq[i], core.seq[i], "case {case}: device {}", dev.id);
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
