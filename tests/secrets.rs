//! Secrets never reach the logs: the real binary runs with credentials in its database URL and
//! MQTT password (passed through the environment, as in production) at the most verbose log
//! level, through start-up, ingest, a database crash and its recovery, and a start with a
//! malformed URL; its whole output must not contain either password.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const DB_PASSWORD: &str = "Db-s3cret-9f7c1e";
/// Digits only: the environment layer parses it as a number, which must still work and stay quiet.
const MQTT_PASSWORD: &str = "731904268815";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(config: &std::path::Path, db_url: &str, log: &std::path::Path) -> std::process::Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_visitorflow"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "trace,rumqttd=off")
        .env("VISITORFLOW__DATABASE__URL", db_url)
        .env("VISITORFLOW__MQTT__USERNAME", "ingester")
        .env("VISITORFLOW__MQTT__PASSWORD", MQTT_PASSWORD)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start visitorflow")
}

fn assert_clean(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    for secret in [DB_PASSWORD, MQTT_PASSWORD] {
        assert!(
            !text.contains(secret),
            "a password appears in the logs: {}",
            text.lines().find(|l| l.contains(secret)).unwrap()
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_logs() {
    let mut stack = Stack::start();
    let mut cfg = stack.config("vf-secrets");
    cfg.database.url = String::new(); // only in the environment
    let port = free_port();
    cfg.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let addr = cfg.http.listen;
    let config = stack.dir.path().join("visitorflow.toml");
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    // Trust authentication ignores the password, so the URL works and carries a secret.
    let url = format!(
        "postgres://visitorflow:{DB_PASSWORD}@127.0.0.1:{}/vf",
        stack.pg.port()
    );
    let log = stack.dir.path().join("run.log");
    let mut child = spawn(&config, &url, &log);
    eventually(30, "the service to be ready", || async {
        match reqwest::get(format!("http://{addr}/readyz")).await {
            Ok(r) if r.status() == 200 => Some(()),
            _ => None,
        }
    })
    .await;
    let ts = chrono::Utc::now().to_rfc3339();
    publish_all(
        stack.mq.port(),
        "pub-secrets",
        vec![(counts_topic("canyon", "gate-1"), report(1, &ts, 3, 1))],
    )
    .await;
    wait_entries(addr, "canyon", 3).await;
    // Errors are where URLs tend to leak: crash the database under the running service.
    tokio::task::block_in_place(|| stack.pg.crash()).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::block_in_place(|| stack.pg.start_again()).unwrap();
    publish_all(
        stack.mq.port(),
        "pub-secrets-2",
        vec![(counts_topic("canyon", "gate-1"), report(2, &ts, 2, 0))],
    )
    .await;
    wait_entries(addr, "canyon", 5).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let text = assert_clean(&log);
    assert!(text.contains("visitorflow running"), "the log was captured");
    assert!(
        text.contains("ingest session ended"),
        "the database failure was logged (without its URL)"
    );

    // A malformed URL with a password in it: refused, and not echoed.
    let bad = format!("postgres://visitorflow:{DB_PASSWORD}@127.0.0.1:notaport/vf");
    let log = stack.dir.path().join("bad-url.log");
    let mut child = spawn(&config, &bad, &log);
    let status = tokio::task::block_in_place(|| {
        for _ in 0..100 {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().unwrap();
        child.wait().unwrap()
    });
    assert!(
        !status.success(),
        "a malformed database URL stops the start"
    );
    let text = assert_clean(&log);
    assert!(text.contains("invalid database url"), "{text}");
}
