//! Whether an area sells tickets now, pure: `open`, `paused` (a red level, or the day sold out)
//! or `closed` (a hazard), with the reasons — and, per area, what changed since the last
//! evaluation as an `admission` alert transition, so the signal travels the alerts' path (stored,
//! signed webhook with retries, art. 45 compliance log). Resumption follows the levels'
//! hysteresis: the rules engine holds a level until the load is below its threshold less the
//! margin for the dwell time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{SpaceId, SpaceIdx};
use crate::rules::{AlertKind, Change, Level, Severity, Status, Transition};

/// The state a ticketing system obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sales {
    Open,
    /// Stop selling; visitors already booked still come.
    Paused,
    /// Closed (a hazard): stop selling, and tell the booked.
    Closed,
}

impl Sales {
    pub fn as_str(self) -> &'static str {
        match self {
            Sales::Open => "open",
            Sales::Paused => "paused",
            Sales::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Sales::Open),
            "paused" => Some(Sales::Paused),
            "closed" => Some(Sales::Closed),
            _ => None,
        }
    }
}

/// The admission signal as webhooks and the API carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub state: Sales,
    /// Why: `instant_level.red`, `daily_level.red`, `hazard`, `sold_out`.
    pub reasons: Vec<String>,
    /// Online places left today across the slots still to come; `None` without booking data.
    pub remaining_today: Option<u64>,
    /// Slots still to come sold beyond their quota (`"08:00-10:00"`): a ticketing race, or a
    /// quota lowered after sale. Alarmed as an `oversold` alert while any stands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oversold: Vec<String>,
}

impl Signal {
    /// Selling, for no reason to say.
    pub fn open() -> Self {
        Signal {
            state: Sales::Open,
            reasons: Vec::new(),
            remaining_today: None,
            oversold: Vec::new(),
        }
    }
}

/// Online places left in the slots that have not ended by `now`.
pub fn remaining_today(slots: &[super::SlotState], now: DateTime<Utc>) -> u64 {
    slots
        .iter()
        .filter(|s| s.ends_at > now)
        .map(|s| s.remaining)
        .sum()
}

/// What the area's figures say now (its rules status, and whether today's slots still to come
/// are sold out). A pause or closure while a policy cap sets the capacity also names `cap`: the
/// same crowd would not have stopped sales at the approved figure.
pub fn decide(status: &Status, sold_out: bool, remaining_today: Option<u64>) -> Signal {
    let mut signal = decide_from(
        status.instant.level,
        status.daily.level,
        status.closed,
        sold_out,
        remaining_today,
    );
    let capped = status.instant.cap.is_some() || status.daily.cap.is_some();
    if capped && signal.state != Sales::Open && !signal.reasons.iter().all(|r| r == "hazard") {
        signal.reasons.push("cap".to_owned());
    }
    signal
}

/// An operator's hold (`POST …/admission/pause`): sales stop whatever the figures say, with the
/// reason `manual`, until the operator resumes them.
pub fn held(mut signal: Signal) -> Signal {
    if signal.state == Sales::Open {
        signal.state = Sales::Paused;
    }
    signal.reasons.push("manual".to_owned());
    signal
}

fn decide_from(
    instant: Option<Level>,
    daily: Option<Level>,
    closed: bool,
    sold_out: bool,
    remaining_today: Option<u64>,
) -> Signal {
    let mut reasons = Vec::new();
    if closed {
        reasons.push("hazard".to_owned());
    }
    if instant == Some(Level::Red) {
        reasons.push("instant_level.red".to_owned());
    }
    if daily == Some(Level::Red) {
        reasons.push("daily_level.red".to_owned());
    }
    if sold_out {
        reasons.push("sold_out".to_owned());
    }
    let state = if closed {
        Sales::Closed
    } else if reasons.is_empty() {
        Sales::Open
    } else {
        Sales::Paused
    };
    Signal {
        state,
        reasons,
        remaining_today,
        oversold: Vec::new(),
    }
}

/// Each area's current signal and since when, as the alerts table records it (restored from the
/// open `admission` alerts on start, so a restart neither re-sends nor forgets).
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    current: HashMap<SpaceIdx, (Signal, DateTime<Utc>)>,
}

