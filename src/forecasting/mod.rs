//! The day-ahead forecasts' worker: every night at `[forecast] run_at` (and when asked through
//! the API, or when an input for a day changes) it reads each scenic area's and the county's
//! hourly history, runs [`crate::forecast`] for today and the next `days` days, and stores the
//! run. Stored runs are what the API, the evening-before warning and the daily report's forecast
//! vs actual read. One run at a time across instances (an advisory lock); a nightly run already
//! made today is not repeated.

mod config;
pub mod history;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use deadpool_postgres::Pool;
use tokio::sync::Notify;

pub use config::{ForecastConfig, ForecastConfigError, ForecastPlan};

use crate::calendar::{Calendar, local_day, local_instant};
use crate::forecast::{self, Known};
use crate::registry::{Registry, SpaceKind};
use crate::shutdown::Shutdown;
use crate::store::{self, Step, StoreError, bookings, forecasts as db, sql};
use crate::telemetry as t;

/// At most one run caused by readers in this long.
pub const ASKED_EVERY: Duration = Duration::from_secs(600);

/// Why a run was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Nightly,
    Manual,
    /// An input for a day (a closure, a weather factor) was set.
    Input,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Nightly => "nightly",
            Trigger::Manual => "manual",
            Trigger::Input => "input",
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// None when tonight's run was already made (by this or another instance).
    pub run_id: Option<i64>,
    pub made_at: Option<DateTime<Utc>>,
    pub first_day: NaiveDate,
    pub days: u32,
    pub spaces: usize,
    pub elapsed_ms: f64,
}

/// The spaces forecast: the county and its scenic areas.
pub fn forecast_spaces(registry: &Registry) -> impl Iterator<Item = &crate::registry::Space> {
    registry
        .spaces
        .iter()
        .filter(|s| matches!(s.kind, SpaceKind::County | SpaceKind::ScenicArea))
}

/// Everything a run needs besides the database.
pub struct Forecaster {
    pub plan: ForecastPlan,
    pub registry: Arc<Registry>,
    pub calendar: Arc<Calendar>,
    pub pool: Pool,
    /// Wakes the worker for a run now (an input changed).
    pub wake: Arc<Notify>,
    /// When a reader last caused a run (a forecast asked for with none stored).
    pub asked: std::sync::Mutex<Option<Instant>>,
}

