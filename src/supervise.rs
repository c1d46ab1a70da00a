//! Private local services for `visitorflow demo` and the integration tests.
//!
//! This module owns starting, stopping, crashing and restarting:
//! - [`PgCluster`]: a throwaway PostgreSQL cluster living entirely in one directory (data, socket,
//!   log), listening on a free port of 127.0.0.1;
//! - [`Mosquitto`]: a private Mosquitto broker with persistence, configured for large persistent
//!   session backlogs;
//! - [`EmbeddedBroker`]: an in-process `rumqttd` used by the demo when Mosquitto is not installed.
//!
//! Where a cluster can live when PostgreSQL runs as user `postgres` is decided in `pgdir`; servers
//! left running by a process that died without stopping them are found and stopped via `process`.
//!
//! The API is synchronous (std::process); start-up takes a second or two, so async callers may call
//! it directly. Nothing here touches system services or well-known ports.
//!
//! ```no_run
//! # fn main() -> Result<(), visitorflow::supervise::SuperviseError> {
//! use visitorflow::supervise::{Broker, PgCluster};
//! let dir = tempfile::tempdir().unwrap();
//! let mut pg = PgCluster::start(&dir.path().join("pg"))?;
//! pg.create_database("visitorflow")?;
//! let url = pg.url("visitorflow"); // postgres://visitorflow@127.0.0.1:PORT/visitorflow
//! pg.crash()?; // committed data must survive this
//! pg.start_again()?; // same port, so `url` stays valid
//! let broker = Broker::start(&dir.path().join("mqtt"))?;
//! println!("{} on 127.0.0.1:{}", broker.describe(), broker.port());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod pgdir;
mod process;

pub use pgdir::{DirMode, first_unsearchable, pg_dir_unreachable, private_pg_dir};
use pgdir::{existing_dirs, unsearchable_by};
pub use process::process_has_arg;
use process::{send_signal, stop_leftover};

/// Role (and therefore user name in URLs) that owns the throwaway clusters.
pub const PG_USER: &str = "visitorflow";

const PG_READY_TIMEOUT: Duration = Duration::from_secs(30);
const BROKER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `start_again` keeps retrying a bind that fails because the old socket lingers.
const REBIND_WINDOW: Duration = Duration::from_secs(5);
/// A graceful Mosquitto stop writes its whole in-memory database; a large backlog takes a while.
const MOSQUITTO_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh-port attempts when another process grabs the port between probing and binding.
const PORT_ATTEMPTS: usize = 3;

/// Everything that can go wrong while supervising a local service.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("{binary} not found (looked in {searched})")]
    NotFound {
        binary: &'static str,
        searched: String,
    },
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{what} exited during start-up ({status}); {detail}")]
    Exited {
        what: String,
        status: ExitStatus,
        detail: String,
    },
    #[error("{what} did not accept connections on 127.0.0.1:{port} within {timeout:?}; {detail}")]
    NotReady {
        what: String,
        port: u16,
        timeout: Duration,
        detail: String,
    },
    #[error("{what} did not stop within {timeout:?}; it was killed")]
    StopTimeout { what: String, timeout: Duration },
    #[error("{what} is already running")]
    AlreadyRunning { what: String },
    #[error("directory {dir}: {reason}")]
    BadDir { dir: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("embedded broker: {0}")]
    Embedded(String),
}

type Result<T, E = SuperviseError> = std::result::Result<T, E>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SuperviseError {
    let context = context.into();
    move |source| SuperviseError::Io { context, source }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// A port that was free a moment ago: bind port 0 and release it. Another process may still take
/// it before our service binds, so starts retry with a fresh port on "address in use".
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_err("binding 127.0.0.1:0 to find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("reading the probe socket's address"))?
        .port();
    Ok(port)
}

fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}

fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs to completion capturing output; a non-zero exit becomes [`SuperviseError::Failed`] with
/// stderr (or stdout when stderr is empty, as some PostgreSQL tools report there).
fn run(cmd: &mut Command) -> Result<Output> {
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

fn failed(cmd: &Command, output: &Output) -> SuperviseError {
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
fn log_tail(path: &Path, from: u64) -> String {
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

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// PATH, then the sbin directories a non-login root shell may lack (Debian puts mosquitto there).
fn search_dirs() -> Vec<PathBuf> {
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

fn find_in_path(name: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn searched_path() -> String {
    search_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Creates `dir` if needed and returns its absolute form: commands run with it as working
/// directory, so relative paths would break.
fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    dir.canonicalize()
        .map_err(io_err(format!("resolving {}", dir.display())))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// The unprivileged account PostgreSQL runs as when we are root (initdb and pg_ctl refuse root).
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
}

fn effective_uid() -> Option<u32> {
    // Uid: real effective saved fs
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn lookup_user(name: &str) -> Option<RunAs> {
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

fn pg_run_as() -> Option<RunAs> {
    // Unknown (no /proc): run as ourselves; if that is root, initdb says so plainly.
    if effective_uid() != Some(0) {
        return None;
    }
    lookup_user("postgres").or_else(|| lookup_user("nobody"))
}

/// Where the PostgreSQL server tools are, and where extensions would be.
#[derive(Debug, Clone)]
struct PgBins {
    bindir: PathBuf,
    libdirs: Vec<PathBuf>,
}

impl PgBins {
    /// `pg_config --bindir` if it points at a server install (libpq-dev's pg_config says /usr/bin,
    /// which has no initdb), else the newest /usr/lib/postgresql/*/bin, else initdb from PATH.
    fn locate() -> Result<PgBins> {
        let pg_config = |arg: &str| -> Option<PathBuf> {
            let out = Command::new("pg_config")
                .arg(arg)
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (out.status.success() && !s.is_empty()).then(|| PathBuf::from(s))
        };
        if let Some(bindir) = pg_config("--bindir").filter(|b| is_executable(&b.join("initdb"))) {
            // Only trust pkglibdir from the same pg_config as the binaries: a TimescaleDB built
            // for another major version would stop the server from starting.
            let mut libdirs: Vec<PathBuf> = pg_config("--pkglibdir").into_iter().collect();
            libdirs.push(bindir.join("../lib"));
            return Ok(PgBins { bindir, libdirs });
        }
        if let Some(bindir) = newest_debian_bindir() {
            let libdirs = vec![bindir.join("../lib")];
            return Ok(PgBins { bindir, libdirs });
        }
        if let Some(initdb) = find_in_path("initdb") {
            // Follow symlinks (e.g. /usr/local/bin/initdb) to the real bin dir with its siblings.
            let real = initdb.canonicalize().unwrap_or(initdb);
            if let Some(bindir) = real.parent().map(Path::to_path_buf) {
                let libdirs = vec![bindir.join("../lib")];
                return Ok(PgBins { bindir, libdirs });
            }
        }
        Err(SuperviseError::NotFound {
            binary: "initdb (PostgreSQL server)",
            searched: format!(
                "pg_config --bindir, /usr/lib/postgresql/*/bin, {}",
                searched_path()
            ),
        })
    }

    /// `bindir/name`, else the first `name` on PATH, else the bare name (the spawn error says so).
    fn tool(&self, name: &str) -> PathBuf {
        let in_bindir = self.bindir.join(name);
        if is_executable(&in_bindir) {
            return in_bindir;
        }
        find_in_path(name).unwrap_or_else(|| PathBuf::from(name))
    }

    fn timescaledb(&self) -> bool {
        self.libdirs
            .iter()
            .any(|d| d.join("timescaledb.so").is_file())
    }
}

fn newest_debian_bindir() -> Option<PathBuf> {
    let version_key = |name: &str| -> Option<(u32, u32)> {
        let mut parts = name.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
        Some((major, minor))
    };
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let key = version_key(&e.file_name().to_string_lossy())?;
            let bin = e.path().join("bin");
            is_executable(&bin.join("initdb")).then_some((key, bin))
        })
        .max_by_key(|(key, _)| *key)
        .map(|(_, bin)| bin)
}

/// A private PostgreSQL cluster in a directory it owns: `DIR/data` (the cluster),
/// `DIR/postgres.log`, and the Unix socket in `DIR` itself. Role `visitorflow` (superuser),
/// trust authentication, listening on 127.0.0.1 only. Dropping it stops the server.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    bins: PgBins,
    run_as: Option<RunAs>,
    timescaledb: bool,
    running: bool,
}

impl PgCluster {
    /// Initialises a cluster in `dir` unless one is there already, and starts it on a free port.
    /// A server left running in `dir` by an earlier process that died is stopped first.
    pub fn start(dir: &Path) -> Result<PgCluster> {
        let dir = prepare_dir(dir)?;
        let bins = PgBins::locate()?;
        let run_as = pg_run_as();
        let timescaledb = bins.timescaledb();
        let mut cluster = PgCluster {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            dir,
            port: 0,
            bins,
            run_as,
            timescaledb,
            running: false,
        };
        cluster.hand_dir_to_run_as()?;
        if !cluster.data.join("PG_VERSION").is_file() {
            cluster.initdb()?;
        }
        cluster.stop_stale_server()?;

        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.launch() {
                Ok(()) => return Ok(cluster),
                Err(Launch::PortInUse(e)) => last_err = Some(e),
                Err(Launch::Other(e)) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// `postgres://visitorflow@127.0.0.1:PORT/DATABASE`. `database` must be a plain name (it is
    /// not percent-encoded).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster, its socket and its log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server log (pg_ctl `-l`): look here when a test sees odd database behaviour.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether `timescaledb` is preloaded (its library was found next to the server binaries).
    /// `CREATE EXTENSION timescaledb` is still up to the caller.
    pub fn timescaledb_available(&self) -> bool {
        self.timescaledb
    }

    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Creates database `name` owned by `visitorflow`; an existing one is fine.
    pub fn create_database(&self, name: &str) -> Result<()> {
        let mut cmd = Command::new(self.bins.tool("createdb"));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            PG_USER,
        ])
        .arg("--")
        .arg(name);
        match run(&mut cmd) {
            Ok(_) => Ok(()),
            Err(SuperviseError::Failed { stderr, .. }) if stderr.contains("already exists") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Clean shutdown (`pg_ctl stop -m fast`): sessions are disconnected, a checkpoint is written.
    pub fn stop(&mut self) -> Result<()> {
        self.pg_ctl_stop("fast", PG_READY_TIMEOUT)
    }

    /// Simulated crash (`pg_ctl stop -m immediate`): no checkpoint, so the next start runs crash
    /// recovery from the WAL. Committed transactions must survive it.
    pub fn crash(&mut self) -> Result<()> {
        self.pg_ctl_stop("immediate", PG_READY_TIMEOUT)
    }

    /// Starts the stopped or crashed cluster again on the same port, so existing URLs stay valid.
    pub fn start_again(&mut self) -> Result<()> {
        if self.running {
            return Err(SuperviseError::AlreadyRunning {
                what: format!("PostgreSQL in {}", self.dir.display()),
            });
        }
        let deadline = Instant::now() + REBIND_WINDOW;
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(Launch::PortInUse(e)) if Instant::now() >= deadline => return Err(e),
                Err(Launch::PortInUse(_)) => thread::sleep(Duration::from_millis(200)),
                Err(Launch::Other(e)) => return Err(e),
            }
        }
    }

    /// A command for a server tool, run as the unprivileged owner when we are root.
    fn server_command(&self, tool: &str) -> Command {
        self.as_owner(self.bins.tool(tool))
    }

    fn as_owner(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir).process_group(0);
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    /// [`run`], naming the user in errors: a permission problem is then obvious.
    fn run_server(&self, cmd: &mut Command) -> Result<Output> {
        let Some(user) = &self.run_as else {
            return run(cmd);
        };
        run(cmd).map_err(|e| match e {
            SuperviseError::Failed {
                command,
                status,
                stderr,
            } => SuperviseError::Failed {
                command: format!("{command}` as user `{}", user.name),
                status,
                stderr,
            },
            SuperviseError::Spawn { command, source } => SuperviseError::Spawn {
                command: format!("{command}` as user `{}", user.name),
                source,
            },
            other => other,
        })
    }

    fn hand_dir_to_run_as(&self) -> Result<()> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        std::os::unix::fs::chown(&self.dir, Some(user.uid), Some(user.gid)).map_err(io_err(
            format!("chown {} to {}", self.dir.display(), user.name),
        ))?;
        // The dir may sit under a path the user cannot traverse (e.g. /root/...): say so plainly
        // instead of letting initdb fail with a bare "permission denied".
        let mut probe = self.as_owner("test");
        probe.current_dir("/").arg("-w").arg(&self.dir);
        match probe.status() {
            Ok(status) if status.success() => Ok(()),
            _ => Err(SuperviseError::BadDir {
                dir: self.dir.clone(),
                reason: format!(
                    "PostgreSQL runs as user {} (initdb refuses root) and cannot write here{}; \
                     use a directory whose parents are searchable by that user (e.g. under /tmp)",
                    user.name,
                    unsearchable_by(&existing_dirs(&self.dir, false), user)
                        .map(|why| format!(" ({why})"))
                        .unwrap_or_default()
                ),
            }),
        }
    }

    fn initdb(&self) -> Result<()> {
        let mut cmd = self.server_command("initdb");
        cmd.arg("-D").arg(&self.data).args([
            "--auth=trust",
            "-U",
            PG_USER,
            "--encoding=UTF8",
            "--locale=C",
            // Skipping initdb's fsync saves seconds per throwaway cluster; WAL durability of
            // later commits is unaffected.
            "--no-sync",
        ]);
        self.run_server(&mut cmd)?;
        // Our per-start settings (port, addresses, socket dir, preload) live in a separate file
        // that is rewritten on every start, so postgresql.conf itself is edited only once.
        let conf = self.data.join("postgresql.conf");
        let mut f = OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(io_err(format!("opening {}", conf.display())))?;
        f.write_all(b"\n# Added by visitorflow::supervise\ninclude 'visitorflow.conf'\n")
            .map_err(io_err(format!("writing {}", conf.display())))
    }

    fn write_settings(&self) -> Result<()> {
        let quote = |p: &Path| p.display().to_string().replace('\'', "''");
        let mut s = String::from("# Written by visitorflow::supervise on every start.\n");
        let _ = writeln!(s, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(s, "port = {}", self.port);
        let _ = writeln!(s, "unix_socket_directories = '{}'", quote(&self.dir));
        if self.timescaledb {
            let _ = writeln!(s, "shared_preload_libraries = 'timescaledb'");
            // A private cluster (demo, tests) never phones home; a build without telemetry
            // just ignores the setting.
            let _ = writeln!(s, "timescaledb.telemetry_level = off");
        }
        let path = self.data.join("visitorflow.conf");
        fs::write(&path, s).map_err(io_err(format!("writing {}", path.display())))?;
        if let Some(user) = &self.run_as {
            std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))
                .map_err(io_err(format!("chown {}", path.display())))?;
        }
        Ok(())
    }

    fn launch(&mut self) -> Result<(), Launch> {
        self.write_settings().map_err(Launch::Other)?;
        let log_start = file_len(&self.log);
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", &PG_READY_TIMEOUT.as_secs().to_string()]);
        match self.run_server(&mut cmd) {
            Ok(_) => {}
            Err(SuperviseError::Failed {
                command,
                status,
                stderr,
            }) => {
                let tail = log_tail(&self.log, log_start);
                let err = SuperviseError::Failed {
                    command,
                    status,
                    stderr: format!("{stderr}\n{tail}"),
                };
                return Err(if tail.contains("Address already in use") {
                    Launch::PortInUse(err)
                } else {
                    Launch::Other(err)
                });
            }
            Err(e) => return Err(Launch::Other(e)),
        }
        self.running = true;
        // pg_ctl -w waits for "ready" in postmaster.pid; confirm the TCP listener as tests use it.
        if !accepts_connections(self.port) {
            return Err(Launch::Other(SuperviseError::NotReady {
                what: "PostgreSQL".into(),
                port: self.port,
                timeout: Duration::from_millis(250),
                detail: log_tail(&self.log, log_start),
            }));
        }
        Ok(())
    }

    fn pg_ctl_stop(&mut self, mode: &str, timeout: Duration) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("stop").arg("-D").arg(&self.data).args([
            "-m",
            mode,
            "-w",
            "-t",
            &timeout.as_secs().to_string(),
        ]);
        self.run_server(&mut cmd)?;
        self.running = false;
        Ok(())
    }

    /// A previous demo killed with SIGKILL leaves its postmaster running and the next pg_ctl start
    /// would refuse; stop it so the directory is ours again.
    fn stop_stale_server(&mut self) -> Result<()> {
        if !self.data.join("postmaster.pid").exists() {
            return Ok(());
        }
        let mut status = self.server_command("pg_ctl");
        status.arg("status").arg("-D").arg(&self.data);
        let running = status
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if running {
            tracing::warn!(dir = %self.dir.display(), "stopping a PostgreSQL left running by an earlier process");
            self.running = true;
            self.stop()?;
        }
        Ok(())
    }
}

/// Whether a start attempt failed because the port was taken (worth retrying) or for real.
enum Launch {
    PortInUse(SuperviseError),
    Other(SuperviseError),
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop("fast", Duration::from_secs(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Mosquitto
// ---------------------------------------------------------------------------------------------

fn find_mosquitto() -> Option<PathBuf> {
    find_in_path("mosquitto")
}

/// Whether a `mosquitto` binary is installed (PATH or the sbin directories).
pub fn mosquitto_available() -> bool {
    find_mosquitto().is_some()
}

/// A private Mosquitto broker: `DIR/mosquitto.conf`, `DIR/mosquitto.db` (persistence),
/// `DIR/mosquitto.log`, listening on a free port of 127.0.0.1 only. Dropping it kills it.
#[derive(Debug)]
pub struct Mosquitto {
    binary: PathBuf,
    version: String,
    dir: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    /// Writes the configuration and starts the broker on a free port.
    pub fn start(dir: &Path) -> Result<Mosquitto> {
        let binary = find_mosquitto().ok_or_else(|| SuperviseError::NotFound {
            binary: "mosquitto",
            searched: searched_path(),
        })?;
        let dir = prepare_dir(dir)?;
        // Mosquitto's config parser splits on whitespace, so such paths cannot be expressed.
        if dir.to_string_lossy().contains(char::is_whitespace) {
            return Err(SuperviseError::BadDir {
                dir,
                reason: "Mosquitto cannot use a path containing whitespace".into(),
            });
        }
        stop_stale_mosquitto(&dir)?;
        let version = mosquitto_version(&binary);
        let mut broker = Mosquitto {
            binary,
            version,
            conf: dir.join("mosquitto.conf"),
            log: dir.join("mosquitto.log"),
            stderr: dir.join("mosquitto.stderr"),
            dir,
            port: 0,
            child: None,
        };
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            broker.port = free_port()?;
            broker.write_config()?;
            match broker.launch() {
                Ok(()) => return Ok(broker),
                Err(Launch::PortInUse(e)) => last_err = Some(e),
                Err(Launch::Other(e)) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// E.g. "2.0.11", from `mosquitto -h`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Graceful stop: SIGTERM, after which Mosquitto writes its persistence file (sessions,
    /// subscriptions, queued messages) and exits.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = fs::remove_file(self.dir.join(MOSQUITTO_PID_FILE));
        if let Err(e) = send_signal(child.id(), "TERM") {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        let deadline = Instant::now() + MOSQUITTO_STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SuperviseError::StopTimeout {
                        what: format!("mosquitto on port {}", self.port),
                        timeout: MOSQUITTO_STOP_TIMEOUT,
                    });
                }
            }
        }
    }

    /// Crash: SIGKILL. Everything since the last persistence save (start-up, graceful stop, or
    /// the autosave interval) is lost, as in a real power cut.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = fs::remove_file(self.dir.join(MOSQUITTO_PID_FILE));
        child.kill().map_err(io_err("killing mosquitto"))?;
        child.wait().map_err(io_err("waiting for mosquitto"))?;
        Ok(())
    }

    /// Starts the stopped or killed broker again with the same directory and port. The bind is
    /// retried for a few seconds in case the old listening socket is still being torn down.
    pub fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err(SuperviseError::AlreadyRunning {
                what: format!("mosquitto on port {}", self.port),
            });
        }
        let deadline = Instant::now() + REBIND_WINDOW;
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(Launch::PortInUse(e)) if Instant::now() >= deadline => return Err(e),
                Err(Launch::PortInUse(_)) => thread::sleep(Duration::from_millis(200)),
                Err(Launch::Other(e)) => return Err(e),
            }
        }
    }

    fn write_config(&self) -> Result<()> {
        let d = self.dir.display();
        let conf = format!(
            "# Written by visitorflow::supervise: a private broker for the demo and the tests.
# When started as root Mosquitto would switch to user `mosquitto`, which cannot write to a
# directory owned by root; this broker is private and listens on loopback only, so stay root.
# (Ignored when not started as root.)
user root
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {d}/
persistence_file mosquitto.db
# The default of 20 would throttle a subscriber that acknowledges only after its database commit;
# 30000 is six 5,000-message batches: one committing, one being applied, the rest on the wire.
max_inflight_messages 30000
# The default of 1000 silently drops a persistent session's backlog beyond it.
max_queued_messages 2000000
max_queued_bytes 0
set_tcp_nodelay true
log_dest file {d}/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
",
            port = self.port
        );
        fs::write(&self.conf, conf).map_err(io_err(format!("writing {}", self.conf.display())))
    }

    fn launch(&mut self) -> Result<(), Launch> {
        let stderr = File::create(&self.stderr)
            .map_err(io_err(format!("creating {}", self.stderr.display())))
            .map_err(Launch::Other)?;
        let log_start = file_len(&self.log);
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c")
            .arg(&self.conf)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: nobody reads a pipe while the broker runs, and a full pipe
            // would block it.
            .stderr(stderr)
            // Its own process group: a Ctrl-C at the terminal reaches the demo, which then stops
            // the broker in order, instead of killing the broker under the running service.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|source| SuperviseError::Spawn {
                command: describe_command(&cmd),
                source,
            })
            .map_err(Launch::Other)?;
        // Recorded at once, so that a later start can stop it should our process die without
        // stopping it, even while it is still starting (see `stop_stale_mosquitto`).
        let pid_file = self.dir.join(MOSQUITTO_PID_FILE);
        if let Err(e) = fs::write(&pid_file, format!("{}\n", child.id())) {
            let _ = child.kill();
            let _ = child.wait();
            let context = format!("writing {}", pid_file.display());
            return Err(Launch::Other(io_err(context)(e)));
        }

        let deadline = Instant::now() + BROKER_READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let stderr = fs::read_to_string(&self.stderr).unwrap_or_default();
                let detail = format!(
                    "`{}`: {}\n{}",
                    describe_command(&cmd),
                    stderr.trim(),
                    log_tail(&self.log, log_start)
                );
                let in_use = detail.contains("Address already in use");
                let err = SuperviseError::Exited {
                    what: "mosquitto".into(),
                    status,
                    detail,
                };
                return Err(if in_use {
                    Launch::PortInUse(err)
                } else {
                    Launch::Other(err)
                });
            }
            // "running" is logged once every listener is open; checking it as well keeps a
            // foreign process that grabbed the port from passing for our broker.
            if log_tail(&self.log, log_start).contains(" running") && accepts_connections(self.port)
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Launch::Other(SuperviseError::NotReady {
                    what: "mosquitto".into(),
                    port: self.port,
                    timeout: BROKER_READY_TIMEOUT,
                    detail: log_tail(&self.log, log_start),
                }));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Where [`Mosquitto`] records its broker's pid while it runs.
