//! Shared harness for the integration tests: a private PostgreSQL cluster and Mosquitto broker per
//! test (real processes, real sockets), a config for them, a QoS 1 publisher that waits for the
//! broker's acknowledgements, and polling helpers for the API and the database.
#![allow(dead_code)]

pub mod check;
pub mod data;
pub mod hook;
pub mod proxy;
pub mod schema;

use std::collections::HashSet;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;
use tempfile::TempDir;
use visitorflow::api::auth;
use visitorflow::config::{Config, Role, TokenConfig};
use visitorflow::supervise::{Mosquitto, PgCluster};

/// The county of the integration tests (`tests/data/county.toml`).
pub const REGISTRY: &str = include_str!("../data/county.toml");
/// A distribution centre with a camera and a dispatch model, added to [`REGISTRY`].
pub const CENTRE: &str = include_str!("../data/centre.toml");

/// The admin token of every test service ([`Stack::config`]); [`http`] and the get helpers send it.
pub const ADMIN_TOKEN: &str = "vf_test-admin-token";
pub const ADMIN_ID: &str = "test-admin";

/// A config entry for `token`.
pub fn token_entry(id: &str, role: Role, spaces: &[&str], token: &str) -> TokenConfig {
    TokenConfig {
        id: id.into(),
        role,
        spaces: spaces.iter().map(|s| s.to_string()).collect(),
        sha256: auth::hex(&auth::sha256(token)),
    }
}

/// An HTTP client that sends `token` as its bearer.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// An HTTP client that sends the admin token.
pub fn http() -> reqwest::Client {
    client_with(ADMIN_TOKEN)
}

/// `VISITORFLOW_TEST_TIMESCALEDB=1`: run the suite's services and migrations with
/// `database.timescaledb = true`, so a machine with TimescaleDB installed checks that path end to
/// end. Unset (CI, which has no TimescaleDB), everything runs on plain PostgreSQL.
pub fn want_timescaledb() -> bool {
    std::env::var("VISITORFLOW_TEST_TIMESCALEDB").is_ok_and(|v| v == "1")
}

/// The storage mode a migration with [`want_timescaledb`] leads to on this stack's cluster.
pub fn expected_mode(pg: &PgCluster) -> visitorflow::store::Mode {
    if want_timescaledb() && pg.timescaledb_available() {
        visitorflow::store::Mode::Timescale
    } else {
        visitorflow::store::Mode::Plain
    }
}

pub struct Stack {
    // Fields drop in declaration order: stop the servers before their directory is deleted
    // (pg_ctl cannot stop a cluster whose data directory is gone, leaving an orphan postgres).
    pub pg: PgCluster,
    pub mq: Mosquitto,
    pub dir: TempDir,
}

