//! Known answers on synthetic series, interval coverage on synthetic noise, and properties.

use chrono::{Datelike, NaiveDate, TimeDelta};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::model::position;
use super::*;
use crate::calendar::{Calendar, CalendarConfig, DateRange};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A day-time bell, 0 at night: the hourly shape of every synthetic day.
fn bell(h: usize) -> f64 {
    let x = (h as f64 - 13.0) / 3.5;
    if (7..=21).contains(&h) {
        (-0.5 * x * x).exp()
    } else {
        0.0
    }
}

/// Weekday multipliers: quiet Monday, busy weekend.
const WEEK: [f64; 7] = [0.6, 0.8, 0.8, 0.9, 1.1, 2.0, 1.8];

fn truth(level: f64, weekday: usize) -> [f64; HOURS] {
    std::array::from_fn(|h| level * WEEK[weekday] * bell(h))
}

fn days_from(first: &str, n: usize, f: impl Fn(NaiveDate) -> [f64; HOURS]) -> Vec<DayObs> {
    (0..n)
        .map(|i| {
            let date = d(first) + TimeDelta::days(i as i64);
            DayObs {
                date,
                hours: f(date).map(Some),
            }
        })
        .collect()
}

fn wd(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

fn plain() -> Calendar {
    Calendar::build(&CalendarConfig::default(), Some("")).unwrap()
}

fn none(_: NaiveDate) -> Known {
    Known::default()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-9)
}

#[test]
fn a_clean_weekly_pattern_is_forecast_exactly_with_no_width() {
    let cal = plain();
    let history = days_from("2026-01-05", 70, |date| truth(100.0, wd(date)));
    let first = d("2026-03-16");
    let out = forecast(&history, &|x| cal.day(x, None), first, 7, &none);
    assert_eq!(out.len(), 7);
    for (j, f) in out.iter().enumerate() {
        let date = first + TimeDelta::days(j as i64);
        assert_eq!(f.date, date);
        let want = truth(100.0, wd(date));
        for (b, w) in f.hours.iter().zip(want) {
            assert!(close(b.mean, w, 1e-9), "{date}: {b:?} vs {w}");
            assert!(close(b.lo95, w, 1e-6) && close(b.hi95, w, 1e-6), "{b:?}");
        }
        let total: f64 = want.iter().sum();
        assert!(close(f.total.mean, total, 1e-9));
        assert!(close(
            f.peak.mean,
            want.iter().copied().fold(0.0, f64::max),
            1e-9
        ));
    }
}

#[test]
fn a_level_change_is_followed_within_days_and_an_outlier_is_clipped() {
    let cal = plain();
    // Level 100 for ten weeks, then 150 for the last two weeks.
    let start = d("2026-01-05");
    let history = days_from("2026-01-05", 84, |date| {
        let level = if (date - start).num_days() >= 70 {
            150.0
        } else {
            100.0
        };
        truth(level, wd(date))
    });
    let f = &forecast(&history, &|x| cal.day(x, None), d("2026-03-30"), 1, &none)[0];
    let want: f64 = truth(150.0, 0).iter().sum();
    // The weekday profiles lean a little towards the new level: days by the step measure their
    // own level on both sides of it.
    assert!(
        close(f.total.mean, want, 0.07),
        "{} vs {want}",
        f.total.mean
    );
    // One day at ten times its usual: the level moves by the clipped share only.
    let mut spiky = days_from("2026-01-05", 70, |date| truth(100.0, wd(date)));
    let last = spiky.last_mut().unwrap();
    last.hours = last.hours.map(|v| v.map(|x| 10.0 * x));
    let f = &forecast(&spiky, &|x| cal.day(x, None), d("2026-03-16"), 1, &none)[0];
    let base: f64 = truth(100.0, 0).iter().sum();
    assert!(f.total.mean < 1.2 * base, "{} vs {base}", f.total.mean);
}

/// Two National Days three times as busy as an ordinary weekend day; a third holiday never
/// seen before.
fn holiday_text() -> &'static str {
    r#"
    [[years]]
    year = 2025
    [[years]]
    year = 2026
    [[holidays]]
    key = "national_day"
    name = "国庆节"
    from = 2025-10-01
    to = 2025-10-03
    [[holidays]]
    key = "national_day"
    name = "国庆节"
    from = 2026-10-01
    to = 2026-10-03
    [[holidays]]
    key = "founders_day"
    name = "founders"
    from = 2026-10-15
    to = 2026-10-15
    [[holidays]]
    key = "x"
    name = "make-up"
    from = 2026-10-20
    to = 2026-10-20
    workdays = [2026-10-18]
    "#
}

