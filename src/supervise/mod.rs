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
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod broker;
mod command;
mod conf;
mod mosquitto;
mod pgdir;
mod ports;
mod postgres;
mod process;

pub use broker::{Broker, EmbeddedBroker};
use command::*;
pub use mosquitto::{Mosquitto, mosquitto_available, stop_stale_mosquitto};
use ports::*;
pub use postgres::PgCluster;
use postgres::*;

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

/// Whether a start attempt failed because the port was taken (worth retrying) or for real.
enum Launch {
    PortInUse(SuperviseError),
    Other(SuperviseError),
}

/// Launches again on the same port while the old socket lingers (up to [`REBIND_WINDOW`]).
fn launch_on_same_port(mut launch: impl FnMut() -> Result<(), Launch>) -> Result<()> {
    let deadline = Instant::now() + REBIND_WINDOW;
    loop {
        match launch() {
            Ok(()) => return Ok(()),
            Err(Launch::PortInUse(e)) if Instant::now() >= deadline => return Err(e),
            Err(Launch::PortInUse(_)) => thread::sleep(Duration::from_millis(200)),
            Err(Launch::Other(e)) => return Err(e),
        }
    }
}
