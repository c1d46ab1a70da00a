//! [`PgCluster`]: a throwaway PostgreSQL cluster in one directory, its binaries located, started,
//! crashed, restarted and stopped.

use super::*;

pub(super) fn pg_run_as() -> Option<RunAs> {
    // Unknown (no /proc): run as ourselves; if that is root, initdb says so plainly.
    if effective_uid() != Some(0) {
        return None;
    }
    lookup_user("postgres").or_else(|| lookup_user("nobody"))
}

/// Where the PostgreSQL server tools are, and where extensions would be.
#[derive(Debug, Clone)]
pub(super) struct PgBins {
    pub(super) bindir: PathBuf,
    pub(super) libdirs: Vec<PathBuf>,
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

pub(super) fn newest_debian_bindir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let key = conf::pg_version_key(&e.file_name().to_string_lossy())?;
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
    /// Settings appended to the per-start file (replication: a synchronous standby's name).
    extra: Vec<String>,
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
            extra: Vec::new(),
        };
        cluster.hand_dir_to_run_as()?;
        if !cluster.data.join("PG_VERSION").is_file() {
            cluster.initdb()?;
        }
        cluster.stop_stale_server()?;
        cluster.launch_on_free_port()
    }

    fn launch_on_free_port(mut self) -> Result<PgCluster> {
        let cluster = &mut self;
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.launch() {
                Ok(()) => return Ok(self),
                Err(Launch::PortInUse(e)) => last_err = Some(e),
                Err(Launch::Other(e)) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// A streaming-replication standby of `primary` in `dir`, copied with `pg_basebackup -R`
    /// and started on a free port. `synchronous`: the primary then waits for it on every commit
    /// (`synchronous_standby_names = '*'`, `synchronous_commit = on`, its default), so whatever
    /// the primary acknowledged is on the standby too.
    pub fn standby_of(primary: &mut PgCluster, dir: &Path, synchronous: bool) -> Result<PgCluster> {
        let dir = prepare_dir(dir)?;
        let standby = PgCluster {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            dir,
            port: 0,
            bins: primary.bins.clone(),
            run_as: primary.run_as.clone(),
            timescaledb: primary.timescaledb,
            running: false,
            extra: Vec::new(),
        };
        standby.hand_dir_to_run_as()?;
        let mut cmd = standby.server_command("pg_basebackup");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            PG_USER,
        ])
        .arg("-D")
        .arg(&standby.data)
        .args(["-R", "-X", "stream", "--no-sync", "-c", "fast"]);
        standby.run_server(&mut cmd)?;
        let standby = standby.launch_on_free_port()?;
        if synchronous {
            primary.extra = vec!["synchronous_standby_names = '*'".into()];
            primary.write_settings()?;
            let mut reload = primary.server_command("pg_ctl");
            reload.arg("reload").arg("-D").arg(&primary.data);
            primary.run_server(&mut reload)?;
        }
        Ok(standby)
    }

    /// Promotes a standby to primary (`pg_ctl promote -w`): it then accepts writes.
    pub fn promote(&mut self) -> Result<()> {
        let mut cmd = self.server_command("pg_ctl");
        cmd.arg("promote").arg("-D").arg(&self.data).args([
            "-w",
            "-t",
            &PG_READY_TIMEOUT.as_secs().to_string(),
        ]);
        self.run_server(&mut cmd)?;
        Ok(())
    }

    /// SIGKILL to the postmaster: no shutdown of any kind, as when its machine dies. Its
    /// backends notice and exit; the cluster is not started again (a failed-over primary would
    /// diverge from the promoted standby).
    pub fn kill(&mut self) -> Result<()> {
        let pid_file = self.data.join("postmaster.pid");
        let pid = fs::read_to_string(&pid_file)
            .map_err(io_err(format!("reading {}", pid_file.display())))?
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
            .ok_or_else(|| SuperviseError::BadDir {
                dir: self.data.clone(),
                reason: "postmaster.pid holds no pid".into(),
            })?;
        let mut cmd = Command::new("kill");
        cmd.args(["-KILL", &pid.to_string()]);
        run(&mut cmd)?;
        // Backends exit once they see their postmaster gone; until then the port may answer.
        let deadline = std::time::Instant::now() + PG_READY_TIMEOUT;
        while accepts_connections(self.port) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.running = false;
        Ok(())
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
        launch_on_same_port(|| self.launch())
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
        let mut s = conf::postgres_settings(self.port, &self.dir, self.timescaledb);
        for line in &self.extra {
            s.push_str(line);
            s.push('\n');
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

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop("fast", Duration::from_secs(10));
    }
}
