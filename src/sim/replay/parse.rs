//! The datasets' parsers, pure: CalIt2 slots and Dublin counters from their CSV text.

use std::time::Duration;

use chrono::NaiveDateTime;

use super::super::SimError;

const CALIT2_HEADER: &str = "slot_start,in_count,out_count";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// `slot_start,in_count,out_count`, ISO local timestamps, 30-minute slots.
    Calit2,
    /// `Time` (`DD/MM/YYYY HH:MM`) then `<loc>`, `<loc> … IN`, `<loc> … OUT` per counter, hourly.
    Dublin,
}

impl Dataset {
    /// Recognises a dataset by its header line.
    pub fn detect(text: &str) -> Option<Self> {
        let header = data_lines(text).next().map(|(_, l)| l.trim())?;
        if header == CALIT2_HEADER {
            Some(Self::Calit2)
        } else if header.starts_with("Time,") {
            Some(Self::Dublin)
        } else {
            None
        }
    }

    /// Length of one slot (the reports' `period_s`).
    pub fn period(self) -> Duration {
        match self {
            Self::Calit2 => Duration::from_secs(1800),
            Self::Dublin => Duration::from_secs(3600),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Calit2 => "CalIt2",
            Self::Dublin => "Dublin footfall",
        }
    }
}

/// One time slot of one counter: `start` in dataset local time; `None` = empty cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub start: NaiveDateTime,
    pub in_count: Option<u32>,
    pub out_count: Option<u32>,
}

impl Slot {
    /// Number of empty cells (0–2).
    pub fn empty_cells(&self) -> u64 {
        u64::from(self.in_count.is_none()) + u64::from(self.out_count.is_none())
    }
}

/// The Dublin file, column-wise: one time axis, and per counter its three columns.
#[derive(Debug, Clone)]
pub struct Dublin {
    pub times: Vec<NaiveDateTime>,
    pub counters: Vec<DublinCounter>,
}

#[derive(Debug, Clone)]
pub struct DublinCounter {
    /// The location, as in its total column's header.
    pub name: String,
    pub total: Vec<Option<u32>>,
    pub in_counts: Vec<Option<u32>>,
    pub out_counts: Vec<Option<u32>>,
}

impl DublinCounter {
    /// Whether any hour has both directions (the five dead counters have none).
    pub fn has_data(&self) -> bool {
        self.in_counts
            .iter()
            .zip(&self.out_counts)
            .any(|(i, o)| i.is_some() && o.is_some())
    }
}

impl Dublin {
    /// Counter `counter`'s slots, one per row (empty cells included).
    pub fn slots(&self, counter: usize) -> impl Iterator<Item = Slot> + '_ {
        let c = &self.counters[counter];
        self.times
            .iter()
            .zip(c.in_counts.iter().zip(&c.out_counts))
            .map(|(&start, (&in_count, &out_count))| Slot {
                start,
                in_count,
                out_count,
            })
    }
}

/// Non-blank lines with their 1-based numbers, without a byte-order mark or `\r`.
pub(super) fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

pub(super) fn parse_error(dataset: Dataset, line: usize, message: String) -> SimError {
    SimError::Parse {
        dataset: dataset.name(),
        line,
        message,
    }
}

pub(super) fn cell(
    dataset: Dataset,
    line: usize,
    column: &str,
    raw: &str,
) -> Result<Option<u32>, SimError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<u32>()
        .map(Some)
        .map_err(|_| parse_error(dataset, line, format!("{column}: {raw:?} is not a count")))
}

