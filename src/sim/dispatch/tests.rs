use super::*;

#[test]
fn deterministic_for_a_seed_and_the_same_demand_for_both_policies() {
    let a = evaluate(7);
    assert_eq!(a, evaluate(7));
    assert_ne!(a.no_advice.visitors, evaluate(8).no_advice.visitors);
    assert_eq!(a.no_advice.visitors, a.advice_followed.visitors);
}

#[test]
fn every_visitor_is_accounted_for() {
    for m in [&evaluate(3).no_advice, &evaluate(3).advice_followed] {
        assert_eq!(
            m.visitors,
            m.served + m.turned_away + m.gave_up + m.still_waiting,
            "{m:#?}"
        );
        assert_eq!(
            m.turned_away,
            m.turned_away_at_gates + m.turned_away_at_car_parks
        );
    }
}

/// The no-advice day must really overload the county, or the comparison says nothing.
#[test]
fn without_advice_the_canyon_overflows() {
    let c = evaluate(42);
    let n = &c.no_advice;
    assert!(
        n.red_minutes_by_area.contains_key("tianshan-canyon"),
        "{n:#?}"
    );
    assert!(n.turned_away_at_gates > 500, "{n:#?}");
    assert!(n.turned_away_at_car_parks > 500, "{n:#?}");
    assert_eq!(n.diverted + n.park_and_ride, 0);
}

/// Following the advice removes red and turn-aways without making waits explode. The wait
/// bounds: the 95th percentile may grow by at most an hour and stay within two hours. Two
/// hours is the shortest visit in the model — a hold longer than a visit is a lost day, and
/// the hub should rather tell people not to come — and an hour is about what a visitor turned
/// away at the canyon gate without advice has already lost (the ride there and back from the
/// Southern Tourism Base is 2 × 60 min).
#[test]
fn advice_reduces_red_and_turn_aways_without_exploding_waits() {
    for seed in [42, 1, 2, 3] {
        let c = evaluate(seed);
        println!("{c}");
        let (n, a) = (&c.no_advice, &c.advice_followed);
        assert!(a.red_minutes < n.red_minutes, "seed {seed}: red {a:#?}");
        assert!(a.red_minutes * 10 <= n.red_minutes, "seed {seed}");
        assert!(
            a.turned_away * 10 <= n.turned_away,
            "seed {seed}: turned away"
        );
        assert!(a.turned_away < n.turned_away);
        // Holding people is not a way of losing them: more are served.
        assert!(a.served >= n.served, "seed {seed}: served");
        assert!(
            a.turned_away + a.gave_up < n.turned_away + n.gave_up,
            "seed {seed}: lost visitors"
        );
        assert!(a.wait_p95_min <= 120, "seed {seed}: p95 {}", a.wait_p95_min);
        assert!(a.wait_p95_min <= n.wait_p95_min + 60, "seed {seed}: p95");
        assert!(
            a.wait_avg_min <= 30.0,
            "seed {seed}: average {}",
            a.wait_avg_min
        );
        // The advice stays within its own target.
        let canyon = a.peak_utilisation["tianshan-canyon"];
        assert!(
            (0.8..=0.9).contains(&canyon),
            "seed {seed}: canyon peak {canyon}"
        );
        assert!(a.diverted > 0 && a.park_and_ride > 0);
    }
}

#[test]
fn comparison_serialises_and_prints() {
    let c = evaluate(42);
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["no_advice"]["policy"], "no_advice");
    assert_eq!(v["advice_followed"]["policy"], "advice_followed");
    assert_eq!(v["date"], "2026-10-02");
    let table = c.to_string();
    assert!(table.contains("area-minutes at red") && table.contains("advice followed"));
}
