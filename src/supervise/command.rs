//! Running the server tools: finding them on the search path, running one and reporting its
//! failure with the end of its log, preparing directories, and the account PostgreSQL runs as
//! when we are root.

use super::*;

pub(super) fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs to completion capturing output; a non-zero exit becomes [`SuperviseError::Failed`] with
/// stderr (or stdout when stderr is empty, as some PostgreSQL tools report there).
pub(super) fn run(cmd: &mut Command) -> Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SuperviseError::Spawn {
            command: describe_command(cmd),
            source,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(failed(cmd, &output))
    }
}

pub(super) fn failed(cmd: &Command, output: &Output) -> SuperviseError {
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stderr = if stderr.is_empty() {
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    } else {
        stderr
    };
    SuperviseError::Failed {
        command: describe_command(cmd),
        status: output.status,
        stderr,
    }
}

/// The last few lines of a log, starting at byte `from` (so one start attempt's output is not
/// confused with an earlier one's).
pub(super) fn log_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    if tail.trim().is_empty() {
        format!("{} is empty", path.display())
    } else {
        format!("last lines of {}:\n{tail}", path.display())
    }
}

pub(super) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub(super) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// PATH, then the sbin directories a non-login root shell may lack (Debian puts mosquitto there).
pub(super) fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        let extra = PathBuf::from(extra);
        if !dirs.contains(&extra) {
            dirs.push(extra);
        }
    }
    dirs
}

pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

pub(super) fn searched_path() -> String {
    search_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Creates `dir` if needed and returns its absolute form: commands run with it as working
/// directory, so relative paths would break.
pub(super) fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    dir.canonicalize()
        .map_err(io_err(format!("resolving {}", dir.display())))
}

/// The unprivileged account PostgreSQL runs as when we are root (initdb and pg_ctl refuse root).
#[derive(Debug, Clone)]
pub(super) struct RunAs {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

pub(super) fn effective_uid() -> Option<u32> {
    // Uid: real effective saved fs
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

pub(super) fn lookup_user(name: &str) -> Option<RunAs> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != name {
            return None;
        }
        let _password = f.next()?;
        Some(RunAs {
            name: name.to_owned(),
            uid: f.next()?.parse().ok()?,
            gid: f.next()?.parse().ok()?,
        })
    })
}
