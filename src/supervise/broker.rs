//! The demo's broker: Mosquitto when installed, else [`EmbeddedBroker`], an in-process `rumqttd`.

use super::*;

/// An in-process `rumqttd` broker for the demo when Mosquitto is not installed. It keeps nothing
/// on disk (sessions and queues are lost with the process) and rumqttd 0.20 has no shutdown,
/// so it runs until the process exits; fault tests need [`Mosquitto`].
#[derive(Debug)]
pub struct EmbeddedBroker {
    port: u16,
}

impl EmbeddedBroker {
    pub fn start() -> Result<EmbeddedBroker> {
        let port = free_port()?;
        let config = embedded_config(port);
        thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                // `start` blocks for the broker's lifetime; it returns only if its servers fail.
                if let Err(e) = rumqttd::Broker::new(config).start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(io_err("spawning the embedded broker thread"))?;
        let deadline = Instant::now() + BROKER_READY_TIMEOUT;
        while !accepts_connections(port) {
            if Instant::now() >= deadline {
                return Err(SuperviseError::Embedded(format!(
                    "rumqttd did not accept connections on 127.0.0.1:{port} within \
                     {BROKER_READY_TIMEOUT:?}"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(EmbeddedBroker { port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

pub(super) fn embedded_config(port: u16) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 10_000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "v4-1".into(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    // Values from rumqttd's sample rumqttd.toml; a zeroed RouterConfig would not route.
    let router = rumqttd::RouterConfig {
        max_connections: 10_010,
        max_outgoing_packet_count: 200,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        ..Default::default()
    };
    rumqttd::Config {
        router,
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Either broker
// ---------------------------------------------------------------------------------------------

/// The MQTT broker the demo runs: Mosquitto when installed, else the embedded one.
#[derive(Debug)]
pub enum Broker {
    Mosquitto(Mosquitto),
    Embedded(EmbeddedBroker),
}

impl Broker {
    /// Prefers Mosquitto (in `dir`); falls back to the embedded broker only when Mosquitto is not
    /// installed. An installed Mosquitto that fails to start is an error, not a fallback.
    pub fn start(dir: &Path) -> Result<Broker> {
        if mosquitto_available() {
            Mosquitto::start(dir).map(Broker::Mosquitto)
        } else {
            tracing::info!("mosquitto not installed; using the embedded rumqttd broker");
            EmbeddedBroker::start().map(Broker::Embedded)
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Broker::Mosquitto(m) => m.port(),
            Broker::Embedded(e) => e.port(),
        }
    }

    /// "mosquitto 2.0.11 (pid 1234)" or "embedded rumqttd".
    pub fn describe(&self) -> String {
        match self {
            Broker::Mosquitto(m) => match m.pid() {
                Some(pid) => format!("mosquitto {} (pid {pid})", m.version()),
                None => format!("mosquitto {} (stopped)", m.version()),
            },
            Broker::Embedded(_) => "embedded rumqttd".into(),
        }
    }
}
