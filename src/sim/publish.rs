//! The MQTT shell of the simulator: `Link` (one rumqttc client whose event loop runs in its own
//! task and counts PubAcks) and [`simulate`], which steps the traffic model on the simulated clock
//! and publishes what each device would.
//!
//! Each simulated device is its own MQTT client (`{client_id}-{device}`), as in the field: its last
//! will is a retained `{"online": false}` on its status topic, so a crashed simulator reads as dead
//! devices. On a clean stop it publishes that status itself (a clean DISCONNECT suppresses the will).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
};
use tokio::sync::watch;

use crate::shutdown::Shutdown;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::SimError;
use super::report::{self, DeviceCounter};
use super::tickets::{TicketSim, TicketStats};
use super::traffic::{Clock, TrafficModel};
use crate::admission::Reservations;
use crate::ids::{DeviceId, SpaceId};
use crate::registry::{Device, Registry};
use crate::source::MqttConfig;

/// Unacknowledged QoS 1 publishes per connection before rumqttc holds new ones back: high enough
/// that a replay is limited by the broker, not by round trips.
const INFLIGHT: u16 = 1000;
const REQUEST_CAPACITY: usize = 1000;
/// Outgoing packet limit (rumqttc's default is 10 KiB, less than a batched replay message).
const MAX_PACKET_BYTES: usize = 1024 * 1024;
/// A simulated device that saw nobody still reports this often, so silence ≠ dead device.
const MAX_SILENCE: TimeDelta = TimeDelta::seconds(60);

#[derive(Debug, Default, Clone)]
struct LinkState {
    ever_connected: bool,
    acked: u64,
    failed: Option<String>,
}

/// One MQTT connection that publishes at QoS 1 and knows how many of its publishes the broker has
/// acknowledged.
pub(crate) struct Link {
    client: AsyncClient,
    state: watch::Receiver<LinkState>,
    task: JoinHandle<()>,
    broker: String,
    published: u64,
}

impl Link {
    /// Connects and waits for the broker's ConnAck. With `reconnect`, a connection lost later is
    /// retried every `reconnect_delay_ms` (publishes unacknowledged at that moment are lost with
    /// the clean session); without, the link fails and the next call reports why.
    pub(crate) async fn connect(
        mqtt: &MqttConfig,
        client_id: &str,
        will: Option<LastWill>,
        reconnect: bool,
    ) -> Result<Self, SimError> {
        let broker = format!("{}:{}", mqtt.host, mqtt.port);
        if client_id.is_empty() {
            return Err(SimError::InvalidOption(
                "the MQTT client id is empty".into(),
            ));
        }
        let mut o = MqttOptions::new(client_id, mqtt.host.as_str(), mqtt.port);
        o.set_keep_alive(Duration::from_secs(mqtt.keep_alive_s))
            .set_inflight(INFLIGHT)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_clean_session(true);
        if let Some(user) = &mqtt.username {
            o.set_credentials(user.as_str(), mqtt.password.clone().unwrap_or_default());
        }
        if let Some(will) = will {
            o.set_last_will(will);
        }
        let (client, mut eventloop) = AsyncClient::new(o, REQUEST_CAPACITY);
        let mut net = eventloop.network_options();
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);

