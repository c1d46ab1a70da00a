//! The API's contract end to end: the live feed (snapshot, coalesced space events, alert events,
//! resumption by Last-Event-ID), the public and FIWARE routes, CSV exports and the daily report,
//! a head count by hand answered with what was applied, and the OpenAPI document in step with the
//! router.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{FixedOffset, Utc};
use common::*;
use serde_json::Value;

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: Option<String>,
    data: String,
}

/// An open `/api/v1/live` stream.
struct Feed {
    resp: reqwest::Response,
    buf: String,
    /// The start of a character a chunk boundary cut in two.
    partial: Vec<u8>,
}

impl Feed {
    async fn open(addr: std::net::SocketAddr, last_id: Option<&str>) -> Feed {
        let mut req = http().get(format!("http://{addr}/api/v1/live"));
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Feed {
            resp,
            buf: String::new(),
            partial: Vec::new(),
        }
    }

    /// The next event (comments skipped), within `secs`.
    async fn next(&mut self, secs: u64) -> Sse {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            while let Some(cut) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..cut + 2).collect();
                let mut ev = Sse {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                };
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        ev.event = v.into();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        ev.id = Some(v.into());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        ev.data.push_str(v);
                    }
                }
                if !ev.data.is_empty() {
                    return ev;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("an event in time")
                .expect("stream read")
                .expect("stream open");
            self.partial.extend_from_slice(&chunk);
            let valid = match std::str::from_utf8(&self.partial) {
                Ok(_) => self.partial.len(),
                // Incomplete at the end: keep those bytes for the next chunk.
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(e) => panic!("the feed is not UTF-8: {e}"),
            };
            let text: Vec<u8> = self.partial.drain(..valid).collect();
            self.buf
                .push_str(std::str::from_utf8(&text).expect("checked above"));
        }
    }

    /// Events until one matches `f`.
    async fn until(&mut self, secs: u64, f: impl Fn(&Sse) -> bool) -> (Vec<Sse>, Sse) {
        let mut seen = Vec::new();
        loop {
            let e = self.next(secs).await;
            if f(&e) {
                return (seen, e);
            }
            seen.push(e);
        }
    }
}

fn json(s: &Sse) -> Value {
    serde_json::from_str(&s.data).unwrap()
}