fn off_day(level: f64) -> [f64; HOURS] {
    std::array::from_fn(|h| level * (WEEK[5] + WEEK[6]) / 2.0 * bell(h))
}

#[test]
fn a_holiday_takes_the_effect_of_the_same_holiday_last_year() {
    let cal = Calendar::build(&CalendarConfig::default(), Some(holiday_text())).unwrap();
    let history = days_from("2025-06-02", 486, |date| match cal.day(date, None).kind {
        crate::calendar::DayKind::Holiday => off_day(100.0).map(|v| 3.0 * v),
        _ => truth(100.0, wd(date)),
    });
    assert_eq!(history.last().unwrap().date, d("2026-09-30"));
    let out = forecast(&history, &|x| cal.day(x, None), d("2026-10-01"), 7, &none);
    let off: f64 = off_day(100.0).iter().sum();
    for f in &out[..3] {
        assert!(
            close(f.total.mean, 3.0 * off, 0.02),
            "{}: {} vs {}",
            f.date,
            f.total.mean,
            3.0 * off
        );
        // The day after the holiday is an ordinary Sunday.
    }
    let sunday: f64 = truth(100.0, 6).iter().sum();
    assert!(close(out[3].total.mean, sunday, 0.02), "{:?}", out[3].total);
}

#[test]
fn a_holiday_never_seen_falls_back_to_the_holidays_seen_and_a_make_up_day_is_a_workday() {
    let cal = Calendar::build(&CalendarConfig::default(), Some(holiday_text())).unwrap();
    // History to 14 October 2026: both National Days seen at three times a day off.
    let history = days_from("2025-06-02", 500, |date| match cal.day(date, None).kind {
        crate::calendar::DayKind::Holiday => off_day(100.0).map(|v| 3.0 * v),
        _ => truth(100.0, wd(date)),
    });
    let out = forecast(&history, &|x| cal.day(x, None), d("2026-10-15"), 6, &none);
    let off: f64 = off_day(100.0).iter().sum();
    // Six holiday days seen at R = 3, shrunk with one day off at R = 1: (6·3 + 1)/7.
    let r = (6.0 * 3.0 + 1.0) / 7.0;
    assert!(
        close(out[0].total.mean, r * off, 0.02),
        "{} vs {}",
        out[0].total.mean,
        r * off
    );
    // 18 October 2026 is a Sunday worked: an average workday.
    let workday: f64 = (0..5)
        .map(|k| truth(100.0, k).iter().sum::<f64>())
        .sum::<f64>()
        / 5.0;
    assert_eq!(out[3].date, d("2026-10-18"));
    assert!(
        close(out[3].total.mean, workday, 0.02),
        "{} vs {workday}",
        out[3].total.mean
    );
}

#[test]
fn entering_a_school_holiday_carries_last_years_change_over() {
    let summer = |y: i32| DateRange {
        name: "暑假".into(),
        from: NaiveDate::from_ymd_opt(y, 7, 4).unwrap(),
        to: NaiveDate::from_ymd_opt(y, 8, 31).unwrap(),
    };
    let cfg = CalendarConfig {
        school_holidays: vec![summer(2025), summer(2026)],
        ..CalendarConfig::default()
    };
    let cal = Calendar::build(&cfg, Some("")).unwrap();
    let level = |date: NaiveDate| {
        if cal.day(date, None).school_holiday.is_some() {
            200.0
        } else {
            100.0
        }
    };
    let history = days_from("2025-05-05", 425, |date| truth(level(date), wd(date)));
    let first = d("2026-07-04");
    assert_eq!(history.last().unwrap().date + TimeDelta::days(1), first);
    let f = &forecast(&history, &|x| cal.day(x, None), first, 1, &none)[0];
    let want: f64 = truth(200.0, wd(first)).iter().sum();
    assert!(
        close(f.total.mean, want, 0.05),
        "{} vs {want}",
        f.total.mean
    );
}

