//! Replays real people-counting datasets as devices' native count reports: the pure parsers
//! ([`parse_calit2`], [`parse_dublin`]), the pure plan (which device publishes which report, with
//! what `seq`, totals and timestamp) and [`replay`], which publishes the plan and returns once the
//! broker has acknowledged every report, so a caller can then check the receiver.
//!
//! Datasets (see `/work/shared/data`; both CC BY 4.0, cite the source when publishing results):
//! - CalIt2 Building People Counts (UCI ML Repository, doi:10.24432/C5NG78): one door, 30-minute
//!   slots, replayed as one device. An empty cell is "no data" for that direction: it counts 0
//!   and the slot is still published, so `seq` follows the slots.
//! - Dublin City Centre footfall counters 2023 (Smart Dublin): hourly, one device per counter. An
//!   empty IN or OUT cell means the counter was offline: that hour is not published, and `seq`
//!   stays contiguous over the hours that are.
//!
//! Local times are read in the registry's time zone; `rebase` moves the whole dataset so its first
//! slot starts at a chosen instant (the ingester rejects reports older than `max_age_days`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

use super::SimError;
use super::publish::{Link, stop_flagged, stop_requested};
use super::report::{self, NativeReport};
use crate::ids::{DeviceId, SpaceId};
use crate::registry::Registry;
use crate::source::MqttConfig;

mod parse;
mod plan;

pub use parse::*;
use plan::*;

/// How `replay` runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub file: PathBuf,
    /// `None` = recognise the dataset by its header.
    pub dataset: Option<Dataset>,
    /// The device to publish as (CalIt2), or the first device (Dublin); looked up in the registry
    /// for its space. Then `devices`, in order, one per Dublin counter with data (file order).
    /// Neither = the registry's first native-format people counters.
    pub device: Option<String>,
    pub devices: Vec<String>,
    /// Shift every timestamp so the dataset's first slot starts at this instant; `None` = the
    /// dataset's own (2005 / 2023) times.
    pub rebase: Option<DateTime<Utc>>,
    /// Reports per second; `None` = as fast as the broker acknowledges.
    pub rate: Option<u32>,
    /// Reports per message (a JSON array when > 1; 1 = one report object per message).
    pub batch: usize,
    pub client_id: String,
    /// After the last publish, how long to wait for the broker's acknowledgements.
    pub ack_timeout: Duration,
    /// Stops publishing once it holds `true` (what was published is still awaited).
    pub shutdown: Option<crate::shutdown::Shutdown>,
}

