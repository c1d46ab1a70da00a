//! The MQTT shell: a persistent session (fixed client id, clean session off, QoS 1) whose
//! publishes the ingester acknowledges only after their batch is committed. If anything fails, the
//! whole connection is dropped and made again, so the broker redelivers what was not acknowledged.
//!
//! One TCP connection, two tasks. The reader decodes packets (rumqttc's MQTT 3.1.1 codec) and
//! hands publishes to the ingester through a bounded channel, all those of one read as one event:
//! when it is full the reader stops reading and the broker holds the rest (backpressure, not
//! loss). Acknowledgements and keep-alive
//! pings go through the writer, never through the reader, so a full channel can never hold back
//! the acknowledgements that would drain it, and a batch's PUBACKs leave in one write instead of
//! one write (and one TCP segment) per message. What each packet means is decided in `state.rs`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::{Packet, PingReq, PubAck, Publish, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

mod config;
mod state;

pub use config::MqttConfig;
pub use state::{SessionError, SessionState, Step};

/// What the reader task hands to the ingester.
#[derive(Debug)]
pub enum SourceEvent {
    /// The session is (re)established and its subscriptions acknowledged.
    Connected { session_present: bool },
    /// Publishes in arrival order (all those one read brought).
    Publish(Vec<Publish>),
    /// The connection failed; nothing after this arrives on this channel.
    Down(String),
}

/// Largest MQTT packet accepted from the broker. Far above the payload limit on purpose: an
/// oversized packet would end the connection, the broker would redeliver it, and one bad message
/// would stall ingest forever; instead it arrives and is rejected with a reason.
const MAX_INCOMING_PACKET: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Read buffer growth: one read takes a few hundred reports.
const READ_CHUNK: usize = 64 * 1024;

pub fn subscriptions(prefix: &str) -> [String; 4] {
    [
        format!("{prefix}/+/+/counts"),
        format!("{prefix}/+/+/status"),
        format!("{prefix}/+/hazard"),
        format!("{prefix}/+/tickets"),
    ]
}

/// The PUBACKs of a batch, encoded in arrival order, sent in one write by [`Connection::ack`].
#[derive(Debug, Default)]
pub struct Acks {
    buf: BytesMut,
    messages: usize,
}

impl Acks {
    /// Records a received publish (QoS 0 needs no acknowledgement but counts in the batch).
    pub fn push(&mut self, p: &Publish) {
        self.messages += 1;
        if p.qos != QoS::AtMostOnce {
            // Writing a 4-byte PUBACK into a growable buffer cannot fail.
            let _ = PubAck::new(p.pkid).write(&mut self.buf);
        }
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.messages
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }
}

/// A live MQTT connection: the events of its reader and the way to acknowledge them.
pub struct Connection {
    pub events: mpsc::Receiver<SourceEvent>,
    writer: mpsc::Sender<Bytes>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Connection {
    /// Sends the batch's acknowledgements (in arrival order) and empties `acks`.
    pub async fn ack(&self, acks: &mut Acks) -> Result<(), String> {
        acks.messages = 0;
        if acks.buf.is_empty() {
            return Ok(());
        }
        self.writer
            .send(acks.buf.split().freeze())
            .await
            .map_err(|_| "connection closed".to_owned())
    }
}

/// Connects, subscribes and starts the reader. `capacity` bounds how many reads' worth of
/// publishes wait for the ingester. Failures (including the first connect) arrive as [`SourceEvent::Down`].
pub fn connect(cfg: &MqttConfig, capacity: usize) -> Connection {
    connect_with(cfg, capacity, subscriptions(&cfg.topic_prefix).into())
}

/// As [`connect`], subscribed to `subs` instead of every space (an ingest partition's own).
pub fn connect_with(cfg: &MqttConfig, capacity: usize, subs: Vec<String>) -> Connection {
    let (tx, events) = mpsc::channel(capacity.max(16));
    let (writer, outgoing) = mpsc::channel(16);
    let cfg = cfg.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = session(&cfg, &subs, &tx, outgoing).await {
            let _ = tx.send(SourceEvent::Down(e)).await;
        }
    });
    Connection {
        events,
        writer,
        task,
    }
}

