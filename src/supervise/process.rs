//! Processes we started but no longer hold a handle to: a server left running by a process that
//! died without stopping it, found again by a recorded pid and its command line.

use std::ffi::OsStr;
use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::{Result, SuperviseError, run};

/// Sends `signal` (e.g. "TERM") to `pid`. The crate forbids `unsafe` (so no libc::kill); the
/// shell's builtin `kill` sends it, as a `kill` binary (procps) is not on every system.
pub(super) fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", r#"kill -s "$1" "$2""#, "sh", signal, &pid.to_string()]);
    run(&mut cmd).map(drop)
}

/// Whether one argument of a NUL-separated command line (`/proc/PID/cmdline`) is `arg`.
fn cmdline_has_arg(cmdline: &[u8], arg: &[u8]) -> bool {
    cmdline.split(|b| *b == 0).any(|a| a == arg)
}

/// Whether process `pid` runs with `arg` on its command line: a recorded pid alone may since
/// have been reused. A zombie's command line is empty, so it counts as gone.
pub fn process_has_arg(pid: u32, arg: &OsStr) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| cmdline_has_arg(&c, arg.as_encoded_bytes()))
}

/// Stops a leftover process identified by `pid` and `arg` (see [`process_has_arg`]): SIGTERM, and
/// SIGKILL if it is still there after `grace`.
pub(super) fn stop_leftover(pid: u32, arg: &OsStr, what: &str, grace: Duration) -> Result<()> {
    let gone_within = |limit: Duration| {
        let deadline = Instant::now() + limit;
        while process_has_arg(pid, arg) {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        true
    };
    // It may exit between the check and the signal: only its still being there is an error.
    let _ = send_signal(pid, "TERM");
    if gone_within(grace) {
        return Ok(());
    }
    let _ = send_signal(pid, "KILL");
    if gone_within(Duration::from_secs(2)) {
        return Ok(());
    }
    Err(SuperviseError::StopTimeout {
        what: format!("{what} (pid {pid})"),
        timeout: grace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_pid_is_ours_only_with_our_argument() {
        let cmdline = b"/usr/sbin/mosquitto\0-c\0/tmp/x/mqtt/mosquitto.conf\0";
        assert!(cmdline_has_arg(cmdline, b"/tmp/x/mqtt/mosquitto.conf"));
        assert!(!cmdline_has_arg(cmdline, b"/tmp/x/mqtt"));
        assert!(!cmdline_has_arg(b"", b"/tmp/x/mqtt/mosquitto.conf"));
        // Our own process, as the kernel shows it.
        let argv0 = std::env::args_os().next().unwrap();
        assert!(process_has_arg(std::process::id(), &argv0));
        assert!(!process_has_arg(
            std::process::id(),
            "no-such-argument".as_ref()
        ));
    }
}