impl Stack {
    pub fn start() -> Stack {
        // Service logs go to stdout, which the test harness does not capture: opt in with RUST_LOG.
        if std::env::var_os("RUST_LOG").is_some() {
            visitorflow::telemetry::init_logging();
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = PgCluster::start(&dir.path().join("pg")).expect("start PostgreSQL");
        pg.create_database("vf").expect("create database");
        let mq = Mosquitto::start(&dir.path().join("mq")).expect("start Mosquitto");
        Stack { dir, pg, mq }
    }

    /// The test registry wired to this stack; HTTP on a free port.
    pub fn config(&self, client_id: &str) -> Config {
        self.config_from(REGISTRY, client_id)
    }

    /// A registry's TOML (e.g. the embedded county default) wired to this stack like [`config`].
    pub fn config_from(&self, toml: &str, client_id: &str) -> Config {
        let mut cfg = Config::from_toml(toml).expect("test registry parses");
        cfg.database.url = self.pg.url("vf");
        // Plain PostgreSQL unless VISITORFLOW_TEST_TIMESCALEDB=1 asks for the TimescaleDB path
        // (which then runs wherever the extension is installed; CI has none).
        cfg.database.timescaledb = want_timescaledb();
        // VISITORFLOW_TEST_JOURNAL=1 journals every batch's state (a checkpoint only when input
        // pauses or every 5 s): scripts/test runs the fault suite so too, since the tests' few
        // counters are otherwise always written directly.
        if std::env::var("VISITORFLOW_TEST_JOURNAL").is_ok_and(|v| v == "1") {
            cfg.ingest.state_direct_rows = 0;
        }
        cfg.mqtt.port = self.mq.port();
        cfg.mqtt.client_id = client_id.into();
        cfg.mqtt.reconnect_delay_ms = 100;
        cfg.http.listen = "127.0.0.1:0".parse().unwrap();
        cfg.tokens = vec![token_entry(ADMIN_ID, Role::Admin, &[], ADMIN_TOKEN)];
        // Tests poll fast; the rate-limit test sets its own limits.
        cfg.http.rate_per_token = 100_000.0;
        cfg.http.rate_per_ip = 100_000.0;
        cfg.http.rate_burst = 100_000;
        cfg
    }

    /// [`Stack::config`] with the service reaching PostgreSQL and/or Mosquitto through proxies.
    pub fn config_via(
        &self,
        client_id: &str,
        pg: Option<&proxy::Proxy>,
        mq: Option<&proxy::Proxy>,
    ) -> Config {
        let mut cfg = self.config(client_id);
        if let Some(p) = pg {
            cfg.database.url = format!("postgres://visitorflow@127.0.0.1:{}/vf", p.port());
        }
        if let Some(p) = mq {
            cfg.mqtt.port = p.port();
        }
        cfg
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        visitorflow::store::connect(&self.pg.url("vf"))
            .await
            .expect("connect to test database")
    }
}

/// Starts the service and waits until its ingester holds a subscribed broker session, so nothing
/// published afterwards can be missed.
pub async fn start_service(cfg: Config) -> visitorflow::run::Service {
    let svc = visitorflow::run::Service::start(cfg)
        .await
        .expect("service starts");
    let addr = svc.http_addr;
    eventually(30, "the service to be ready", || async {
        (get_json(addr, "/readyz").await.0 == 200).then_some(())
    })
    .await;
    svc
}

/// Publishes QoS 1 messages and returns once the broker has acknowledged every one of them.
pub async fn publish_all(port: u16, client_id: &str, msgs: Vec<(String, String)>) {
    let msgs = msgs.into_iter().map(|(t, p)| (t, p.into_bytes())).collect();
    publish_bytes(port, client_id, msgs).await;
}

/// [`publish_all`] for arbitrary payloads (invalid UTF-8, up to 2 MiB).
pub async fn publish_bytes(port: u16, client_id: &str, msgs: Vec<(String, Vec<u8>)>) {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(500);
    o.set_max_packet_size(2 << 20, 2 << 20);
    let (client, mut ev) = AsyncClient::new(o, 1000);
    let n = msgs.len();
    let sender = tokio::spawn(async move {
        for (t, p) in msgs {
            client
                .publish(t, QoS::AtLeastOnce, false, p)
                .await
                .expect("queue publish");
        }
        client
    });
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked < n {
        let e = tokio::time::timeout_at(deadline, ev.poll())
            .await
            .expect("publisher timed out")
            .expect("publisher connection");
        if let Event::Incoming(Packet::PubAck(_)) = e {
            acked += 1;
        }
    }
    let client = sender.await.unwrap();
    let _ = client.disconnect().await;
    // Let the DISCONNECT go out so the broker does not publish a will or keep a half-open session.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            match ev.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                _ => {}
            }
        }
    })
    .await;
}

pub fn report(seq: u64, ts: &str, e: u32, x: u32) -> String {
    format!(r#"{{"seq":{seq},"ts":"{ts}","in":{e},"out":{x}}}"#)
}

pub fn counts_topic(space: &str, device: &str) -> String {
    format!("vf/{space}/{device}/counts")
}

pub async fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let r = http()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("http request");
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

pub async fn get_text(addr: std::net::SocketAddr, path: &str) -> String {
    http()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("http request")
        .text()
        .await
        .unwrap()
}

/// Polls `f` until it returns Some, or panics with `what` after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a space's `entries_today` in the API to reach `entries`, returns the space JSON.
pub async fn wait_entries(addr: std::net::SocketAddr, space: &str, entries: u64) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let found = tokio::time::timeout(
        Duration::from_secs(30),
        eventually(31, "entries", || async {
            let (_, v) = get_json(addr, &format!("/api/v1/spaces/{space}")).await;
            *last.lock().unwrap() = v.clone();
            (v["entries_today"].as_u64() == Some(entries)).then_some(v)
        }),
    )
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "{space} never reached {entries} entries; last seen {}",
            last.lock().unwrap()
        )
    })
}

/// What the raw table holds: rows, distinct (device, seq), Σ entries, Σ exits (with repairs).
pub async fn stored(db: &tokio_postgres::Client) -> (i64, i64, i64, i64) {
    let r = db
        .query_one(
            "SELECT count(*), count(DISTINCT (device_id, seq)), coalesce(sum(entries + repaired_entries), 0)::int8, \
             coalesce(sum(exits + repaired_exits), 0)::int8 FROM reports",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

/// Σ entries/exits of a space's minute buckets: must equal what the raw table implies.
pub async fn bucket_totals(db: &tokio_postgres::Client, space: &str) -> (i64, i64) {
    let r = db
        .query_one(
            "SELECT coalesce(sum(entries), 0)::int8, coalesce(sum(exits), 0)::int8 FROM space_series_1m WHERE space_id = $1",
            &[&space],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

pub fn unique(msgs: &[(String, String)]) -> usize {
    msgs.iter().collect::<HashSet<_>>().len()
}

/// `visitorflow run --config CONFIG` as a child process (warnings only on stderr).
pub fn spawn_service(config: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_visitorflow"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start visitorflow")
}

/// Kills the children on every exit path, a failed assertion included.
pub struct Children(pub Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
