//! The live feed to the provincial platform end to end, against a real HTTP receiver, with 1 s
//! periods so a run takes seconds: every period arrives exactly once, signed, with its id stable
//! across retries, across a 10 s receiver outage (503); during the outage only the current period
//! is retried, and the catch-up goes at `catch_up_per_s`; a change to red and a closure are
//! pushed at once; refused pushes are dead letters listed by the API; a restart records the
//! boundaries nobody sent as skipped and repeats nothing; and a longer outage than
//! `catch_up_periods` gives the oldest up. Every body follows `docs/schemas/live-feed.schema.json`.
//! The figures the README quotes are printed (`--nocapture`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::*;
use serde_json::Value;
use visitorflow::config::Config;
use visitorflow::webhook::Secret;
use visitorflow::webhook::sign::verify;

const SECRET: &str = "whsec_cHJvdmluY2lhbC1wbGF0Zm9ybQ==";
const SCHEMA: &str = include_str!("../docs/schemas/live-feed.schema.json");
/// Backlog periods a second, as configured.
const PER_S: usize = 2;

#[derive(Debug, Clone)]
struct Got {
    at: DateTime<Utc>,
    id: String,
    idempotency_key: String,
    raw: Vec<u8>,
    body: Value,
    signed: bool,
    status: u16,
}

impl Got {
    fn period(&self) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(self.body["period_start"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc)
    }

    fn is_period(&self) -> bool {
        self.body["trigger"] == "period"
    }
}

#[derive(Default)]
struct Platform {
    /// The status every request is answered with.
    answer: u16,
    got: Vec<Got>,
}

async fn platform(state: Arc<Mutex<Platform>>) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/live",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&state);
            async move {
                let at = Utc::now();
                let mut p = state.lock().unwrap();
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let signed = verify(
                    &headers,
                    &body,
                    &Secret::new(SECRET),
                    Duration::from_secs(300),
                )
                .is_ok();
                let status = p.answer;
                p.got.push(Got {
                    at,
                    id: h("webhook-id"),
                    idempotency_key: h("idempotency-key"),
                    raw: body.to_vec(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    signed,
                    status,
                });
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn set_answer(p: &Arc<Mutex<Platform>>, status: u16) -> DateTime<Utc> {
    p.lock().unwrap().answer = status;
    Utc::now()
}

fn received(p: &Arc<Mutex<Platform>>) -> Vec<Got> {
    p.lock().unwrap().got.clone()
}

fn feed_config(stack: &Stack, to: std::net::SocketAddr, catch_up_periods: u32) -> Config {
    let mut cfg = stack.config("vf-live-feed");
    // The current period probes a few times a second during an outage.
    cfg.alerting.backoff_base_ms = 100;
    cfg.alerting.backoff_max_ms = 400;
    cfg.live_feed = serde_json::from_value(serde_json::json!({
        "enabled": true,
        "url": format!("http://{to}/live"),
        "interval_s": 1,
        "secret": SECRET,
        "max_attempts": 100,
        "catch_up_periods": catch_up_periods,
        "catch_up_per_s": PER_S,
        "allow_private_network": true,
    }))
    .unwrap();
    cfg
}

fn second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(1)).unwrap()
}