impl Tracker {
    /// Restores areas that were paused or closed when the last session ended.
    pub fn restore(open: impl IntoIterator<Item = (SpaceIdx, Signal, DateTime<Utc>)>) -> Self {
        Self {
            current: open
                .into_iter()
                .map(|(s, sig, at)| (s, (sig, at)))
                .collect(),
        }
    }

    /// Where resumption needs an operator: an area paused or closed whose figures now allow
    /// sales stays paused (`awaiting_confirmation`) until a confirmation made after it paused.
    pub fn hold_until_confirmed(
        &self,
        space: SpaceIdx,
        mut signal: Signal,
        confirmed: Option<DateTime<Utc>>,
    ) -> Signal {
        if signal.state != Sales::Open {
            return signal;
        }
        let Some((_, since)) = self.current.get(&space) else {
            return signal;
        };
        if confirmed.is_some_and(|c| c >= *since) {
            return signal;
        }
        signal.state = Sales::Paused;
        signal.reasons = vec!["awaiting_confirmation".to_owned()];
        signal
    }

    /// The signal in force for `space` and since when (`None`: open since the start).
    pub fn get(&self, space: SpaceIdx) -> Option<&(Signal, DateTime<Utc>)> {
        self.current.get(&space)
    }

    /// Records `now`'s signal; returns the transition to record and send when the state or its
    /// reasons changed.
    pub fn step(
        &mut self,
        space: SpaceIdx,
        id: &SpaceId,
        signal: Signal,
        now: DateTime<Utc>,
    ) -> Option<Transition> {
        let (was, since) = match self.current.get(&space) {
            Some((s, at)) => (s.clone(), *at),
            None => (Signal::open(), now),
        };
        if was.state == signal.state && was.reasons == signal.reasons {
            return None;
        }
        let change = match (was.state, signal.state) {
            (_, Sales::Open) => Change::Resolve,
            (Sales::Open, _) => Change::Open,
            (a, b) if b > a => Change::Escalate,
            (a, b) if b < a => Change::DeEscalate,
            // Same state, other reasons (red ended but the day is sold out): an update.
            _ => Change::Escalate,
        };
        let since = if change == Change::Open { now } else { since };
        // Every change of the signal is critical to a ticketing system, and all of them go into
        // the art. 45 compliance log (which keeps major and critical transitions).
        let t = transition(
            id,
            AlertKind::Admission,
            change,
            Severity::Critical,
            since,
            now,
            texts(&signal),
        );
        if signal.state == Sales::Open {
            self.current.remove(&space);
        } else {
            self.current.insert(space, (signal, since));
        }
        Some(t)
    }
}

/// Each area's over-sold slots and since when, restored like [`Tracker`].
#[derive(Debug, Clone, Default)]
pub struct OversoldTracker {
    open: HashMap<SpaceIdx, (Vec<String>, DateTime<Utc>)>,
}

impl OversoldTracker {
    pub fn restore(open: impl IntoIterator<Item = (SpaceIdx, Vec<String>, DateTime<Utc>)>) -> Self {
        Self {
            open: open.into_iter().map(|(s, v, at)| (s, (v, at))).collect(),
        }
    }

    /// An `oversold` transition when the set of over-sold slots changed; `amounts` (people over,
    /// per slot of `slots`) only go into the message.
    pub fn step(
        &mut self,
        space: SpaceIdx,
        id: &SpaceId,
        slots: &[(String, u64)],
        now: DateTime<Utc>,
    ) -> Option<Transition> {
        let names: Vec<String> = slots.iter().map(|(n, _)| n.clone()).collect();
        let (was, since) = self
            .open
            .get(&space)
            .map_or((Vec::new(), now), |(v, at)| (v.clone(), *at));
        if was == names {
            return None;
        }
        let change = match (was.is_empty(), names.is_empty()) {
            (true, _) => Change::Open,
            (_, true) => Change::Resolve,
            _ if names.len() >= was.len() => Change::Escalate,
            _ => Change::DeEscalate,
        };
        let since = if change == Change::Open { now } else { since };
        let list = |sep: &str| {
            slots
                .iter()
                .map(|(n, over)| format!("{n} +{over}"))
                .collect::<Vec<_>>()
                .join(sep)
        };
        let (zh, en) = if names.is_empty() {
            (
                "超售已消除".to_owned(),
                "No slot sold beyond its quota any more".to_owned(),
            )
        } else {
            (
                format!("时段超售（超出限额）：{}", list("，")),
                format!("Slots sold beyond their quota: {}", list(", ")),
            )
        };
        if names.is_empty() {
            self.open.remove(&space);
        } else {
            self.open.insert(space, (names, since));
        }
        Some(transition(
            id,
            AlertKind::Oversold,
            change,
            Severity::Major,
            since,
            now,
            (zh, en),
        ))
    }
}

