//! The live feed, `GET /api/v1/live` (Server-Sent Events): one publisher task turns what
//! [`Live`] marked as changed into events — `space` (a space as in `/api/v1/spaces`, at most
//! [`SPACE_INTERVAL`] apart, so at most 4 per second per space however fast reports arrive),
//! `alert` (each alert transition or acknowledgement, at once) and `dispatch` (a distribution
//! centre's current advice as one entry of `GET /api/v1/dispatch`, at once, whenever the advice
//! changes or a dispatcher decides on it) — numbered, kept in a bounded ring and broadcast to
//! every client.
//!
//! A client gets a `snapshot` first (every space), followed at once by one `dispatch` event per
//! centre with its current advice; those carry no id, being part of the snapshot (the client's
//! Last-Event-ID stays the snapshot's). Reconnecting with `Last-Event-ID`, it gets the events it
//! missed from the ring when they are all still there, else a fresh snapshot. A client that falls
//! behind the broadcast channel gets `resync` and a snapshot instead of a backlog.
//! Event ids are `{boot}-{n}`: a restarted service has another `boot`, so an old id always means
//! "snapshot", never a wrong replay.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;

use crate::shutdown::Shutdown;
use tokio::time::Instant;

use super::AppState;
use super::spaces::{all_spaces_json, space_json};
use crate::live::Live;
use crate::registry::Registry;

/// Least time between two `space` events of one space.
pub const SPACE_INTERVAL: Duration = Duration::from_millis(250);
/// Events kept for resumption.
const RING: usize = 2048;
/// Events a client may be behind before it is told to resync.
const CHANNEL: usize = 512;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct FeedEvent {
    pub seq: u64,
    pub kind: &'static str,
    /// Serialized once, shared by every client.
    pub data: String,
}

struct Ring {
    /// The next event's number (the first is 1).
    next: u64,
    events: VecDeque<Arc<FeedEvent>>,
}

pub struct Feed {
    boot: String,
    registry: Arc<Registry>,
    live: Arc<Live>,
    ring: Mutex<Ring>,
    ring_len: usize,
    tx: broadcast::Sender<Arc<FeedEvent>>,
    stop: Shutdown,
}

impl Feed {
    pub fn new(registry: Arc<Registry>, live: Arc<Live>, stop: Shutdown) -> Self {
        Self::with_sizes(registry, live, stop, RING, CHANNEL)
    }

    fn with_sizes(
        registry: Arc<Registry>,
        live: Arc<Live>,
        stop: Shutdown,
        ring_len: usize,
        channel: usize,
    ) -> Self {
        let (tx, _) = broadcast::channel(channel);
        Self {
            boot: format!("{:08x}", rand::random::<u32>()),
            registry,
            live,
            ring: Mutex::new(Ring {
                next: 1,
                events: VecDeque::with_capacity(ring_len),
            }),
            ring_len,
            tx,
            stop,
        }
    }

    fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.boot)
    }

    /// Numbers an event, keeps it in the ring and sends it to every client. The ring lock is held
    /// across the send so that a client subscribing under it sees each event exactly once: in
    /// its replay or in its channel.
    fn push(&self, kind: &'static str, data: String) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let ev = Arc::new(FeedEvent {
            seq: ring.next,
            kind,
            data,
        });
        ring.next += 1;
        if ring.events.len() == self.ring_len {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&ev));
        let _ = self.tx.send(ev);
    }

    /// The publisher: runs until the service stops.
    pub async fn run(self: Arc<Self>) {
        let mut stop = self.stop.clone();
        let mut last_spaces = Instant::now() - SPACE_INTERVAL;
        loop {
            tokio::select! {
                _ = self.live.changed() => {}
                _ = stop.recv() => return,
            }
            self.flush_notes();
            // Coalesce: wait out the interval, then send every space marked meanwhile once.
            let due = last_spaces + SPACE_INTERVAL;
            if Instant::now() < due {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = stop.recv() => return,
                }
                self.flush_notes();
            }
            let changed = self.live.take_changed();
            if !changed.is_empty() {
                for s in changed {
                    self.push("space", space_json(&self.registry, &self.live, s));
                }
                last_spaces = Instant::now();
            }
        }
    }

    /// Alert and dispatch changes go out at once: they are few, and each one matters.
    fn flush_notes(&self) {
        for note in self.live.take_alert_notes() {
            if let Ok(data) = serde_json::to_string(&note) {
                self.push("alert", data);
            }
        }
        for row in self.live.take_dispatch_notes() {
            if let Ok(data) = serde_json::to_string(&*row) {
                self.push("dispatch", data);
            }
        }
    }

    /// A client's frames, resuming after `last_event_id` when the ring still holds what it
    /// missed. Ends when the service stops.
    pub fn frames(
        self: &Arc<Self>,
        last_event_id: Option<&str>,
    ) -> impl Stream<Item = Frame> + Send + use<> {
        let mut client = Client {
            feed: Arc::clone(self),
            rx: None,
            pending: VecDeque::new(),
            stop: self.stop.clone(),
        };
        client.start(last_event_id);
        futures_util::stream::unfold(
            client,
            |mut c| async move { c.next().await.map(|e| (e, c)) },
        )
    }

    fn frame(&self, ev: &FeedEvent) -> Frame {
        Frame {
            id: Some(self.id(ev.seq)),
            event: ev.kind,
            data: ev.data.clone(),
        }
    }

    /// The snapshot frame, then each centre's current advice (no id: part of the snapshot).
    fn snapshot(&self, latest: u64) -> Vec<Frame> {
        let mut frames = vec![Frame {
            id: Some(self.id(latest)),
            event: "snapshot",
            data: all_spaces_json(&self.registry, &self.live),
        }];
        for row in self.live.dispatch() {
            if let Ok(data) = serde_json::to_string(&*row) {
                frames.push(Frame {
                    id: None,
                    event: "dispatch",
                    data,
                });
            }
        }
        frames
    }
}