impl Forecaster {
    /// The nightly schedule; a run missed while the service was down is made at start-up.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        if !self.plan.enabled {
            return;
        }
        let mut retry = Duration::from_secs(1);
        loop {
            let now = Utc::now();
            let wait = match self.due(now).await {
                Ok(None) => {
                    retry = Duration::from_secs(1);
                    match self.once(Trigger::Nightly, None, now).await {
                        Ok(_) => Duration::ZERO,
                        Err(e) => {
                            tracing::warn!(error = %e, "nightly forecast failed; retrying");
                            retry = (retry * 2).min(Duration::from_secs(300));
                            retry
                        }
                    }
                }
                Ok(Some(next)) => (next - now).to_std().unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, "forecast schedule unreadable; retrying");
                    retry = (retry * 2).min(Duration::from_secs(300));
                    retry
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {
                    if let Err(e) = self.once(Trigger::Input, None, Utc::now()).await {
                        tracing::warn!(error = %e, "forecast after an input change failed");
                    }
                }
                _ = shutdown.recv() => return,
            }
        }
    }

    /// None when tonight's run is due now; else when it is.
    async fn due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.pool.get().await?;
        let last = db::last_nightly(&**client).await?;
        let tz = self.registry.tz;
        let today = now.with_timezone(&tz).date_naive();
        let at = |day: NaiveDate| local_instant(tz, day, self.plan.run_at);
        let done_today = last.is_some_and(|l| at(today).is_some_and(|t| l >= t));
        let due_today = at(today).is_some_and(|t| now >= t);
        if due_today && !done_today {
            return Ok(None);
        }
        let next_day = if due_today {
            today.succ_opt()
        } else {
            Some(today)
        };
        Ok(next_day.and_then(at).or(Some(now + TimeDelta::hours(1))))
    }

    /// A run for a reader who found no forecast stored, at most one per [`ASKED_EVERY`]: an area
    /// without history has none to store, and its readers must not cause a run each.
    pub async fn on_request(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        {
            let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
            if asked.is_some_and(|t| t.elapsed() < ASKED_EVERY) {
                return Ok(());
            }
            *asked = Some(Instant::now());
        }
        self.once(Trigger::Manual, None, now).await.map(|_| ())
    }

    /// One run now: today and the next `days` days for the county and every scenic area.
    pub async fn once(
        &self,
        trigger: Trigger,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RunSummary, StoreError> {
        let started = Instant::now();
        let result = self.compute_and_store(trigger, by, now).await;
        let outcome = if result.is_ok() { "stored" } else { "failed" };
        metrics::counter!(t::FORECAST_RUNS, "trigger" => trigger.as_str(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(t::FORECAST_SECONDS).record(started.elapsed().as_secs_f64());
        let mut summary = result?;
        summary.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(trigger = trigger.as_str(), run = ?summary.run_id, spaces = summary.spaces, ms = summary.elapsed_ms, "forecast run");
        Ok(summary)
    }

    async fn compute_and_store(
        &self,
        trigger: Trigger,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RunSummary, StoreError> {
        let tz = self.registry.tz;
        let today = now.with_timezone(&tz).date_naive();
        let days = self.plan.days + 1;
        let last = today + TimeDelta::days(i64::from(self.plan.days));
        let mut summary = RunSummary {
            run_id: None,
            made_at: None,
            first_day: today,
            days,
            spaces: 0,
            elapsed_ms: 0.0,
        };
        // History ends with yesterday: today's partial day would read as a quiet one.
        let first = today - TimeDelta::days(i64::from(self.plan.history_days));
        let (Some((from, _)), Some((to, _))) = (local_day(tz, first), local_day(tz, today)) else {
            return Ok(summary);
        };
        let mut client = self.pool.get().await?;
        let inputs = db::inputs(&**client, today, last).await?;
        let inputs: HashMap<(&str, NaiveDate), &db::InputRow> = inputs
            .iter()
            .map(|i| ((i.space_id.as_str(), i.day), i))
            .collect();
        let spaces: Vec<_> = forecast_spaces(&self.registry).collect();
        let pairs: Vec<(&str, NaiveDate)> = spaces
            .iter()
            .flat_map(|s| {
                today
                    .iter_days()
                    .take(days as usize)
                    .map(|d| (s.id.as_str(), d))
            })
            .collect();
        let mut booked: HashMap<(String, NaiveDate), f64> = HashMap::new();
        for r in bookings::slot_counts(&**client, &pairs).await? {
            *booked.entry((r.space_id, r.day)).or_default() += (r.booked + r.checked_in) as f64;
        }
        let hours = i64::from(self.plan.history_days + 1) * 25;
        let mut rows = Vec::with_capacity(spaces.len() * days as usize);
        for space in &spaces {
            let id = space.id.as_str();
            let points = store::series(&self.pool, id, from, to, Step::Hour, hours).await?;
            let h = history::by_local_day(&points, tz);
            // No history, no forecast: the API says so rather than forecasting an empty area.
            if h.entries.is_empty() {
                continue;
            }
            let cal = |d: NaiveDate| self.calendar.day(d, Some(&space.id));
            let known = |d: NaiveDate| {
                let input = inputs.get(&(id, d));
                Known {
                    closed: input.is_some_and(|i| i.closed),
                    factor: input.and_then(|i| i.factor),
                    booked: booked.get(&(id.to_string(), d)).copied(),
                }
            };
            let entries = forecast::forecast(&h.entries, &cal, today, days as usize, &known);
            // Bookings floor entries, not the occupancy profile's scale.
            let known_occ = |d: NaiveDate| Known {
                booked: None,
                ..known(d)
            };
            let occupancy =
                forecast::forecast(&h.occupancy, &cal, today, days as usize, &known_occ);
            for (e, o) in entries.iter().zip(&occupancy) {
                rows.push(history::row(id, &cal(e.date), e, o));
            }
        }
        summary.spaces = spaces.len();
        let tx = client.transaction().await?;
        // A run asked for while another stores waits for it rather than being dropped.
        tx.execute(sql::FORECAST_LOCK, &[]).await?;
        if trigger == Trigger::Nightly && self.due(now).await?.is_some() {
            return Ok(summary);
        }
        let (id, made_at) =
            db::insert_run(&*tx, trigger.as_str(), today, days as i32, by, &rows).await?;
        if trigger == Trigger::Nightly {
            db::prune(&*tx, today - TimeDelta::days(14), now - TimeDelta::days(14)).await?;
        }
        tx.commit().await?;
        summary.run_id = Some(id);
        summary.made_at = Some(made_at);
        Ok(summary)
    }
}
