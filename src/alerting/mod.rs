//! The alerting loop: evaluates the capacity rules for every space from the live view (after every
//! ingest commit and on a steady tick), records each alert transition together with its webhook
//! deliveries in one transaction (the outbox), escalates what nobody acknowledged, and publishes
//! each space's rule status for the API. Delivery itself is in [`outbox`].

mod admitting;
mod config;
pub mod dispatching;
pub mod event;
pub mod fanout;
pub mod inputs;
pub mod outbox;
pub mod outlooks;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use tokio::sync::Notify;

use crate::admission::{self, Reservations};
use crate::shutdown::Shutdown;

use crate::dispatch::{DispatchModel, HubAdvice};
use crate::ids::SpaceIdx;
use crate::live::{AlertNote, Live, Wake};
use crate::registry::Registry;
use crate::rules::{AlertKind, Engine, EngineState, RulesError, SpaceDef, Status, Transition};
use crate::store::{self, StoreError, alerts as db, controls, outbox as outbox_db};
use crate::telemetry as t;
use crate::webhook::model::AlertEvent;
pub use config::{AlerterSettings, AlertingConfig};
use dispatching::Dispatcher;
use fanout::{Source, Wakes};

#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] RulesError),
}

/// The engine whose state a persist saves: every space's, or those whose alerts changed.
#[derive(Clone, Copy)]
struct Saving<'a> {
    engine: &'a Engine,
    all: bool,
}

/// Every space's rule state is saved at least this often (those whose alerts change, at once).
const SAVE_ALL: TimeDelta = TimeDelta::seconds(30);

/// An evaluation builds the inputs of spaces owning about this many counters at a time.
const GROUP_DEVICES: usize = 2_048;

/// Evaluations start at most every this many times their duration (within the tick).
const EVALUATION_SHARE: u32 = 5;

/// What an evaluation reads besides the live figures and the database.
struct Evaluation<'a> {
    engine: &'a mut Engine,
    owners: &'a inputs::Owners,
    controls: &'a inputs::Controls,
    outlooks: &'a outlooks::Outlooks,
}

/// An evaluation's transitions (each with the status it was decided on), the new statuses of the
/// spaces it covered, and the timed-entry areas' slots.
type Evaluated = (
    Vec<(Transition, Option<Arc<Status>>)>,
    Vec<(SpaceIdx, Arc<Status>)>,
    admitting::DaySlots,
);

pub struct Alerter {
    cfg: Arc<AlerterSettings>,
    registry: Arc<Registry>,
    live: Arc<Live>,
    wake: Arc<Wake>,
    /// One per subscription, in `cfg.webhooks` order.
    outbox: Vec<Arc<Notify>>,
    /// With several instances, only the holder of the leader lock evaluates (`crate::partition`).
    leader: Option<crate::partition::Leader>,
    /// Timed-entry plans: booked visitors still to come count in the daily load.
    reservations: Arc<Reservations>,
}

impl Alerter {
    pub fn new(
        cfg: Arc<AlerterSettings>,
        registry: Arc<Registry>,
        live: Arc<Live>,
        wake: Arc<Wake>,
        outbox: Vec<Arc<Notify>>,
    ) -> Self {
        Self {
            cfg,
            registry,
            live,
            wake,
            outbox,
            leader: None,
            reservations: Arc::default(),
        }
    }

    /// Counts the areas' booked visitors still to come in their daily load.
    pub fn with_reservations(mut self, reservations: Arc<Reservations>) -> Self {
        self.reservations = reservations;
        self
    }

    /// Runs the rules only while this instance's alerting session holds the leadership.
    pub fn with_leader(mut self, leader: crate::partition::Leader) -> Self {
        self.leader = Some(leader);
        self
    }

    pub async fn run(self, mut shutdown: Shutdown) {
        loop {
            let r = tokio::select! {
                r = self.session() => r,
                _ = shutdown.recv() => return,
            };
            // Whatever follows the leadership stops until a session leads again.
            self.live.set_evaluating(false);
            if let Err(e) = r {
                tracing::warn!(error = %e, "alerting session ended; restarting from the stored rule state");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.recv() => return,
            }
        }
    }

