//! The MQTT shell: a persistent session (fixed client id, clean session off, QoS 1, manual
//! acknowledgements) whose event loop runs on its own task and hands publishes to the ingester.
//! The ingester acknowledges only after its batch is committed; if anything fails, the whole
//! connection is dropped and made again, so the broker redelivers what was not acknowledged.

use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, Publish, QoS,
    SubscribeFilter,
};
use tokio::sync::mpsc;

use crate::config::MqttConfig;

/// What the event-loop task hands to the ingester.
#[derive(Debug)]
pub enum SourceEvent {
    /// The session is (re)established and subscribed.
    Connected {
        session_present: bool,
    },
    Publish(Publish),
    /// The connection failed; nothing after this arrives on this channel.
    Down(String),
}

/// Largest MQTT packet accepted from the broker. Far above the payload limit on purpose: an
/// oversized packet would make rumqttc drop the connection, the broker would redeliver it, and one
/// bad message would stall ingest forever; instead it arrives and is rejected with a reason.
const MAX_INCOMING_PACKET: usize = 64 * 1024 * 1024;

pub fn options(cfg: &MqttConfig) -> MqttOptions {
    let mut o = MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
    o.set_keep_alive(Duration::from_secs(cfg.keep_alive_s.max(5)));
    o.set_clean_session(false);
    o.set_manual_acks(true);
    o.set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024);
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        o.set_credentials(u, p);
    }
    o
}

pub fn subscriptions(prefix: &str) -> [String; 3] {
    [
        format!("{prefix}/+/+/counts"),
        format!("{prefix}/+/+/status"),
        format!("{prefix}/+/hazard"),
    ]
}

/// A live MQTT connection: the client (for acknowledgements) and the events of its loop.
pub struct Connection {
    pub client: AsyncClient,
    pub events: mpsc::Receiver<SourceEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Room for every acknowledgement that can be outstanding. The event loop sends the ingester's
/// acks only while it is polled, and it stops polling while `events` is full; if an ack could then
/// wait for room, the ingester (waiting to ack) and the loop (waiting to hand over a publish)
/// would wait for each other forever — which a backlog of a few batches after an outage caused.
/// An ack answers a publish the broker still holds in flight, and MQTT packet ids are 16-bit, so
/// at most 65,535 can be outstanding; the channel allocates only what is queued.
const REQUEST_CAPACITY: usize = u16::MAX as usize + 16;

/// Starts the event loop. `capacity` bounds how many publishes wait for the ingester: when it is
/// full the loop stops reading the socket and the broker holds the rest (backpressure, not loss).
pub fn connect(cfg: &MqttConfig, capacity: usize) -> Connection {
    connect_with(cfg, capacity, subscriptions(&cfg.topic_prefix).into())
}

/// Filters per SUBSCRIBE packet: a partition subscribes three filters per space it owns, which
/// must neither overflow the client's request queue nor make one huge packet.
const FILTERS_PER_SUBSCRIBE: usize = 64;

/// As [`connect`], subscribed to `subs` instead of every space (an ingest partition's own).
pub fn connect_with(cfg: &MqttConfig, capacity: usize, subs: Vec<String>) -> Connection {
    let (client, mut eventloop) = AsyncClient::new(options(cfg), REQUEST_CAPACITY);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);
    let (tx, events) = mpsc::channel(capacity.max(16));
    let sub_client = client.clone();
    let task = tokio::spawn(async move { pump(&mut eventloop, &sub_client, &subs, &tx).await });
    Connection {
        client,
        events,
        task,
    }
}

async fn pump(
    eventloop: &mut EventLoop,
    client: &AsyncClient,
    subs: &[String],
    tx: &mpsc::Sender<SourceEvent>,
) {
    loop {
        let ev = match eventloop.poll().await {
            Ok(ev) => ev,
            Err(e) => {
                let _ = tx.send(SourceEvent::Down(e.to_string())).await;
                return;
            }
        };
        let out = match ev {
            Event::Incoming(Packet::ConnAck(ack)) => {
                // Subscribing again on a resumed session is harmless and brings retained statuses.
                for chunk in subs.chunks(FILTERS_PER_SUBSCRIBE) {
                    let filters = chunk
                        .iter()
                        .map(|s| SubscribeFilter::new(s.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(filters) {
                        let _ = tx
                            .send(SourceEvent::Down(format!("subscribe {}: {e}", chunk[0])))
                            .await;
                        return;
                    }
                }
                SourceEvent::Connected {
                    session_present: ack.session_present,
                }
            }
            Event::Incoming(Packet::Publish(p)) => SourceEvent::Publish(p),
            _ => continue,
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}
