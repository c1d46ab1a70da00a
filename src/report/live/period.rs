//! The live feed's clock and catch-up rules, pure (the caller passes the time):
//!
//! - **periods** are aligned to the wall clock: boundaries at whole multiples of `interval`
//!   since the Unix epoch, so with 300 s they fall at 12:00:00, 12:05:00 … in UTC and in China
//!   Standard Time alike (an interval divides the day; the county's zone is a whole hour ahead);
//! - **what to take on** ([`take_on`]): the current period unless it already was, and the
//!   boundaries missed since the last one recorded (no instance was running): those have no
//!   figures of their own and are recorded as skipped, at most `bound` of them;
//! - **what to send next** ([`Pace`]): immediate pushes first, then the latest period taken on
//!   (the current figures are never held behind a backlog), then the backlog — every other
//!   waiting period — oldest first, at most `per_s` a second, and only once the receiver has
//!   answered. During an outage only the latest period probes (on its own backoff), so the
//!   attempts do not grow with the backlog.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// The boundary at or before `t`.
pub fn floor(t: DateTime<Utc>, interval: TimeDelta) -> DateTime<Utc> {
    let step = interval.num_milliseconds().max(1);
    let ms = t.timestamp_millis();
    DateTime::from_timestamp_millis(ms - ms.rem_euclid(step)).unwrap_or(t)
}

/// The first boundary after `t`.
pub fn next_after(t: DateTime<Utc>, interval: TimeDelta) -> DateTime<Utc> {
    floor(t, interval) + interval.max(TimeDelta::milliseconds(1))
}

/// The delivery id of the period starting at `start`: `live-2026-10-02T04:05:00Z`, the same on
/// every attempt, after every restart, on every instance.
pub fn delivery_id(start: DateTime<Utc>) -> String {
    format!("live-{}", start.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The delivery id of the immediate push announcing alert transition `transition` of `area`.
pub fn event_delivery_id(area: &str, transition: i64) -> String {
    format!("live-event-{area}-{transition}")
}

/// What to record at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TakeOn {
    /// The current period, unless it was taken on already.
    pub current: Option<DateTime<Utc>>,
    /// Boundaries after the last one taken on and before the current one: nobody was running at
    /// them, so they have no figures. The most recent `bound` of them, oldest first.
    pub skipped: Vec<DateTime<Utc>>,
    /// Further missed boundaries before those: counted, not recorded.
    pub skipped_beyond: u64,
}

/// The periods to record at `now`, the latest recorded being `last` (`None`: a new deployment,
/// which starts with the current period). A `last` in the future (the clock went back) takes on
/// nothing until the clock passes it: a period is never taken on twice.
pub fn take_on(
    now: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
    interval: TimeDelta,
    bound: u32,
) -> TakeOn {
    let current = floor(now, interval);
    let Some(last) = last else {
        return TakeOn {
            current: Some(current),
            ..TakeOn::default()
        };
    };
    if last >= current {
        return TakeOn::default();
    }
    let step = interval.num_milliseconds().max(1);
    // Boundaries strictly between `last` and `current` (`last` may sit off the grid after a
    // change of interval).
    let first = next_after(last, interval);
    let missed = if first >= current {
        0
    } else {
        u64::try_from((current - first).num_milliseconds() / step).unwrap_or(0)
    };
    let kept = missed.min(u64::from(bound));
    let skipped = (0..kept)
        .rev()
        .map(|back| current - interval * i32::try_from(back + 1).unwrap_or(i32::MAX))
        .collect();
    TakeOn {
        current: Some(current),
        skipped,
        skipped_beyond: missed - kept,
    }
}

/// Which waiting push to attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// An immediate push (a change to red, a closure).
    Event,
    /// The latest period taken on, while it waits.
    Newest,
    /// The oldest waiting period before the latest.
    Backlog,
}

/// The order of attempts and the catch-up pace. The receiver counts as down until an attempt is
/// delivered (after a start too, so the first attempt is a probe, not a burst).
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    spacing: TimeDelta,
    receiver_up: bool,
    next_backlog: Option<DateTime<Utc>>,
}

/// What an attempt's outcome asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// The receiver answered again: the waiting periods are due now (each still paced).
    ReleaseBacklog,
}