/// The most requests in any window of `width` among `times`.
fn max_in_window(times: &[DateTime<Utc>], width: TimeDelta) -> usize {
    let mut times = times.to_vec();
    times.sort();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn waiting(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM live_feed WHERE status = 'pending' AND trigger = 'period'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until no period waits any more and one taken on after `after` was delivered.
async fn caught_up(p: &Arc<Mutex<Platform>>, db: &tokio_postgres::Client, after: DateTime<Utc>) {
    eventually(40, "the backlog delivered", || async {
        let fresh = received(p)
            .iter()
            .any(|g| g.status == 200 && g.is_period() && g.period() > after);
        (fresh && waiting(db).await == 0).then_some(())
    })
    .await;
}

fn delivered_periods(got: &[Got]) -> Vec<DateTime<Utc>> {
    got.iter()
        .filter(|g| g.status == 200 && g.is_period())
        .map(Got::period)
        .collect()
}

async fn metric_line(addr: std::net::SocketAddr, outcome: &str) -> Option<String> {
    get_text(addr, "/metrics")
        .await
        .lines()
        .find(|l| {
            l.starts_with("visitorflow_live_feed_pushes_total{")
                && l.contains("trigger=\"period\"")
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .map(str::to_owned)
}

#[test]
fn the_schema_checker_sees_a_bad_body() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let bad = serde_json::json!({
        "version": "2", "trigger": "period", "delivery_id": "live-x",
        "period_start": "yesterday", "areas": [{"id": "canyon", "level": "purple"}],
    });
    let v = schema::violations(&schema, &bad);
    for want in [
        "/version",
        "/period_start",
        "county missing",
        "/areas/0/level",
        "/areas/0: occupancy missing",
    ] {
        assert!(v.iter().any(|m| m.contains(want)), "{want} not in {v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_period_arrives_once_across_an_outage_and_catches_up_at_the_pace() {
    let stack = Stack::start();
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let state = Arc::new(Mutex::new(Platform {
        answer: 200,
        ..Platform::default()
    }));
    let to = platform(Arc::clone(&state)).await;
    let db = stack.db().await;
    let svc = start_service(feed_config(&stack, to, 30)).await;
    let now = |s: &str| {
        Utc::now()
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
            .format(s)
            .to_string()
    };
    publish_all(
        stack.mq.port(),
        "pub-live-1",
        vec![(
            counts_topic("canyon", "gate-1"),
            report(1, &now("%Y-%m-%dT%H:%M:%S%:z"), 300, 0),
        )],
    )
    .await;
    wait_entries(svc.http_addr, "canyon", 300).await;

    // Up: periods arrive at their boundaries.
    eventually(20, "three periods with the canyon's counts", || async {
        let got = received(&state);
        let with_counts = got
            .iter()
            .filter(|g| g.status == 200 && g.is_period())
            .filter(|g| g.body["areas"][0]["entries_today"] == 300)
            .count();
        (with_counts >= 3).then_some(())
    })
    .await;

    // The platform is down for 10 s: 503 to everything.
    let down = set_answer(&state, 503);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let up = set_answer(&state, 200);
    caught_up(&state, &db, up).await;
    let got = received(&state);

    // Every period from the first to the last arrived exactly once (200), in one delivery id,
    // as its body says, and every attempt of a period carried the same signed bytes.
    let periods = delivered_periods(&got);
    let distinct: BTreeSet<_> = periods.iter().copied().collect();
    assert_eq!(distinct.len(), periods.len(), "no period delivered twice");
    let (first, last) = (*distinct.first().unwrap(), *distinct.last().unwrap());
    let expected = usize::try_from((last - first).num_seconds()).unwrap() + 1;
    assert_eq!(
        periods.len(),
        expected,
        "every boundary from {first} to {last}"
    );
    let mut bytes: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for g in &got {
        assert!(g.signed, "{} signature", g.id);
        assert_eq!(g.id, g.idempotency_key);
        assert_eq!(g.body["delivery_id"], g.id.as_str());
        let v = schema::violations(&schema, &g.body);
        assert!(v.is_empty(), "{}: {v:?}", g.id);
        if g.is_period() {
            assert_eq!(
                g.id,
                format!(
                    "live-{}",
                    g.period()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            );
        }
        let same = bytes.entry(&g.id).or_insert(&g.raw);
        assert_eq!(
            *same,
            g.raw.as_slice(),
            "{}: every attempt sends the same bytes",
            g.id
        );
    }
    // During the outage only the current period was tried (the backlog waits): the attempts
    // do not grow with the backlog.
    let during: Vec<&Got> = got.iter().filter(|g| g.status == 503).collect();
    assert!(!during.is_empty());
    for g in &during {
        assert!(
            g.period() >= second(g.at) - TimeDelta::seconds(1),
            "{} retried at {} during the outage",
            g.id,
            g.at
        );
    }
    let during_times: Vec<_> = during.iter().map(|g| g.at).collect();
    let outage_peak = max_in_window(&during_times, TimeDelta::seconds(1));
    assert!(
        outage_peak <= 8,
        "{outage_peak} requests in a second during the outage"
    );
    // The catch-up: the periods of the outage, oldest first, at most PER_S a second (plus the
    // current period, which never waits behind them).
    let backlog: Vec<&Got> = got
        .iter()
        .filter(|g| g.status == 200 && g.is_period() && g.at >= up)
        .filter(|g| g.period() < second(g.at) - TimeDelta::seconds(1))
        .collect();
    let outage_periods = distinct
        .iter()
        .filter(|p| **p >= second(down) && **p < up)
        .count();
    assert!(
        backlog.len() + 2 >= outage_periods,
        "{} caught up of {outage_periods}",
        backlog.len()
    );
    assert!(
        backlog.windows(2).all(|w| w[0].period() < w[1].period()),
        "oldest first"
    );
    let backlog_times: Vec<_> = backlog.iter().map(|g| g.at).collect();
    // A window a little under a second: attempts are paced from their start, requests arrive a
    // few milliseconds later, each by its own.
    let catch_up_peak = max_in_window(&backlog_times, TimeDelta::milliseconds(900));
    assert!(
        catch_up_peak <= PER_S,
        "{catch_up_peak} backlog periods in one second"
    );
    let after_up: Vec<_> = got.iter().filter(|g| g.at >= up).map(|g| g.at).collect();
    let all_peak = max_in_window(&after_up, TimeDelta::milliseconds(900));
    assert!(
        all_peak <= PER_S + 2,
        "{all_peak} requests in one second after the outage"
    );
    // Periods taken on at their boundary while the platform answered (not the first, taken on
    // whenever the service started): delay from the boundary to delivery.
    let mut delays: Vec<f64> = got
        .iter()
        .filter(|g| g.status == 200 && g.is_period() && g.period() > first)
        .filter(|g| g.at < down || g.period() >= up)
        .filter(|g| got.iter().filter(|o| o.id == g.id).count() == 1)
        .map(|g| (g.at - g.period()).num_microseconds().unwrap() as f64 / 1000.0)
        .collect();
    delays.sort_by(f64::total_cmp);
    let p50 = delays[delays.len() / 2];
    let max_delay = *delays.last().unwrap();
    assert!(
        max_delay < 1000.0,
        "a period delivered {max_delay} ms after its boundary"
    );
    let catch_up_s = backlog
        .last()
        .map(|g| (g.at - up).num_milliseconds() as f64 / 1000.0)
        .unwrap_or(0.0);
    println!(
        "live feed, 1 s periods, receiver down {:.1} s: {} periods delivered of {} expected (each once), {} requests answered 503 (only the current period; at most {outage_peak}/s), catch-up of {} periods in {catch_up_s:.1} s (at most {catch_up_peak}/s, {all_peak}/s with the current period), boundary to delivery p50 {p50:.1} ms, max {max_delay:.1} ms ({} periods)",
        (up - down).num_milliseconds() as f64 / 1000.0,
        periods.len(),
        expected,
        during.len(),
        backlog.len(),
        delays.len()
    );

    // A change to red and a closure are pushed at once, each once.
    let published = Utc::now();
    publish_all(
        stack.mq.port(),
        "pub-live-red",
        vec![(
            counts_topic("canyon", "gate-1"),
            report(2, &now("%Y-%m-%dT%H:%M:%S%:z"), 800, 0),
        )],
    )
    .await;
    let red = eventually(15, "the immediate push of red", || async {
        received(&state)
            .into_iter()
            .find(|g| g.body["trigger"] == "event" && g.body["event"]["kind"] == "red")
    })
    .await;
    assert!(red.id.starts_with("live-event-canyon-"), "{}", red.id);
    assert_eq!(red.body["event"]["area"], "canyon");
    assert_eq!(red.body["areas"][0]["id"], "canyon");
    assert_eq!(red.body["areas"][0]["level"], "red");
    assert_eq!(red.body["areas"][0]["occupancy"], 1100);
    assert!(red.signed && schema::violations(&schema, &red.body).is_empty());
    let red_latency = (red.at - published).num_milliseconds();
    let transition_at =
        DateTime::parse_from_rfc3339(red.body["event"]["at"].as_str().unwrap()).unwrap();
    let from_transition = (red.at - transition_at.with_timezone(&Utc)).num_milliseconds();
    publish_all(
        stack.mq.port(),
        "pub-live-hazard",
        vec![(
            "vf/village/hazard".into(),
            r#"{"kind":"flash_flood","message":"山洪预警"}"#.into(),
        )],
    )
    .await;
    let closed = eventually(15, "the immediate push of the closure", || async {
        received(&state)
            .into_iter()
            .find(|g| g.body["trigger"] == "event" && g.body["event"]["kind"] == "closed")
    })
    .await;
    assert_eq!(closed.body["event"]["area"], "village");
    assert_eq!(closed.body["event"]["alert_kind"], "hazard.flash_flood");
    assert_eq!(closed.body["areas"][0]["closed"], true);
    // The next periods carry the red level too.
    eventually(10, "a period with the canyon at red", || async {
        received(&state)
            .iter()
            .any(|g| g.is_period() && g.at > red.at && g.body["areas"][0]["level"] == "red")
            .then_some(())
    })
    .await;
    println!(
        "immediate push of red: {red_latency} ms from the report's publication, {from_transition} ms from the transition"
    );

    // The platform refuses (422): dead letters at once, listed by the API, counted.
    let refused = set_answer(&state, 422);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    set_answer(&state, 200);
    let (s, dead) = eventually(10, "dead letters listed", || async {
        let (s, v) = get_json(
            svc.http_addr,
            "/api/v1/live-feed/deliveries?status=dead&trigger=period",
        )
        .await;
        (!v["deliveries"].as_array()?.is_empty()).then_some((s, v))
    })
    .await;
    assert_eq!(s, 200);
    let d = &dead["deliveries"][0];
    assert_eq!(
        (&d["status"], &d["last_status"], &d["attempts"]),
        (&"dead".into(), &422.into(), &1.into())
    );
    let dead_id = d["delivery_id"].as_str().unwrap().to_owned();
    assert!(
        received(&state)
            .iter()
            .any(|g| g.id == dead_id && g.status == 422 && g.at >= refused)
    );
    let line = eventually(10, "the dead letter counted", || {
        metric_line(svc.http_addr, "dead")
    })
    .await;
    let counted: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(counted >= 1.0, "{line}");
    assert!(metric_line(svc.http_addr, "delivered").await.is_some());
    let (s, _) = get_json(svc.http_addr, "/api/v1/live-feed/deliveries?status=lost").await;
    assert_eq!(s, 400);

    // A restart across two boundaries: those are recorded as skipped (no figures), nothing
    // already sent is sent again.
    svc.shutdown().await;
    let stopped = Utc::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let svc = start_service(feed_config(&stack, to, 30)).await;
    caught_up(&state, &db, Utc::now()).await;
    let (_, skipped) = get_json(svc.http_addr, "/api/v1/live-feed/deliveries?status=skipped").await;
    let skipped: Vec<String> = skipped["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!skipped.is_empty(), "the boundaries nobody sent are listed");
    let got = received(&state);
    for id in &skipped {
        assert!(
            got.iter().all(|g| &g.id != id),
            "{id} was skipped, never sent"
        );
    }
    let periods = delivered_periods(&got);
    let distinct: BTreeSet<_> = periods.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        periods.len(),
        "no period delivered twice across the restart"
    );
    assert!(distinct.iter().any(|p| *p > stopped));
    svc.shutdown().await;

    // An outage longer than catch_up_periods (3): the oldest periods are given up, the 3 newest
    // caught up.
    let svc = start_service(feed_config(&stack, to, 3)).await;
    caught_up(&state, &db, Utc::now()).await;
    let down = set_answer(&state, 503);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let up = set_answer(&state, 200);
    caught_up(&state, &db, up).await;
    let given_up: Vec<(String, String)> = db
        .query(
            "SELECT delivery_id, last_error FROM live_feed WHERE status = 'dead' AND period_start >= $1 ORDER BY period_start",
            &[&second(down)],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(given_up.len() >= 2, "{given_up:?}");
    assert!(given_up.iter().all(|(_, e)| e.contains("catch_up_periods")));
    let got = received(&state);
    let late: Vec<&Got> = got
        .iter()
        .filter(|g| g.status == 200 && g.is_period() && g.at >= up)
        .filter(|g| g.period() < second(g.at) - TimeDelta::seconds(1))
        .collect();
    assert!(late.len() <= 3, "{} caught up, bound 3", late.len());
    for (id, _) in &given_up {
        assert!(
            got.iter().all(|g| &g.id != id || g.status != 200),
            "{id} given up yet delivered"
        );
    }
    println!(
        "outage of {:.1} s with catch_up_periods = 3: {} periods given up (dead letters), {} caught up",
        (up - down).num_milliseconds() as f64 / 1000.0,
        given_up.len(),
        late.len()
    );
    svc.shutdown().await;
}