/// Aborts the writer task when the session (the reader task) ends or is aborted.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), String>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn session(
    cfg: &MqttConfig,
    subs: &[String],
    tx: &mpsc::Sender<SourceEvent>,
    outgoing: mpsc::Receiver<Bytes>,
) -> Result<(), String> {
    let broker = format!("{}:{}", cfg.host, cfg.port);
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(broker.as_str()))
        .await
        .map_err(|_| format!("connecting to {broker} timed out"))?
        .map_err(|e| format!("connecting to {broker}: {e}"))?;
    // Acknowledgements must not wait for Nagle: the broker's in-flight window waits on them.
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let keep_alive = Duration::from_secs(cfg.keep_alive_s.clamp(5, u64::from(u16::MAX)));

    let mut state = SessionState::default();
    let connect = state::connect_packet(cfg, keep_alive.as_secs() as u16);
    send(&mut wr, &Packet::Connect(connect)).await?;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    match timeout(CONNECT_TIMEOUT, next_packet(&mut rd, &mut buf)).await {
        Err(_) => return Err(format!("no CONNACK from {broker} in {CONNECT_TIMEOUT:?}")),
        Ok(packet) => state.on_packet(packet?).map_err(|e| e.to_string())?,
    };
    for subscribe in state.subscribe(subs).map_err(|e| e.to_string())? {
        send(&mut wr, &Packet::Subscribe(subscribe)).await?;
    }

    let mut writer = AbortOnDrop(tokio::spawn(write_loop(wr, outgoing, keep_alive)));
    // The writer pings at half the keep-alive when idle and the broker answers each ping, so this
    // much silence means the broker (or the path to it) is gone.
    let silence = keep_alive + keep_alive / 2;
    loop {
        // Everything already buffered goes to the ingester as one event: one wake-up per read,
        // not per message.
        let mut publishes = Vec::new();
        let want = loop {
            let packet = match Packet::read(&mut buf, MAX_INCOMING_PACKET) {
                Ok(p) => p,
                Err(rumqttc::Error::InsufficientBytes(n)) => break n,
                Err(e) => return Err(format!("bad packet from the broker: {e}")),
            };
            match state.on_packet(packet).map_err(|e| e.to_string())? {
                Step::Nothing => {}
                Step::Publish(p) => publishes.push(p),
                Step::Ready { session_present } => {
                    let earlier = std::mem::take(&mut publishes);
                    if (!earlier.is_empty()
                        && tx.send(SourceEvent::Publish(earlier)).await.is_err())
                        || tx
                            .send(SourceEvent::Connected { session_present })
                            .await
                            .is_err()
                    {
                        return Ok(());
                    }
                }
            }
        };
        if !publishes.is_empty() && tx.send(SourceEvent::Publish(publishes)).await.is_err() {
            return Ok(());
        }
        buf.reserve(want.max(READ_CHUNK));
        let read = tokio::select! {
            r = timeout(silence, rd.read_buf(&mut buf)) => match r {
                Err(_) => return Err(format!("nothing from the broker for {silence:?}")),
                Ok(r) => r.map_err(|e| format!("reading from the broker: {e}"))?,
            },
            w = &mut writer.0 => return Err(match w {
                Ok(Err(e)) => e,
                _ => "writer stopped".to_owned(),
            }),
        };
        if read == 0 {
            return Err("broker closed the connection".into());
        }
    }
}

async fn send(wr: &mut OwnedWriteHalf, packet: &Packet) -> Result<(), String> {
    let mut b = BytesMut::new();
    // Not `{packet:?}`: a CONNECT carries the password.
    packet
        .write(&mut b, MAX_INCOMING_PACKET)
        .map_err(|e| format!("encoding a packet for the broker: {e}"))?;
    wr.write_all(&b)
        .await
        .map_err(|e| format!("writing to the broker: {e}"))
}

/// The next whole packet, reading more from the socket as needed.
async fn next_packet(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<Packet, String> {
    loop {
        match Packet::read(buf, MAX_INCOMING_PACKET) {
            Ok(p) => return Ok(p),
            Err(rumqttc::Error::InsufficientBytes(n)) => {
                buf.reserve(n.max(READ_CHUNK));
                let read = rd
                    .read_buf(buf)
                    .await
                    .map_err(|e| format!("reading from the broker: {e}"))?;
                if read == 0 {
                    return Err("broker closed the connection".into());
                }
            }
            Err(e) => return Err(format!("bad packet from the broker: {e}")),
        }
    }
}

/// Writes what the ingester sends (batches of PUBACKs) and a PINGREQ whenever nothing was written
/// for half the keep-alive. Ends when the connection is dropped.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Bytes>,
    keep_alive: Duration,
) -> Result<(), String> {
    let mut ping = BytesMut::new();
    let _ = PingReq.write(&mut ping);
    let ping = ping.freeze();
    let mut last = Instant::now();
    loop {
        let bytes = tokio::select! {
            b = outgoing.recv() => match b {
                Some(b) => b,
                None => return Ok(()),
            },
            _ = tokio::time::sleep_until(last + keep_alive / 2) => ping.clone(),
        };
        wr.write_all(&bytes)
            .await
            .map_err(|e| format!("writing to the broker: {e}"))?;
        last = Instant::now();
    }
}