/// One event as sent to one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: &'static str,
    pub data: String,
}

impl Frame {
    fn into_sse(self) -> Event {
        let e = Event::default().event(self.event).data(self.data);
        let e = match self.id {
            Some(id) => e.id(id),
            None => e,
        };
        // Tell EventSource clients to come back quickly after a dropped connection.
        if self.event == "snapshot" {
            e.retry(Duration::from_secs(2))
        } else {
            e
        }
    }
}

struct Client {
    feed: Arc<Feed>,
    rx: Option<broadcast::Receiver<Arc<FeedEvent>>>,
    pending: VecDeque<Frame>,
    stop: Shutdown,
}

impl Client {
    /// Subscribes, and queues either the missed events or a snapshot.
    fn start(&mut self, last_event_id: Option<&str>) {
        let feed = Arc::clone(&self.feed);
        let resume = last_event_id
            .and_then(|id| id.trim().split_once('-'))
            .filter(|(boot, _)| *boot == feed.boot)
            .and_then(|(_, n)| n.parse::<u64>().ok());
        let ring = feed.ring.lock().unwrap_or_else(|e| e.into_inner());
        self.rx = Some(feed.tx.subscribe());
        let latest = ring.next - 1;
        let oldest = ring.events.front().map_or(ring.next, |e| e.seq);
        match resume {
            // Everything after `n` is still in the ring (or nothing happened since).
            Some(n) if n <= latest && n + 1 >= oldest => {
                for ev in ring.events.iter().filter(|e| e.seq > n) {
                    self.pending.push_back(feed.frame(ev));
                }
                drop(ring);
            }
            _ => {
                drop(ring);
                // Built after subscribing: anything newer arrives on the channel as well, and
                // a space or dispatch event repeated after a snapshot is harmless (each carries
                // full state).
                self.pending.extend(feed.snapshot(latest));
            }
        }
    }

    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            let rx = self.rx.as_mut()?;
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(ev) => return Some(self.feed.frame(&ev)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        // Start over rather than stream a backlog the client cannot keep up with.
                        self.pending.push_back(Frame {
                            id: None,
                            event: "resync",
                            data: format!(r#"{{"reason":"lagged","missed":{missed}}}"#),
                        });
                        let feed = Arc::clone(&self.feed);
                        let ring = feed.ring.lock().unwrap_or_else(|e| e.into_inner());
                        self.rx = Some(feed.tx.subscribe());
                        let latest = ring.next - 1;
                        drop(ring);
                        self.pending.extend(feed.snapshot(latest));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                // Ends the stream so that graceful shutdown is not held up by open clients.
                _ = self.stop.recv() => return None,
            }
        }
    }
}

/// Server-Sent Events: `snapshot`, `space`, `alert`, `dispatch`, `resync`; see the module docs.
#[utoipa::path(get, path = "/api/v1/live", tag = "live",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "An event stream: snapshot (followed by one dispatch event per distribution centre), then space / alert / dispatch events, keep-alive comments every 15 s",
        content_type = "text/event-stream", body = String)))]