impl ReplayOptions {
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            dataset: None,
            device: None,
            devices: Vec::new(),
            rebase: None,
            rate: None,
            batch: 1,
            client_id: "visitorflow-replay".into(),
            ack_timeout: Duration::from_secs(30),
            shutdown: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayDeviceStats {
    pub device: DeviceId,
    pub space: SpaceId,
    /// The dataset column(s) it replayed.
    pub source: String,
    pub reports: u64,
    pub total_in: u64,
    pub total_out: u64,
}

#[derive(Debug, Clone)]
pub struct ReplayStats {
    pub dataset: Dataset,
    /// Reports published (and acknowledged by the broker).
    pub reports: u64,
    pub messages: u64,
    pub total_in: u64,
    pub total_out: u64,
    /// Empty IN/OUT cells in the replayed columns (CalIt2: counted as 0; Dublin: hour skipped).
    pub empty_cells: u64,
    /// Slots not published because a cell was empty (Dublin).
    pub skipped_reports: u64,
    /// Timestamps (slot ends, after rebasing) of the earliest and latest published report.
    pub first_ts: Option<DateTime<Utc>>,
    pub last_ts: Option<DateTime<Utc>>,
    /// True when `shutdown` stopped the replay early.
    pub stopped: bool,
    pub elapsed: Duration,
    pub devices: Vec<ReplayDeviceStats>,
}

/// Publishes `opts.file` as the chosen devices' QoS 1 count reports on
/// `{prefix}/{space}/{device}/counts`, and returns once the broker has acknowledged all of them.
pub async fn replay(
    opts: ReplayOptions,
    registry: &Registry,
    mqtt: &MqttConfig,
) -> Result<ReplayStats, SimError> {
    if opts.batch == 0 {
        return Err(SimError::InvalidOption("batch must be at least 1".into()));
    }
    if opts.rate == Some(0) {
        return Err(SimError::InvalidOption(
            "rate must be positive (omit it for no limit)".into(),
        ));
    }
    let t0 = Instant::now();
    let text = tokio::fs::read_to_string(&opts.file)
        .await
        .map_err(|source| SimError::Read {
            path: opts.file.clone(),
            source,
        })?;
    let dataset = match opts.dataset.or_else(|| Dataset::detect(&text)) {
        Some(d) => d,
        None => {
            let header = data_lines(&text).next().map(|(_, l)| l).unwrap_or("");
            return Err(SimError::UnknownDataset(header.chars().take(80).collect()));
        }
    };
    let wanted: Vec<String> = opts.device.iter().chain(&opts.devices).cloned().collect();
    // Parsing 9k rows × 115 columns is CPU work: keep it off the runtime's worker.
    let columns = tokio::task::spawn_blocking(move || match dataset {
        Dataset::Calit2 => {
            parse_calit2(&text).map(|slots| vec![("CalIt2 main door".to_string(), slots)])
        }
        Dataset::Dublin => parse_dublin(&text).map(|d| {
            (0..d.counters.len())
                .filter(|&c| d.counters[c].has_data())
                .map(|c| (d.counters[c].name.clone(), d.slots(c).collect()))
                .collect::<Vec<(String, Vec<Slot>)>>()
        }),
    })
    .await
    .expect("dataset parser panicked")?;
    let devices = pick_devices(registry, &wanted, columns.len())?;
    let sources = devices
        .iter()
        .zip(columns)
        .map(|(&d, (name, slots))| (d, name, slots))
        .collect();
    let gaps = match dataset {
        Dataset::Calit2 => Gaps::ZeroFill,
        Dataset::Dublin => Gaps::Skip,
    };
    let period = dataset.period();
    let period_s = period.as_secs() as u32;
    let plan = plan(
        sources,
        TimeDelta::from_std(period).expect("slot periods are small"),
        registry.tz,
        opts.rebase,
        gaps,
    );
    let order = message_order(&plan, opts.batch);

    let mut link = Link::connect(mqtt, &opts.client_id, None, false).await?;
    tracing::info!(
        dataset = dataset.name(),
        devices = plan.tracks.len(),
        messages = order.len(),
        "replaying"
    );
    let topics: Vec<String> = plan
        .tracks
        .iter()
        .map(|t| {
            let d = registry.device(t.device);
            report::counts_topic(
                &mqtt.topic_prefix,
                registry.space(d.space).id.as_str(),
                d.id.as_str(),
            )
        })
        .collect();
    let mut devices: Vec<ReplayDeviceStats> = plan
        .tracks
        .iter()
        .map(|t| {
            let d = registry.device(t.device);
            ReplayDeviceStats {
                device: d.id.clone(),
                space: registry.space(d.space).id.clone(),
                source: t.source.clone(),
                reports: 0,
                total_in: 0,
                total_out: 0,
            }
        })
        .collect();
    let mut shutdown = opts.shutdown.clone();
    let (mut reports, mut stopped) = (0u64, false);
    let (mut first_ts, mut last_ts) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
    let publish_start = Instant::now();
    for (t, from) in order {
        if stop_flagged(&shutdown) {
            stopped = true;
            break;
        }
        if let Some(rate) = opts.rate {
            let due = publish_start + Duration::from_secs_f64(reports as f64 / f64::from(rate));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop_requested(&mut shutdown) => { stopped = true; break; }
            }
        }
        let track = &plan.tracks[t];
        let chunk = &track.reports[from..(from + opts.batch).min(track.reports.len())];
        let body: Vec<NativeReport> = chunk
            .iter()
            .map(|p| NativeReport {
                seq: p.seq,
                ts: report::rfc3339(&p.end.with_timezone(&registry.tz)),
                in_count: p.in_count,
                out_count: p.out_count,
                period_s: Some(period_s),
                total_in: Some(p.total_in),
                total_out: Some(p.total_out),
            })
            .collect();
        let payload = if opts.batch == 1 {
            serde_json::to_vec(&body[0])?
        } else {
            serde_json::to_vec(&body)?
        };
        link.publish(topics[t].clone(), payload, false).await?;
        let st = &mut devices[t];
        for p in chunk {
            st.reports += 1;
            st.total_in += u64::from(p.in_count);
            st.total_out += u64::from(p.out_count);
            first_ts = Some(first_ts.map_or(p.end, |f| f.min(p.end)));
            last_ts = Some(last_ts.map_or(p.end, |l| l.max(p.end)));
        }
        reports += chunk.len() as u64;
    }
    let acked = link.wait_acked(Instant::now() + opts.ack_timeout).await;
    link.close().await;
    acked?;
    Ok(ReplayStats {
        dataset,
        reports,
        messages: link.published(),
        total_in: devices.iter().map(|d| d.total_in).sum(),
        total_out: devices.iter().map(|d| d.total_out).sum(),
        empty_cells: plan.empty_cells,
        skipped_reports: plan.skipped_reports,
        first_ts,
        last_ts,
        stopped,
        elapsed: t0.elapsed(),
        devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::testutil::{data_file, registry};
    use chrono::{NaiveDate, NaiveDateTime};
    use chrono_tz::Tz;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    #[test]
    fn calit2_totals_and_broken_cells() {
        let slots = parse_calit2(&data_file("calit2/calit2_inout_merged.csv")).unwrap();
        assert_eq!(slots.len(), 5040);
        assert_eq!(slots[0].start, at(2005, 7, 24, 0, 0));
        assert_eq!(slots[5039].start, at(2005, 11, 5, 23, 30));
        let total_in: u64 = slots.iter().filter_map(|s| s.in_count).map(u64::from).sum();
        let total_out: u64 = slots
            .iter()
            .filter_map(|s| s.out_count)
            .map(u64::from)
            .sum();
        assert_eq!((total_in, total_out), (19_625, 18_806));
        let broken: Vec<_> = slots
            .iter()
            .filter(|s| s.empty_cells() > 0)
            .map(|s| (s.start, s.in_count.is_none(), s.out_count.is_none()))
            .collect();
        assert_eq!(
            broken,
            [
                (at(2005, 10, 15, 4, 30), true, false),
                (at(2005, 10, 30, 20, 0), false, true)
            ]
        );
    }

    #[test]
    fn calit2_plan_numbers_slots_and_rebases() {
        let reg = registry();
        let dev = reg.device_idx("canyon-g1").unwrap();
        let slots = parse_calit2(&data_file("calit2/calit2_inout_merged.csv")).unwrap();
        let n = slots.len() as u64;
        let p = plan(
            vec![(dev, "door".into(), slots.clone())],
            TimeDelta::minutes(30),
            reg.tz,
            None,
            Gaps::ZeroFill,
        );
        assert_eq!((p.empty_cells, p.skipped_reports), (2, 0));
        let r = &p.tracks[0].reports;
        assert_eq!(r.len() as u64, n);
        assert!(r.iter().enumerate().all(|(i, p)| p.seq == i as u64 + 1));
        let last = r.last().unwrap();
        assert_eq!((last.total_in, last.total_out), (19_625, 18_806));
        // Local times are read in the registry's zone (+08:00); ts = slot end.
        assert_eq!(
            report::rfc3339(&r[0].end.with_timezone(&reg.tz)),
            "2005-07-24T00:30:00+08:00"
        );
        let broken = r
            .iter()
            .find(|p| p.end == local_to_utc(reg.tz, at(2005, 10, 15, 5, 0)))
            .unwrap();
        assert_eq!(broken.in_count, 0);

        let start = Utc::now() - TimeDelta::weeks(15);
        let p = plan(
            vec![(dev, "door".into(), slots)],
            TimeDelta::minutes(30),
            reg.tz,
            Some(start),
            Gaps::ZeroFill,
        );
        let r = &p.tracks[0].reports;
        assert_eq!(r[0].end, start + TimeDelta::minutes(30));
        assert_eq!(
            r[r.len() - 1].end,
            start + TimeDelta::minutes(30) * n as i32
        );
    }

    #[test]
    fn dublin_counters_and_totals() {
        let d = parse_dublin(&data_file("dublin/dublin_footfall_2023_hourly.csv")).unwrap();
        assert_eq!(d.times.len(), 8760);
        assert_eq!(d.times[0], at(2023, 1, 1, 0, 0));
        assert_eq!(d.times[8759], at(2023, 12, 31, 23, 0));
        assert_eq!(d.counters.len(), 38);
        assert_eq!(d.counters[0].name, "Aston Quay/Fitzgeralds");
        assert_eq!(d.counters.iter().filter(|c| c.has_data()).count(), 33);
        let mut populated = 0;
        for c in &d.counters {
            assert_eq!(c.total.len(), 8760);
            for ((t, i), o) in c.total.iter().zip(&c.in_counts).zip(&c.out_counts) {
                if let (Some(t), Some(i), Some(o)) = (t, i, o) {
                    assert_eq!(*t, i + o, "{}", c.name);
                    populated += 1;
                }
            }
        }
        assert!(populated > 21 * 8760);
        // "Channel 1 IN" / "Channel 2 OUT" are matched on their last word.
        assert!(
            d.counters
                .iter()
                .any(|c| c.name == "North Wall Quay/Samuel Beckett bridge East" && c.has_data())
        );
    }

    #[test]
    fn dublin_plan_skips_offline_hours_and_keeps_seq_contiguous() {
        let reg = registry();
        let d = parse_dublin(&data_file("dublin/dublin_footfall_2023_hourly.csv")).unwrap();
        let with_data: Vec<usize> = (0..d.counters.len())
            .filter(|&c| d.counters[c].has_data())
            .collect();
        let devices = pick_devices(&reg, &[], with_data.len()).unwrap();
        // Native people counters of the test county, in registry order.
        let ids: Vec<&str> = devices.iter().map(|&i| reg.device(i).id.as_str()).collect();
        assert_eq!(
            ids,
            ["canyon-g1", "canyon-g2", "cave-cam", "island-cam", "hub-g1"]
        );
        let sources: Vec<_> = devices
            .iter()
            .zip(&with_data)
            .map(|(&dev, &c)| (dev, d.counters[c].name.clone(), d.slots(c).collect()))
            .collect();
        let expected_skips: u64 = with_data[..devices.len()]
            .iter()
            .map(|&c| d.slots(c).filter(|s| s.empty_cells() > 0).count() as u64)
            .sum();
        let p = plan(sources, TimeDelta::hours(1), reg.tz, None, Gaps::Skip);
        assert_eq!(p.skipped_reports, expected_skips);
        for t in &p.tracks {
            assert!(
                t.reports
                    .iter()
                    .enumerate()
                    .all(|(i, r)| r.seq == i as u64 + 1)
            );
            assert!(t.reports.windows(2).all(|w| w[0].end < w[1].end));
        }
        // Batches never mix devices and come out in time order.
        let order = message_order(&p, 24);
        let firsts: Vec<_> = order
            .iter()
            .map(|&(t, from)| p.tracks[t].reports[from].end)
            .collect();
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]));
        let covered: usize = order
            .iter()
            .map(|&(t, from)| (p.tracks[t].reports.len() - from).min(24))
            .sum();
        assert_eq!(
            covered,
            p.tracks.iter().map(|t| t.reports.len()).sum::<usize>()
        );
    }

    #[test]
    fn small_files_and_errors() {
        let text = "\u{feff}Time,A st,A st Peds IN,A st Peds OUT,B,B Channel 1 IN,B Channel 2 OUT\r\n\
                    01/01/2023 00:00,3,1,2,,,\r\n\
                    01/01/2023 01:00,5,5,,4,1,3\r\n";
        assert_eq!(Dataset::detect(text), Some(Dataset::Dublin));
        let d = parse_dublin(text).unwrap();
        assert_eq!(d.counters.len(), 2);
        assert_eq!(d.counters[0].name, "A st");
        assert_eq!(d.counters[0].out_counts, [Some(2), None]);
        assert_eq!(d.counters[1].in_counts, [None, Some(1)]);

        let err = parse_dublin("Time,A,A IN\n").unwrap_err().to_string();
        assert!(err.contains("lacks an IN or OUT"), "{err}");
        let err = parse_dublin("Time,A IN,A OUT\n").unwrap_err().to_string();
        assert!(err.contains("before any counter"), "{err}");
        let err = parse_dublin("Time,A,A IN,A OUT\n01/01/2023 00:00,1,x,1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("\"x\""), "{err}");

        let c = "slot_start,in_count,out_count\n2005-07-24T00:00:00,1,\n\n2005-07-24T00:30:00,,2\n";
        assert_eq!(Dataset::detect(c), Some(Dataset::Calit2));
        let s = parse_calit2(c).unwrap();
        assert_eq!(s.iter().map(Slot::empty_cells).sum::<u64>(), 2);
        let err = parse_calit2("slot_start,in_count,out_count\n2005-07-24,1,2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(parse_calit2("a,b,c\n").is_err());
        assert_eq!(Dataset::detect("a,b\n"), None);
    }

    #[test]
    fn device_choice() {
        let reg = registry();
        let one = |w: &[&str], n| {
            pick_devices(
                &reg,
                &w.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                n,
            )
        };
        assert_eq!(one(&[], 1).unwrap(), [reg.device_idx("canyon-g1").unwrap()]);
        assert_eq!(
            one(&["hub-g1"], 1).unwrap(),
            [reg.device_idx("hub-g1").unwrap()]
        );
        assert!(matches!(one(&["nope"], 1), Err(SimError::UnknownDevice(_))));
        assert!(matches!(
            one(&["canyon-cam"], 1),
            Err(SimError::UnsuitableDevice { .. })
        ));
        assert!(matches!(
            one(&["hub-g1", "hub-g1"], 3),
            Err(SimError::UnsuitableDevice { .. })
        ));
        assert!(matches!(
            one(&["hub-g1", "canyon-g1"], 1),
            Err(SimError::InvalidOption(_))
        ));
    }

    #[test]
    fn wall_clock_gaps_and_repeats() {
        let dublin: Tz = "Europe/Dublin".parse().unwrap();
        // 2023-03-26 01:00 does not exist in Dublin; 2023-10-29 01:00 happens twice.
        let gap = local_to_utc(dublin, at(2023, 3, 26, 1, 30));
        assert_eq!(gap, at(2023, 3, 26, 1, 30).and_utc());
        let twice = local_to_utc(dublin, at(2023, 10, 29, 1, 30));
        assert_eq!(twice, at(2023, 10, 29, 0, 30).and_utc());
    }
}
