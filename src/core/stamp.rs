//! An optional instant in 8 bytes. `Option<DateTime<Utc>>` takes 16, and the state held for each
//! of a province's 100,000 devices repeats several of them.

use chrono::{DateTime, Utc};

/// Nanoseconds since the Unix epoch, `i64::MIN` for none. Exact for every instant between the
/// years 1677 and 2262; one outside saturates to that range's end (report times never are: they
/// are checked against the time of receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(i64);

impl Stamp {
    pub const NONE: Stamp = Stamp(i64::MIN);

    pub fn get(self) -> Option<DateTime<Utc>> {
        (self != Self::NONE).then(|| DateTime::from_timestamp_nanos(self.0))
    }
}

impl Default for Stamp {
    fn default() -> Self {
        Self::NONE
    }
}

impl From<DateTime<Utc>> for Stamp {
    fn from(t: DateTime<Utc>) -> Self {
        let nanos = t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
            i64::MIN + 1
        } else {
            i64::MAX
        });
        // i64::MIN is the marker of none; the instant one nanosecond later stands in for it.
        Stamp(nanos.max(i64::MIN + 1))
    }
}

impl From<Option<DateTime<Utc>>> for Stamp {
    fn from(t: Option<DateTime<Utc>>) -> Self {
        t.map_or(Self::NONE, Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips_every_instant_in_range(nanos in (i64::MIN + 1)..i64::MAX) {
            let t = DateTime::from_timestamp_nanos(nanos);
            prop_assert_eq!(Stamp::from(t).get(), Some(t));
            prop_assert_eq!(Stamp::from(Some(t)).get(), Some(t));
        }
    }

    #[test]
    fn none_is_none_and_out_of_range_saturates() {
        assert_eq!(Stamp::from(None).get(), None);
        assert_eq!(Stamp::default(), Stamp::NONE);
        let far = DateTime::parse_from_rfc3339("3000-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Stamp::from(far).get(),
            Some(DateTime::from_timestamp_nanos(i64::MAX))
        );
        let early = DateTime::parse_from_rfc3339("1500-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Stamp::from(early).get(),
            Some(DateTime::from_timestamp_nanos(i64::MIN + 1))
        );
    }
}