pub async fn live(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let frames = st.feed.frames(last).map(|f| Ok(f.into_sse()));
    Sse::new(frames).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::live::AlertNote;

    fn feed(ring: usize, channel: usize) -> (Arc<Feed>, crate::shutdown::Trigger) {
        let cfg = Config::from_toml(
            r#"
[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"
[[spaces]]
id = "canyon"
kind = "scenic_area"
parent = "county"
name_zh = "峡谷"
name_en = "Canyon"
instant_capacity = 100
[[spaces]]
id = "village"
kind = "scenic_area"
parent = "county"
name_zh = "村"
name_en = "Village"
"#,
        )
        .unwrap();
        let reg = Arc::new(cfg.registry().unwrap());
        let live = Arc::new(Live::new(3, 0));
        let (stop_tx, stop) = crate::shutdown::channel();
        (
            Arc::new(Feed::with_sizes(reg, live, stop, ring, channel)),
            stop_tx,
        )
    }

    /// (event name, id, data) of a frame.
    fn parse(f: Frame) -> (String, String, String) {
        (f.event.to_owned(), f.id.unwrap_or_default(), f.data)
    }

    async fn next<S: Stream<Item = Frame> + Unpin>(s: &mut S) -> (String, String, String) {
        let f = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("an event")
            .expect("stream open");
        parse(f)
    }

    #[tokio::test]
    async fn snapshot_first_then_replay_from_the_ring_or_a_fresh_snapshot() {
        let (f, _stop) = feed(4, 64);
        let mut a = Box::pin(f.frames(None));
        let (kind, id0, data) = next(&mut a).await;
        assert_eq!(kind, "snapshot");
        assert!(id0.ends_with("-0"), "{id0}");
        let spaces: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(spaces.as_array().unwrap().len(), 3);
        for n in 1..=3 {
            f.push("space", format!("{{\"n\":{n}}}"));
        }
        let (kind, id1, _) = next(&mut a).await;
        assert_eq!(kind, "space");
        // Resuming after event 1: events 2 and 3 again, no snapshot.
        let mut b = Box::pin(f.frames(Some(&id1)));
        assert_eq!(next(&mut b).await.2, "{\"n\":2}");
        assert_eq!(next(&mut b).await.2, "{\"n\":3}");
        f.push("space", "{\"n\":4}".into());
        assert_eq!(next(&mut b).await.2, "{\"n\":4}");
        // Six more: event 1's successors are gone from a ring of 4, so a snapshot.
        for n in 5..=10 {
            f.push("space", format!("{{\"n\":{n}}}"));
        }
        let mut c = Box::pin(f.frames(Some(&id1)));
        let (kind, id, _) = next(&mut c).await;
        assert_eq!(kind, "snapshot");
        assert!(id.ends_with("-10"), "{id}");
        // An id from another boot, or garbage: a snapshot.
        for stale in ["0badc0de-3", "garbage", ""] {
            let mut d = Box::pin(f.frames(Some(stale)));
            assert_eq!(next(&mut d).await.0, "snapshot", "{stale:?}");
        }
        // The latest id: nothing to replay, the next live event follows.
        let latest = f.id(10);
        let mut e = Box::pin(f.frames(Some(&latest)));
        f.push("alert", "{\"a\":1}".into());
        assert_eq!(
            next(&mut e).await,
            ("alert".into(), f.id(11), "{\"a\":1}".into())
        );
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_gets_resync_and_a_snapshot() {
        let (f, _stop) = feed(64, 4);
        let mut a = Box::pin(f.frames(None));
        assert_eq!(next(&mut a).await.0, "snapshot");
        for n in 1..=20 {
            f.push("space", format!("{{\"n\":{n}}}"));
        }
        let (kind, _, data) = next(&mut a).await;
        assert_eq!(kind, "resync");
        assert!(data.contains("lagged"), "{data}");
        let (kind, id, _) = next(&mut a).await;
        assert_eq!(kind, "snapshot");
        assert_eq!(id, f.id(20));
        f.push("space", "{\"n\":21}".into());
        assert_eq!(next(&mut a).await.2, "{\"n\":21}");
    }

    #[tokio::test]
    async fn the_publisher_coalesces_spaces_and_sends_alerts() {
        let (f, stop) = feed(64, 64);
        let mut a = Box::pin(f.frames(None));
        assert_eq!(next(&mut a).await.0, "snapshot");
        let task = tokio::spawn(Arc::clone(&f).run());
        // 100 changes of one space: one event may go out at once, the others wait for the
        // interval and leave together — at most one per interval, however many changes.
        let started = Instant::now();
        for _ in 0..100 {
            f.live.mark_changed(&[crate::ids::SpaceIdx(1)]);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let intervals = started.elapsed().as_millis() / SPACE_INTERVAL.as_millis();
        tokio::time::sleep(SPACE_INTERVAL * 2).await;
        let mut spaces = 0;
        while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(10), a.next()).await {
            let (kind, _, data) = parse(f);
            assert_eq!(kind, "space");
            assert!(data.contains("\"id\":\"canyon\""), "{data}");
            spaces += 1;
        }
        assert!(
            spaces >= 1 && spaces <= 2 + intervals,
            "{spaces} space events in {intervals} intervals"
        );
        f.live.note_alerts([AlertNote {
            alert_id: Some(7),
            space: "canyon".into(),
            kind: "instant_level".into(),
            change: "open".into(),
            state: "firing".into(),
            severity: "warning".into(),
            level: Some("yellow".into()),
            at: chrono::Utc::now(),
            by: None,
            message_zh: None,
            message_en: None,
        }]);
        let (kind, _, data) = next(&mut a).await;
        assert_eq!(kind, "alert");
        assert!(data.contains("\"alert_id\":7"), "{data}");
        stop.trigger();
        task.await.unwrap();
        // Stopping ends the clients' streams too.
        assert!(a.next().await.is_none());
    }

    fn advice(id: i64, hub: &str, decision: Option<&str>) -> crate::store::dispatch::AdviceRow {
        crate::store::dispatch::AdviceRow {
            id,
            at: chrono::Utc::now(),
            hub: hub.into(),
            advice: serde_json::json!({ "hub": hub, "queue": id }),
            change: None,
            decision: decision.map(str::to_owned),
            decided_by: decision.map(|_| "desk".to_owned()),
            decided_at: None,
            decision_reason: None,
        }
    }

    #[tokio::test]
    async fn dispatch_advice_follows_the_snapshot_goes_out_on_change_and_replays() {
        let (f, stop) = feed(64, 64);
        f.live
            .seed_dispatch([advice(3, "north", None), advice(2, "south", None)]);
        // A seeded older row never replaces a newer one.
        f.live.seed_dispatch([advice(1, "north", None)]);
        let mut a = Box::pin(f.frames(None));
        assert_eq!(next(&mut a).await.0, "snapshot");
        let (kind, id, data) = next(&mut a).await;
        assert_eq!((kind.as_str(), id.as_str()), ("dispatch", ""));
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            (v["id"].as_i64(), v["hub"].as_str()),
            (Some(3), Some("north"))
        );
        assert_eq!(v["advice"]["queue"], 3);
        assert!(v["decision"].is_null());
        let v: serde_json::Value = serde_json::from_str(&next(&mut a).await.2).unwrap();
        assert_eq!(v["hub"], "south");

        let task = tokio::spawn(Arc::clone(&f).run());
        f.live.note_dispatch(advice(4, "north", None));
        let (kind, id4, data) = next(&mut a).await;
        assert_eq!(kind, "dispatch");
        assert!(!id4.is_empty(), "a numbered event, replayable");
        assert!(data.contains("\"id\":4"), "{data}");
        // A decision on superseded advice is not news; one on the current advice is.
        f.live.note_dispatch(advice(3, "north", Some("followed")));
        f.live.note_dispatch(advice(4, "north", Some("overridden")));
        let (kind, _, data) = next(&mut a).await;
        assert_eq!(kind, "dispatch");
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(
            (v["id"].as_i64(), v["decision"].as_str()),
            (Some(4), Some("overridden"))
        );
        assert_eq!(f.live.dispatch()[0].decision.as_deref(), Some("overridden"));

        // Resuming after the snapshot replays the dispatch events from the ring.
        let snap_id = f.id(0);
        let mut b = Box::pin(f.frames(Some(&snap_id)));
        assert_eq!(next(&mut b).await.1, id4);
        let (kind, _, data) = next(&mut b).await;
        assert_eq!(kind, "dispatch");
        assert!(data.contains("overridden"), "{data}");
        // A fresh client's snapshot carries the current advice, decision included.
        let mut c = Box::pin(f.frames(None));
        assert_eq!(next(&mut c).await.0, "snapshot");
        let v: serde_json::Value = serde_json::from_str(&next(&mut c).await.2).unwrap();
        assert_eq!(
            (v["id"].as_i64(), v["decision"].as_str()),
            (Some(4), Some("overridden"))
        );
        stop.trigger();
        task.await.unwrap();
    }
}