        let (tx, mut state) = watch::channel(LinkState::default());
        let delay = Duration::from_millis(mqtt.reconnect_delay_ms.max(50));
        let task = tokio::spawn(drive(eventloop, tx, reconnect, delay));
        let link = Self {
            client,
            state: state.clone(),
            task,
            broker,
            published: 0,
        };
        let outcome = state
            .wait_for(|s| s.ever_connected || s.failed.is_some())
            .await
            .map(|s| s.failed.clone());
        match outcome {
            Ok(None) => Ok(link),
            Ok(Some(message)) => Err(link.error(message)),
            Err(_) => Err(link.error("the event loop stopped".into())),
        }
    }

    fn error(&self, message: String) -> SimError {
        SimError::Connection {
            broker: self.broker.clone(),
            message,
        }
    }

    /// Queues a QoS 1 publish; waits only when rumqttc's request queue is full.
    pub(crate) async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), SimError> {
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
        {
            let reason = self.state.borrow().failed.clone();
            return Err(self.error(reason.unwrap_or_else(|| e.to_string())));
        }
        self.published += 1;
        Ok(())
    }

    pub(crate) fn published(&self) -> u64 {
        self.published
    }

    pub(crate) fn acked(&self) -> u64 {
        self.state.borrow().acked
    }

    /// Waits until the broker has acknowledged every publish so far, or `deadline`.
    pub(crate) async fn wait_acked(&self, deadline: Instant) -> Result<(), SimError> {
        let target = self.published;
        let mut state = self.state.clone();
        let waited = tokio::time::timeout_at(
            deadline,
            state.wait_for(|s| s.acked >= target || s.failed.is_some()),
        )
        .await
        .map(|r| r.map(|s| s.failed.clone()));
        let acked = self.acked();
        match waited {
            _ if acked >= target => Ok(()),
            Ok(Ok(Some(message))) => Err(self.error(message)),
            Ok(_) => Err(self.error(format!(
                "the event loop stopped with {} publishes unacknowledged",
                target - acked
            ))),
            Err(_) => Err(SimError::AckTimeout {
                published: target,
                acked,
            }),
        }
    }

    /// Sends DISCONNECT and waits (briefly) for the event loop to finish.
    pub(crate) async fn close(&mut self) {
        if self.client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        }
        self.task.abort();
    }
}

impl Drop for Link {
    /// The event loop holds a sender of its own request channel, so it would outlive the client:
    /// stop it (the broker then sees a lost connection and publishes the will).
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn drive(
    mut eventloop: EventLoop,
    state: watch::Sender<LinkState>,
    reconnect: bool,
    delay: Duration,
) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                state.send_modify(|s| s.ever_connected = true);
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => state.send_modify(|s| s.acked += 1),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) => {
                if reconnect && state.borrow().ever_connected {
                    tracing::warn!(error = %e, "MQTT connection lost; reconnecting");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                state.send_modify(|s| s.failed = Some(e.to_string()));
                return;
            }
        }
    }
}

/// Resolves once `shutdown` is signalled; never when there is none (the run ends by itself).
pub(crate) async fn stop_requested(shutdown: &mut Option<Shutdown>) {
    match shutdown {
        Some(s) => s.recv().await,
        None => std::future::pending::<()>().await,
    }
}

pub(crate) fn stop_flagged(shutdown: &Option<Shutdown>) -> bool {
    shutdown.as_ref().is_some_and(Shutdown::is_shutdown)
}

/// How `simulate` runs.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Seed of the traffic model: the same seed, start, tick and devices publish the same reports.
    pub seed: u64,
    /// Simulated start instant; `None` = now (whole seconds).
    pub start: Option<DateTime<Utc>>,
    /// Simulated seconds per real second (60 = a day in 24 minutes); `f64::INFINITY` publishes
    /// tick after tick without waiting (backfill, tests). Report timestamps are simulated time, so
    /// the receiver must accept them (`max_future_skew_s`, `max_age_days`).
    pub speed: f64,
    /// Simulated length of a tick (≥ 1 s): each device reports at most once per tick, stamped
    /// with the tick's end and `period_s` = the tick.
    pub tick: Duration,
    /// Simulated time to run (whole ticks); `None` = until `shutdown`.
    pub duration: Option<Duration>,
    /// Demand multiplier (1 = the calendar; see [`TrafficModel::with_intensity`]).
    pub intensity: f64,
    /// Devices to publish as (ids); empty = every device of the registry. The model still runs
    /// the whole county, so a subset sees the same traffic as in a full run.
    pub devices: Vec<String>,
    /// Prefix of the per-device MQTT client ids, `{client_id}-{device}`. Must differ from the
    /// ingester's, or the broker would disconnect it.
    pub client_id: String,
    /// At the end, how long to wait for the broker to acknowledge outstanding publishes.
    pub ack_timeout: Duration,
    /// Stops the run (after the current tick) once it holds `true`.
    pub shutdown: Option<Shutdown>,
    /// Areas selling timed entry: a simulated ticket office sells, cancels and checks in their
    /// bookings on `{prefix}/{space}/tickets` ([`super::tickets`]). `None` sells nothing.
    pub reservations: Option<Arc<Reservations>>,
    /// Holidays and days off of the traffic model (`None`: the shipped calendar).
    pub calendar: Option<Arc<crate::calendar::Calendar>>,
    /// Days of history published before `start`, unpaced, in longer ticks (the demo's history
    /// for the day-ahead forecast).
    pub backfill: Option<Backfill>,
    /// Notified once the backfill is published (acknowledged by the broker).
    pub filled: Option<Arc<tokio::sync::Notify>>,
}

