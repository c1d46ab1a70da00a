//! What the caller hands the engine for one space at one evaluation: counts, capacities, device
//! health, policy caps and hazards. Plain data; the engine keeps none of it.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::forecast::BookedArrivals;
use super::level::Severity;
use super::serde_secs;
use crate::core::snapshot::SpaceNow;
use crate::ids::DeviceId;
use crate::registry::Space;

/// One space's figures at the moment of evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpaceInput {
    /// The space's business day. When it changes, the daily level starts afresh and the inflow
    /// samples are dropped (counts reset at opening time).
    pub day: Option<NaiveDate>,
    pub occupancy: u64,
    pub entries_today: u64,
    pub exits_today: u64,
    /// Exits today without a matching entry (see [`crate::core::occupancy`]).
    pub drift_today: u64,
    /// Approved (LB/T 034) capacities; `None` or 0 means "not rated": no level is computed.
    pub instant_capacity: Option<u32>,
    pub daily_capacity: Option<u32>,
    /// The space's own counters (registered in it). Their silence, missing reports and clock
    /// skew are this space's alerts, not its ancestors'.
    pub devices: Vec<DeviceHealth>,
    /// The counters of its parts whose reports count here too (an area summed from its zones:
    /// the devices of other spaces whose `targets` contain it). None fresh among them and
    /// `devices`, or none at all, makes the space stale.
    pub parts: PartDevices,
    /// Policy caps in force or scheduled; the tightest active one applies.
    pub caps: Vec<PolicyCap>,
    /// External hazards for this space; any active one closes it for dispatch.
    pub hazards: Vec<Hazard>,
    /// Visitors booked for today who have not arrived and may still come (timed-entry
    /// reservations), by arrival window: the daily load counts them, so the daily level rises
    /// when the day sells out, not when the last booked visitor walks in; the inflow forecast
    /// expects them in their windows.
    pub booked: Vec<BookedArrivals>,
    /// Tomorrow's (or today's) day-ahead forecast while its warning is due (the alerting loop
    /// sets it from `[forecast] warn_lead_h` before the area opens until the day ends).
    pub outlook: Option<super::outlook::DayOutlook>,
}

impl SpaceInput {
    /// Counts and approved capacities from the live view; the caller adds devices, caps and
    /// hazards.
    pub fn from_live(space: &Space, now: &SpaceNow) -> Self {
        Self {
            day: now.day,
            occupancy: now.occupancy,
            entries_today: now.entries_today,
            exits_today: now.exits_today,
            drift_today: now.drift_today,
            instant_capacity: space.instant_capacity,
            daily_capacity: space.daily_capacity,
            ..Default::default()
        }
    }
}

/// What the engine needs to know about one counting device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceHealth {
    pub device: DeviceId,
    /// When the server last received anything from it; `None` = never.
    pub last_received: Option<DateTime<Utc>>,
    /// Its reporting period; `None` (or not positive) uses `default_period_s`.
    #[serde(rename = "period_s", serialize_with = "serde_secs::opt")]
    pub period: Option<TimeDelta>,
    /// Reports known missing and not repaired.
    pub missing_reports: u64,
    /// Device clock minus server clock, as last observed.
    #[serde(rename = "clock_skew_s", serialize_with = "serde_secs::opt")]
    pub clock_skew: Option<TimeDelta>,
    /// Its last implausible forward jump of seq: the report's timestamp and seq.
    pub last_seq_jump: Option<(DateTime<Utc>, u64)>,
    /// Reports a database failover lost (acknowledged, then missing on the promoted server).
    pub lost: Option<crate::core::loss::LostMark>,
}

impl DeviceHealth {
    /// A healthy device heard from at `at`.
    pub fn heard(device: DeviceId, at: DateTime<Utc>) -> Self {
        Self {
            device,
            last_received: Some(at),
            period: None,
            missing_reports: 0,
            clock_skew: None,
            last_seq_jump: None,
            lost: None,
        }
    }
}

/// A tally, not a list, of the parts' counters that count in a space: only whether one of them
/// is fresh matters here, and the root of a large county counts 100,000 of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PartDevices {
    pub total: u32,
    /// Those not silent (see [`super::Engine::is_silent`]).
    pub fresh: u32,
}

impl PartDevices {
    pub fn add(&mut self, fresh: bool) {
        self.total += 1;
        self.fresh += u32::from(fresh);
    }
}

/// The limit a policy cap sets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapLimit {
    /// Percent of the approved capacity (the 2020 national order was 75%).
    Percent(f64),
    /// An absolute number of people.
    Absolute(u32),
}

/// Which capacity a cap limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapScope {
    #[default]
    Both,
    Instant,
    Daily,
}

/// A temporary limit below the approved capacity ("daily 50%, instantaneous 30%"). It changes the
/// effective capacity between `starts` (inclusive) and `ends` (exclusive), never the approved one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyCap {
    pub limit: CapLimit,
    #[serde(default)]
    pub applies_to: CapScope,
    pub reason: String,
    pub starts: DateTime<Utc>,
    #[serde(default)]
    pub ends: Option<DateTime<Utc>>,
}