const MOSQUITTO_PID_FILE: &str = "mosquitto.pid";

/// A broker runs in its own process group, so it outlives a process killed with SIGKILL (a demo
/// or a test), keeping its port and writing to its files. A start in the same directory stops
/// such a broker, found by the pid it recorded and its config path on the command line.
pub fn stop_stale_mosquitto(dir: &Path) -> Result<()> {
    let Ok(dir) = dir.canonicalize() else {
        return Ok(());
    };
    let pid_file = dir.join(MOSQUITTO_PID_FILE);
    let Ok(text) = fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let conf = dir.join("mosquitto.conf");
    if let Ok(pid) = text.trim().parse::<u32>()
        && process_has_arg(pid, conf.as_os_str())
    {
        tracing::warn!(pid, dir = %dir.display(), "stopping a mosquitto left running by an earlier process");
        stop_leftover(pid, conf.as_os_str(), "mosquitto", Duration::from_secs(5))?;
    }
    fs::remove_file(&pid_file).map_err(io_err(format!("removing {}", pid_file.display())))
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// "mosquitto version 2.0.11" on the first line of `mosquitto -h`.
fn mosquitto_version(binary: &Path) -> String {
    Command::new(binary)
        .arg("-h")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let first = text.lines().next()?.to_owned();
            first
                .strip_prefix("mosquitto version ")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "(unknown version)".into())
}

