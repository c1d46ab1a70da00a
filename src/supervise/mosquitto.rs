//! [`Mosquitto`]: a private broker with persistence, configured for large session backlogs.

use super::*;

pub(super) fn find_mosquitto() -> Option<PathBuf> {
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
        launch_on_same_port(|| self.launch())
    }

    fn write_config(&self) -> Result<()> {
        let conf = conf::mosquitto_conf(self.port, &self.dir);
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
pub(super) const MOSQUITTO_PID_FILE: &str = "mosquitto.pid";

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
pub(super) fn mosquitto_version(binary: &Path) -> String {
    Command::new(binary)
        .arg("-h")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|out| conf::mosquitto_version(&String::from_utf8_lossy(&out.stdout)))
        .unwrap_or_else(|| "(unknown version)".into())
}
