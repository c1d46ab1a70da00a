//! Which webhook subscriptions get an event, and the copy each one gets (its own delivery id,
//! the acknowledged state, the escalation wording). One decision for the three kinds of event the
//! loop records: alert transitions, dispatch advice, escalations. Pure; the loop enqueues what
//! this returns and wakes the outbox workers it names.

use chrono::{DateTime, Utc};

use super::event;
use crate::webhook::SubscriptionConfig;
use crate::webhook::model::{AlertEvent, AlertState};

/// What is being fanned out.
pub enum Source {
    /// An alert transition, recorded as `transition_id`; `acknowledged`: the alert was already
    /// acknowledged, so a still-firing event says so.
    Transition {
        transition_id: i64,
        acknowledged: bool,
    },
    /// A hub's new advice, recorded as `advice_id`.
    Advice { advice_id: i64 },
    /// A reminder for `alert_id`, unacknowledged past the escalation delay.
    Escalation { alert_id: i64, at: DateTime<Utc> },
}

/// One delivery to enqueue: the subscription's index in `[[webhooks]]` and its copy of the event.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub subscription: usize,
    pub event: AlertEvent,
}

/// The deliveries of `ev` to `subs`, in subscription order.
pub fn deliveries(subs: &[SubscriptionConfig], ev: &AlertEvent, source: &Source) -> Vec<Delivery> {
    subs.iter()
        .enumerate()
        .filter(|(_, sub)| wants(sub, ev, source))
        .map(|(n, sub)| Delivery {
            subscription: n,
            event: copy_for(sub, ev, source),
        })
        .collect()
}

fn wants(sub: &SubscriptionConfig, ev: &AlertEvent, source: &Source) -> bool {
    match source {
        // Escalations go to escalation subscriptions for the alert's space, whatever their kinds
        // and severity filters.
        Source::Escalation { .. } => {
            sub.escalation && (sub.spaces.is_empty() || sub.spaces.contains(&ev.space_id))
        }
        Source::Transition { .. } | Source::Advice { .. } => sub.matches(ev),
    }
}

fn copy_for(sub: &SubscriptionConfig, ev: &AlertEvent, source: &Source) -> AlertEvent {
    match *source {
        Source::Transition {
            transition_id,
            acknowledged,
        } => {
            let mut e = ev.clone();
            e.delivery_id = event::delivery_id(transition_id, &sub.id);
            if acknowledged && e.state == AlertState::Firing {
                e.state = AlertState::Acknowledged;
            }
            e
        }
        Source::Advice { advice_id } => {
            let mut e = ev.clone();
            e.delivery_id = format!("vf-dispatch-{advice_id}-{}", sub.id);
            e
        }
        Source::Escalation { alert_id, at } => event::escalation(ev.clone(), alert_id, &sub.id, at),
    }
}

/// Which outbox workers have new rows: each is woken once, after the commit.
pub struct Wakes(Vec<bool>);

impl Wakes {
    pub fn new(subscriptions: usize) -> Self {
        Self(vec![false; subscriptions])
    }

    pub fn mark(&mut self, subscription: usize) {
        self.0[subscription] = true;
    }

    /// The subscriptions to wake, in order.
    pub fn marked(&self) -> impl Iterator<Item = usize> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, w)| **w)
            .map(|(n, _)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Severity;
    use crate::webhook::model::tests::orange;

    fn sub(id: &str, extra: serde_json::Value) -> SubscriptionConfig {
        let mut v = serde_json::json!({ "id": id, "url": "https://hooks.example.org/x" });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_subscription_gets_its_own_copy_of_what_it_asked_for() {
        let ev = orange();
        let subs = [
            sub("all", serde_json::json!({})),
            sub(
                "critical-only",
                serde_json::json!({ "min_severity": "critical" }),
            ),
            sub("elsewhere", serde_json::json!({ "spaces": ["nowhere"] })),
            sub("escalations", serde_json::json!({ "escalation": true })),
        ];
        assert!(ev.severity < Severity::Critical);
        let source = Source::Transition {
            transition_id: 7,
            acknowledged: true,
        };
        let got = deliveries(&subs, &ev, &source);
        let to: Vec<_> = got.iter().map(|d| d.subscription).collect();
        assert_eq!(to, [0, 3]);
        assert_eq!(got[0].event.delivery_id, "vf-7-all");
        assert_eq!(got[1].event.delivery_id, "vf-7-escalations");
        if ev.state == AlertState::Firing {
            assert_eq!(got[0].event.state, AlertState::Acknowledged);
        }

        let advice = deliveries(&subs, &ev, &Source::Advice { advice_id: 3 });
        assert_eq!(advice[0].event.delivery_id, "vf-dispatch-3-all");

        let at = ev.at + chrono::TimeDelta::minutes(20);
        let esc = deliveries(&subs, &ev, &Source::Escalation { alert_id: 9, at });
        assert_eq!(esc.len(), 1, "only escalation subscriptions");
        assert_eq!(esc[0].subscription, 3);
        assert_eq!(esc[0].event.delivery_id, "vf-escalation-9-escalations");
        assert_eq!(esc[0].event.at, at);
    }

    #[test]
    fn escalations_keep_to_the_subscription_s_spaces() {
        let ev = orange();
        let subs = [sub(
            "other-area",
            serde_json::json!({ "escalation": true, "spaces": ["nowhere"] }),
        )];
        let source = Source::Escalation {
            alert_id: 1,
            at: ev.at,
        };
        assert!(deliveries(&subs, &ev, &source).is_empty());
    }

    #[test]
    fn wakes_name_each_marked_worker_once() {
        let mut w = Wakes::new(4);
        w.mark(2);
        w.mark(0);
        w.mark(2);
        assert_eq!(w.marked().collect::<Vec<_>>(), [0, 2]);
    }
}
