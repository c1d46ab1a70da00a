//! Prints the forecast's evaluation: rolling-origin day-ahead forecasts on the Dublin footfall
//! year (21 complete counters) and the CalIt2 door, against seasonal naive, with the intervals'
//! coverage. `cargo run --release --example forecast_eval [DATA_DIR] [--json]`; the data are
//! looked for in DATA_DIR, `$VISITORFLOW_DATA_DIR`, `../shared/data` and `/work/shared/data`.

use std::path::PathBuf;

const DUBLIN: &str = "dublin/dublin_footfall_2023_hourly.csv";
const CALIT2: &str = "calit2/calit2_inout_merged.csv";

fn main() {
    let mut json = false;
    let mut dir = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            s if !s.starts_with('-') => dir = Some(PathBuf::from(s)),
            _ => {
                eprintln!("usage: forecast_eval [DATA_DIR] [--json]");
                std::process::exit(2);
            }
        }
    }
    let dirs: Vec<PathBuf> = [
        dir,
        std::env::var_os("VISITORFLOW_DATA_DIR").map(PathBuf::from),
        Some(PathBuf::from("../shared/data")),
        Some(PathBuf::from("/work/shared/data")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let read = |rel: &str| {
        let text = dirs
            .iter()
            .map(|d| d.join(rel))
            .find_map(|p| std::fs::read_to_string(p).ok());
        if text.is_none() {
            eprintln!("{rel} not found (give DATA_DIR or set VISITORFLOW_DATA_DIR)");
        }
        text
    };
    let (dublin, calit2) = (read(DUBLIN), read(CALIT2));
    if dublin.is_none() && calit2.is_none() {
        std::process::exit(1);
    }
    let started = std::time::Instant::now();
    let eval = match visitorflow::sim::forecast_eval::evaluate(calit2.as_deref(), dublin.as_deref())
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let timing = dublin.as_deref().map(time_per_area);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&eval).expect("serialisable")
        );
    } else {
        print!("{eval}");
        if let Some(ms) = timing {
            println!(
                "cost: {ms:.2} ms per area for a 7-day forecast from 400 days of hourly history"
            );
        }
        eprintln!("({:.1} s)", started.elapsed().as_secs_f64());
    }
}

/// Milliseconds per `forecast` call (7 days, the calibration included) on 400 days of a Dublin
/// counter (its year, the first 35 days repeated a year later), the production entry point.
fn time_per_area(text: &str) -> f64 {
    use chrono::TimeDelta;
    use visitorflow::forecast::{Known, forecast};
    use visitorflow::sim::forecast_eval::{dublin_calendar, dublin_days};
    let Ok(series) = dublin_days(text) else {
        return f64::NAN;
    };
    let Some((_, year)) = series.first() else {
        return f64::NAN;
    };
    let mut history = year.clone();
    history.extend(year.iter().take(35).map(|d| {
        let mut d = d.clone();
        d.date += TimeDelta::days(365);
        d
    }));
    let cal = dublin_calendar();
    let first = history
        .last()
        .map(|d| d.date + TimeDelta::days(1))
        .expect("days");
    let runs = 50;
    let started = std::time::Instant::now();
    for _ in 0..runs {
        let out = forecast(&history, &|d| cal.day(d, None), first, 7, &|_| {
            Known::default()
        });
        std::hint::black_box(out);
    }
    started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
}