impl PolicyCap {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts <= now && self.ends.is_none_or(|e| now < e)
    }

    /// Checks the limit and period; for callers accepting caps from operators. The engine
    /// ignores a cap that fails this rather than guessing what was meant.
    pub fn check(&self) -> Result<(), String> {
        if let CapLimit::Percent(p) = self.limit
            && !(p.is_finite() && (0.0..=100.0).contains(&p))
        {
            return Err(format!("cap percent {p} must be within 0–100"));
        }
        if self.ends.is_some_and(|e| e <= self.starts) {
            return Err("a cap must end after it starts".into());
        }
        Ok(())
    }

    fn limits(&self, measure: Measure) -> bool {
        matches!(
            (self.applies_to, measure),
            (CapScope::Both, _)
                | (CapScope::Instant, Measure::Instant)
                | (CapScope::Daily, Measure::Daily)
        )
    }

    /// The capacity this cap leaves of `approved`; `None` when the limit is invalid.
    fn apply(&self, approved: u32) -> Option<u32> {
        let capped = match self.limit {
            CapLimit::Percent(p) if p.is_finite() && p >= 0.0 => {
                // Floor: a cap is a maximum, rounding up would exceed it.
                (f64::from(approved) * p.min(100.0) / 100.0).floor() as u32
            }
            CapLimit::Percent(_) => return None,
            CapLimit::Absolute(n) => n,
        };
        Some(capped.min(approved))
    }
}

/// An external hazard (flash flood, landslide, storm) reported for a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hazard {
    /// Stable kind, part of the alert's identity: `flash_flood`, `landslide`, ….
    pub kind: String,
    pub severity: Severity,
    pub message_zh: String,
    pub message_en: String,
    pub since: DateTime<Utc>,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

impl Hazard {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.since <= now && self.until.is_none_or(|u| now < u)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    Instant,
    Daily,
}

/// Approved and effective capacity of one measure at one instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Capacity {
    pub approved: Option<u32>,
    pub effective: Option<u32>,
    /// The cap that set `effective`, when one did.
    pub cap: Option<PolicyCap>,
}

impl Capacity {
    pub fn of(
        approved: Option<u32>,
        caps: &[PolicyCap],
        measure: Measure,
        now: DateTime<Utc>,
    ) -> Self {
        let Some(approved) = approved.filter(|&c| c > 0) else {
            return Self {
                approved: None,
                effective: None,
                cap: None,
            };
        };
        let mut effective = approved;
        let mut binding = None;
        for cap in caps
            .iter()
            .filter(|c| c.limits(measure) && c.is_active(now))
        {
            if let Some(c) = cap.apply(approved)
                && c < effective
            {
                effective = c;
                binding = Some(cap);
            }
        }
        Self {
            approved: Some(approved),
            // A cap of 0 means "closed": one person is already at 100%.
            effective: Some(effective.max(1)),
            cap: binding.cloned(),
        }
    }

    /// `count` as a percentage of the effective capacity.
    pub fn load_pct(&self, count: u64) -> Option<f64> {
        self.effective.map(|c| count as f64 * 100.0 / f64::from(c))
    }
}

/// The effective daily capacity at `now`: the approved value under the tightest active daily
/// cap (what quotas and the daily level both divide by).
pub fn effective_daily(
    approved: Option<u32>,
    caps: &[PolicyCap],
    now: DateTime<Utc>,
) -> Option<u32> {
    Capacity::of(approved, caps, Measure::Daily, now).effective
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_777_600_000 + min * 60, 0).unwrap()
    }

    fn cap(limit: CapLimit, scope: CapScope, starts: i64, ends: Option<i64>) -> PolicyCap {
        PolicyCap {
            limit,
            applies_to: scope,
            reason: "test".into(),
            starts: t(starts),
            ends: ends.map(t),
        }
    }

    #[test]
    fn tightest_active_cap_applies_to_its_measure_only() {
        let caps = [
            cap(CapLimit::Percent(75.0), CapScope::Both, 0, None),
            cap(CapLimit::Percent(30.0), CapScope::Instant, 0, Some(60)),
            cap(CapLimit::Absolute(100), CapScope::Daily, 120, None),
        ];
        let i = Capacity::of(Some(1000), &caps, Measure::Instant, t(10));
        assert_eq!((i.approved, i.effective), (Some(1000), Some(300)));
        assert_eq!(i.cap.unwrap().limit, CapLimit::Percent(30.0));
        let d = Capacity::of(Some(1000), &caps, Measure::Daily, t(10));
        assert_eq!(d.effective, Some(750));
        // The instant cap ends at 60 (exclusive); the daily absolute one starts at 120.
        assert_eq!(
            Capacity::of(Some(1000), &caps, Measure::Instant, t(60)).effective,
            Some(750)
        );
        assert_eq!(
            Capacity::of(Some(1000), &caps, Measure::Daily, t(120)).effective,
            Some(100)
        );
    }

    #[test]
    fn caps_never_raise_capacity_and_bad_ones_are_ignored() {
        let caps = [
            cap(CapLimit::Percent(150.0), CapScope::Both, 0, None),
            cap(CapLimit::Percent(f64::NAN), CapScope::Both, 0, None),
            cap(CapLimit::Absolute(5000), CapScope::Both, 0, None),
        ];
        let c = Capacity::of(Some(1000), &caps, Measure::Instant, t(1));
        assert_eq!((c.effective, c.cap), (Some(1000), None));
        assert!(caps[0].check().is_err() && caps[1].check().is_err());
        let zero = [cap(CapLimit::Percent(0.0), CapScope::Both, 0, None)];
        assert_eq!(
            Capacity::of(Some(1000), &zero, Measure::Instant, t(1)).effective,
            Some(1)
        );
    }

    #[test]
    fn zero_or_missing_capacity_is_not_rated() {
        for approved in [None, Some(0)] {
            let c = Capacity::of(approved, &[], Measure::Instant, t(0));
            assert_eq!(
                (c.approved, c.effective, c.load_pct(10)),
                (None, None, None)
            );
        }
    }
}
