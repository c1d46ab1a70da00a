//! Counting integrity in the daily report: head-count corrections by hand (kept apart from the
//! counts in the series' `correction`) and finished days that late reports revised.

use chrono::{DateTime, Utc};

use crate::ids::SpaceIdx;
use crate::registry::Registry;
use crate::store::SeriesPoint;
use crate::store::recounts::DayRevision;

/// The sum of a day's head-count corrections over its minutes.
pub fn corrections(points: &[SeriesPoint]) -> i64 {
    points.iter().map(|p| p.correction).sum()
}

/// When a space's figures of the day were last revised and by how many late reports: its own
/// revision if the store has one, else what the revisions of the spaces below it add up to (the
/// latest time, the reports summed; for the county's root, every revision). `None` when nothing
/// revised the day.
pub fn revision_of(
    registry: &Registry,
    revisions: &[DayRevision],
    space: SpaceIdx,
) -> Option<(DateTime<Utc>, i64)> {
    let id = registry.space(space).id.as_str();
    if let Some(own) = revisions.iter().find(|r| r.space == id) {
        return Some((own.revised_at, own.reports));
    }
    let is_root = registry.space(space).parent.is_none();
    revisions
        .iter()
        .filter(|r| is_root || within(registry, &r.space, space))
        .fold(None, |acc, r| {
            Some(match acc {
                None => (r.revised_at, r.reports),
                Some((at, n)) => (at.max(r.revised_at), n + r.reports),
            })
        })
}

/// Whether `space` (an id) lies below `ancestor`.
fn within(registry: &Registry, space: &str, ancestor: SpaceIdx) -> bool {
    let mut cur = registry
        .space_idx(space)
        .and_then(|s| registry.space(s).parent);
    while let Some(s) = cur {
        if s == ancestor {
            return true;
        }
        cur = registry.space(s).parent;
    }
    false
}