#[test]
fn closure_factor_and_bookings_act_on_the_day() {
    let cal = plain();
    let history = days_from("2026-01-05", 70, |date| truth(100.0, wd(date)));
    let first = d("2026-03-16");
    let base = forecast(&history, &|x| cal.day(x, None), first, 3, &none);
    let known = |date: NaiveDate| match (date - first).num_days() {
        0 => Known {
            closed: true,
            ..Known::default()
        },
        1 => Known {
            factor: Some(0.5),
            ..Known::default()
        },
        _ => Known {
            booked: Some(1000.0),
            ..Known::default()
        },
    };
    let out = forecast(&history, &|x| cal.day(x, None), first, 3, &known);
    assert_eq!(out[0].total, Band::ZERO);
    assert!(out[0].hours.iter().all(|b| *b == Band::ZERO));
    assert!(close(out[1].total.mean, 0.5 * base[1].total.mean, 1e-9));
    assert!(close(
        out[1].hours[13].hi95,
        0.5 * base[1].hours[13].hi95,
        1e-9
    ));
    // 1000 booked, 5 % no-shows: at least 950 expected, the hours scaled alike.
    assert!(base[2].total.mean < 950.0);
    assert!(close(out[2].total.mean, 950.0, 1e-9), "{:?}", out[2].total);
    let k = 950.0 / base[2].total.mean;
    assert!(close(
        out[2].hours[13].mean,
        k * base[2].hours[13].mean,
        1e-9
    ));
    assert!(out[2].total.lo95 >= 950.0 - 1.96 * (1000.0f64 * 0.05 * 0.95).sqrt() - 1e-9);
    // Bookings below the forecast change nothing.
    let few = |_: NaiveDate| Known {
        booked: Some(1.0),
        ..Known::default()
    };
    let same = forecast(&history, &|x| cal.day(x, None), first, 3, &few);
    assert_eq!(same[2].total.mean, base[2].total.mean);
}

