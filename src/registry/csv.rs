//! The devices CSV (`[registry] devices_csv`): one device a row, the columns named by a header row,
//! read and validated a row at a time. Each row becomes the same [`DeviceConfig`] a `[[devices]]`
//! table would, so both forms are checked by one code path and report problems alike, located
//! as `FILE:LINE (id = "…").field`.
//!
//! ```text
//! id,space,kind,format,direction,lines,channel,http_sha256,poll_url,poll_interval_s
//! gate-1,canyon,gate,,,,,,,
//! cam-7,canyon-upper,camera,milesight_vs13x,,1;2:reversed,,,,
//! axis-1,canyon,camera,axis_live_sum,,,,,http://10.0.0.21/local/tvpc/.api?live-sum.json,300
//! ```
//!
//! Only `id`, `space` and `kind` are required; an empty cell is the TOML key left out. `lines` is
//! `;`-separated `N` or `N:reversed`. Cells may be quoted (`"a,b"`, `""` for a quote); blank
//! lines and lines starting with `#` are skipped.

use std::borrow::Cow;
use std::io::BufRead;

use serde::de::{DeserializeOwned, IntoDeserializer};

use super::device::Origin;
use super::{DeviceConfig, Direction, LineConfig, PollConfig, Problem};

/// The columns a devices CSV may have, in any order.
pub const COLUMNS: &[&str] = &[
    "id",
    "space",
    "kind",
    "format",
    "direction",
    "lines",
    "channel",
    "http_sha256",
    "poll_url",
    "poll_interval_s",
    "poll_username",
    "poll_password",
    "poll_password_file",
];
const REQUIRED: &[&str] = &["id", "space", "kind"];

/// Reads the devices of `reader` (named `name` in locations), handing each row that parses to
/// `add` and pushing the problems of those that do not.
pub(super) fn read_devices(
    name: &str,
    mut reader: impl BufRead,
    mut add: impl FnMut(Origin<'_>, &DeviceConfig, &mut Vec<Problem>),
    problems: &mut Vec<Problem>,
) {
    let push = |problems: &mut Vec<Problem>, location: String, message: String| {
        problems.push(Problem { location, message })
    };
    let mut buf = Vec::new();
    let mut line = 0usize;
    // Column i of a row is COLUMNS[header[i]].
    let mut header: Option<Vec<usize>> = None;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => line += 1,
            Err(e) => {
                push(problems, format!("{name}:{}", line + 1), format!("{e}"));
                return;
            }
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            push(problems, format!("{name}:{line}"), "not UTF-8".into());
            continue;
        };
        let text = text.trim_end_matches(['\n', '\r']);
        // Spreadsheets write a byte-order mark first.
        let text = if line == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if text.trim().is_empty() || text.starts_with('#') {
            continue;
        }
        let cells = match split(text) {
            Ok(c) => c,
            Err(why) => {
                push(problems, format!("{name}:{line}"), why.into());
                continue;
            }
        };
        let Some(columns) = &header else {
            match parse_header(&cells) {
                Ok(h) => header = Some(h),
                Err(whys) => {
                    for why in whys {
                        push(problems, format!("{name}:{line}"), why);
                    }
                    // Rows cannot be read without knowing their columns.
                    return;
                }
            }
            continue;
        };
        let mut row: [&str; COLUMNS.len()] = [""; COLUMNS.len()];
        for (&col, cell) in columns.iter().zip(&cells) {
            row[col] = cell.as_ref();
        }
        let origin = Origin::Csv { file: name, line };
        if cells.len() != columns.len() {
            push(
                problems,
                origin.at(row[0]),
                format!(
                    "{} cells where the header names {} columns",
                    cells.len(),
                    columns.len()
                ),
            );
            continue;
        }
        match device(&row) {
            Ok(d) => add(origin, &d, problems),
            Err(whys) => {
                for (field, why) in whys {
                    push(problems, format!("{}.{field}", origin.at(row[0])), why);
                }
            }
        }
    }
    if header.is_none() {
        push(
            problems,
            name.to_owned(),
            format!(
                "no header row (columns: {}; id, space and kind are required)",
                COLUMNS.join(", ")
            ),
        );
    }
}

