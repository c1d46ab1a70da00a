//! deploy/mosquitto/ against a real Mosquitto: the deploy configuration (rewritten only for paths
//! and ports), the ACL and a password file made the way the runbook and docker-compose.yml make
//! it. Anonymous and wrong-password clients are refused; a device publishes on its own topics
//! only; the service user reads everything and publishes nothing; the TLS listener works with a
//! CA made by openssl; the compose health check's command passes.

mod ops_support;

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ops_support::*;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio::time::timeout;

const SERVICE_PW: &str = "service-secret";

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replaces `from` with `to` in `text`, insisting that it is there: a change to the deploy file
/// that this rewrite no longer matches fails here rather than testing something else.
fn must_replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "deploy config no longer contains `{from}`"
    );
    text.replace(from, to)
}

struct Broker {
    child: Child,
    port: u16,
    tls_port: Option<u16>,
    log: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts mosquitto on the deploy configuration with container paths mapped into `dir`.
fn start_broker(dir: &Path, tls: bool) -> Broker {
    let mosquitto = find_program("mosquitto").expect("mosquitto (scripts/test installs it)");
    let (port, tls_port) = (free_port(), free_port());
    let d = dir.display().to_string();
    for sub in ["config/conf.d", "data", "auth", "certs"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::copy(repo().join("deploy/mosquitto/acl"), dir.join("config/acl")).unwrap();
    // Shipped disabled: only *.conf is read, so the .disabled file must be inert.
    fs::copy(
        repo().join("deploy/mosquitto/conf.d/tls.conf.disabled"),
        dir.join("config/conf.d/tls.conf.disabled"),
    )
    .unwrap();
    let mut conf = read("deploy/mosquitto/mosquitto.conf");
    conf = must_replace(
        &conf,
        "\nlistener 1883\n",
        &format!("\nlistener {port} 127.0.0.1\n"),
    );
    conf = must_replace(&conf, "/mosquitto/config/", &format!("{d}/config/"));
    conf = must_replace(&conf, "/mosquitto/data/", &format!("{d}/data/"));
    conf = must_replace(&conf, "/mosquitto/auth/", &format!("{d}/auth/"));
    conf = must_replace(
        &conf,
        "log_dest stdout",
        &format!("log_dest file {d}/mosquitto.log"),
    );
    // Root would switch to user `mosquitto`, which cannot read this temp dir.
    let conf = format!("user root\n{conf}");
    fs::write(dir.join("config/mosquitto.conf"), conf).unwrap();
    if tls {
        let mut t = read("deploy/mosquitto/conf.d/tls.conf.disabled");
        t = must_replace(
            &t,
            "listener 8883",
            &format!("listener {tls_port} 127.0.0.1"),
        );
        t = must_replace(&t, "/mosquitto/certs/", &format!("{d}/certs/"));
        fs::write(dir.join("config/conf.d/tls.conf"), t).unwrap();
    }
    let log = dir.join("mosquitto.log");
    let child = Command::new(mosquitto)
        .arg("-c")
        .arg(dir.join("config/mosquitto.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .expect("start mosquitto");
    let mut b = Broker {
        child,
        port,
        tls_port: tls.then_some(tls_port),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = b.child.try_wait() {
            panic!(
                "mosquitto exited ({status}): {}\n{}",
                fs::read_to_string(dir.join("stderr")).unwrap_or_default(),
                fs::read_to_string(&b.log).unwrap_or_default()
            );
        }
        let up = |p: u16| TcpStream::connect((Ipv4Addr::LOCALHOST, p)).is_ok();
        if up(port) && b.tls_port.is_none_or(up) {
            break;
        }
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    b
}

/// The password file as docker-compose.yml's mosquitto-init makes it (its own script, paths
/// mapped), plus two devices added as deploy/README.md says.
fn make_password_file(dir: &Path) {
    fs::create_dir_all(dir.join("auth")).unwrap();
    let compose = yaml("docker-compose.yml");
    let init = &compose["services"]["mosquitto-init"];
    let entry: Vec<&str> = init["entrypoint"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(entry, ["/bin/sh", "-ec"]);
    let script = init["command"][0].as_str().unwrap();
    // Compose turns `$$` into `$`; the chown is to the image's mosquitto uid (harmless as root).
    let script = script
        .replace("$$", "$")
        .replace("/mosquitto/auth", &dir.join("auth").display().to_string());
    run(Command::new("/bin/sh")
        .args(["-ec", &script])
        .env("VISITORFLOW_MQTT_PASSWORD", SERVICE_PW));
    let passwd = dir.join("auth/passwd");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&passwd).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "password file mode");
    // Again: the init job runs on every `up` and must be idempotent.
    run(Command::new("/bin/sh")
        .args(["-ec", &script])
        .env("VISITORFLOW_MQTT_PASSWORD", SERVICE_PW));
    for (user, pw) in [
        ("tsc-gate-1", "gate-1-secret"),
        ("tsc-gate-2", "gate-2-secret"),
    ] {
        run(Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&passwd)
            .args([user, pw]));
    }
    let text = fs::read_to_string(&passwd).unwrap();
    assert_eq!(text.lines().count(), 3, "one line per user: {text}");
    assert!(!text.contains(SERVICE_PW), "passwords are stored hashed");
}

fn options(id: &str, port: u16, user: Option<(&str, &str)>) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    if let Some((u, p)) = user {
        o.set_credentials(u, p);
    }
    o
}

/// Connects and returns the client once CONNACK arrived, or the refusal.
async fn connect(o: MqttOptions) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let (client, mut ev) = AsyncClient::new(o, 100);
    loop {
        match timeout(Duration::from_secs(5), ev.poll())
            .await
            .expect("connect timed out")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, ev)),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Publishes at QoS 1 and waits for the PUBACK (which Mosquitto sends even for a publish its
/// ACL drops).
async fn publish_acked(client: &AsyncClient, ev: &mut EventLoop, topic: &str, payload: &str) {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .await
        .unwrap();
    loop {
        match timeout(Duration::from_secs(5), ev.poll())
            .await
            .expect("no PUBACK")
        {
            Ok(Event::Incoming(Packet::PubAck(_))) => return,
            Ok(_) => {}
            Err(e) => panic!("publisher connection: {e}"),
        }
    }
}

/// A subscriber as the service connects: user `visitorflow`, the service's subscriptions.
async fn subscriber(port: u16, id: &str) -> (AsyncClient, EventLoop) {
    let (client, mut ev) = connect(options(id, port, Some(("visitorflow", SERVICE_PW))))
        .await
        .expect("service user connects");
    for t in visitorflow::source::subscriptions("vf") {
        client.subscribe(t, QoS::AtLeastOnce).await.unwrap();
    }
    let mut acks = 0;
    while acks < 2 {
        if let Event::Incoming(Packet::SubAck(a)) = timeout(Duration::from_secs(5), ev.poll())
            .await
            .expect("no SUBACK")
            .unwrap()
        {
            assert!(
                a.return_codes
                    .iter()
                    .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
                "subscription refused: {a:?}"
            );
            acks += 1;
        }
    }
    (client, ev)
}

/// Collects (topic, payload) until `marker` arrives; panics after a bounded wait.
async fn receive_until(ev: &mut EventLoop, marker: &str) -> Vec<(String, String)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let Ok(polled) = tokio::time::timeout_at(deadline, ev.poll()).await else {
            panic!("{marker} never arrived; received {got:?}");
        };
        let e = polled.expect("subscriber connection");
        if let Event::Incoming(Packet::Publish(p)) = e {
            let payload = String::from_utf8_lossy(&p.payload).into_owned();
            let done = payload == marker;
            got.push((p.topic, payload));
            if done {
                return got;
            }
        }
    }
}