/// History published before a simulation's start.
#[derive(Debug, Clone, Copy)]
pub struct Backfill {
    pub days: u32,
    /// Each device reports at most once per tick (≥ 1 min).
    pub tick: Duration,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            seed: 1,
            start: None,
            speed: 1.0,
            tick: Duration::from_secs(60),
            duration: None,
            intensity: 1.0,
            devices: Vec::new(),
            client_id: "visitorflow-sim".into(),
            ack_timeout: Duration::from_secs(10),
            shutdown: None,
            reservations: None,
            calendar: None,
            backfill: None,
            filled: None,
        }
    }
}

/// What one simulated device did and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStats {
    pub device: DeviceId,
    pub space: SpaceId,
    /// Count reports published (status messages excluded).
    pub reports: u64,
    /// People (vehicles) who entered / left its space through it.
    pub entered: u64,
    pub left: u64,
    /// Cumulative `in` / `out` as reported (after `direction` and line swaps).
    pub total_in: u64,
    pub total_out: u64,
}

#[derive(Debug, Clone)]
pub struct SimStats {
    /// Simulated span covered: from the start to the end of the last tick.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub ticks: u64,
    /// Count reports published.
    pub reports: u64,
    /// All publishes, status messages included, and how many the broker acknowledged (fewer only
    /// if a connection was lost or the final wait timed out).
    pub messages: u64,
    pub acked: u64,
    /// True when `shutdown` ended the run before `duration`.
    pub stopped: bool,
    /// Real time taken.
    pub elapsed: Duration,
    pub devices: Vec<DeviceStats>,
    /// The simulated ticket office's sales, cancellations and check-ins (people).
    pub tickets: TicketStats,
}

