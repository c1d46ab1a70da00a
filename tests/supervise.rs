//! Real PostgreSQL and Mosquitto processes over real sockets (see `scripts/test`, which installs
//! them). Each test owns a fresh temporary directory and free ports, so they run in parallel.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::time::timeout;
use tokio_postgres::NoTls;
use visitorflow::supervise::{Broker, EmbeddedBroker, Mosquitto, PgCluster, mosquitto_available};

const STEP: Duration = Duration::from_secs(10);

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(async move {
        // Ends with an error when the server goes away; that is what the crash test does.
        let _ = connection.await;
    });
    client
}

#[tokio::test]
async fn cluster_starts_creates_a_database_and_serves_queries() {
    let dir = tempfile::tempdir().unwrap();
    let pg = PgCluster::start(dir.path()).unwrap();
    pg.create_database("vf_test").unwrap();
    pg.create_database("vf_test").unwrap(); // idempotent

    let client = connect(&pg.url("vf_test")).await;
    let row = client
        .query_one(
            "SELECT current_user::text, current_database()::text, 40 + 2",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "visitorflow");
    assert_eq!(row.get::<_, String>(1), "vf_test");
    assert_eq!(row.get::<_, i32>(2), 42);
    assert!(
        pg.url("vf_test")
            .ends_with(&format!(":{}/vf_test", pg.port()))
    );

    // The setting follows the library's presence; without TimescaleDB nothing is preloaded.
    let preload: String = client
        .query_one("SHOW shared_preload_libraries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(preload.contains("timescaledb"), pg.timescaledb_available());
}

#[tokio::test]
async fn committed_row_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut pg = PgCluster::start(dir.path()).unwrap();
    pg.create_database("vf_crash").unwrap();
    let url = pg.url("vf_crash");
    let port = pg.port();

    let client = connect(&url).await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL)")
        .await
        .unwrap();
    client
        .execute("INSERT INTO t VALUES (1, 'committed')", &[])
        .await
        .unwrap();

    pg.crash().unwrap();
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "the old session must be gone after a crash"
    );
    assert!(tokio_postgres::connect(&url, NoTls).await.is_err());

    pg.start_again().unwrap();
    assert_eq!(pg.port(), port, "same port, so existing URLs stay valid");
    let client = connect(&url).await;
    let note: String = client
        .query_one("SELECT note FROM t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(note, "committed");

    // A clean stop and start works too, and stopping twice is harmless.
    pg.stop().unwrap();
    pg.stop().unwrap();
    pg.start_again().unwrap();
    assert!(pg.start_again().is_err(), "already running");
}

fn mqtt(id: &str, port: u16, clean: bool) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_clean_session(clean)
        .set_keep_alive(Duration::from_secs(5));
    AsyncClient::new(opts, 16)
}

/// Polls until the broker's CONNACK and returns its `session_present`.
async fn connack(events: &mut EventLoop) -> bool {
    timeout(STEP, async {
        loop {
            if let Event::Incoming(Packet::ConnAck(ack)) = events.poll().await.unwrap() {
                return ack.session_present;
            }
        }
    })
    .await
    .expect("CONNACK")
}

async fn until_packet(events: &mut EventLoop, want: fn(&Packet) -> bool) -> Packet {
    timeout(STEP, async {
        loop {
            if let Event::Incoming(p) = events.poll().await.unwrap()
                && want(&p)
            {
                return p;
            }
        }
    })
    .await
    .expect("expected packet")
}

/// Sends DISCONNECT and drives the event loop until the connection is closed.
async fn disconnect(client: &AsyncClient, events: &mut EventLoop) {
    client.disconnect().await.unwrap();
    timeout(STEP, async { while events.poll().await.is_ok() {} })
        .await
        .expect("disconnect");
}

async fn publish_one(port: u16, topic: &str, payload: &str) {
    let (client, mut events) = mqtt("vf-supervise-pub", port, true);
    connack(&mut events).await;
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .await
        .unwrap();
    until_packet(&mut events, |p| matches!(p, Packet::PubAck(_))).await;
    disconnect(&client, &mut events).await;
}