/// An alert transition raised outside the rules engine: no level, load, forecast or devices.
fn transition(
    id: &SpaceId,
    kind: AlertKind,
    change: Change,
    severity: Severity,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    (message_zh, message_en): (String, String),
) -> Transition {
    Transition {
        space: id.clone(),
        kind,
        change,
        from: None,
        to: None,
        severity,
        at: now,
        since,
        load_pct: None,
        forecast: None,
        devices: Vec::new(),
        message_zh,
        message_en,
    }
}

fn texts(s: &Signal) -> (String, String) {
    let why_zh: Vec<&str> = s
        .reasons
        .iter()
        .map(|r| match r.as_str() {
            "hazard" => "突发事件",
            "instant_level.red" => "瞬时承载量达到红色",
            "daily_level.red" => "日承载量达到红色",
            "sold_out" => "当日票已售罄",
            "awaiting_confirmation" => "等待值班人员确认恢复",
            "cap" => "限流措施下调了承载量",
            "manual" => "值班人员暂停售票",
            _ => "其他",
        })
        .collect();
    match s.state {
        Sales::Open => ("恢复售票".into(), "Ticket sales resumed".into()),
        Sales::Paused => (
            format!("暂停售票：{}", why_zh.join("、")),
            format!("Ticket sales paused: {}", s.reasons.join(", ")),
        ),
        Sales::Closed => (
            format!("景区关闭，停止售票：{}", why_zh.join("、")),
            format!("Closed, ticket sales stopped: {}", s.reasons.join(", ")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(s: (Level, Level, bool), sold_out: bool, remaining: Option<u64>) -> Signal {
        decide_from(Some(s.0), Some(s.1), s.2, sold_out, remaining)
    }

    fn status(instant: Level, daily: Level, closed: bool) -> (Level, Level, bool) {
        (instant, daily, closed)
    }

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + min * 60, 0).unwrap()
    }

    #[test]
    fn an_operators_hold_pauses_whatever_the_figures_say() {
        let open = decide(status(Level::Orange, Level::Normal, false), false, Some(5));
        let h = held(open);
        assert_eq!(
            (h.state, h.reasons.as_slice()),
            (Sales::Paused, &["manual".to_owned()][..])
        );
        let closed = decide(status(Level::Normal, Level::Normal, true), false, None);
        let h = held(closed);
        assert_eq!(
            (h.state, h.reasons),
            (
                Sales::Closed,
                vec!["hazard".to_owned(), "manual".to_owned()]
            )
        );
        assert!(texts(&held(Signal::open())).0.contains("值班人员暂停售票"));
    }

    #[test]
    fn red_or_a_sold_out_day_pauses_and_a_hazard_closes() {
        let d = |i, d, c, so| decide(status(i, d, c), so, None);
        assert_eq!(
            d(Level::Orange, Level::Orange, false, false).state,
            Sales::Open
        );
        let p = d(Level::Red, Level::Yellow, false, false);
        assert_eq!(
            (p.state, p.reasons),
            (Sales::Paused, vec!["instant_level.red".to_owned()])
        );
        assert_eq!(
            d(Level::Normal, Level::Red, false, false).state,
            Sales::Paused
        );
        assert_eq!(
            d(Level::Normal, Level::Normal, false, true).reasons,
            ["sold_out"]
        );
        let c = d(Level::Red, Level::Normal, true, false);
        assert_eq!((c.state, c.reasons.len()), (Sales::Closed, 2));
    }

    #[test]
    fn each_change_is_one_transition_and_a_restart_sends_nothing_again() {
        let (s, id) = (SpaceIdx(3), SpaceId::new("canyon"));
        let mut t = Tracker::default();
        let red = decide(status(Level::Red, Level::Normal, false), false, Some(10));
        let open = decide(status(Level::Orange, Level::Normal, false), false, Some(10));
        assert!(
            t.step(s, &id, open.clone(), at(0)).is_none(),
            "open stays open"
        );
        let p = t.step(s, &id, red.clone(), at(1)).unwrap();
        assert_eq!(
            (p.change, p.severity, p.since),
            (Change::Open, Severity::Critical, at(1))
        );
        assert!(
            p.message_en.contains("paused: instant_level.red"),
            "{}",
            p.message_en
        );
        assert!(
            t.step(s, &id, red.clone(), at(2)).is_none(),
            "no news, no message"
        );
        // A hazard on top: closed, the same alert escalates.
        let closed = decide(status(Level::Red, Level::Normal, true), false, None);
        let c = t.step(s, &id, closed, at(3)).unwrap();
        assert_eq!((c.change, c.since), (Change::Escalate, at(1)));
        // A restart restores the state: the same signal sends nothing.
        let (sig, since) = t.get(s).cloned().unwrap();
        let mut again = Tracker::restore([(s, sig.clone(), since)]);
        assert!(again.step(s, &id, sig, at(4)).is_none());
        let r = again.step(s, &id, open, at(5)).unwrap();
        assert_eq!(
            (r.change, r.message_en.as_str()),
            (Change::Resolve, "Ticket sales resumed")
        );
        assert!(again.get(s).is_none());
    }

    #[test]
    fn where_configured_sales_resume_only_after_a_confirmation_made_since_the_pause() {
        let (s, id) = (SpaceIdx(2), SpaceId::new("canyon"));
        let mut t = Tracker::default();
        let red = decide(status(Level::Red, Level::Normal, false), false, None);
        let calm = decide(status(Level::Yellow, Level::Normal, false), false, None);
        // Open stays open without any confirmation.
        assert_eq!(t.hold_until_confirmed(s, calm.clone(), None), calm);
        t.step(s, &id, red, at(10)).unwrap();
        // The figures allow sales again, but nobody confirmed (or only before the pause).
        for c in [None, Some(at(5))] {
            let held = t.hold_until_confirmed(s, calm.clone(), c);
            assert_eq!(
                (held.state, held.reasons.as_slice()),
                (Sales::Paused, &["awaiting_confirmation".to_owned()][..])
            );
        }
        let held = t.hold_until_confirmed(s, calm.clone(), None);
        let w = t.step(s, &id, held, at(11)).unwrap();
        assert_eq!(
            w.change,
            Change::Escalate,
            "same state, new reason: the receiver hears why"
        );
        assert!(w.message_zh.contains("等待值班人员确认恢复"));
        let go = t.hold_until_confirmed(s, calm.clone(), Some(at(12)));
        assert_eq!(go, calm);
        assert_eq!(t.step(s, &id, go, at(12)).unwrap().change, Change::Resolve);
    }

    #[test]
    fn an_oversale_is_alarmed_once_per_change_of_its_slots() {
        let (s, id) = (SpaceIdx(1), SpaceId::new("canyon"));
        let mut t = OversoldTracker::default();
        assert!(t.step(s, &id, &[], at(0)).is_none());
        let o = t
            .step(s, &id, &[("08:00-10:00".into(), 300)], at(1))
            .unwrap();
        assert_eq!(
            (o.change, o.severity, o.kind.key()),
            (Change::Open, Severity::Major, "oversold".to_owned())
        );
        assert!(
            o.message_en.ends_with("08:00-10:00 +300"),
            "{}",
            o.message_en
        );
        // More people over in the same slot: no news.
        assert!(
            t.step(s, &id, &[("08:00-10:00".into(), 320)], at(2))
                .is_none()
        );
        let mut again = OversoldTracker::restore([(s, vec!["08:00-10:00".to_owned()], at(1))]);
        assert!(
            again
                .step(s, &id, &[("08:00-10:00".into(), 320)], at(3))
                .is_none()
        );
        let r = again.step(s, &id, &[], at(4)).unwrap();
        assert_eq!((r.change, r.since), (Change::Resolve, at(1)));
    }
}
