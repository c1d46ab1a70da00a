//! `[admission]`: timed-entry reservations (分时预约) per scenic area — the day's slots, the share
//! of places kept for walk-in visitors, and how long after a slot a booking counts as a no-show.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::slots::SlotSpec;
use crate::ids::SpaceId;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Share of the effective daily capacity kept out of online sales for visitors without
    /// phones (the ministry's 2024 notice keeps a walk-in window); 0 ≤ share < 1.
    #[serde(default = "default_walk_in_share")]
    pub walk_in_share: f64,
    /// A booking not checked in this long after its slot ends is a no-show, and stops counting
    /// as an expected arrival.
    #[serde(default = "default_no_show_grace_min")]
    pub no_show_grace_min: u32,
    /// Booking data older than this (no intake from the ticketing system) is shown as stale,
    /// never as "no bookings".
    #[serde(default = "default_stale_after_s")]
    pub stale_after_s: u64,
    /// Sales paused by a level or a hazard resume only after an operator confirms
    /// (`POST /api/v1/spaces/{id}/admission/resume`), once the figures allow it.
    #[serde(default)]
    pub resume_needs_confirmation: bool,
    /// The areas that sell timed entry, by space id.
    #[serde(default)]
    pub spaces: BTreeMap<SpaceId, AreaReservations>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            walk_in_share: default_walk_in_share(),
            no_show_grace_min: default_no_show_grace_min(),
            stale_after_s: default_stale_after_s(),
            resume_needs_confirmation: false,
            spaces: BTreeMap::new(),
        }
    }
}

/// One area's reservation plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AreaReservations {
    /// The day's entry slots in local time, e.g. `["08:00-10:00", "10:00-12:00"]`: in order,
    /// not overlapping, within one day.
    pub slots: Vec<SlotSpec>,
    /// Overrides the county's `walk_in_share` for this area.
    #[serde(default)]
    pub walk_in_share: Option<f64>,
    /// Relative weights of the slots' quotas (one per slot); by default each slot's length.
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    /// At most this many online places per slot (an instantaneous limit on top of the share of
    /// the daily capacity).
    #[serde(default)]
    pub slot_limit: Option<u32>,
    /// Overrides the county's `resume_needs_confirmation` for this area.
    #[serde(default)]
    pub resume_needs_confirmation: Option<bool>,
}

fn default_walk_in_share() -> f64 {
    0.10
}

fn default_no_show_grace_min() -> u32 {
    30
}

fn default_stale_after_s() -> u64 {
    900
}
