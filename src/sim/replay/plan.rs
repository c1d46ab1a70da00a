//! The replay plan, pure: which device publishes which report, with what `seq`, totals and
//! timestamp, and in what order.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::super::SimError;
use crate::ids::DeviceIdx;
use crate::registry::PayloadFormat;
use crate::registry::{Registry, Unit};

use super::parse::*;

/// Reads a wall-clock time in `tz`: the earlier instant when it is ambiguous, and in a
/// spring-forward gap the offset in force just before the gap.
pub(super) fn local_to_utc(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&t) {
        LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => d.to_utc(),
        LocalResult::None => {
            let offset = tz
                .from_local_datetime(&(t - TimeDelta::hours(3)))
                .earliest()
                .map_or(0, |d| d.offset().fix().local_minus_utc());
            (t - TimeDelta::seconds(i64::from(offset))).and_utc()
        }
    }
}

/// What to do with a slot that has an empty cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gaps {
    /// Publish it, counting the empty direction as 0 (CalIt2's broken rows).
    ZeroFill,
    /// Do not publish it (Dublin: the counter was offline).
    Skip,
}

/// One report as planned: `end` is the slot's end after rebasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Planned {
    pub(super) seq: u64,
    pub(super) end: DateTime<Utc>,
    pub(super) in_count: u32,
    pub(super) out_count: u32,
    pub(super) total_in: u64,
    pub(super) total_out: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Track {
    pub(super) device: DeviceIdx,
    /// Where its counts come from (the dataset, or a Dublin counter's location).
    pub(super) source: String,
    pub(super) reports: Vec<Planned>,
}

#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) tracks: Vec<Track>,
    pub(super) empty_cells: u64,
    pub(super) skipped_reports: u64,
}

/// Assigns each source's slots to its device: `seq` from 1 over the published slots, cumulative
/// totals, `end` = slot end in `tz`, moved so the earliest slot starts at `rebase`.
pub(super) fn plan(
    sources: Vec<(DeviceIdx, String, Vec<Slot>)>,
    period: TimeDelta,
    tz: Tz,
    rebase: Option<DateTime<Utc>>,
    gaps: Gaps,
) -> Plan {
    let first = sources
        .iter()
        .filter_map(|(_, _, slots)| slots.first().map(|s| s.start))
        .min();
    let shift = match (rebase, first) {
        (Some(at), Some(first)) => at - local_to_utc(tz, first),
        _ => TimeDelta::zero(),
    };
    let (mut empty_cells, mut skipped_reports) = (0, 0);
    let tracks = sources
        .into_iter()
        .map(|(device, source, slots)| {
            let (mut seq, mut total_in, mut total_out) = (0, 0, 0);
            let mut reports = Vec::with_capacity(slots.len());
            for s in slots {
                let empty = s.empty_cells();
                empty_cells += empty;
                if empty > 0 && gaps == Gaps::Skip {
                    skipped_reports += 1;
                    continue;
                }
                let (in_count, out_count) = (s.in_count.unwrap_or(0), s.out_count.unwrap_or(0));
                seq += 1;
                total_in += u64::from(in_count);
                total_out += u64::from(out_count);
                reports.push(Planned {
                    seq,
                    end: local_to_utc(tz, s.start) + period + shift,
                    in_count,
                    out_count,
                    total_in,
                    total_out,
                });
            }
            Track {
                device,
                source,
                reports,
            }
        })
        .collect();
    Plan {
        tracks,
        empty_cells,
        skipped_reports,
    }
}

/// Publication order: per track, chunks of `batch` consecutive reports; all chunks by time of
/// their first report, so the receiver sees the county's clock advance evenly.
pub(super) fn message_order(plan: &Plan, batch: usize) -> Vec<(usize, usize)> {
    let mut order: Vec<(DateTime<Utc>, usize, usize)> = plan
        .tracks
        .iter()
        .enumerate()
        .flat_map(|(t, track)| {
            (0..track.reports.len())
                .step_by(batch)
                .map(move |from| (track.reports[from].end, t, from))
        })
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, t, from)| (t, from)).collect()
}

/// The registry devices to publish as: `wanted` in order, else the first native-format people
/// counters, at most `available` (the dataset's counters with data).
pub(super) fn pick_devices(
    registry: &Registry,
    wanted: &[String],
    available: usize,
) -> Result<Vec<DeviceIdx>, SimError> {
    if wanted.is_empty() {
        let picked: Vec<DeviceIdx> = registry
            .devices
            .iter()
            .filter(|d| {
                d.format == PayloadFormat::Native && registry.space(d.space).unit == Unit::People
            })
            .map(|d| d.idx)
            .take(available)
            .collect();
        if picked.is_empty() {
            return Err(SimError::NoDevices(
                "the registry has no native-format people counter; name one".into(),
            ));
        }
        return Ok(picked);
    }
    if wanted.len() > available {
        return Err(SimError::InvalidOption(format!(
            "{} devices given, but the dataset has {available} counter(s) with data",
            wanted.len()
        )));
    }
    let mut picked = Vec::with_capacity(wanted.len());
    for id in wanted {
        let idx = registry
            .device_idx(id)
            .ok_or_else(|| SimError::UnknownDevice(id.clone()))?;
        let unsuitable = |reason: &str| SimError::UnsuitableDevice {
            device: id.clone(),
            reason: reason.into(),
        };
        if registry.device(idx).format != PayloadFormat::Native {
            return Err(unsuitable(
                "it publishes milesight_vs13x payloads; replay sends native reports",
            ));
        }
        if picked.contains(&idx) {
            return Err(unsuitable(
                "it is listed twice (two counters would share one seq)",
            ));
        }
        picked.push(idx);
    }
    Ok(picked)
}
