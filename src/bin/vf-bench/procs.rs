//! CPU time and memory of other processes, read from `/proc` (Linux only): the service binary,
//! the PostgreSQL cluster (postmaster, its live children, and through `cutime`/`cstime` the
//! children that already exited), the broker and the reference clients.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ; 100 on every Linux seen).
fn ticks_per_sec() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/<pid>/stat` after the command name (which may contain spaces):
/// index 0 is the state (field 3 in proc(5)).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse::<i64>().map_or(0, |v| v.max(0) as u64))
            .collect(),
    )
}

/// Field numbers of proc(5) minus 3 (state is index 0).
const PPID: usize = 1;
const UTIME: usize = 11;
const STIME: usize = 12;
const CUTIME: usize = 13;
const CSTIME: usize = 14;

/// User + system CPU seconds of a process (all its threads, live and exited).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    Some((f[UTIME] + f[STIME]) as f64 / ticks_per_sec())
}

/// As [`cpu_secs`], plus the CPU of its children that exited and were reaped.
fn cpu_secs_with_reaped(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    Some((f[UTIME] + f[STIME] + f[CUTIME] + f[CSTIME]) as f64 / ticks_per_sec())
}

fn children(ppid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f.get(PPID) == Some(&u64::from(ppid))))
        .collect()
}

/// CPU seconds of a whole process tree rooted at `root` (PostgreSQL: backends, WAL writer,
/// checkpointer, autovacuum workers — exited ones through the postmaster's reaped times).
pub fn tree_cpu_secs(root: u32) -> f64 {
    cpu_secs_with_reaped(root).unwrap_or(0.0)
        + children(root).into_iter().filter_map(cpu_secs).sum::<f64>()
}

/// A `VmRSS:`-style line of `/proc/<pid>/status`, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The postmaster's pid: the first line of `postmaster.pid` in the data directory.
pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}