/// Publishes simulated traffic for the registry's devices until `opts.duration` of simulated time
/// has passed or `opts.shutdown` turns true. Each device first publishes a retained online status,
/// then one count report per tick in which it saw someone (and at least one a simulated minute),
/// then a retained offline status.
pub async fn simulate(
    opts: SimulateOptions,
    registry: &Registry,
    mqtt: &MqttConfig,
) -> Result<SimStats, SimError> {
    if opts.tick < Duration::from_secs(1) {
        return Err(SimError::InvalidOption("tick must be at least 1 s".into()));
    }
    if !opts.intensity.is_finite() || opts.intensity < 0.0 {
        return Err(SimError::InvalidOption(format!(
            "intensity must be a non-negative number (got {})",
            opts.intensity
        )));
    }
    let start = opts.start.unwrap_or_else(|| {
        let now = Utc::now();
        DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
    });
    let clock = Clock::new(start, opts.speed)?;
    if !clock.is_paced() && opts.duration.is_none() && opts.shutdown.is_none() {
        return Err(SimError::InvalidOption(
            "an unpaced simulation needs a duration or a shutdown signal".into(),
        ));
    }
    let out_of_range = |what: &str| SimError::InvalidOption(format!("{what} is out of range"));
    let tick = TimeDelta::from_std(opts.tick).map_err(|_| out_of_range("tick"))?;
    let end = match opts.duration {
        Some(d) => Some(
            TimeDelta::from_std(d)
                .ok()
                .and_then(|d| start.checked_add_signed(d))
                .ok_or_else(|| out_of_range("duration"))?,
        ),
        None => None,
    };
    let period_s = u32::try_from(opts.tick.as_secs()).map_err(|_| out_of_range("tick"))?;
    let backfill = match opts.backfill {
        Some(b) if b.days > 0 => Some((
            b.days,
            TimeDelta::from_std(b.tick.max(Duration::from_secs(60)))
                .map_err(|_| out_of_range("backfill tick"))?,
        )),
        _ => None,
    };
    let backfill_period_s = backfill.map_or(period_s, |(_, t)| t.num_seconds() as u32);

    let devices: Vec<&Device> = if opts.devices.is_empty() {
        // Polled devices publish nothing: the service asks them.
        registry
            .devices
            .iter()
            .filter(|d| !d.format.polled())
            .collect()
    } else {
        opts.devices
            .iter()
            .map(|id| {
                registry
                    .device_idx(id)
                    .map(|i| registry.device(i))
                    .ok_or_else(|| SimError::UnknownDevice(id.clone()))
            })
            .collect::<Result<_, _>>()?
    };
    if devices.is_empty() {
        return Err(SimError::NoDevices("the registry has no devices".into()));
    }
    let prefix = mqtt.topic_prefix.as_str();
    let topic = |d: &Device, status: bool| {
        let space = registry.space(d.space).id.as_str();
        if status {
            report::status_topic(prefix, space, d.id.as_str())
        } else {
            report::counts_topic(prefix, space, d.id.as_str())
        }
    };

    let real_start = Instant::now();
    let mut links = futures_util::future::try_join_all(devices.iter().map(|d| {
        let will = LastWill::new(topic(d, true), report::OFFLINE, QoS::AtLeastOnce, true);
        let client_id = format!("{}-{}", opts.client_id, d.id);
        async move { Link::connect(mqtt, &client_id, Some(will), true).await }
    }))
    .await?;
    for (link, d) in links.iter_mut().zip(&devices) {
        link.publish(topic(d, true), report::ONLINE.to_vec(), true)
            .await?;
    }
    tracing::info!(
        devices = devices.len(),
        %start,
        speed = opts.speed,
        "simulating traffic"
    );

    struct DeviceRun {
        counter: DeviceCounter,
        topic: String,
        last_report: Option<DateTime<Utc>>,
        stats: DeviceStats,
    }
    let mut runs: Vec<DeviceRun> = devices
        .iter()
        .map(|d| DeviceRun {
            counter: DeviceCounter::default(),
            topic: topic(d, false),
            last_report: None,
            stats: DeviceStats {
                device: d.id.clone(),
                space: registry.space(d.space).id.clone(),
                reports: 0,
                entered: 0,
                left: 0,
                total_in: 0,
                total_out: 0,
            },
        })
        .collect();

    let mut model = TrafficModel::new(registry, opts.seed).with_intensity(opts.intensity);
    if let Some(c) = &opts.calendar {
        model = model.with_calendar(Arc::clone(c));
    }
    let mut tickets = opts
        .reservations
        .as_deref()
        .map(|r| TicketSim::new(r, registry, opts.seed))
        .filter(|t| !t.is_empty());
    let mut office = match &tickets {
        Some(_) => {
            Some(Link::connect(mqtt, &format!("{}-tickets", opts.client_id), None, true).await?)
        }
        None => None,
    };
    let mut ticket_stats = TicketStats::default();
    let mut shutdown = opts.shutdown.clone();
    // History first, when asked for: unpaced, in its own (longer) ticks, by the same devices
    // with their seqs running on into the live run.
    let backfill_from = backfill.map(|(days, _)| start - TimeDelta::days(i64::from(days)));
    let (mut tick_start, mut ticks, mut reports, mut stopped) =
        (backfill_from.unwrap_or(start), 0u64, 0u64, false);
    loop {
        let filling = tick_start < start;
        let (step, period_s) = match backfill {
            Some((_, bf)) if filling => ((start - tick_start).min(bf), backfill_period_s),
            _ => (tick, period_s),
        };
        let tick_end = tick_start + step;
        if !filling && end.is_some_and(|e| tick_end > e) {
            break;
        }
        if filling {
            if stop_flagged(&shutdown) {
                stopped = true;
                break;
            }
        } else if clock.is_paced() {
            tokio::select! {
                _ = tokio::time::sleep_until(real_start + clock.real_offset(tick_end)) => {}
                _ = stop_requested(&mut shutdown) => { stopped = true; break; }
            }
        } else if stop_flagged(&shutdown) {
            stopped = true;
            break;
        }
        let flows = model.step(
            tick_start.with_timezone(&registry.tz),
            step.to_std().unwrap_or(opts.tick),
        );
        let ts = tick_end.with_timezone(&registry.tz);
        for ((run, d), link) in runs.iter_mut().zip(&devices).zip(links.iter_mut()) {
            let flow = flows[d.idx.get()];
            run.stats.entered += u64::from(flow.entered);
            run.stats.left += u64::from(flow.left);
            // Cameras reporting time windows send the quiet ones too.
            let quiet = flow.entered == 0 && flow.left == 0 && !d.format.windowed();
            if quiet && run.last_report.is_some_and(|t| tick_end - t < MAX_SILENCE) {
                continue;
            }
            let body = run.counter.encode(d, flow, &ts, period_s)?;
            link.publish(run.topic.clone(), body, false).await?;
            run.last_report = Some(tick_end);
            run.stats.reports += 1;
            reports += 1;
        }
        if filling {
            tick_start = tick_end;
            if tick_start >= start {
                let deadline = Instant::now() + opts.ack_timeout;
                for link in &links {
                    if let Err(e) = link.wait_acked(deadline).await {
                        tracing::warn!(error = %e, "not every history report was acknowledged");
                    }
                }
                if let Some(n) = &opts.filled {
                    n.notify_one();
                }
            }
            continue;
        }
        if let (Some(sim), Some(link)) = (tickets.as_mut(), office.as_mut()) {
            for (space, msg) in sim.step(&model, tick_start, tick_end, &mut ticket_stats) {
                let topic = format!("{prefix}/{}/tickets", registry.space(space).id);
                link.publish(topic, serde_json::to_vec(&msg)?, false)
                    .await?;
            }
        }
        ticks += 1;
        tick_start = tick_end;
    }

    for (link, d) in links.iter_mut().zip(&devices) {
        link.publish(topic(d, true), report::OFFLINE.to_vec(), true)
            .await?;
    }
    let deadline = Instant::now() + opts.ack_timeout;
    links.extend(office);
    for link in &links {
        if let Err(e) = link.wait_acked(deadline).await {
            tracing::warn!(error = %e, "not every simulated report was acknowledged");
        }
    }
    let messages = links.iter().map(Link::published).sum();
    let acked = links.iter().map(Link::acked).sum();
    for link in &mut links {
        link.close().await;
    }
    Ok(SimStats {
        start,
        end: tick_start,
        ticks,
        reports,
        messages,
        acked,
        stopped,
        elapsed: real_start.elapsed(),
        devices: runs
            .into_iter()
            .map(|r| {
                let (total_in, total_out) = r.counter.totals();
                DeviceStats {
                    total_in,
                    total_out,
                    ..r.stats
                }
            })
            .collect(),
        tickets: ticket_stats,
    })
}