/// Parses `calit2_inout_merged.csv`; empty cells stay `None`.
pub fn parse_calit2(text: &str) -> Result<Vec<Slot>, SimError> {
    let ds = Dataset::Calit2;
    let mut lines = data_lines(text);
    match lines.next() {
        Some((_, h)) if h.trim() == CALIT2_HEADER => {}
        Some((n, h)) => {
            return Err(parse_error(
                ds,
                n,
                format!("expected the header {CALIT2_HEADER:?}, found {h:?}"),
            ));
        }
        None => return Err(parse_error(ds, 1, "the file is empty".into())),
    }
    lines
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split(',').collect();
            let [ts, i, o] = fields[..] else {
                return Err(parse_error(
                    ds,
                    n,
                    format!("expected 3 fields, found {}", fields.len()),
                ));
            };
            let start = NaiveDateTime::parse_from_str(ts.trim(), "%Y-%m-%dT%H:%M:%S")
                .map_err(|e| parse_error(ds, n, format!("slot_start {ts:?}: {e}")))?;
            Ok(Slot {
                start,
                in_count: cell(ds, n, "in_count", i)?,
                out_count: cell(ds, n, "out_count", o)?,
            })
        })
        .collect()
}

/// Parses the Dublin footfall file. Columns after `Time` are grouped by their last word: `IN` and
/// `OUT` belong to the counter whose total column precedes them; anything else starts a counter.
pub fn parse_dublin(text: &str) -> Result<Dublin, SimError> {
    let ds = Dataset::Dublin;
    enum Col {
        Total(usize),
        In(usize),
        Out(usize),
    }
    let mut lines = data_lines(text);
    let Some((hn, header)) = lines.next() else {
        return Err(parse_error(ds, 1, "the file is empty".into()));
    };
    let names: Vec<&str> = header.split(',').collect();
    if names.first().map(|s| s.trim()) != Some("Time") {
        return Err(parse_error(
            ds,
            hn,
            "the first column must be `Time`".into(),
        ));
    }
    let mut counters: Vec<DublinCounter> = Vec::new();
    let mut has = Vec::<(bool, bool)>::new();
    let mut cols = Vec::with_capacity(names.len() - 1);
    for name in &names[1..] {
        let last = name.split_whitespace().last().unwrap_or("");
        let col = match last {
            "IN" | "OUT" => {
                let Some(c) = counters.len().checked_sub(1) else {
                    return Err(parse_error(
                        ds,
                        hn,
                        format!("column {name:?} comes before any counter's total column"),
                    ));
                };
                let seen = if last == "IN" {
                    &mut has[c].0
                } else {
                    &mut has[c].1
                };
                if std::mem::replace(seen, true) {
                    return Err(parse_error(
                        ds,
                        hn,
                        format!("counter {:?} has two {last} columns", counters[c].name),
                    ));
                }
                if last == "IN" {
                    Col::In(c)
                } else {
                    Col::Out(c)
                }
            }
            _ => {
                counters.push(DublinCounter {
                    name: name.trim().to_string(),
                    total: Vec::new(),
                    in_counts: Vec::new(),
                    out_counts: Vec::new(),
                });
                has.push((false, false));
                Col::Total(counters.len() - 1)
            }
        };
        cols.push(col);
    }
    if let Some((c, _)) = counters.iter().zip(&has).find(|(_, (i, o))| !(*i && *o)) {
        return Err(parse_error(
            ds,
            hn,
            format!("counter {:?} lacks an IN or OUT column", c.name),
        ));
    }
    let mut times = Vec::new();
    for (n, line) in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != names.len() {
            return Err(parse_error(
                ds,
                n,
                format!("expected {} fields, found {}", names.len(), fields.len()),
            ));
        }
        let t = NaiveDateTime::parse_from_str(fields[0].trim(), "%d/%m/%Y %H:%M")
            .map_err(|e| parse_error(ds, n, format!("Time {:?}: {e}", fields[0])))?;
        times.push(t);
        for ((col, raw), name) in cols.iter().zip(&fields[1..]).zip(&names[1..]) {
            let v = cell(ds, n, name, raw)?;
            match *col {
                Col::Total(c) => counters[c].total.push(v),
                Col::In(c) => counters[c].in_counts.push(v),
                Col::Out(c) => counters[c].out_counts.push(v),
            }
        }
    }
    Ok(Dublin { times, counters })
}