// ---------------------------------------------------------------------------------------------
// Embedded broker
// ---------------------------------------------------------------------------------------------

/// An in-process `rumqttd` broker for the demo when Mosquitto is not installed. It keeps nothing
/// on disk (sessions and queues are lost with the process) and rumqttd 0.20 has no shutdown,
/// so it runs until the process exits; fault tests need [`Mosquitto`].
#[derive(Debug)]
pub struct EmbeddedBroker {
    port: u16,
}

impl EmbeddedBroker {
    pub fn start() -> Result<EmbeddedBroker> {
        let port = free_port()?;
        let config = embedded_config(port);
        thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                // `start` blocks for the broker's lifetime; it returns only if its servers fail.
                if let Err(e) = rumqttd::Broker::new(config).start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(io_err("spawning the embedded broker thread"))?;
        let deadline = Instant::now() + BROKER_READY_TIMEOUT;
        while !accepts_connections(port) {
            if Instant::now() >= deadline {
                return Err(SuperviseError::Embedded(format!(
                    "rumqttd did not accept connections on 127.0.0.1:{port} within \
                     {BROKER_READY_TIMEOUT:?}"
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(EmbeddedBroker { port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

fn embedded_config(port: u16) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 10_000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "v4-1".into(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    // Values from rumqttd's sample rumqttd.toml; a zeroed RouterConfig would not route.
    let router = rumqttd::RouterConfig {
        max_connections: 10_010,
        max_outgoing_packet_count: 200,
        max_segment_size: 100 * 1024 * 1024,
        max_segment_count: 10,
        ..Default::default()
    };
    rumqttd::Config {
        router,
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Either broker
// ---------------------------------------------------------------------------------------------

/// The MQTT broker the demo runs: Mosquitto when installed, else the embedded one.
#[derive(Debug)]
pub enum Broker {
    Mosquitto(Mosquitto),
    Embedded(EmbeddedBroker),
}

impl Broker {
    /// Prefers Mosquitto (in `dir`); falls back to the embedded broker only when Mosquitto is not
    /// installed. An installed Mosquitto that fails to start is an error, not a fallback.
    pub fn start(dir: &Path) -> Result<Broker> {
        if mosquitto_available() {
            Mosquitto::start(dir).map(Broker::Mosquitto)
        } else {
            tracing::info!("mosquitto not installed; using the embedded rumqttd broker");
            EmbeddedBroker::start().map(Broker::Embedded)
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Broker::Mosquitto(m) => m.port(),
            Broker::Embedded(e) => e.port(),
        }
    }

    /// "mosquitto 2.0.11 (pid 1234)" or "embedded rumqttd".
    pub fn describe(&self) -> String {
        match self {
            Broker::Mosquitto(m) => match m.pid() {
                Some(pid) => format!("mosquitto {} (pid {pid})", m.version()),
                None => format!("mosquitto {} (stopped)", m.version()),
            },
            Broker::Embedded(_) => "embedded rumqttd".into(),
        }
    }
}
