//! Snapshots of a space's and a device's figures as last committed: what the live view publishes,
//! the API shows and the rules engine reads. Plain data, so the pure rules take them as input
//! without depending on the live view's locks and notifications.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct SpaceNow {
    pub day: Option<NaiveDate>,
    pub occupancy: u64,
    pub entries_today: u64,
    pub exits_today: u64,
    /// Exits today that had no matching entry (counter drift); > 0 deserves a look.
    pub drift_today: u64,
    pub peak_today: u64,
    pub peak_at: Option<DateTime<Utc>>,
    pub last_report: Option<DateTime<Utc>>,
    /// Head-count corrections today (occupancy = entries − exits + drift + corrections).
    pub corrected_today: i64,
}

impl SpaceNow {
    /// The figures as they stand on the local business day `day`: an earlier day's counts are
    /// none of that day's (a day rolls at the opening time, before its first report arrives,
    /// which is when the counts themselves move on). Counts already in a later day stay.
    pub fn on_day(self, day: NaiveDate) -> SpaceNow {
        if self.day.is_some_and(|d| d >= day) {
            return self;
        }
        SpaceNow {
            day: Some(day),
            last_report: self.last_report,
            ..SpaceNow::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct DeviceNow {
    pub last_seq: Option<u64>,
    pub last_report: Option<DateTime<Utc>>,
    pub last_received: Option<DateTime<Utc>>,
    pub online: Option<bool>,
    /// Reports known missing and not repaired: a data-quality problem.
    pub missing_reports: u64,
    pub gap_reports_total: u64,
    pub repaired_reports_total: u64,
    pub seq_restarts_total: u64,
    /// Implausible forward jumps of seq, and the last one (timestamp, seq).
    pub seq_jumps_total: u64,
    pub last_seq_jump: Option<(DateTime<Utc>, u64)>,
    /// Reports a database failover lost, as last found (`core::loss`).
    pub lost: Option<super::loss::LostMark>,
}