fn seq(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

fn now_local() -> String {
    Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_sends_snapshot_updates_alerts_and_resumes() {
    let stack = Stack::start();
    let mut cfg = stack.config("vf-feed");
    cfg.alerting.tick_ms = 100;
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;

    let mut feed = Feed::open(addr, None).await;
    let first = feed.next(10).await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(json(&first).as_array().unwrap().len(), 5);

    // 40 reports in quick succession: the canyon's events are coalesced, not one per report.
    let ts = now_local();
    let msgs = (1..=40)
        .map(|s| (counts_topic("canyon", "gate-1"), report(s, &ts, 5, 0)))
        .collect();
    let started = std::time::Instant::now();
    publish_all(stack.mq.port(), "pub-feed-1", msgs).await;
    let (before, last) = feed
        .until(15, |e| {
            e.event == "space" && json(e)["id"] == "canyon" && json(e)["occupancy"] == 200
        })
        .await;
    let canyon_events = before
        .iter()
        .filter(|e| e.event == "space" && json(e)["id"] == "canyon")
        .count()
        + 1;
    let quarter_seconds = (started.elapsed().as_millis() / 250) as usize + 1;
    assert!(
        canyon_events <= quarter_seconds + 1,
        "{canyon_events} canyon events in {quarter_seconds} quarter seconds"
    );
    let v = json(&last);
    assert_eq!(v["entries_today"], 200);
    assert_eq!(v["instant_capacity"], 1000);
    let resume_from = last.id.clone().unwrap();

    // 850 of 1000: yellow — an `alert` event with the alert's id.
    let ts = now_local();
    publish_all(
        stack.mq.port(),
        "pub-feed-2",
        vec![(counts_topic("canyon", "gate-1"), report(41, &ts, 650, 0))],
    )
    .await;
    let (_, alert) = feed
        .until(15, |e| {
            e.event == "alert" && json(e)["kind"] == "instant_level" && json(e)["change"] == "open"
        })
        .await;
    let a = json(&alert);
    assert_eq!(a["space"], "canyon");
    assert_eq!(a["state"], "firing");
    assert!(a["level"] == "yellow" || a["level"] == "blue", "{a}");
    let alert_id = a["alert_id"].as_i64().unwrap();
    let (_, yellow) = feed
        .until(15, |e| {
            e.event == "space"
                && json(e)["id"] == "canyon"
                && json(e)["status"]["instant"]["level"] == "yellow"
        })
        .await;

    // An acknowledgement through the API is an `alert` event too.
    let r = http()
        .post(format!("http://{addr}/api/v1/alerts/{alert_id}/ack"))
        .json(&serde_json::json!({ "comment": "on it" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, ack) = feed
        .until(10, |e| {
            e.event == "alert" && json(e)["change"] == "acknowledge"
        })
        .await;
    assert_eq!(json(&ack)["by"], ADMIN_ID);
    assert_eq!(json(&ack)["alert_id"], alert_id);

    // Resuming after an id the ring still holds: exactly the later events, in order, no
    // snapshot.
    let mut again = Feed::open(addr, Some(&resume_from)).await;
    let replayed = again.next(10).await;
    assert_ne!(replayed.event, "snapshot");
    assert_eq!(seq(replayed.id.as_deref().unwrap()), seq(&resume_from) + 1);
    let (_, caught_up) = again.until(10, |e| e.id == yellow.id).await;
    assert_eq!(caught_up.data, yellow.data);
    // An id from another run (or garbage): a fresh snapshot.
    let mut fresh = Feed::open(addr, Some("deadbeef-7")).await;
    assert_eq!(fresh.next(10).await.event, "snapshot");
    // No token, no feed.
    let r = reqwest::get(format!("http://{addr}/api/v1/live"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Open streams do not hold up shutdown.
    tokio::time::timeout(Duration::from_secs(20), svc.shutdown())
        .await
        .expect("shutdown with open streams");
    drop((feed, again, fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_fiware_csv_and_daily_report() {
    let stack = Stack::start();
    let mut cfg = stack.config("vf-public");
    cfg.alerting.tick_ms = 100;
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;
    let ts = now_local();
    publish_all(
        stack.mq.port(),
        "pub-public",
        vec![
            (counts_topic("canyon", "gate-1"), report(1, &ts, 850, 0)),
            (counts_topic("park", "barrier"), report(1, &ts, 150, 0)),
        ],
    )
    .await;
    wait_entries(addr, "park", 150).await;
    eventually(15, "canyon yellow", || async {
        (get_json(addr, "/api/v1/spaces/canyon").await.1["status"]["instant"]["level"] == "yellow")
            .then_some(())
    })
    .await;

    // The crowd board's facts, without a token, and nothing else.
    let v: Value = reqwest::get(format!("http://{addr}/api/v1/public/areas"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let areas = v["areas"].as_array().unwrap();
    assert_eq!(areas.len(), 2, "scenic areas only: {v}");
    let canyon = areas.iter().find(|a| a["id"] == "canyon").unwrap();
    assert_eq!(canyon["level"], "yellow");
    assert_eq!(canyon["comfort"], "busy");
    assert_eq!(canyon["comfort_zh"], "较舒适");
    assert_eq!(canyon["open"], true);
    let keys: BTreeSet<_> = canyon.as_object().unwrap().keys().cloned().collect();
    let allowed: BTreeSet<String> = [
        "id",
        "name_zh",
        "name_en",
        "level",
        "comfort",
        "comfort_zh",
        "comfort_en",
        "open",
        "updated_at",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        keys, allowed,
        "no raw counts or devices on the public board"
    );
    // The village has a counter that never reported: unknown, not comfortable.
    let village = areas.iter().find(|a| a["id"] == "village").unwrap();
    assert_eq!(village["comfort"], "unknown");

    // FIWARE entities (keyValues).
    let crowd: Value = reqwest::get(format!(
        "http://{addr}/api/v1/public/ngsi/CrowdFlowObserved"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let c = crowd
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "urn:ngsi-ld:CrowdFlowObserved:visitorflow:canyon")
        .expect("the canyon's entity");
    assert_eq!(c["type"], "CrowdFlowObserved");
    assert_eq!(c["peopleCount"], 850);
    assert_eq!(c["occupancy"], 0.85);
    assert_eq!(c["congested"], false);
    assert!(c["dateObserved"].is_string());
    let parks: Value = reqwest::get(format!("http://{addr}/api/v1/public/ngsi/OffStreetParking"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = &parks.as_array().unwrap()[0];
    assert_eq!(p["id"], "urn:ngsi-ld:OffStreetParking:visitorflow:park");
    assert_eq!(p["type"], "OffStreetParking");
    assert_eq!(p["totalSpotNumber"], 200);
    assert_eq!(p["occupiedSpotNumber"], 150);
    assert_eq!(p["availableSpotNumber"], 50);
    assert_eq!(p["occupancy"], 0.75);
    assert_eq!(p["status"], serde_json::json!(["spacesAvailable"]));
    assert_eq!(p["vehicleEntranceCount"], 150);
    assert_eq!(
        p["refPointOfInterest"],
        "urn:ngsi-ld:PointOfInterest:visitorflow:canyon"
    );
    // 185 of 200: at most 10% free.
    publish_all(
        stack.mq.port(),
        "pub-park-2",
        vec![(
            counts_topic("park", "barrier"),
            report(2, &now_local(), 35, 0),
        )],
    )
    .await;
    wait_entries(addr, "park", 185).await;
    let parks: Value = reqwest::get(format!("http://{addr}/api/v1/public/ngsi/OffStreetParking"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(parks[0]["status"], serde_json::json!(["almostFull"]));

    // Series as CSV, by parameter or by Accept.
    let r = http()
        .get(format!(
            "http://{addr}/api/v1/spaces/canyon/series?step=1m&format=csv"
        ))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("bucket,entries,exits,occupancy,peak,correction")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // No head count by hand here: every minute's correction is 0.
    assert!(rows.iter().all(|r| r.len() == 6 && r[5] == "0"), "{csv}");
    assert_eq!(
        rows.iter()
            .map(|r| r[1].parse::<i64>().unwrap())
            .sum::<i64>(),
        850
    );
    let r = http()
        .get(format!("http://{addr}/api/v1/spaces/canyon/series"))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().starts_with("bucket,"));
    let r = http()
        .get(format!(
            "http://{addr}/api/v1/spaces/canyon/series?from=yesterday"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "RFC 3339 bounds only");

    // The daily report: JSON and CSV, minutes at each level from the transitions.
    let (s, rep) = get_json(addr, "/api/v1/reports/daily").await;
    assert_eq!(s, 200, "{rep}");
    assert_eq!(rep["time_zone"], "Asia/Shanghai");
    let c = rep["areas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["space"] == "canyon")
        .unwrap()
        .clone();
    assert_eq!(c["entries"], 850);
    assert_eq!(c["peak"], 850);
    assert!(c["peak_at"].is_string());
    let m = &c["minutes_at_level"];
    let total: f64 = ["normal", "blue", "yellow", "orange", "red"]
        .iter()
        .map(|l| m[l].as_f64().unwrap())
        .sum();
    let (from, _) = (
        chrono::DateTime::parse_from_rfc3339(rep["from"].as_str().unwrap()).unwrap(),
        (),
    );
    let elapsed = (Utc::now() - from.with_timezone(&Utc)).num_seconds() as f64 / 60.0;
    assert!(
        (total - elapsed).abs() < 1.0,
        "{total} minutes of {elapsed}"
    );
    assert!(m["yellow"].as_f64().unwrap() >= 0.0);
    let r = http()
        .get(format!("http://{addr}/api/v1/reports/daily?format=csv"))
        .send()
        .await
        .unwrap();
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("day,space,name_zh,name_en,"), "{csv}");
    assert_eq!(
        csv.lines().count(),
        4,
        "a header, two areas and the county: {csv}"
    );
    assert!(csv.lines().last().unwrap().contains(",county,县,County,"));
    assert!(csv.contains(",canyon,天山大峡谷,Tianshan Grand Canyon,1000,4000,850,0,850,"));
    let (s, _) = get_json(addr, "/api/v1/reports/daily?day=2026-13-01").await;
    assert_eq!(s, 400);
    svc.shutdown().await;
}

/// A receiver answering 200 to every webhook, counting them.
async fn accepting_receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = std::sync::Arc::clone(&counter);
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

/// The centre's entry of `GET /api/v1/dispatch`.
async fn current_advice(addr: std::net::SocketAddr) -> Value {
    let (_, v) = get_json(addr, "/api/v1/dispatch").await;
    v["hubs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hub"] == "centre")
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_advice_on_the_live_feed_and_in_the_daily_report() {
    let stack = Stack::start();
    let (hook, hooks) = accepting_receiver().await;
    let mut cfg = stack.config_from(&format!("{REGISTRY}{CENTRE}"), "vf-feed-dispatch");
    cfg.alerting.tick_ms = 100;
    cfg.webhooks = vec![
        serde_json::from_value(serde_json::json!({
            "id": "bureau", "url": format!("http://{hook}/hook"), "format": "json",
            "min_severity": "info", "allow_private_network": true,
        }))
        .unwrap(),
    ];
    let svc = start_service(cfg).await;
    let addr = svc.http_addr;

    // Before any figure: the first advice pauses everything (no data), on the feed.
    let mut feed = Feed::open(addr, None).await;
    let snapshot = feed.next(10).await;
    assert_eq!(snapshot.event, "snapshot");
    let (_, first) = feed
        .until(15, |e| e.event == "dispatch" && json(e)["hub"] == "centre")
        .await;
    let first = json(&first);
    assert_eq!(first["advice"]["paused"].as_array().unwrap().len(), 2);

    // The canyon fills to orange, the village has room, 300 wait at the centre.
    let ts = now_local();
    publish_all(
        stack.mq.port(),
        "pub-feed-dispatch",
        vec![
            (counts_topic("canyon", "gate-1"), report(1, &ts, 950, 0)),
            (counts_topic("village", "door"), report(1, &ts, 40, 0)),
            (counts_topic("centre", "hall-cam"), report(1, &ts, 300, 0)),
        ],
    )
    .await;
    let paused_canyon = |v: &Value| {
        v["advice"]["paused"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["area"] == "canyon"))
            && v["advice"]["queue"] == 300
    };
    let (_, changed) = feed
        .until(20, |e| e.event == "dispatch" && paused_canyon(&json(e)))
        .await;
    let event = json(&changed);
    assert!(changed.id.is_some(), "a numbered event");
    assert_eq!(event["hub"], "centre");
    assert!(event["decision"].is_null());
    let diversion = &event["advice"]["diversions"][0];
    assert_eq!(diversion["from_area"], "canyon");
    assert_eq!(diversion["to"][0]["area"], "village");
    // The same JSON as the centre's entry in GET /api/v1/dispatch (unless newer advice came).
    let current = current_advice(addr).await;
    if current["id"] == event["id"] {
        assert_eq!(current, event);
    } else {
        assert!(current["id"].as_i64() > event["id"].as_i64(), "{current}");
    }

    // A new client gets the centre's current advice with its snapshot.
    let mut late = Feed::open(addr, None).await;
    let snap = late.next(10).await;
    assert_eq!(snap.event, "snapshot");
    let with_snapshot = late.next(10).await;
    assert_eq!(with_snapshot.event, "dispatch");
    assert!(
        with_snapshot.id.is_none(),
        "part of the snapshot: no id of its own"
    );
    assert!(json(&with_snapshot)["id"].as_i64() >= event["id"].as_i64());
    // A client that was away resumes with the advice it missed.
    let mut resumed = Feed::open(addr, snapshot.id.as_deref()).await;
    let (replayed, _) = resumed
        .until(10, |e| {
            e.event == "dispatch" && json(e)["id"] == event["id"]
        })
        .await;
    assert!(replayed.iter().all(|e| e.event != "snapshot"));

    // The dispatcher follows the newest advice: the decision is on the feed at once.
    let followed = current_advice(addr).await;
    let id = followed["id"].as_i64().unwrap();
    let r = http()
        .post(format!(
            "http://{addr}/api/v1/dispatch/advice/{id}/decision"
        ))
        .json(&serde_json::json!({ "decision": "followed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, decided) = feed
        .until(10, |e| {
            e.event == "dispatch" && json(e)["id"] == id && json(e)["decision"] == "followed"
        })
        .await;
    assert_eq!(json(&decided)["decided_by"], ADMIN_ID);

    // Today's report: shuttles advised and followed, the diversion, the art. 45 notice.
    let sent_to = |v: &Value, area: &str| -> i64 {
        v["advice"]["shuttles"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["area"] == area)
            .map(|s| s["send_now"].as_i64().unwrap())
            .sum()
    };
    let to_village = sent_to(&followed, "village");
    assert!(to_village > 0, "{followed}");
    let rep = eventually(20, "the orange notice and the advice delivered", || async {
        let (_, rep) = get_json(addr, "/api/v1/reports/daily").await;
        let canyon = rep["areas"]
            .as_array()?
            .iter()
            .find(|a| a["space"] == "canyon")?
            .clone();
        let county = &rep["county"]["notices"]["delivered"];
        (canyon["notices"]["art45_confirmed"].as_i64()? >= 1
            && county.as_i64()? > canyon["notices"]["delivered"].as_i64()?)
        .then_some(rep)
    })
    .await;
    // The diversion counts once, with the visitors waiting when the advice started it (before
    // the canyon had figures its visitors waited: a hold, no diversion).
    let (_, history) = get_json(addr, "/api/v1/dispatch/history?hub=centre").await;
    let started = history["advice"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .flat_map(|h| h["advice"]["diversions"].as_array().unwrap().clone())
        .find(|d| d["from_area"] == "canyon" && !d["to"].as_array().unwrap().is_empty())
        .unwrap();
    let area = |id: &str| {
        rep["areas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["space"] == id)
            .unwrap()
            .clone()
    };
    let (canyon, village, county) = (area("canyon"), area("village"), rep["county"].clone());
    assert!(
        canyon["notices"]["art45"].as_i64().unwrap() >= 1,
        "{canyon}"
    );
    assert!(
        canyon["notices"]["delivered"].as_i64().unwrap() >= 1,
        "{canyon}"
    );
    assert_eq!(canyon["dispatch"]["diversions_advised"], 1, "{canyon}");
    assert_eq!(
        canyon["dispatch"]["visitors_to_divert"],
        started["visitors"]
    );
    assert_eq!(village["dispatch"]["diversions_received"], 1, "{village}");
    assert_eq!(
        village["dispatch"]["shuttles_followed"], to_village,
        "{village}"
    );
    assert!(village["dispatch"]["shuttles_advised"].as_i64().unwrap() >= to_village);
    assert_eq!(canyon["dispatch"]["shuttles_followed"], 0);
    assert_eq!(canyon["peak"], 950);
    assert!(
        canyon["peak_at_local"]
            .as_str()
            .unwrap()
            .ends_with("+08:00"),
        "{canyon}"
    );
    assert_eq!(county["entries"], 990, "{county}");
    assert!(
        county["advice"]["records"].as_i64().unwrap() >= 2,
        "{county}"
    );
    assert_eq!(county["advice"]["followed"], 1);
    // (The county's notices include the dispatch advice delivered to the bureau: awaited above.)
    assert!(hooks.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    svc.shutdown().await;
    drop((feed, late, resumed));
}

/// A concrete request path for a documented template.
fn concrete(path: &str) -> String {
    path.replace("{id}", "canyon")
        .replace("{cap}", "999999")
        .replace("{hazard}", "999999")
        .replace("{file}", "app.js")
        .replace("{date}", "2025-01-01")
        .replace("/alerts/canyon", "/alerts/999999")
        .replace("/deliveries/canyon", "/deliveries/999999")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_router() {
    // Routes are registered only through the documented router: no plain axum route anywhere.
    let api_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    for entry in std::fs::read_dir(&api_dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for needle in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".merge(",
            "Router::new(",
        ] {
            assert!(
                !text.contains(needle),
                "{} registers a route outside the OpenAPI router ({needle})",
                path.display()
            );
        }
    }

    let stack = Stack::start();
    let svc = start_service(stack.config("vf-openapi")).await;
    let addr = svc.http_addr;
    let doc: Value = reqwest::get(format!("http://{addr}/api/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc,
        serde_json::to_value(visitorflow::api::openapi_document()).unwrap(),
        "the served document is the generated one"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "delete", "put", "patch"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "GET /",
        "GET /board",
        "GET /ui/{file}",
        "GET /api/docs",
        "GET /api/openapi.json",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/live",
        "GET /api/v1/spaces",
        "GET /api/v1/spaces/{id}",
        "GET /api/v1/spaces/{id}/series",
        "POST /api/v1/spaces/{id}/recount",
        "GET /api/v1/spaces/{id}/recounts",
        "POST /api/v1/spaces/{id}/bookings",
        "GET /api/v1/spaces/{id}/slots",
        "GET /api/v1/spaces/{id}/admission",
        "POST /api/v1/spaces/{id}/admission/pause",
        "POST /ingest/{device}",
        "POST /api/v1/spaces/{id}/admission/resume",
        "GET /api/v1/spaces/{id}/levels",
        "GET /api/v1/spaces/{id}/caps",
        "POST /api/v1/spaces/{id}/caps",
        "DELETE /api/v1/spaces/{id}/caps/{cap}",
        "GET /api/v1/spaces/{id}/hazards",
        "POST /api/v1/spaces/{id}/hazards",
        "DELETE /api/v1/spaces/{id}/hazards/{hazard}",
        "GET /api/v1/devices",
        "GET /api/v1/alerts",
        "GET /api/v1/alerts/{id}",
        "POST /api/v1/alerts/{id}/ack",
        "GET /api/v1/compliance",
        "GET /api/v1/webhooks/deliveries",
        "POST /api/v1/webhooks/deliveries/{id}/replay",
        "GET /api/v1/audit",
        "GET /api/v1/reports/daily",
        "POST /api/v1/reports/daily/{date}/push",
        "GET /api/v1/reports/pushes",
        "GET /api/v1/live-feed/deliveries",
        "GET /api/v1/spaces/{id}/forecast",
        "POST /api/v1/forecast/run",
        "PUT /api/v1/spaces/{id}/forecast/inputs/{day}",
        "DELETE /api/v1/spaces/{id}/forecast/inputs/{day}",
        "GET /api/v1/forecast/inputs",
        "GET /api/v1/dispatch",
        "GET /api/v1/dispatch/history",
        "POST /api/v1/dispatch/advice/{id}/decision",
        "GET /api/v1/public/areas",
        "GET /api/v1/public/ngsi/CrowdFlowObserved",
        "GET /api/v1/public/ngsi/OffStreetParking",
    ]
    .map(String::from)
    .into();
    assert_eq!(documented, expected);
    // What a head count answers, the series' correction and the daily report's integrity figures
    // are in the document's schemas.
    let schemas = &doc["components"]["schemas"];
    for field in [
        "id",
        "space",
        "inside",
        "reason",
        "actor",
        "requested_at",
        "applied_at",
        "before",
        "delta",
    ] {
        assert!(
            schemas["Recount"]["properties"][field].is_object(),
            "Recount.{field}"
        );
    }
    assert!(schemas["SeriesPoint"]["properties"]["correction"].is_object());
    for field in ["corrections", "revised_at", "revised_reports"] {
        assert!(
            schemas["AreaDay"]["properties"][field].is_object(),
            "AreaDay.{field}"
        );
        assert!(
            schemas["CountyDay"]["properties"][field].is_object(),
            "CountyDay.{field}"
        );
    }

    // Every documented operation is served: never the fallback's 404 nor a 405.
    let client = http();
    for op in &documented {
        let (method, path) = op.split_once(' ').unwrap();
        let url = format!("http://{addr}{}", concrete(path));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client.request(method, &url);
        if op.starts_with("POST") {
            req = req.json(&serde_json::json!({}));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = if path == "/api/v1/live" {
            String::new()
        } else {
            r.text().await.unwrap()
        };
        assert_ne!(status, 405, "{op}: {text}");
        assert!(
            !text.contains("no such route"),
            "{op} is not routed: {text}"
        );
        if status >= 400 {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(v["error"]["status"], status, "{op}: error shape {text}");
        }
    }
    // And an undocumented path is not served.
    let r = client
        .get(format!("http://{addr}/api/v1/undocumented"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    svc.shutdown().await;
}

/// A head count by hand: recorded, applied by the ingester within the wait and answered with
/// what it changed (`before` = the occupancy shown, 0 with no reports; `delta` = inside − before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recount_answers_with_what_was_applied() {
    let stack = Stack::start();
    let svc = start_service(stack.config("vf-recount")).await;
    let addr = svc.http_addr;
    let r = http()
        .post(format!("http://{addr}/api/v1/spaces/canyon-pines/recount"))
        .json(&serde_json::json!({ "inside": 35, "reason": "  closing sweep " }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["space"], "canyon-pines", "{rec}");
    assert_eq!(rec["inside"], 35);
    assert_eq!(rec["reason"], "closing sweep", "trimmed");
    assert_eq!(rec["actor"], ADMIN_ID);
    assert_eq!((&rec["before"], &rec["delta"]), (&0.into(), &35.into()));
    assert!(rec["applied_at"].is_string() && rec["requested_at"].is_string());

    // Listed, newest first; the request and what it changed are in the audit log.
    let (s, v) = get_json(addr, "/api/v1/spaces/canyon-pines/recounts?limit=5").await;
    assert_eq!(s, 200);
    assert_eq!(v["recounts"][0], rec, "{v}");
    assert_eq!((&v["limit"], &v["offset"]), (&5.into(), &0.into()));
    let (_, audit) = get_json(addr, "/api/v1/audit?limit=100").await;
    let entries = audit["entries"].as_array().unwrap();
    let of = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["details"]["recount"] == rec["id"])
            .unwrap_or_else(|| panic!("no {action} entry: {audit}"))
            .clone()
    };
    let asked = of("recount");
    assert_eq!(
        (
            &asked["actor"],
            &asked["target"],
            &asked["details"]["inside"]
        ),
        (&ADMIN_ID.into(), &"canyon-pines".into(), &35.into())
    );
    let applied = of("recount_applied");
    assert_eq!(
        (&applied["details"]["before"], &applied["details"]["delta"]),
        (&0.into(), &35.into())
    );
    svc.shutdown().await;
}