    async fn session(&self) -> Result<(), AlertingError> {
        let mut client = store::connect(&self.cfg.database.url).await?;
        if let Some(leader) = &self.leader {
            // On this connection: a leader that loses it can no longer record anything.
            leader.acquire(&client).await?;
        }
        let defs = || self.registry.spaces.iter().map(SpaceDef::from);
        let now = Utc::now();
        let unreadable = |e: &serde_json::Error| tracing::warn!(error = %e, "saved rule state unreadable: left out");
        let whole = db::load_rule_state(&client).await?.and_then(|v| {
            serde_json::from_value::<EngineState>(v)
                .inspect_err(unreadable)
                .ok()
        });
        let spaces = db::load_space_rule_states(&client)
            .await?
            .into_iter()
            .filter_map(|(version, v)| {
                let snap = serde_json::from_value(v).inspect_err(unreadable).ok()?;
                Some((u32::try_from(version).unwrap_or(0), snap))
            })
            .collect();
        let saved = EngineState::saved(whole, spaces);
        // Restoring resolves what the saved state holds but this version no longer keeps open:
        // alerts of removed spaces, legacy per-device silence alerts.
        let (mut engine, resolves) = match saved {
            Some(state) => Engine::restore(self.cfg.rules.clone(), defs(), state, now)?,
            None => (
                Engine::for_registry(self.cfg.rules.clone(), &self.registry)?,
                Vec::new(),
            ),
        };
        if !resolves.is_empty() {
            let resolves: Vec<_> = resolves.into_iter().map(|t| (t, None)).collect();
            let saving = Saving {
                engine: &engine,
                all: true,
            };
            self.persist(&mut client, saving, &resolves, &HashMap::new(), &[], now)
                .await?;
        }
        let mut dispatcher = match DispatchModel::build(&self.cfg.dispatch, &self.registry) {
            Ok(model) => {
                let last = store::dispatch::latest(&client).await?;
                // The live feed's snapshot shows the stored advice until the next change.
                self.live.seed_dispatch(last.iter().cloned());
                let last = last
                    .into_iter()
                    .filter_map(|r| serde_json::from_value::<HubAdvice>(r.advice).ok());
                Some(Dispatcher::new(model, last))
            }
            Err(e) => {
                tracing::warn!(error = %e, "dispatch model invalid: no dispatch advice");
                None
            }
        };
        let mut admitting =
            admitting::Admitting::start(Arc::clone(&self.reservations), &client, &self.registry)
                .await?;
        // A bad [forecast] was refused at start-up (`run::checked`); this is only the fallback.
        let mut outlooks = outlooks::Outlooks::new(self.cfg.forecast.plan().unwrap_or_else(|_| {
            crate::forecasting::ForecastConfig::default()
                .plan()
                .expect("the default [forecast] is valid")
        }));
        let tick = Duration::from_millis(self.cfg.alerting.tick_ms.max(50));
        let owners = inputs::Owners::new(&self.registry);
        // Ingest commits every few milliseconds under load. An evaluation after a commit covers
        // the spaces it published and their ancestors, plus those whose caps or hazards changed
        // and the timed-entry areas (their bookings are read every time); every space is
        // evaluated on the tick, so silence, dwell timers, forecasts and outlooks advance
        // everywhere. Evaluations still start at most every EVALUATION_SHARE times the previous
        // one's duration (within the tick); a commit during the pause keeps its wake-up.
        let mut statuses: Vec<Option<Arc<Status>>> = vec![None; self.registry.spaces.len()];
        let mut in_force = inputs::Controls::default();
        // The first evaluation (after the first commit or tick, as before) covers every space.
        let mut next_full = tokio::time::Instant::now() + tick;
        let mut first = true;
        // Every space's rule state is saved at the first evaluation and every SAVE_ALL after.
        let mut last_saved_all: Option<DateTime<Utc>> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_full) => {}
                _ = self.wake.notified() => {}
            }
            let now = Utc::now();
            let started = std::time::Instant::now();
            // Taken before the figures are read: whatever is published later is marked again.
            let due = self.live.take_due();
            let reread = outlooks.refresh(&client, &self.registry, now).await?;
            let read = inputs::Controls::new(
                &self.registry,
                &controls::active_caps(&client).await?,
                &controls::active_hazards(&client).await?,
            );
            let full = reread || first || tokio::time::Instant::now() >= next_full;
            first = false;
            let which = if full {
                next_full = tokio::time::Instant::from_std(started) + tick;
                inputs::every_space(&self.registry)
            } else {
                let changed = read.changed_since(&in_force);
                inputs::with_ancestors(
                    &self.registry,
                    due.into_iter().chain(changed).chain(admitting.areas()),
                )
            };
            in_force = read;
            let mut eval = Evaluation {
                engine: &mut engine,
                owners: &owners,
                controls: &in_force,
                outlooks: &outlooks,
            };
            let (mut transitions, evaluated, slots) = self
                .evaluate(&client, &mut eval, &which, &admitting, now)
                .await?;
            for (s, status) in &evaluated {
                statuses[s.get()] = Some(Arc::clone(status));
            }
            let (sales, signals) = admitting.changes(&self.registry, &statuses, &slots, now);
            transitions.extend(sales);
            if !self.reservations.is_empty() {
                self.live
                    .set_tickets(admitting.tickets(self.registry.spaces.len()));
            }
            let escalations = self.due_escalations(&client, now).await?;
            let save_all = last_saved_all.is_none_or(|t| now - t > SAVE_ALL);
            if !transitions.is_empty() || !escalations.is_empty() || save_all {
                let saving = Saving {
                    engine: &engine,
                    all: save_all,
                };
                self.persist(
                    &mut client,
                    saving,
                    &transitions,
                    &signals,
                    &escalations,
                    now,
                )
                .await?;
                if save_all {
                    last_saved_all = Some(now);
                }
            }
            if let Some(d) = dispatcher.as_mut() {
                let levels_changed = transitions.iter().any(|(t, _)| {
                    matches!(t.kind, AlertKind::InstantLevel | AlertKind::Hazard { .. })
                });
                if d.due(now, levels_changed) {
                    self.dispatch(&mut client, d, &statuses, now).await?;
                }
            }
            self.live.update_statuses(&evaluated);
            self.live.set_evaluating(true);
            metrics::histogram!(t::ALERT_EVALUATION).record(started.elapsed().as_secs_f64());
            // Never longer than the tick: that is how stale a status may get.
            let pause = (started.elapsed() * EVALUATION_SHARE).min(tick);
            tokio::time::sleep_until(tokio::time::Instant::from_std(started) + pause).await;
        }
    }

    /// Evaluates the spaces `which` (sorted): their transitions (each with the status it was
    /// decided on), their new statuses, and the timed-entry areas' slots.
    async fn evaluate(
        &self,
        client: &tokio_postgres::Client,
        eval: &mut Evaluation<'_>,
        which: &[SpaceIdx],
        admitting: &admitting::Admitting,
        now: DateTime<Utc>,
    ) -> Result<Evaluated, AlertingError> {
        let Evaluation {
            engine,
            owners,
            controls,
            outlooks,
        } = eval;
        let silent = |at| engine.is_silent_since(at, now);
        let parts = self
            .live
            .read_figures(|_, devices| inputs::part_devices(&self.registry, devices, silent));
        let mut booked = admitting
            .read_bookings(client, &self.registry, |s| self.live.space(s).day, now)
            .await?;
        let mut transitions = Vec::new();
        let mut evaluated = Vec::with_capacity(which.len());
        // A group of spaces at a time: the inputs of a province's every counter at once would be
        // ~15 MB. Publishing waits only for a copy of one group's figures.
        for group in owners.groups(which, GROUP_DEVICES) {
            let figures = self.live.read_figures(|spaces, devices| {
                inputs::Figures::read(owners, spaces, devices, group)
            });
            let mut inputs =
                inputs::build(&self.registry, owners, &figures, controls, &parts, group);
            admitting.apply(&self.registry, &mut booked, group, &mut inputs, now);
            for (&s, input) in group.iter().zip(&mut inputs) {
                input.outlook = outlooks.current(&self.registry, s, engine.ladder(s), now);
                let ev = engine.evaluate(s, now, input);
                // One status shared by all of the space's transitions rather than a copy per transition.
                let status = Arc::new(ev.status);
                for tr in ev.transitions {
                    transitions.push((tr, Some(Arc::clone(&status))));
                }
                evaluated.push((s, status));
            }
        }
        Ok((transitions, evaluated, booked.slots))
    }

    /// Runs the advisor and records each hub whose advice changed, with its webhook deliveries,
    /// in one transaction.
    async fn dispatch(
        &self,
        client: &mut tokio_postgres::Client,
        d: &mut Dispatcher,
        statuses: &[Option<Arc<crate::rules::Status>>],
        now: DateTime<Utc>,
    ) -> Result<(), AlertingError> {
        let followed: Vec<(HubAdvice, DateTime<Utc>)> =
            store::dispatch::followed_since(&*client, now - dispatching::ON_ROAD_HORIZON)
                .await?
                .into_iter()
                .filter_map(|(v, at)| serde_json::from_value(v).ok().map(|a| (a, at)))
                .collect();
        let inputs = dispatching::inputs(
            &self.registry,
            &d.model,
            &self.live.spaces(),
            statuses,
            &followed,
            now,
        );
        let changed = d.run(now, &inputs);
        if changed.is_empty() {
            return Ok(());
        }
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let mut wakes = Wakes::new(self.cfg.webhooks.len());
        let mut rows = Vec::with_capacity(changed.len());
        for (advice, change) in &changed {
            let json = serde_json::to_value(advice).unwrap_or_default();
            let change_json = change.as_ref().and_then(|c| serde_json::to_value(c).ok());
            let row = store::dispatch::NewAdvice {
                at: now,
                hub: advice.hub.as_str(),
                advice: &json,
                change: change_json.as_ref(),
                shuttles: advice.shuttles.iter().map(|s| s.send_now as i32).sum(),
                diversions: advice.diversions.len() as i32,
            };
            let id = store::dispatch::insert(&tx, &row).await?;
            rows.push(store::dispatch::AdviceRow {
                id,
                // As PostgreSQL keeps it, so the feed and `GET /api/v1/dispatch` agree.
                at: now
                    .duration_trunc(TimeDelta::microseconds(1))
                    .unwrap_or(now),
                hub: advice.hub.to_string(),
                advice: json.clone(),
                change: change_json.clone(),
                decision: None,
                decided_by: None,
                decided_at: None,
                decision_reason: None,
            });
            let ev = dispatching::event(advice, &self.registry, id);
            let source = Source::Advice { advice_id: id };
            self.enqueue(&tx, &ev, &source, None, &mut wakes).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        // Only committed advice reaches the live feed.
        for row in rows {
            self.live.note_dispatch(row);
        }
        self.wake_outbox(&wakes);
        Ok(())
    }

    async fn due_escalations(
        &self,
        client: &tokio_postgres::Client,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, serde_json::Value)>, AlertingError> {
        if !self.cfg.webhooks.iter().any(|w| w.escalation) {
            return Ok(Vec::new());
        }
        let before = now - TimeDelta::seconds(self.cfg.alerting.escalate_after_s as i64);
        Ok(db::due_escalations(client, before)
            .await?
            .into_iter()
            .map(|(id, _, details)| (id, details))
            .collect())
    }

    /// One transaction: transitions, their deliveries, escalations, and the engine's state.
    async fn persist(
        &self,
        client: &mut tokio_postgres::Client,
        saving: Saving<'_>,
        transitions: &[(Transition, Option<Arc<crate::rules::Status>>)],
        signals: &HashMap<SpaceIdx, admission::Signal>,
        escalations: &[(i64, serde_json::Value)],
        now: DateTime<Utc>,
    ) -> Result<(), AlertingError> {
        let external = self.cfg.alerting.external_url.as_deref();
        let tx = client.transaction().await.map_err(StoreError::from)?;
        let mut wakes = Wakes::new(self.cfg.webhooks.len());
        let mut notes = Vec::with_capacity(transitions.len());
        let statements = if transitions.is_empty() {
            None
        } else {
            Some(db::TransitionStatements::prepare(&tx).await?)
        };
        for (tr, status) in transitions {
            let (Some(s), Some(st)) = (self.registry.space_idx(tr.space.as_str()), &statements)
            else {
                continue;
            };
            let space = self.registry.space(s);
            let mut ev = event::event(tr, space, status.as_deref(), external);
            if matches!(tr.kind, AlertKind::Admission | AlertKind::Oversold) {
                ev.admission = signals.get(&s).cloned();
            }
            let Some(rec) = db::record_transition(&tx, st, &event::write(tr, &ev)).await? else {
                continue;
            };
            notes.push(AlertNote {
                alert_id: Some(rec.alert_id),
                space: tr.space.to_string(),
                kind: tr.kind.key(),
                change: event::change_str(tr.change).to_owned(),
                state: rec.state.clone(),
                severity: tr.severity.as_str().to_owned(),
                level: tr.to.map(|l| l.as_str().to_owned()),
                at: tr.at,
                by: None,
                message_zh: Some(tr.message_zh.clone()),
                message_en: Some(tr.message_en.clone()),
            });
            metrics::counter!(t::ALERT_TRANSITIONS, "severity" => tr.severity.as_str(), "change" => event::change_str(tr.change)).increment(1);
            tracing::info!(space = %tr.space, kind = %tr.kind.key(), change = event::change_str(tr.change), severity = tr.severity.as_str(), "alert transition");
            let source = Source::Transition {
                transition_id: rec.transition_id,
                acknowledged: rec.state == "acknowledged",
            };
            let transition = Some(rec.transition_id);
            self.enqueue(&tx, &ev, &source, transition, &mut wakes)
                .await?;
        }
        for (alert_id, details) in escalations {
            let Ok(ev) =
                serde_json::from_value::<crate::webhook::model::AlertEvent>(details.clone())
            else {
                continue;
            };
            let source = Source::Escalation {
                alert_id: *alert_id,
                at: now,
            };
            self.enqueue(&tx, &ev, &source, None, &mut wakes).await?;
            db::mark_escalated(&tx, *alert_id, now).await?;
        }
        // The rule state of the spaces whose alerts changed goes with those changes (the rest
        // every SAVE_ALL): a restart neither re-sends nor forgets a recorded change.
        let spaces: Vec<SpaceIdx> = if saving.all {
            (0..self.registry.spaces.len() as u32)
                .map(SpaceIdx)
                .collect()
        } else {
            let mut s: Vec<SpaceIdx> = transitions
                .iter()
                .filter_map(|(t, _)| self.registry.space_idx(t.space.as_str()))
                .collect();
            s.sort_unstable();
            s.dedup();
            s
        };
        let snaps = saving.engine.snapshot_of(&spaces);
        let ids: Vec<&str> = snaps.iter().map(|s| s.space.as_str()).collect();
        let states: Vec<serde_json::Value> = snaps
            .iter()
            .map(|s| serde_json::to_value(s).unwrap_or_default())
            .collect();
        let version = i32::try_from(crate::rules::STATE_VERSION).unwrap_or(i32::MAX);
        db::save_space_rule_states(&tx, &ids, version, &states, now).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.live.note_alerts(notes);
        self.wake_outbox(&wakes);
        Ok(())
    }

    /// Queues `ev`'s deliveries (as [`fanout::deliveries`] decides) in `tx`.
    async fn enqueue(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        ev: &AlertEvent,
        source: &Source,
        transition: Option<i64>,
        wakes: &mut Wakes,
    ) -> Result<(), AlertingError> {
        for d in fanout::deliveries(&self.cfg.webhooks, ev, source) {
            let sub = &self.cfg.webhooks[d.subscription].id;
            let e = &d.event;
            let json = serde_json::to_value(e).unwrap_or_default();
            outbox_db::enqueue(tx, &e.delivery_id, sub, transition, &e.space_id, &json).await?;
            wakes.mark(d.subscription);
        }
        Ok(())
    }

    /// After the commit: wakes the outbox workers that have new rows.
    fn wake_outbox(&self, wakes: &Wakes) {
        for n in wakes.marked() {
            self.outbox[n].notify_one();
        }
    }
}

pub use inputs::severity_of;