impl Pace {
    /// At most `per_s` backlog attempts a second.
    pub fn new(per_s: u32) -> Self {
        Self {
            spacing: TimeDelta::microseconds(1_000_000 / i64::from(per_s.max(1))),
            receiver_up: false,
            next_backlog: None,
        }
    }

    /// The classes to try at `now`, in order: the caller claims the first that has a due row.
    pub fn order(&self, now: DateTime<Utc>) -> &'static [Pick] {
        if self.backlog_allowed(now) {
            &[Pick::Event, Pick::Newest, Pick::Backlog]
        } else {
            &[Pick::Event, Pick::Newest]
        }
    }

    fn backlog_allowed(&self, now: DateTime<Utc>) -> bool {
        self.receiver_up && self.next_backlog.is_none_or(|at| now >= at)
    }

    /// When the backlog may be attempted next (`None` while the receiver is down).
    pub fn backlog_from(&self) -> Option<Option<DateTime<Utc>>> {
        self.receiver_up.then_some(self.next_backlog)
    }

    /// Notes how an attempt of `pick`, started at `started`, ended.
    pub fn attempted(&mut self, pick: Pick, delivered: bool, started: DateTime<Utc>) -> After {
        if pick == Pick::Backlog {
            self.next_backlog = Some(started + self.spacing);
        }
        let was_up = std::mem::replace(&mut self.receiver_up, delivered);
        if delivered && !was_up {
            After::ReleaseBacklog
        } else {
            After::Nothing
        }
    }

    /// Back to probing (this instance stopped sending, e.g. lost the leadership).
    pub fn reset(&mut self) {
        self.receiver_up = false;
        self.next_backlog = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const FIVE_MIN: TimeDelta = TimeDelta::seconds(300);

    #[test]
    fn periods_are_aligned_to_the_wall_clock() {
        assert_eq!(
            floor(t("2026-10-02T12:07:31.5+08:00"), FIVE_MIN),
            t("2026-10-02T12:05:00+08:00")
        );
        assert_eq!(
            floor(t("2026-10-02T12:05:00+08:00"), FIVE_MIN),
            t("2026-10-02T12:05:00+08:00")
        );
        assert_eq!(
            next_after(t("2026-10-02T12:05:00+08:00"), FIVE_MIN),
            t("2026-10-02T12:10:00+08:00")
        );
        assert_eq!(
            delivery_id(t("2026-10-02T12:05:00+08:00")),
            "live-2026-10-02T04:05:00Z"
        );
        assert_eq!(
            event_delivery_id("tianshan-canyon", 42),
            "live-event-tianshan-canyon-42"
        );
        // Before the epoch too (floor, not truncation).
        assert_eq!(
            floor(t("1969-12-31T23:59:59Z"), FIVE_MIN),
            t("1969-12-31T23:55:00Z")
        );
    }

    #[test]
    fn take_on_examples() {
        let now = t("2026-10-02T04:07:00Z");
        // A new deployment: the current period only.
        assert_eq!(
            take_on(now, None, FIVE_MIN, 12),
            TakeOn {
                current: Some(t("2026-10-02T04:05:00Z")),
                ..TakeOn::default()
            }
        );
        // Taken on already, or a clock that went back: nothing.
        assert_eq!(
            take_on(now, Some(t("2026-10-02T04:05:00Z")), FIVE_MIN, 12),
            TakeOn::default()
        );
        assert_eq!(
            take_on(now, Some(t("2026-10-02T05:00:00Z")), FIVE_MIN, 12),
            TakeOn::default()
        );
        // The next one.
        assert_eq!(
            take_on(now, Some(t("2026-10-02T04:00:00Z")), FIVE_MIN, 12).current,
            Some(t("2026-10-02T04:05:00Z"))
        );
        // Last taken on 03:40, back at 04:07: 03:45 … 04:00 missed, the most recent 3 recorded.
        let plan = take_on(now, Some(t("2026-10-02T03:40:00Z")), FIVE_MIN, 3);
        assert_eq!(
            plan.skipped,
            [
                t("2026-10-02T03:50:00Z"),
                t("2026-10-02T03:55:00Z"),
                t("2026-10-02T04:00:00Z")
            ]
        );
        assert_eq!(plan.skipped_beyond, 1);
        // A last period off the grid (the interval changed from 7 to 5 minutes).
        let plan = take_on(now, Some(t("2026-10-02T03:58:00Z")), FIVE_MIN, 12);
        assert_eq!(plan.skipped, [t("2026-10-02T04:00:00Z")]);
    }

    #[test]
    fn the_backlog_waits_for_a_delivery_then_goes_at_the_pace() {
        let mut pace = Pace::new(2);
        let at = t("2026-10-02T04:05:00Z");
        assert_eq!(pace.order(at), [Pick::Event, Pick::Newest], "probe first");
        assert_eq!(pace.backlog_from(), None);
        assert_eq!(pace.attempted(Pick::Newest, false, at), After::Nothing);
        assert_eq!(pace.order(at), [Pick::Event, Pick::Newest]);
        assert_eq!(
            pace.attempted(Pick::Newest, true, at),
            After::ReleaseBacklog
        );
        assert_eq!(pace.order(at), [Pick::Event, Pick::Newest, Pick::Backlog]);
        assert_eq!(pace.attempted(Pick::Backlog, true, at), After::Nothing);
        // 2 a second: the next backlog attempt half a second later.
        assert_eq!(
            pace.order(at + TimeDelta::milliseconds(499)),
            [Pick::Event, Pick::Newest]
        );
        assert_eq!(
            pace.backlog_from(),
            Some(Some(at + TimeDelta::milliseconds(500)))
        );
        let later = at + TimeDelta::milliseconds(500);
        assert_eq!(pace.order(later).len(), 3);
        // A failed backlog attempt: back to probing.
        pace.attempted(Pick::Backlog, false, later);
        assert_eq!(pace.order(later + TimeDelta::seconds(5)).len(), 2);
        pace.attempted(Pick::Event, true, later);
        pace.reset();
        assert_eq!(pace.order(later + TimeDelta::seconds(9)).len(), 2);
    }

    /// A period row of the simulated queue, as the worker's table holds it.
    #[derive(Debug, Clone)]
    struct Row {
        start: DateTime<Utc>,
        state: &'static str,
        due: DateTime<Utc>,
        delivered_at: Option<DateTime<Utc>>,
    }

    /// One simulated attempt: when, which class, whether the receiver was up, which period.
    #[derive(Debug, Clone, Copy)]
    struct Attempt(DateTime<Utc>, Pick, bool, DateTime<Utc>);

    /// The worker simulated against a receiver down during `[down.0, down.1)` ms, with the SQL's
    /// claims and give-up rule modelled on a vector; returns the rows and every attempt (time,
    /// pick, receiver up, the period attempted).
    fn simulate(
        interval_ms: i64,
        per_s: u32,
        bound: u32,
        down: (i64, i64),
        end_ms: i64,
        retry_ms: i64,
    ) -> (Vec<Row>, Vec<Attempt>) {
        let t0 = t("2026-10-02T04:00:00Z");
        let interval = TimeDelta::milliseconds(interval_ms);
        let mut rows: Vec<Row> = Vec::new();
        let mut attempts = Vec::new();
        let mut pace = Pace::new(per_s);
        let step = TimeDelta::milliseconds(50);
        let mut now = t0;
        while now < t0 + TimeDelta::milliseconds(end_ms) {
            let last = rows.last().map(|r| r.start);
            if let Some(p) = take_on(now, last, interval, bound).current {
                rows.push(Row {
                    start: p,
                    state: "pending",
                    due: now,
                    delivered_at: None,
                });
            }
            // Give up beyond the bound (the newest `bound` waiting periods stay).
            let waiting: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].state == "pending")
                .collect();
            if waiting.len() > bound as usize {
                for &i in &waiting[..waiting.len() - bound as usize] {
                    rows[i].state = "dead";
                }
            }
            let ms = (now - t0).num_milliseconds();
            let up = !(down.0..down.1).contains(&ms);
            // One attempt at a time, as many as are due at this instant.
            loop {
                let newest = rows
                    .len()
                    .checked_sub(1)
                    .filter(|&i| rows[i].state == "pending");
                let pick = pace.order(now).iter().find_map(|&pick| match pick {
                    Pick::Event => None,
                    Pick::Newest => newest.filter(|&i| rows[i].due <= now).map(|i| (pick, i)),
                    Pick::Backlog => rows
                        .iter()
                        .position(|r| r.state == "pending" && r.due <= now)
                        .filter(|&i| Some(i) != newest)
                        .map(|i| (pick, i)),
                });
                let Some((pick, i)) = pick else { break };
                attempts.push(Attempt(now, pick, up, rows[i].start));
                if up {
                    rows[i].state = "delivered";
                    rows[i].delivered_at = Some(now);
                } else {
                    rows[i].due = now + TimeDelta::milliseconds(retry_ms);
                }
                if pace.attempted(pick, up, now) == After::ReleaseBacklog {
                    for r in rows.iter_mut().filter(|r| r.state == "pending") {
                        r.due = r.due.min(now);
                    }
                }
            }
            now += step;
        }
        (rows, attempts)
    }

    #[test]
    fn an_outage_is_caught_up_at_the_pace() {
        // 1 s periods, down from 2 s to 8 s, 2 a second: every period arrives once.
        let (rows, attempts) = simulate(1000, 2, 100, (2000, 8000), 20_000, 300);
        assert!(rows.iter().all(|r| r.state == "delivered"), "{rows:?}");
        let during: Vec<_> = attempts.iter().filter(|a| !a.2).collect();
        assert!(
            during.iter().all(|a| a.1 == Pick::Newest),
            "only probes while down"
        );
        let backlog: Vec<_> = attempts.iter().filter(|a| a.1 == Pick::Backlog).collect();
        assert_eq!(backlog.len(), 6, "the outage's periods, after the 8 s one");
        let spans: Vec<_> = backlog
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).num_milliseconds())
            .collect();
        assert!(spans.iter().all(|&ms| ms >= 500), "{spans:?}");
    }

    proptest! {
        /// Against any outage: nothing waits once the receiver is back for long enough, and
        /// what was given up is at most the outage's excess over the bound, all older than what
        /// the catch-up delivered; the backlog never goes faster than the pace nor while the
        /// receiver is down, when only the newest period probes (one attempt at a time); and a
        /// period taken on while the receiver answers is delivered at once (never starved).
        #[test]
        fn catch_up_is_bounded_paced_and_complete(
            interval_ms in prop::sample::select(vec![500i64, 1000, 2000]),
            per_s in 1u32..5,
            bound in 1u32..30,
            from in 0i64..10_000,
            len in 0i64..20_000,
            retry_ms in 100i64..3000,
        ) {
            let t0 = t("2026-10-02T04:00:00Z");
            let end = from + len + 40_000;
            let (rows, attempts) =
                simulate(interval_ms, per_s, bound, (from, from + len), end, retry_ms);
            prop_assert!(rows.iter().all(|r| r.state != "pending"), "all caught up: {:?}", rows);
            let dead: Vec<_> = rows.iter().filter(|r| r.state == "dead").map(|r| r.start).collect();
            let outage_periods = usize::try_from(len / interval_ms + 2).unwrap();
            prop_assert!(dead.len() <= outage_periods.saturating_sub(bound as usize));
            let caught_up: Vec<_> = attempts.iter().filter(|a| a.1 == Pick::Backlog).collect();
            if let (Some(newest_dead), Some(oldest_sent)) =
                (dead.iter().max(), caught_up.iter().map(|a| a.3).min())
            {
                prop_assert!(newest_dead < &oldest_sent, "the oldest are given up");
            }
            let spacing = TimeDelta::microseconds(1_000_000 / i64::from(per_s));
            for w in caught_up.windows(2) {
                prop_assert!(w[1].0 - w[0].0 >= spacing);
            }
            let down: Vec<_> = attempts.iter().filter(|a| !a.2).collect();
            prop_assert!(down.iter().all(|a| a.1 == Pick::Newest));
            prop_assert!(down.windows(2).all(|w| w[0].0 < w[1].0), "one probe at a time");
            for r in &rows {
                let ms = (r.start - t0).num_milliseconds();
                if !(from..from + len).contains(&ms) {
                    prop_assert_eq!(r.delivered_at, Some(r.start), "{:?} starved", r);
                }
            }
        }
    }
}