#[tokio::test]
async fn mosquitto_keeps_a_persistent_session_across_a_graceful_restart() {
    assert!(
        mosquitto_available(),
        "mosquitto is not installed; scripts/test installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path()).unwrap();
    let port = broker.port();

    // A persistent-session subscriber registers its subscription, then goes away.
    let (sub, mut sub_events) = mqtt("vf-supervise-sub", port, false);
    connack(&mut sub_events).await;
    sub.subscribe("vf/test/#", QoS::AtLeastOnce).await.unwrap();
    until_packet(&mut sub_events, |p| matches!(p, Packet::SubAck(_))).await;
    disconnect(&sub, &mut sub_events).await;

    // Published while it is away: queued in its session, then saved by the graceful stop.
    publish_one(port, "vf/test/gate-1", "while away").await;
    broker.stop().unwrap();
    broker.start_again().unwrap();
    assert_eq!(broker.port(), port);

    let (_sub, mut sub_events) = mqtt("vf-supervise-sub", port, false);
    assert!(
        connack(&mut sub_events).await,
        "session must survive the restart"
    );
    let Packet::Publish(publish) =
        until_packet(&mut sub_events, |p| matches!(p, Packet::Publish(_))).await
    else {
        unreachable!()
    };
    assert_eq!(publish.topic, "vf/test/gate-1");
    assert_eq!(&publish.payload[..], b"while away");
    assert_eq!(publish.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn mosquitto_can_be_killed_and_started_again() {
    assert!(
        mosquitto_available(),
        "mosquitto is not installed; scripts/test installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path()).unwrap();
    let description = broker.describe();
    assert!(
        description.starts_with("mosquitto 2.") && description.contains("(pid "),
        "{description}"
    );
    let Broker::Mosquitto(mosquitto) = &mut broker else {
        panic!("Mosquitto is installed, so Broker::start must use it");
    };
    let port = mosquitto.port();
    mosquitto.kill().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    mosquitto.start_again().unwrap();
    assert!(mosquitto.start_again().is_err(), "already running");
    publish_one(port, "vf/test/after-kill", "up again").await;
}

#[tokio::test]
async fn embedded_broker_routes_qos1_messages() {
    let broker = EmbeddedBroker::start().unwrap();
    let port = broker.port();

    let (sub, mut sub_events) = mqtt("vf-embedded-sub", port, true);
    connack(&mut sub_events).await;
    sub.subscribe("vf/embedded/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    until_packet(&mut sub_events, |p| matches!(p, Packet::SubAck(_))).await;

    // The subscriber's event loop must keep running while the publisher works.
    let received = tokio::spawn(async move {
        until_packet(&mut sub_events, |p| matches!(p, Packet::Publish(_))).await
    });
    publish_one(port, "vf/embedded/gate-1", "hello").await;
    let Packet::Publish(publish) = received.await.unwrap() else {
        unreachable!()
    };
    assert_eq!(publish.topic, "vf/embedded/gate-1");
    assert_eq!(&publish.payload[..], b"hello");
}

#[tokio::test]
async fn a_start_stops_the_mosquitto_a_dead_process_left_in_its_directory() {
    assert!(
        mosquitto_available(),
        "mosquitto is not installed; scripts/test installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let first = Mosquitto::start(dir.path()).unwrap();
    let (pid, port) = (first.pid().unwrap(), first.port());
    // As if our process had been killed: no Drop, so the broker keeps running.
    std::mem::forget(first);
    let conf = dir.path().canonicalize().unwrap().join("mosquitto.conf");
    assert!(visitorflow::supervise::process_has_arg(
        pid,
        conf.as_os_str()
    ));

    let second = Mosquitto::start(dir.path()).unwrap();
    assert!(
        !visitorflow::supervise::process_has_arg(pid, conf.as_os_str()),
        "the leftover broker (pid {pid}) must be stopped"
    );
    assert_ne!(second.pid(), Some(pid));
    if second.port() != port {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
    publish_one(second.port(), "vf/test/after-leftover", "fresh").await;
}
