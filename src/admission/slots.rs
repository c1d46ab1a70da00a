//! The day's entry slots and their quotas, pure: a slot's online quota is its share of the
//! effective daily capacity (approved × policy cap) less the walk-in share, split by largest
//! remainder so the quotas add up exactly and a cap lowers every slot at once.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// One entry slot, local wall-clock times (`"08:00-10:00"` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotSpec {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl SlotSpec {
    pub fn minutes(&self) -> i64 {
        (self.end - self.start).num_minutes()
    }

    /// The slot's start on local day `day`, as an instant.
    pub fn start_on(&self, tz: Tz, day: NaiveDate) -> DateTime<Utc> {
        local(tz, day.and_time(self.start))
    }

    /// The slot's end on local day `day`, as an instant.
    pub fn end_on(&self, tz: Tz, day: NaiveDate) -> DateTime<Utc> {
        local(tz, day.and_time(self.end))
    }

    /// `"08:00"`: how bookings name the slot.
    pub fn key(&self) -> String {
        self.start.format("%H:%M").to_string()
    }
}

fn local(tz: Tz, t: chrono::NaiveDateTime) -> DateTime<Utc> {
    use chrono::TimeZone;
    tz.from_local_datetime(&t)
        .earliest()
        .map_or_else(|| t.and_utc(), |d| d.to_utc())
}

impl fmt::Display for SlotSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

impl TryFrom<String> for SlotSpec {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("slot {s:?}: expected \"HH:MM-HH:MM\""))?;
        let t = |v: &str| {
            NaiveTime::parse_from_str(v.trim(), "%H:%M")
                .map_err(|_| format!("slot {s:?}: {v:?} is not HH:MM"))
        };
        let (start, end) = (t(a)?, t(b)?);
        if end <= start {
            return Err(format!("slot {s:?}: ends before it starts"));
        }
        Ok(SlotSpec { start, end })
    }
}

impl From<SlotSpec> for String {
    fn from(s: SlotSpec) -> String {
        s.to_string()
    }
}

impl Serialize for SlotSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SlotSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SlotSpec::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Checks a day's slots: at least one, in order, not overlapping.
pub fn check_slots(slots: &[SlotSpec]) -> Result<(), String> {
    if slots.is_empty() {
        return Err("no slots".into());
    }
    for w in slots.windows(2) {
        if w[1].start < w[0].end {
            return Err(format!("slot {} overlaps or precedes {}", w[1], w[0]));
        }
    }
    Ok(())
}

/// The online places of the day: the effective daily capacity less the walk-in share (rounded
/// so the walk-in window is never smaller than asked).
pub fn online_places(effective_daily: u32, walk_in_share: f64) -> u32 {
    let kept = (f64::from(effective_daily) * walk_in_share.clamp(0.0, 1.0)).ceil();
    effective_daily.saturating_sub(kept as u32)
}

/// Splits `total` over `weights` by largest remainder: the parts add up to `total` exactly,
/// each within one of its exact share; then caps each at `limit`.
pub fn quotas(total: u32, weights: &[f64], limit: Option<u32>) -> Vec<u32> {
    let sum: f64 = weights.iter().map(|w| w.max(0.0)).sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| f64::from(total) * w.max(0.0) / sum)
        .collect();
    let mut q: Vec<u32> = exact.iter().map(|e| e.floor() as u32).collect();
    let mut left = total.saturating_sub(q.iter().sum());
    let mut order: Vec<usize> = (0..q.len()).collect();
    // Largest fraction first; ties to the earlier slot, so the split is deterministic.
    order.sort_by(|&a, &b| {
        let (fa, fb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        q[i] += 1;
        left -= 1;
    }
    if let Some(l) = limit {
        q.iter_mut().for_each(|v| *v = (*v).min(l));
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slot(s: &str) -> SlotSpec {
        SlotSpec::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn slots_parse_and_refuse_nonsense() {
        assert_eq!(slot("08:00-10:00").minutes(), 120);
        assert_eq!(slot("08:00-10:00").key(), "08:00");
        assert!(SlotSpec::try_from("10:00-08:00".to_owned()).is_err());
        assert!(SlotSpec::try_from("8-10".to_owned()).is_err());
        assert!(check_slots(&[slot("08:00-10:00"), slot("09:30-11:00")]).is_err());
        assert!(check_slots(&[]).is_err());
        assert!(check_slots(&[slot("08:00-10:00"), slot("10:00-12:00")]).is_ok());
    }

    #[test]
    fn the_walk_in_window_is_kept_and_a_cap_lowers_every_slot() {
        // 10,000 approved, 10 % walk-in: 9,000 online over 2 h + 2 h + 4 h.
        let w = [120.0, 120.0, 240.0];
        assert_eq!(online_places(10_000, 0.10), 9_000);
        assert_eq!(quotas(9_000, &w, None), vec![2_250, 2_250, 4_500]);
        // A 75 % policy cap: 7,500 effective, 6,750 online.
        assert_eq!(
            quotas(online_places(7_500, 0.10), &w, None),
            vec![1_688, 1_687, 3_375]
        );
        // A per-slot limit binds on the long slot.
        assert_eq!(quotas(9_000, &w, Some(3_000)), vec![2_250, 2_250, 3_000]);
        // Rounding never shrinks the walk-in window.
        assert_eq!(online_places(7, 0.10), 6);
    }

    proptest! {
        #[test]
        fn quotas_add_up_exactly_and_stay_within_one_of_their_share(
            total in 0u32..1_000_000,
            weights in proptest::collection::vec(0.1f64..100.0, 1..12),
        ) {
            let q = quotas(total, &weights, None);
            prop_assert_eq!(q.iter().map(|&v| u64::from(v)).sum::<u64>(), u64::from(total));
            let sum: f64 = weights.iter().sum();
            for (v, w) in q.iter().zip(&weights) {
                let exact = f64::from(total) * w / sum;
                prop_assert!((f64::from(*v) - exact).abs() < 1.0 + 1e-6);
            }
        }
    }
}