/// The column of each header cell, or every problem with the header.
fn parse_header(cells: &[Cow<'_, str>]) -> Result<Vec<usize>, Vec<String>> {
    let mut out = Vec::with_capacity(cells.len());
    let mut whys = Vec::new();
    for c in cells {
        match COLUMNS.iter().position(|k| k == c) {
            Some(i) if out.contains(&i) => whys.push(format!("column {c:?} appears twice")),
            Some(i) => out.push(i),
            None => whys.push(format!(
                "unknown column {c:?} (columns: {})",
                COLUMNS.join(", ")
            )),
        }
    }
    for r in REQUIRED {
        if !cells.iter().any(|c| c == r) {
            whys.push(format!("no {r:?} column (it is required)"));
        }
    }
    if whys.is_empty() { Ok(out) } else { Err(whys) }
}

/// A row's device (cells in [`COLUMNS`] order), or each bad cell's column and why.
fn device(row: &[&str; COLUMNS.len()]) -> Result<DeviceConfig, Vec<(&'static str, String)>> {
    let mut whys = Vec::new();
    let cell = |name: &str| row[COLUMNS.iter().position(|k| *k == name).unwrap_or(0)];
    let given = |name: &str| Some(cell(name)).filter(|c| !c.is_empty());
    for r in REQUIRED {
        if cell(r).is_empty() {
            whys.push((*r, "required".to_owned()));
        }
    }
    let kind = given("kind").and_then(|c| word(c).map_err(|e| whys.push(("kind", e))).ok());
    let format = given("format")
        .map_or(Ok(Default::default()), word)
        .map_err(|e| whys.push(("format", e)))
        .unwrap_or_default();
    let direction = given("direction")
        .map_or(Ok(Direction::Normal), word)
        .map_err(|e| whys.push(("direction", e)))
        .unwrap_or_default();
    let lines = given("lines")
        .map_or(Ok(Vec::new()), lines)
        .map_err(|e| whys.push(("lines", e)))
        .unwrap_or_default();
    let channel = given("channel").and_then(|c| {
        c.parse()
            .map_err(|_| whys.push(("channel", format!("{c:?} is not a channel number"))))
            .ok()
    });
    let interval_s = given("poll_interval_s").map_or(60, |c| {
        c.parse().unwrap_or_else(|_| {
            whys.push((
                "poll_interval_s",
                format!("{c:?} is not a number of seconds"),
            ));
            60
        })
    });
    let polled = [
        "poll_url",
        "poll_interval_s",
        "poll_username",
        "poll_password",
    ]
    .into_iter()
    .chain(["poll_password_file"])
    .any(|c| given(c).is_some());
    let poll = polled.then(|| PollConfig {
        url: cell("poll_url").to_owned(),
        interval_s,
        username: given("poll_username").map(str::to_owned),
        password: given("poll_password").map(str::to_owned),
        password_file: given("poll_password_file").map(Into::into),
    });
    match kind {
        Some(kind) if whys.is_empty() => Ok(DeviceConfig {
            id: cell("id").to_owned(),
            space: cell("space").to_owned(),
            kind,
            format,
            direction,
            lines,
            channel,
            http_sha256: given("http_sha256").map(str::to_owned),
            poll,
        }),
        _ => Err(whys),
    }
}

/// A snake_case name of one of the config's enums, as TOML would read it.
fn word<T: DeserializeOwned>(cell: &str) -> Result<T, String> {
    T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(cell))
        .map_err(|e| format!("{cell:?}: {e}"))
}

/// `1;2:reversed` → lines 1 (normal) and 2 (reversed).
fn lines(cell: &str) -> Result<Vec<LineConfig>, String> {
    cell.split(';')
        .map(|item| {
            let item = item.trim();
            let (n, dir) = item.split_once(':').unwrap_or((item, "normal"));
            let line = n.trim().parse().map_err(|_| {
                format!("{item:?} is not a line number (write N or N:reversed, `;` between lines)")
            })?;
            Ok(LineConfig {
                line,
                direction: word(dir.trim())?,
            })
        })
        .collect()
}

/// The cells of one CSV line: unquoted cells trimmed, quoted ones as written (`""` a quote).
fn split(line: &str) -> Result<Vec<Cow<'_, str>>, &'static str> {
    let mut cells = Vec::new();
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start();
        if let Some(body) = trimmed.strip_prefix('"') {
            let mut cell = String::new();
            let mut chars = body.char_indices();
            let after = loop {
                match chars.next() {
                    None => return Err("a quoted cell is not closed on its line"),
                    Some((i, '"')) if body[i + 1..].starts_with('"') => {
                        cell.push('"');
                        chars.next();
                    }
                    Some((i, '"')) => break &body[i + 1..],
                    Some((_, c)) => cell.push(c),
                }
            };
            cells.push(Cow::Owned(cell));
            let after = after.trim_start();
            match after.strip_prefix(',') {
                Some(next) => rest = next,
                None if after.is_empty() => return Ok(cells),
                None => return Err("text after a quoted cell (quote the whole cell)"),
            }
        } else {
            match rest.split_once(',') {
                Some((cell, next)) => {
                    cells.push(Cow::Borrowed(cell.trim()));
                    rest = next;
                }
                None => {
                    cells.push(Cow::Borrowed(rest.trim()));
                    return Ok(cells);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
