//! End-to-end checks of `visitorflow::sim` against a real Mosquitto started on a free port in a
//! temporary directory: a rumqttc subscriber must receive exactly what `replay` and `simulate`
//! say they published.

mod common;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use visitorflow::config::{Config, Direction, MqttConfig, PayloadFormat};
use visitorflow::registry::Registry;
use visitorflow::sim::report::NativeReport;
use visitorflow::sim::{self, ReplayOptions, SimError, SimulateOptions};

const COUNTY: &str = include_str!("data/sim-county.toml");

fn registry() -> Registry {
    Config::from_toml(COUNTY).unwrap().registry().unwrap()
}

/// A private Mosquitto; killed (by its own pid) when dropped.
struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        // `user root`: as root, Mosquitto would otherwise switch to user `mosquitto`; as anyone
        // else the line has no effect. Queues are raised so a fast replay is never dropped.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 user root\nmax_queued_messages 1000000\nmax_inflight_messages 0\n"
            ),
        )
        .unwrap();
        let bin = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let log = std::fs::File::create(dir.path().join("mosquitto.log")).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} ({e}); install mosquitto"));
        let broker = Self {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return broker;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mosquitto did not listen on {port}");
    }

    fn mqtt(&self) -> MqttConfig {
        MqttConfig {
            port: self.port,
            ..MqttConfig::default()
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (topic, payload) in arrival order.
type Messages = Vec<(String, Vec<u8>)>;

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Messages>>);

impl Received {
    fn count_on(&self, suffix: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t.ends_with(suffix))
            .count()
    }

    fn snapshot(&self) -> Messages {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `done` holds, then a little longer so extra messages would show.
    async fn settle(&self, done: impl Fn(&Self) -> bool) {
        for _ in 0..400 {
            if done(self) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Subscribes to `vf/#` at QoS 1 and returns once the broker confirmed the subscription.
async fn subscribe(broker: &Broker) -> (Received, tokio::task::JoinHandle<()>) {
    let mut o = MqttOptions::new("sim-test-sub", "127.0.0.1", broker.port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    client.subscribe("vf/#", QoS::AtLeastOnce).await.unwrap();
    let received = Received::default();
    let sink = received.clone();
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let _client = client;
        let mut subscribed = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => sink
                    .0
                    .lock()
                    .unwrap()
                    .push((p.topic.clone(), p.payload.to_vec())),
                Ok(_) => {}
                // A lost subscriber shows up as missing messages in the test's assertions.
                Err(_) => break,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(5), subscribed_rx)
        .await
        .expect("no SubAck")
        .unwrap();
    (received, task)
}

fn native_reports(payload: &[u8]) -> Vec<NativeReport> {
    match serde_json::from_slice::<Value>(payload).unwrap() {
        Value::Array(_) => serde_json::from_slice(payload).unwrap(),
        _ => vec![serde_json::from_slice(payload).unwrap()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calit2_replay_arrives_exactly() {
    let Some(data) = common::data::dataset("calit2/calit2_inout_merged.csv") else {
        return;
    };
    let broker = Broker::start();
    let (rx, sub) = subscribe(&broker).await;
    let reg = registry();
    let start = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap() - TimeDelta::weeks(15);
    let mut opts = ReplayOptions::new(data);
    opts.device = Some("hub-g1".into());
    opts.rebase = Some(start);
    let stats = sim::replay(opts, &reg, &broker.mqtt()).await.unwrap();
    assert_eq!(stats.dataset, sim::Dataset::Calit2);
    assert_eq!((stats.reports, stats.messages), (5040, 5040));
    assert_eq!((stats.total_in, stats.total_out), (19_625, 18_806));
    assert_eq!((stats.empty_cells, stats.skipped_reports), (2, 0));
    assert_eq!(stats.first_ts, Some(start + TimeDelta::minutes(30)));

    rx.settle(|r| r.count_on("/counts") >= 5040).await;
    let got = rx.snapshot();
    assert_eq!(got.len(), 5040);
    let mut seqs = Vec::new();
    let (mut sum_in, mut sum_out, mut last_totals) = (0u64, 0u64, (0, 0));
    for (topic, payload) in &got {
        assert_eq!(topic, "vf/hub/hub-g1/counts");
        let [r] = &native_reports(payload)[..] else {
            panic!("batch 1 sends one object per message")
        };
        assert_eq!(r.period_s, Some(1800));
        seqs.push(r.seq);
        sum_in += u64::from(r.in_count);
        sum_out += u64::from(r.out_count);
        last_totals = last_totals.max((r.total_in.unwrap(), r.total_out.unwrap()));
        if r.seq == 1 {
            let ts = DateTime::parse_from_rfc3339(&r.ts).unwrap();
            assert_eq!(ts, start + TimeDelta::minutes(30));
            assert!(r.ts.ends_with("+08:00"), "{}", r.ts);
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=5040).collect::<Vec<u64>>());
    assert_eq!((sum_in, sum_out), (19_625, 18_806));
    assert_eq!(last_totals, (19_625, 18_806));
    sub.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dublin_replay_in_batches_arrives_exactly() {
    let Some(data) = common::data::dataset("dublin/dublin_footfall_2023_hourly.csv") else {
        return;
    };
    let broker = Broker::start();
    let (rx, sub) = subscribe(&broker).await;
    let reg = registry();
    let mut opts = ReplayOptions::new(data);
    opts.devices = vec!["canyon-g1".into(), "cave-cam".into()];
    opts.batch = 48;
    let stats = sim::replay(opts, &reg, &broker.mqtt()).await.unwrap();
    assert_eq!(stats.dataset, sim::Dataset::Dublin);
    assert_eq!(stats.devices.len(), 2);
    assert_eq!(stats.devices[0].source, "Aston Quay/Fitzgeralds");
    // Aston Quay is complete; Bachelors Walk was offline for 1,364 hours.
    assert_eq!(stats.reports, 8760 + 7396);
    assert_eq!(stats.reports + stats.skipped_reports, 2 * 8760);

    rx.settle(|r| r.count_on("/counts") as u64 >= stats.messages)
        .await;
    let got = rx.snapshot();
    assert_eq!(got.len() as u64, stats.messages);
    let mut per_device: BTreeMap<String, (Vec<u64>, u64, u64)> = BTreeMap::new();
    for (topic, payload) in &got {
        let reports = native_reports(payload);
        assert!(!reports.is_empty() && reports.len() <= 48);
        let e = per_device.entry(topic.clone()).or_default();
        for r in reports {
            assert_eq!(r.period_s, Some(3600));
            e.0.push(r.seq);
            e.1 += u64::from(r.in_count);
            e.2 += u64::from(r.out_count);
        }
    }
    for d in &stats.devices {
        let (seqs, i, o) = &per_device[&format!("vf/{}/{}/counts", d.space, d.device)];
        assert_eq!(seqs, &(1..=d.reports).collect::<Vec<u64>>(), "{}", d.device);
        assert_eq!((*i, *o), (d.total_in, d.total_out));
    }
    sub.abort();
}

/// Recovers what crossed a device's line from its payload: (entered, left, seq).
fn decode_flow(reg: &Registry, device: &str, payload: &[u8]) -> (u64, u64, u64) {
    let d = reg.device(reg.device_idx(device).unwrap());
    let reversed = d.direction == Direction::Reversed;
    let orient = |i: u64, o: u64, rev: bool| if rev { (o, i) } else { (i, o) };
    match d.format {
        PayloadFormat::Native => {
            let r: NativeReport = serde_json::from_slice(payload).unwrap();
            let (e, l) = orient(r.in_count.into(), r.out_count.into(), reversed);
            (e, l, r.seq)
        }
        PayloadFormat::MilesightVs13x => {
            let v: Value = serde_json::from_slice(payload).unwrap();
            let (mut e, mut l) = (0, 0);
            for line in &d.lines {
                let n = |k: &str| v[format!("line_{}_{k}", line.line)].as_u64().unwrap();
                let rev = reversed != (line.direction == Direction::Reversed);
                let (le, ll) = orient(n("period_in"), n("period_out"), rev);
                e += le;
                l += ll;
            }
            (e, l, v["seq"].as_u64().unwrap())
        }
        // Their encoders are checked against the decoders in `sim::report`'s unit tests.
        PayloadFormat::HikvisionIsapi
        | PayloadFormat::Xovis
        | PayloadFormat::AxisLiveSum
        | PayloadFormat::DahuaSummary
        | PayloadFormat::HikvisionCounting => {
            panic!("the simulated county has no camera of its own format")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_county_arrives_exactly() {
    let broker = Broker::start();
    let (rx, sub) = subscribe(&broker).await;
    let reg = registry();
    // National Day, 07:00–10:00 local, unpaced.
    let start = reg
        .tz
        .with_ymd_and_hms(2026, 10, 2, 7, 0, 0)
        .unwrap()
        .to_utc();
    let opts = SimulateOptions {
        seed: 42,
        start: Some(start),
        speed: f64::INFINITY,
        tick: Duration::from_secs(60),
        duration: Some(Duration::from_secs(3 * 3600)),
        ..SimulateOptions::default()
    };
    let stats = sim::simulate(opts, &reg, &broker.mqtt()).await.unwrap();
    let n = reg.devices.len() as u64;
    assert_eq!(stats.ticks, 180);
    assert_eq!(stats.end, start + TimeDelta::hours(3));
    // One-minute ticks: every device reports every tick, busy or not.
    assert_eq!(stats.reports, 180 * n);
    assert_eq!(stats.messages, stats.reports + 2 * n);
    assert_eq!(stats.acked, stats.messages);
    assert!(!stats.stopped);

    rx.settle(|r| {
        r.count_on("/counts") as u64 >= stats.reports && r.count_on("/status") as u64 >= 2 * n
    })
    .await;
    let got = rx.snapshot();
    assert_eq!(got.len() as u64, stats.messages);
    for d in &stats.devices {
        let counts = format!("vf/{}/{}/counts", d.space, d.device);
        let status = format!("vf/{}/{}/status", d.space, d.device);
        let statuses: Vec<Value> = got
            .iter()
            .filter(|(t, _)| *t == status)
            .map(|(_, p)| serde_json::from_slice(p).unwrap())
            .collect();
        assert_eq!(
            statuses,
            [
                serde_json::json!({"online": true}),
                serde_json::json!({"online": false})
            ]
        );
        let (mut entered, mut left, mut seqs) = (0, 0, Vec::new());
        for (_, p) in got.iter().filter(|(t, _)| *t == counts) {
            let (e, l, seq) = decode_flow(&reg, d.device.as_str(), p);
            entered += e;
            left += l;
            seqs.push(seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=d.reports).collect::<Vec<u64>>(), "{}", d.device);
        assert_eq!((entered, left), (d.entered, d.left), "{}", d.device);
    }
    let gate = stats
        .devices
        .iter()
        .find(|d| d.device.as_str() == "canyon-g1")
        .unwrap();
    assert!(gate.entered > 1000, "a holiday morning is busy: {gate:?}");
    assert!(gate.left < gate.entered);
    sub.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_simulation_stops_on_shutdown() {
    let broker = Broker::start();
    let reg = registry();
    let (stop_tx, stop_rx) = visitorflow::shutdown::channel();
    let opts = SimulateOptions {
        // One simulated hour per real second, ten-second ticks.
        speed: 3600.0,
        tick: Duration::from_secs(10),
        devices: vec!["hub-g1".into(), "canyon-cam".into()],
        shutdown: Some(stop_rx),
        ..SimulateOptions::default()
    };
    let t0 = std::time::Instant::now();
    let run = tokio::spawn({
        let mqtt = broker.mqtt();
        async move { sim::simulate(opts, &reg, &mqtt).await }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop_tx.trigger();
    let stats = run.await.unwrap().unwrap();
    assert!(stats.stopped);
    assert!(t0.elapsed() < Duration::from_secs(5));
    // ≈ 0.6 s × 3600 = 36 simulated minutes of 10-second ticks.
    assert!((150..=260).contains(&stats.ticks), "{} ticks", stats.ticks);
    assert_eq!(stats.devices.len(), 2);
    for d in &stats.devices {
        // Quiet ten-second ticks are skipped, but never for a simulated minute.
        assert!(d.reports * 6 >= stats.ticks, "{d:?}");
    }
    assert_eq!(stats.acked, stats.messages);
}

#[tokio::test]
async fn unreachable_broker_is_an_error() {
    let Some(data) = common::data::dataset("calit2/calit2_inout_merged.csv") else {
        return;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mqtt = MqttConfig {
        port,
        ..MqttConfig::default()
    };
    let opts = ReplayOptions::new(data);
    let err = sim::replay(opts, &registry(), &mqtt).await.unwrap_err();
    assert!(matches!(err, SimError::Connection { .. }), "{err}");
    let err = sim::replay(ReplayOptions::new("/nonexistent.csv"), &registry(), &mqtt)
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::Read { .. }), "{err}");
}