/// Coverage of the day-ahead bands over the last `days` days of a noisy weekly series.
fn coverage(noise: impl Fn(f64, &mut StdRng) -> f64) -> (f64, f64, f64, f64) {
    let cal = plain();
    let mut rng = StdRng::seed_from_u64(7);
    let history = days_from("2025-01-06", 280, |date| truth(1000.0, wd(date)))
        .into_iter()
        .map(|mut o| {
            o.hours = o.hours.map(|v| v.map(|m| noise(m, &mut rng)));
            o
        })
        .collect::<Vec<_>>();
    let (s, fc) = rolling_day_ahead(&Settings::default(), &history, &|x| cal.day(x, None));
    let (mut n, mut in80, mut in95) = (0.0, 0.0, 0.0);
    let (mut dn, mut d80, mut d95) = (0.0, 0.0, 0.0);
    for (t, f) in fc.iter().enumerate().skip(98) {
        let f = f.as_ref().unwrap();
        for (b, y) in f.hours.iter().zip(s.hours(t).unwrap()) {
            let y = y.unwrap();
            if b.mean == 0.0 && y == 0.0 {
                continue;
            }
            n += 1.0;
            in80 += f64::from(u8::from(b.covers(y, false)));
            in95 += f64::from(u8::from(b.covers(y, true)));
        }
        let y = s.total(t).unwrap();
        dn += 1.0;
        d80 += f64::from(u8::from(f.total.covers(y, false)));
        d95 += f64::from(u8::from(f.total.covers(y, true)));
    }
    (
        100.0 * in80 / n,
        100.0 * in95 / n,
        100.0 * d80 / dn,
        100.0 * d95 / dn,
    )
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Knuth's Poisson sampler for small means, a normal approximation above.
fn poisson(m: f64, rng: &mut StdRng) -> f64 {
    if m > 60.0 {
        return (m + m.sqrt() * normal(rng)).round().max(0.0);
    }
    let (limit, mut k, mut p) = ((-m).exp(), 0.0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= limit {
            return k;
        }
        k += 1.0;
    }
}

#[test]
fn intervals_cover_as_stated_under_poisson_noise() {
    let (h80, h95, d80, d95) = coverage(poisson);
    assert!((h80 - 80.0).abs() <= 3.0, "hourly 80 %: {h80:.1}");
    assert!((h95 - 95.0).abs() <= 2.0, "hourly 95 %: {h95:.1}");
    assert!((d80 - 80.0).abs() <= 10.0, "daily 80 %: {d80:.1}");
    assert!((d95 - 95.0).abs() <= 6.0, "daily 95 %: {d95:.1}");
}

#[test]
fn intervals_cover_as_stated_under_multiplicative_gaussian_noise() {
    let (h80, h95, d80, d95) = coverage(|m, rng| (m * (1.0 + 0.15 * normal(rng))).max(0.0));
    assert!((h80 - 80.0).abs() <= 3.0, "hourly 80 %: {h80:.1}");
    assert!((h95 - 95.0).abs() <= 2.0, "hourly 95 %: {h95:.1}");
    assert!((d80 - 80.0).abs() <= 10.0, "daily 80 %: {d80:.1}");
    assert!((d95 - 95.0).abs() <= 6.0, "daily 95 %: {d95:.1}");
}

#[test]
fn the_rolling_backtest_is_what_forecast_says_at_each_origin() {
    let cal = plain();
    let mut rng = StdRng::seed_from_u64(3);
    let history: Vec<DayObs> = days_from("2025-01-06", 120, |date| truth(300.0, wd(date)))
        .into_iter()
        .map(|mut o| {
            o.hours = o.hours.map(|v| v.map(|m| poisson(m, &mut rng)));
            o
        })
        .collect();
    let (_, fc) = rolling_day_ahead(&Settings::default(), &history, &|x| cal.day(x, None));
    for t in [20, 60, 119] {
        let direct = forecast(
            &history[..t],
            &|x| cal.day(x, None),
            history[t].date,
            1,
            &none,
        );
        let f = fc[t].as_ref().unwrap();
        assert_eq!(direct[0].total, f.total, "day {t}");
        assert_eq!(direct[0].hours, f.hours, "day {t}");
        assert_eq!(direct[0].peak, f.peak, "day {t}");
    }
}

#[test]
fn short_or_empty_histories_still_answer() {
    let cal = plain();
    let first = d("2026-03-16");
    let out = forecast(&[], &|x| cal.day(x, None), first, 7, &none);
    assert_eq!(out.len(), 7);
    assert!(
        out.iter()
            .all(|f| f.total == Band::ZERO && f.hours.len() == HOURS)
    );
    let three = days_from("2026-03-13", 3, |date| truth(100.0, wd(date)));
    let out = forecast(&three, &|x| cal.day(x, None), first, 2, &none);
    assert!(out[0].total.mean > 0.0 && out[0].total.hi95 > out[0].total.mean);
    assert!(forecast(&three, &|x| cal.day(x, None), first, 0, &none).is_empty());
}

#[test]
fn a_holiday_day_maps_to_the_same_place_in_a_period_of_another_length() {
    assert_eq!(position(0, 8, 7), 0);
    assert_eq!(position(7, 8, 7), 6);
    assert_eq!(position(2, 7, 7), 2);
    assert_eq!(position(3, 9, 8), 3);
    assert_eq!(position(1, 3, 1), 0);
    assert_eq!(position(0, 1, 3), 0);
    assert_eq!(position(1, 3, 2), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn bands_are_ordered_non_negative_and_finite(
        values in prop::collection::vec(prop::option::weighted(0.9, 0.0f64..5000.0), 24 * 40),
        gaps in prop::collection::vec(0usize..40, 0..6),
        days in 1usize..8,
        factor in prop::option::of(0.0f64..3.0),
        booked in prop::option::of(0.0f64..50_000.0),
    ) {
        let cal = Calendar::build(&CalendarConfig::default(), None).unwrap();
        let first = d("2025-10-01");
        let history: Vec<DayObs> = values
            .chunks(HOURS)
            .enumerate()
            .filter(|(i, _)| !gaps.contains(i))
            .map(|(i, c)| DayObs {
                date: first - TimeDelta::days(40 - i as i64),
                hours: std::array::from_fn(|h| c[h]),
            })
            .collect();
        let known = |_: NaiveDate| Known { closed: false, factor, booked };
        let out = forecast(&history, &|x| cal.day(x, None), first, days, &known);
        prop_assert_eq!(out.len(), days);
        for f in &out {
            prop_assert_eq!(f.hours.len(), HOURS);
            for b in f.hours.iter().chain([&f.total, &f.peak]) {
                let all = [b.lo95, b.lo80, b.mean, b.hi80, b.hi95];
                prop_assert!(all.iter().all(|x| x.is_finite() && *x >= 0.0), "{:?}", b);
                prop_assert!(all.windows(2).all(|w| w[0] <= w[1]), "{:?}", b);
            }
        }
    }
}
