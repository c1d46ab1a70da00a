//! Partitioned ingest with real binaries: three partitions over two instances sharing one
//! Mosquitto and one PostgreSQL. A stream with duplicates is published for areas of every
//! partition; the instance holding two partitions is killed with SIGKILL mid-stream, the other
//! takes them over (their persistent sessions and advisory locks), and a replacement starts as a
//! standby. Afterwards the stored set equals the published set, nothing is counted twice, every
//! space shows the right figures on every instance's API, and the county is the sum of its areas.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{FixedOffset, Utc};
use common::*;
use visitorflow::config::{Config, PartitionConfig};

const REGISTRY: &str = r#"
[county]
time_zone = "Asia/Shanghai"

[ingest]
batch_linger_ms = 10
max_age_days = 7300

[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"

[[spaces]]
id = "canyon"
kind = "scenic_area"
parent = "county"
name_zh = "天山大峡谷"
name_en = "Tianshan Grand Canyon"
instant_capacity = 100000

[[spaces]]
id = "canyon-pines"
kind = "zone"
parent = "canyon"
name_zh = "天山松林"
name_en = "Pine forest"

[[spaces]]
id = "park"
kind = "car_park"
parent = "canyon"
name_zh = "停车场"
name_en = "Car park"

[[spaces]]
id = "village"
kind = "scenic_area"
parent = "county"
name_zh = "天山杏花村"
name_en = "Apricot village"

[[spaces]]
id = "lake"
kind = "scenic_area"
parent = "county"
name_zh = "天池"
name_en = "Lake"

[[spaces]]
id = "lake-shore"
kind = "zone"
parent = "lake"
name_zh = "湖岸"
name_en = "Lake shore"

[[spaces]]
id = "ranch"
kind = "scenic_area"
parent = "county"
name_zh = "南山牧场"
name_en = "Nanshan ranch"

[[spaces]]
id = "hub"
kind = "hub"
parent = "county"
name_zh = "游客集散中心"
name_en = "Visitor hub"

[[devices]]
id = "gate-1"
space = "canyon"
kind = "gate"

[[devices]]
id = "gate-2"
space = "canyon"
kind = "gate"

[[devices]]
id = "cam-pines"
space = "canyon-pines"
kind = "camera"
direction = "reversed"

[[devices]]
id = "barrier"
space = "park"
kind = "vehicle_counter"

[[devices]]
id = "door"
space = "village"
kind = "camera"

[[devices]]
id = "shore-cam"
space = "lake-shore"
kind = "camera"

[[devices]]
id = "ranch-gate"
space = "ranch"
kind = "gate"

[[devices]]
id = "hub-gate"
space = "hub"
kind = "gate"
"#;

/// (device, space in the topic): partition 0 = canyon; 1 = village, ranch; 2 = lake, hub.
const DEVICES: [(&str, &str); 8] = [
    ("gate-1", "canyon"),
    ("gate-2", "canyon"),
    ("cam-pines", "canyon-pines"),
    ("barrier", "park"),
    ("door", "village"),
    ("ranch-gate", "ranch"),
    ("shore-cam", "lake-shore"),
    ("hub-gate", "hub"),
];

/// Long enough for B to start and take the partitions it runs before A's standby starts trying,
/// even on a busy machine; the kill waits for it, so the takeover time is the failover alone.
const STANDBY_DELAY_MS: u64 = 6_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the config of one instance and returns its path and HTTP address.
fn instance(
    stack: &Stack,
    name: &str,
    run: &[u32],
    standby: &[u32],
) -> (std::path::PathBuf, SocketAddr) {
    let mut cfg = Config::from_toml(REGISTRY).unwrap();
    cfg.database.url = stack.pg.url("vf");
    cfg.database.timescaledb = false;
    cfg.mqtt.port = stack.mq.port();
    cfg.mqtt.client_id = "vf-ingester".into();
    cfg.mqtt.reconnect_delay_ms = 100;
    cfg.http.listen = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    cfg.tokens = stack.config("vf-partition-tokens").tokens;
    let assign: BTreeMap<String, u32> = [
        ("canyon", 0),
        ("village", 1),
        ("ranch", 1),
        ("lake", 2),
        ("hub", 2),
    ]
    .into_iter()
    .map(|(a, n)| (a.to_string(), n))
    .collect();
    cfg.partition = Some(PartitionConfig {
        count: 3,
        run: run.to_vec(),
        standby: standby.to_vec(),
        assign,
        standby_poll_ms: 200,
        standby_delay_ms: STANDBY_DELAY_MS,
        refresh_ms: 200,
        instance: Some(name.into()),
    });
    let path = stack.dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    (path, cfg.http.listen)
}

async fn wait_ready(addr: SocketAddr) {
    eventually(30, "an instance to be ready", || async {
        match reqwest::get(format!("http://{addr}/readyz")).await {
            Ok(r) if r.status() == 200 => Some(()),
            _ => None,
        }
    })
    .await;
}

async fn owners(db: &tokio_postgres::Client) -> Vec<(i32, String)> {
    db.query(
        "SELECT partition, holder FROM partition_owner ORDER BY partition",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_survive_the_loss_of_an_instance() {
    let started = std::time::Instant::now();
    let stack = Stack::start();
    let (a_cfg, a) = instance(&stack, "A", &[0], &[1, 2]);
    let (b_cfg, b) = instance(&stack, "B", &[1, 2], &[0]);
    let (c_cfg, c) = instance(&stack, "B-replacement", &[1, 2], &[0]);
    let mut kids = Children(vec![spawn_service(&a_cfg)]);
    let a_started = std::time::Instant::now();
    wait_ready(a).await;
    kids.0.push(spawn_service(&b_cfg));
    wait_ready(b).await;
    let db = stack.db().await;
    assert_eq!(
        owners(&db).await,
        [(0, "A".into()), (1, "B".into()), (2, "B".into())],
        "each instance holds the partitions it runs"
    );
    for stmt in visitorflow::store::sql::ALL_PARTITION {
        db.prepare(stmt).await.expect(stmt);
    }

    // 8 devices × 400 reports; every device's "in" ≥ "out" per report, so no minute ever clamps
    // and occupancy = entries − exits exactly. Every 7th message is published twice.
    let ts = Utc::now()
        .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    let per_device: u64 = 400;
    let mut msgs = Vec::new();
    for seq in 1..=per_device {
        for (i, (dev, space)) in DEVICES.iter().enumerate() {
            let (e, x) = (1 + (seq + i as u64) % 3, (seq + i as u64) % 2);
            // The reversed camera's "in" is people leaving its zone.
            let (pin, pout) = if *dev == "cam-pines" { (x, e) } else { (e, x) };
            let m = (
                counts_topic(space, dev),
                report(seq, &ts, pin as u32, pout as u32),
            );
            if (seq + i as u64).is_multiple_of(7) {
                msgs.push(m.clone());
            }
            msgs.push(m);
        }
    }
    let unique_msgs = unique(&msgs);
    assert_eq!(unique_msgs as u64, per_device * DEVICES.len() as u64);
    let mut want: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for seq in 1..=per_device {
        for (i, (dev, _)) in DEVICES.iter().enumerate() {
            let (e, x) = (1 + (seq + i as u64) % 3, (seq + i as u64) % 2);
            let w = want.entry(dev).or_default();
            w.0 += e;
            w.1 += x;
        }
    }
    let sum = |devs: &[&str]| {
        devs.iter().fold((0, 0), |(e, x), d| {
            let w = want[d];
            (e + w.0, x + w.1)
        })
    };
    let spaces: Vec<(&str, (u64, u64))> = vec![
        ("canyon", sum(&["gate-1", "gate-2"])),
        ("canyon-pines", sum(&["cam-pines"])),
        ("park", sum(&["barrier"])),
        ("village", sum(&["door"])),
        ("ranch", sum(&["ranch-gate"])),
        ("lake-shore", sum(&["shore-cam"])),
        ("lake", sum(&["shore-cam"])),
        ("hub", sum(&["hub-gate"])),
        // The county is its areas: canyon (its own gates), village, ranch, lake.
        (
            "county",
            sum(&["gate-1", "gate-2", "door", "ranch-gate", "shore-cam"]),
        ),
    ];

    let mq = stack.mq.port();
    let chunks: Vec<Vec<(String, String)>> = msgs.chunks(100).map(|c| c.to_vec()).collect();
    let publisher = tokio::spawn(async move {
        for (i, chunk) in chunks.into_iter().enumerate() {
            publish_all(mq, &format!("pub-p{i}"), chunk).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    // Mid-stream, once B has committed some of its partitions' reports (and A's standby delay is
    // over, so what is timed below is the failover): B dies without running any shutdown code.
    let b_devices = "device_id IN ('door', 'ranch-gate', 'shore-cam', 'hub-gate')";
    let b_count = format!("SELECT count(*) FROM reports WHERE {b_devices}");
    eventually(20, "B to commit reports", || async {
        let n: i64 = db.query_one(&b_count, &[]).await.unwrap().get(0);
        (n >= 600).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(STANDBY_DELAY_MS).saturating_sub(a_started.elapsed()))
        .await;
    assert!(!publisher.is_finished(), "the stream ended before the kill");
    let mut b_child = kids.0.remove(1);
    b_child.kill().unwrap();
    b_child.wait().unwrap();
    let killed_at = std::time::Instant::now();
    let b_committed: i64 = db.query_one(&b_count, &[]).await.unwrap().get(0);

    // A stands by for 1 and 2: it takes both over (lock, then the broker session by client id).
    eventually(20, "A to take over partitions 1 and 2", || async {
        (owners(&db).await == [(0, "A".into()), (1, "A".into()), (2, "A".into())]).then_some(())
    })
    .await;
    let takeover = killed_at.elapsed();
    // A replacement for B finds its partitions held and stands by without kicking A's sessions.
    kids.0.push(spawn_service(&c_cfg));
    wait_ready(c).await;
    publisher.await.unwrap();

    for addr in [a, c] {
        for (space, (e, x)) in &spaces {
            let v = wait_entries(addr, space, *e).await;
            assert_eq!(
                v["exits_today"].as_u64(),
                Some(*x),
                "{space} exits at {addr}"
            );
            assert_eq!(
                v["occupancy"].as_u64(),
                Some(e - x),
                "{space} occupancy at {addr}"
            );
            assert_eq!(
                v["drift_today"].as_u64(),
                Some(0),
                "{space} drift at {addr}"
            );
        }
        let (_, all) = get_json(addr, "/api/v1/spaces").await;
        let listed: HashSet<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed.len(), 9, "{addr} lists the whole county");
        let county = all
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "county")
            .unwrap();
        let areas: u64 = ["canyon", "village", "ranch", "lake"]
            .iter()
            .map(|id| {
                all.as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["id"] == *id)
                    .unwrap()["occupancy"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert_eq!(county["occupancy"].as_u64(), Some(areas));
        let (_, devices) = get_json(addr, "/api/v1/devices").await;
        for d in devices.as_array().unwrap() {
            assert_eq!(d["last_seq"].as_u64(), Some(per_device), "{d} at {addr}");
        }
    }

    // The stored set is the published set: every (device, seq) once, every count once.
    let total_in: u64 = want.values().map(|w| w.0).sum();
    let total_out: u64 = want.values().map(|w| w.1).sum();
    assert_eq!(
        stored(&db).await,
        (
            unique_msgs as i64,
            unique_msgs as i64,
            total_in as i64,
            total_out as i64
        )
    );
    for (space, (e, x)) in &spaces {
        if *space == "county" {
            continue;
        }
        assert_eq!(
            bucket_totals(&db, space).await,
            (*e as i64, *x as i64),
            "{space} minute buckets"
        );
    }
    // Nobody counted the county itself: no instance wrote its state or series.
    let county_rows: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM space_state WHERE space_id = 'county') \
             + (SELECT count(*) FROM space_series_1m WHERE space_id = 'county')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(county_rows, 0);
    assert_eq!(
        owners(&db).await,
        [(0, "A".into()), (1, "A".into()), (2, "A".into())],
        "the replacement did not take a held partition"
    );
    // Exactly one instance runs the alerting rules (the leader lock), whichever it is.
    let leaders: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::int8 = $1 \
             AND objid::int8 = 0 AND objsubid = 2 AND granted",
            &[&0x5646_0002_i64],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leaders, 1);
    println!(
        "partition test: {} messages ({} unique, {} duplicates) over 3 partitions; B killed after \
         committing {b_committed} of its {} reports; takeover by A in {:.2} s; total {:.1} s",
        msgs.len(),
        unique_msgs,
        msgs.len() - unique_msgs,
        4 * per_device,
        takeover.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// The fence: a map that moves an area cannot be adopted while a session of the old map holds a
/// partition; once every old session is gone it is, and then the old map is refused in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_that_moves_areas_waits_for_every_old_session_to_stop() {
    use std::sync::Arc;
    use visitorflow::live::Live;
    use visitorflow::partition::{PartitionError, PartitionMap, Shared};

    let stack = Stack::start();
    let url = stack.pg.url("vf");
    visitorflow::store::migrate(&url, "Asia/Shanghai", false, 30)
        .await
        .unwrap();
    // One scope of partition `n` under a map placing canyon in `canyon_in`.
    let scope = |canyon_in: u32, n: u32| {
        let (path, _) = instance(&stack, "fence", &[n], &[]);
        let mut cfg = Config::load(Some(&path)).unwrap();
        let mut p = cfg.partition.take().unwrap();
        p.assign.insert("canyon".into(), canyon_in);
        let reg = Arc::new(cfg.registry().unwrap());
        let map = PartitionMap::build(&reg, &p).unwrap();
        let live = Arc::new(Live::new(reg.spaces.len(), reg.devices.len()));
        let shared = Shared::new(reg, live, map, &p);
        shared.scopes(&p, &cfg.mqtt).remove(0)
    };
    let connect = || visitorflow::store::connect(&url);

    let mut old_p0 = connect().await.unwrap();
    scope(0, 0)
        .claim(&mut old_p0)
        .await
        .expect("first map adopted");
    // Same map, another partition: fine while p0 runs.
    let mut old_p1 = connect().await.unwrap();
    scope(0, 1).claim(&mut old_p1).await.expect("same map");
    drop(old_p1);
    // A map moving canyon to partition 1 while old p0 still holds its lock: refused.
    let mut new_p1 = connect().await.unwrap();
    let e = scope(1, 1).claim(&mut new_p1).await.unwrap_err();
    assert!(
        matches!(&e, PartitionError::Fence(m) if m.contains("canyon: p0 → p1")),
        "{e}"
    );
    drop(new_p1);
    // Every old session gone: the new map is adopted…
    drop(old_p0);
    let new_p1 = eventually(10, "the old lock to go", || async {
        let mut c = connect().await.unwrap();
        scope(1, 1).claim(&mut c).await.ok().map(|_| c)
    })
    .await;
    // …and now the old map is the one refused.
    let mut old_p2 = connect().await.unwrap();
    let e = scope(0, 2).claim(&mut old_p2).await.unwrap_err();
    assert!(matches!(e, PartitionError::Fence(_)), "{e}");
    let db = stack.db().await;
    let row = db
        .query_one(
            "SELECT partition FROM partition_units WHERE unit = 'canyon'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    new_p1.batch_execute("SELECT 1").await.unwrap();
}