/// Nothing more arrives within `wait`.
async fn quiet(ev: &mut EventLoop, wait: Duration) -> Vec<(String, String)> {
    let mut got = Vec::new();
    let _ = timeout(wait, async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = ev.poll().await {
                got.push((p.topic, String::from_utf8_lossy(&p.payload).into_owned()));
            }
        }
    })
    .await;
    got
}

fn make_certs(dir: &Path) -> Option<Vec<u8>> {
    let openssl = find_program("openssl")?;
    let c = dir.join("certs");
    fs::create_dir_all(&c).unwrap();
    let ossl = |args: &[&str]| run(Command::new(&openssl).args(args).current_dir(&c));
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=visitorflow test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    ossl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    fs::write(
        c.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    Some(fs::read(c.join("ca.crt")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_broker_enforces_auth_and_per_device_topics() {
    let dir = tempfile::tempdir().unwrap();
    make_password_file(dir.path());
    let ca = make_certs(dir.path());
    if ca.is_none() {
        println!("note: openssl not found; the TLS listener is not tested");
    }
    let broker = start_broker(dir.path(), ca.is_some());
    let port = broker.port;

    // Anonymous and wrong-password connections are refused at CONNECT.
    match connect(options("anon", port, None)).await {
        Err(ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, ConnectReturnCode::NotAuthorized)
        }
        Err(e) => panic!("anonymous: unexpected error {e}"),
        Ok(_) => panic!("an anonymous client was let in"),
    }
    match connect(options("liar", port, Some(("tsc-gate-1", "wrong")))).await {
        Err(ConnectionError::ConnectionRefused(code)) => assert!(
            matches!(
                code,
                ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
            ),
            "{code:?}"
        ),
        other => panic!("wrong password: {:?}", other.map(|_| ())),
    }

    let (_svc, mut svc_ev) = subscriber(port, "visitorflow-ingester").await;
    let (gate1, mut gate1_ev) = connect(options(
        "tsc-gate-1",
        port,
        Some(("tsc-gate-1", "gate-1-secret")),
    ))
    .await
    .expect("device connects");

    // A device's own counts and status reach the service.
    let own = "vf/tianshan-canyon/tsc-gate-1/counts";
    let status = "vf/tianshan-canyon/tsc-gate-1/status";
    publish_acked(&gate1, &mut gate1_ev, own, "own-1").await;
    publish_acked(&gate1, &mut gate1_ev, status, "online").await;
    let got = receive_until(&mut svc_ev, "online").await;
    assert_eq!(
        got,
        [
            (own.to_string(), "own-1".to_string()),
            (status.to_string(), "online".to_string())
        ]
    );

    // Speaking for another device: PUBACKed (MQTT 3.1.1 cannot refuse) but never delivered.
    // Mosquitto delivers one publisher's messages in order, so once the later allowed message
    // has arrived the forged one can no longer come; a short quiet wait double-checks.
    publish_acked(
        &gate1,
        &mut gate1_ev,
        "vf/tianshan-canyon/tsc-gate-2/counts",
        "forged",
    )
    .await;
    publish_acked(
        &gate1,
        &mut gate1_ev,
        "vf/elsewhere/tsc-gate-1/extra/counts",
        "deeper",
    )
    .await;
    publish_acked(
        &gate1,
        &mut gate1_ev,
        "vf/tianshan-canyon/tsc-gate-1/config",
        "other-leaf",
    )
    .await;
    publish_acked(&gate1, &mut gate1_ev, own, "own-2").await;
    let got = receive_until(&mut svc_ev, "own-2").await;
    assert_eq!(
        got,
        [(own.to_string(), "own-2".to_string())],
        "forged messages were delivered"
    );
    assert!(
        quiet(&mut svc_ev, Duration::from_millis(300))
            .await
            .is_empty()
    );

    // The service user publishes nothing, not even on a topic shaped like its own name.
    let (svc_pub, mut svc_pub_ev) =
        connect(options("svc-pub", port, Some(("visitorflow", SERVICE_PW))))
            .await
            .unwrap();
    publish_acked(&svc_pub, &mut svc_pub_ev, own, "from-service").await;
    publish_acked(
        &svc_pub,
        &mut svc_pub_ev,
        "vf/tianshan-canyon/visitorflow/counts",
        "as-device",
    )
    .await;
    publish_acked(&gate1, &mut gate1_ev, own, "own-3").await;
    let got = receive_until(&mut svc_ev, "own-3").await;
    assert_eq!(
        got,
        [(own.to_string(), "own-3".to_string())],
        "the service user could publish"
    );

    // A device reads nothing: subscribing to everything yields no message.
    let (gate2, mut gate2_ev) = connect(options(
        "tsc-gate-2",
        port,
        Some(("tsc-gate-2", "gate-2-secret")),
    ))
    .await
    .unwrap();
    gate2.subscribe("vf/#", QoS::AtLeastOnce).await.unwrap();
    let _ = quiet(&mut gate2_ev, Duration::from_millis(200)).await; // SUBACK
    publish_acked(&gate1, &mut gate1_ev, own, "own-4").await;
    receive_until(&mut svc_ev, "own-4").await;
    let leaked = quiet(&mut gate2_ev, Duration::from_millis(300)).await;
    assert!(
        leaked.is_empty(),
        "a device read another's reports: {leaked:?}"
    );

    // TLS: the same device over the TLS listener, trusting only the test CA.
    if let (Some(ca), Some(tls_port)) = (ca, broker.tls_port) {
        let mut o = MqttOptions::new("tsc-gate-1-tls", "localhost", tls_port);
        o.set_credentials("tsc-gate-1", "gate-1-secret");
        o.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth: None,
        }));
        let (tls_client, mut tls_ev) = connect(o).await.expect("TLS connection");
        publish_acked(&tls_client, &mut tls_ev, own, "over-tls").await;
        let got = receive_until(&mut svc_ev, "over-tls").await;
        assert_eq!(got.len(), 1);
        // And TLS still needs a password.
        let mut o = MqttOptions::new("anon-tls", "localhost", tls_port);
        o.set_transport(Transport::Tls(TlsConfiguration::Simple {
            ca: fs::read(dir.path().join("certs/ca.crt")).unwrap(),
            alpn: None,
            client_auth: None,
        }));
        assert!(connect(o).await.is_err(), "anonymous TLS client let in");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_health_check_command_passes_on_the_deploy_broker() {
    let Some(_) = find_program("mosquitto_sub") else {
        panic!("mosquitto_sub not found: install mosquitto-clients (scripts/test does)");
    };
    let dir = tempfile::tempdir().unwrap();
    make_password_file(dir.path());
    let broker = start_broker(dir.path(), false);
    let compose = yaml("docker-compose.yml");
    let test = compose["services"]["mosquitto"]["healthcheck"]["test"]
        .as_sequence()
        .unwrap()
        .clone();
    assert_eq!(test[0].as_str(), Some("CMD-SHELL"));
    let cmd = test[1].as_str().unwrap().replace("$$", "$");
    let probe = |port: u16| {
        let c = must_replace(&cmd, "-p 1883", &format!("-p {port}"));
        Command::new("/bin/sh")
            .args(["-c", &c])
            .status()
            .expect("run health check")
            .success()
    };
    assert!(
        probe(broker.port),
        "health check failed on a healthy broker: {cmd}"
    );
    drop(broker);
    assert!(!probe(free_port()), "health check passed with no broker");
}
