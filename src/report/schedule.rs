//! When the daily report is pushed, pure: day D's report is due at `send_at` local time on D + 1.
//! Given the clock, the county's time zone, `send_at` and the latest day the schedule has already
//! taken on (recorded in the database), [`due_days`] says which days to push now — so a service
//! that was down at the scheduled time pushes on start-up, and one restarted after pushing does
//! not push again.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant of local `at` in `tz`: the earliest when the clock repeats it, the same wall time
/// an hour later when a clock change skips it (spring forward).
fn instant(tz: Tz, at: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&at)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(at + TimeDelta::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// When `day`'s report becomes due: `send_at` on the following local day.
pub fn send_instant(tz: Tz, day: NaiveDate, send_at: NaiveTime) -> Option<DateTime<Utc>> {
    instant(tz, day.succ_opt()?.and_time(send_at))
}

/// The latest day whose report is due at `now`.
pub fn latest_due(now: DateTime<Utc>, tz: Tz, send_at: NaiveTime) -> Option<NaiveDate> {
    let yesterday = now.with_timezone(&tz).date_naive().pred_opt()?;
    if send_instant(tz, yesterday, send_at)? <= now {
        Some(yesterday)
    } else {
        yesterday.pred_opt()
    }
}

/// The days to push at `now`, oldest first: those after `last` (the latest day already taken
/// on) up to the latest due day, at most `catch_up` of them (the most recent). With nothing
/// taken on yet (a new deployment), only the latest due day: days before the service ran are not
/// pushed.
pub fn due_days(
    now: DateTime<Utc>,
    tz: Tz,
    send_at: NaiveTime,
    last: Option<NaiveDate>,
    catch_up: u32,
) -> Vec<NaiveDate> {
    let Some(latest) = latest_due(now, tz, send_at) else {
        return Vec::new();
    };
    let window = i64::from(catch_up.max(1)) - 1;
    let oldest = latest - TimeDelta::days(window);
    let first = match last {
        None => latest,
        Some(l) if l >= latest => return Vec::new(),
        Some(l) => (l + TimeDelta::days(1)).max(oldest),
    };
    first.iter_days().take_while(|d| *d <= latest).collect()
}

/// The first instant after `now` at which another day becomes due.
pub fn next_send(now: DateTime<Utc>, tz: Tz, send_at: NaiveTime) -> Option<DateTime<Utc>> {
    let next_day = latest_due(now, tz, send_at)?.succ_opt()?;
    send_instant(tz, next_day, send_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(tz: Tz, s: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        tz.from_local_datetime(&naive)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn hm(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    const SH: Tz = chrono_tz::Asia::Shanghai;

    #[test]
    fn yesterday_is_due_from_send_at_local_time() {
        let send = hm("01:30");
        // 01:29 Beijing time on 2 October: 30 September is the latest due; 1 October at 01:30.
        let before = at(SH, "2026-10-02 01:29");
        assert_eq!(latest_due(before, SH, send), Some(d("2026-09-30")));
        assert_eq!(
            next_send(before, SH, send),
            Some(at(SH, "2026-10-02 01:30"))
        );
        let on_time = at(SH, "2026-10-02 01:30");
        assert_eq!(latest_due(on_time, SH, send), Some(d("2026-10-01")));
        // 17:30 UTC on 1 October is already 01:30 on the 2nd in Beijing.
        assert_eq!(on_time.to_rfc3339(), "2026-10-01T17:30:00+00:00");
        assert_eq!(
            due_days(on_time, SH, send, Some(d("2026-09-30")), 7),
            [d("2026-10-01")]
        );
    }

    #[test]
    fn a_restart_neither_repeats_nor_skips() {
        let send = hm("00:30");
        let now = at(SH, "2026-10-05 09:00");
        // Already pushed yesterday's: nothing.
        assert!(due_days(now, SH, send, Some(d("2026-10-04")), 7).is_empty());
        // Down since the 1st was pushed: the 2nd to the 4th, in order.
        assert_eq!(
            due_days(now, SH, send, Some(d("2026-10-01")), 7),
            [d("2026-10-02"), d("2026-10-03"), d("2026-10-04")]
        );
        // Down for weeks: the last `catch_up` days only.
        assert_eq!(
            due_days(now, SH, send, Some(d("2026-09-01")), 2),
            [d("2026-10-03"), d("2026-10-04")]
        );
        // A new deployment: the latest due day only.
        assert_eq!(due_days(now, SH, send, None, 7), [d("2026-10-04")]);
        // A recorded day in the future (a clock set back): nothing until it is passed.
        assert!(due_days(now, SH, send, Some(d("2026-10-09")), 7).is_empty());
    }

    #[test]
    fn clock_changes() {
        let berlin = chrono_tz::Europe::Berlin;
        // 02:30 does not exist on 29 March 2026 in Berlin: sent at 03:30 local instead.
        let t = send_instant(berlin, d("2026-03-28"), hm("02:30")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-29T01:30:00+00:00");
        // 02:30 happens twice on 25 October 2026: the first one.
        let t = send_instant(berlin, d("2026-10-24"), hm("02:30")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-25T00:30:00+00:00");
    }

    fn zones() -> impl Strategy<Value = Tz> {
        prop_oneof![
            Just(chrono_tz::Asia::Shanghai),
            Just(chrono_tz::Europe::Berlin),
            Just(chrono_tz::America::New_York),
            Just(chrono_tz::Australia::Lord_Howe),
            Just(chrono_tz::Pacific::Chatham),
        ]
    }

    fn instant_in_2020s() -> impl Strategy<Value = DateTime<Utc>> {
        (1_577_836_800i64..1_893_456_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    proptest! {
        #[test]
        fn due_days_are_due_consecutive_and_new(
            tz in zones(),
            now in instant_in_2020s(),
            send_min in 0u32..1440,
            back in proptest::option::of(-3i64..40),
            catch_up in 1u32..10,
        ) {
            let send = NaiveTime::from_num_seconds_from_midnight_opt(send_min * 60, 0).unwrap();
            let latest = latest_due(now, tz, send).unwrap();
            let last = back.map(|b| latest - TimeDelta::days(b));
            let days = due_days(now, tz, send, last, catch_up);
            prop_assert!(days.len() <= catch_up as usize);
            for w in days.windows(2) {
                prop_assert_eq!(w[1], w[0] + TimeDelta::days(1));
            }
            for day in &days {
                prop_assert!(send_instant(tz, *day, send).unwrap() <= now, "{} not due yet", day);
                prop_assert!(last.is_none_or(|l| *day > l), "{} already taken on", day);
            }
            match last {
                Some(l) if l >= latest => prop_assert!(days.is_empty()),
                _ => prop_assert_eq!(days.last().copied(), Some(latest)),
            }
            // Within the catch-up window nothing is skipped.
            if let Some(l) = last && l < latest && (latest - l).num_days() <= i64::from(catch_up) {
                prop_assert_eq!(days.first().copied(), Some(l + TimeDelta::days(1)));
            }
        }

        #[test]
        fn the_next_day_becomes_due_exactly_at_next_send(
            tz in zones(),
            now in instant_in_2020s(),
            send_min in 0u32..1440,
        ) {
            let send = NaiveTime::from_num_seconds_from_midnight_opt(send_min * 60, 0).unwrap();
            let latest = latest_due(now, tz, send).unwrap();
            let next = next_send(now, tz, send).unwrap();
            prop_assert!(next > now);
            prop_assert!(next - now <= TimeDelta::hours(50), "{} after {}", next, now);
            prop_assert_eq!(latest_due(next - TimeDelta::seconds(1), tz, send), Some(latest));
            prop_assert_eq!(latest_due(next, tz, send), Some(latest + TimeDelta::days(1)));
        }

        /// A worker that runs at arbitrary moments (down for up to `catch_up` days in between)
        /// and records what it took on pushes every day once, in order.
        #[test]
        fn a_worker_with_restarts_pushes_every_day_once(
            tz in zones(),
            start in instant_in_2020s(),
            send_min in 0u32..1440,
            gaps in proptest::collection::vec(1i64..(3 * 86_400), 1..40),
        ) {
            let send = NaiveTime::from_num_seconds_from_midnight_opt(send_min * 60, 0).unwrap();
            let catch_up = 7;
            let mut now = start;
            let mut last = None;
            let mut pushed = Vec::new();
            for g in gaps {
                let days = due_days(now, tz, send, last, catch_up);
                if let Some(l) = days.last() {
                    last = Some(*l);
                }
                pushed.extend(days);
                now += TimeDelta::seconds(g);
            }
            let first = latest_due(start, tz, send).unwrap();
            let expected: Vec<NaiveDate> = first.iter_days().take(pushed.len()).collect();
            prop_assert_eq!(&pushed, &expected);
        }
    }
}
