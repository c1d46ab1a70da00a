//! `visitorflow demo`: the main job on an embedded default. Starts whatever is missing on this
//! machine (a private PostgreSQL cluster from the local binaries; Mosquitto, or an embedded broker
//! when Mosquitto is not installed), runs the service on the county registry, and drives it with
//! the traffic simulator. Everything it started stops when the demo stops; what a demo killed
//! outright leaves running (its own process groups keep PostgreSQL and Mosquitto alive) is stopped
//! by the next start in the same directory.
//!
//! It runs from any working directory, as root too: PostgreSQL then runs as user `postgres`, and
//! when that user cannot reach `DIR/postgres` (a checkout in root's mode-700 home) the cluster
//! goes to a private directory under the temporary directory instead, named in the banner.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::{self, Trigger};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::run::{RunError, Service};
use crate::sim::{self, Backfill, SimStats, SimulateOptions};
use crate::supervise::{self, Broker, PgCluster, SuperviseError};

/// Where the demo serves unless told otherwise (and that port is free).
pub const DEFAULT_HTTP: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("demo directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error(
        "another demo (pid {pid}) is running from {}; stop it first or use another --dir",
        dir.display()
    )]
    Busy { pid: u32, dir: PathBuf },
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the private PostgreSQL cluster and broker keep their files (kept between runs).
    pub dir: PathBuf,
    /// Where the cluster lives, used as given (an unreachable one is an error). Default
    /// `dir/postgres`, or a private temporary directory when PostgreSQL's user cannot reach that.
    pub data_dir: Option<PathBuf>,
    /// Where the API listens, used as given; default [`DEFAULT_HTTP`], or a free port when taken.
    pub http: Option<SocketAddr>,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Local day to simulate (default today); the simulation starts at 07:00 that day.
    pub day: Option<NaiveDate>,
    pub seed: u64,
    /// The admin token to configure when the config has no `[[tokens]]` (default: a random one).
    pub token: Option<String>,
    /// Days of history published before the day (hourly reports), for the day-ahead forecast;
    /// with history, tomorrow is a simulated holiday (see [`simulated_holiday`]).
    pub history_days: u32,
}

/// A running demo: the service plus whatever it started.
pub struct Demo {
    pub service: Service,
    pub started: Vec<String>,
    /// Choices made for the user that they should know about (where the data went, the port).
    pub notes: Vec<String>,
    /// The admin token the demo configured, to print (none when the config brought its own).
    pub admin_token: Option<String>,
    sim_stop: Trigger,
    sim: JoinHandle<Result<SimStats, sim::SimError>>,
    // Kept for their Drop, which stops them: the service first (see `stop`), then these.
    _pg: Option<PgCluster>,
    _broker: Option<Broker>,
    // Dropped last: the directory is free again only once everything above has stopped.
    _lock: DirLock,
}

impl Demo {
    pub async fn start(mut cfg: Config, opts: DemoOptions) -> Result<Demo, DemoError> {
        std::fs::create_dir_all(&opts.dir).map_err(|e| DemoError::Dir(opts.dir.clone(), e))?;
        let dir =
            std::fs::canonicalize(&opts.dir).map_err(|e| DemoError::Dir(opts.dir.clone(), e))?;
        let lock = DirLock::take(&dir)?;
        let mut started = Vec::new();
        let mut notes = Vec::new();
        let pg = if cfg.database.url.is_empty() {
            let pg_dir = match &opts.data_dir {
                Some(d) => d.clone(),
                None => {
                    let d = dir.join("postgres");
                    match supervise::pg_dir_unreachable(&d) {
                        None => d,
                        Some(why) => {
                            let private = supervise::private_pg_dir(&dir)?;
                            notes.push(format!(
                                "PostgreSQL keeps its data in {}, not in {}: {why}",
                                private.display(),
                                d.display()
                            ));
                            private
                        }
                    }
                }
            };
            let pg = PgCluster::start(&pg_dir)?;
            // Each demo simulates its day afresh: yesterday's demo data would make today's
            // reports look like replays (same devices, seqs and times) and they would be refused.
            fresh_database(&pg, "visitorflow").await?;
            cfg.database.url = pg.url("visitorflow");
            started.push(format!(
                "PostgreSQL on 127.0.0.1:{} (data in {})",
                pg.port(),
                pg.dir().display()
            ));
            Some(pg)
        } else {
            None
        };
        let broker = if broker_reachable(&cfg).await {
            None
        } else {
            let mqtt_dir = dir.join("mqtt");
            // A broker left by a killed demo first (it would rewrite its files on the way out),
            // then likewise the persisted session from an earlier demo.
            supervise::stop_stale_mosquitto(&mqtt_dir)?;
            if mqtt_dir.exists() {
                std::fs::remove_dir_all(&mqtt_dir)
                    .map_err(|e| DemoError::Dir(mqtt_dir.clone(), e))?;
            }
            let b = Broker::start(&mqtt_dir)?;
            cfg.mqtt.host = "127.0.0.1".into();
            cfg.mqtt.port = b.port();
            started.push(format!("{} on 127.0.0.1:{}", b.describe(), b.port()));
            Some(b)
        };
        let (listen, fell_back) = http_listen(opts.http, port_free(DEFAULT_HTTP));
        cfg.http.listen = listen;
        // The simulated clock runs ahead of the wall clock; the demo accepts its timestamps, and
        // those of a past day it is asked to simulate.
        cfg.ingest.max_future_skew_s = 7 * 24 * 3600;
        let tz: chrono_tz::Tz = cfg
            .county
            .time_zone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai);
        let today = Utc::now().with_timezone(&tz).date_naive();
        let day = opts.day.unwrap_or(today);
        let behind = (today - day).num_days();
        if behind > 0 {
            cfg.ingest.max_age_days = cfg.ingest.max_age_days.max(behind + 2);
        }
        // History for the forecast, and tomorrow a simulated holiday whose evening-before
        // warning the demo shows at once (only when simulating today: the warning follows the
        // wall clock).
        let history = (day == today && opts.history_days > 0).then_some(opts.history_days);
        if let Some(days) = history {
            cfg.ingest.max_age_days = cfg.ingest.max_age_days.max(i64::from(days) + 2);
            if let Some(note) = simulated_holiday(&mut cfg, &dir, today)? {
                notes.push(note);
            }
        }
        let calendar = Arc::new(crate::run::calendar(&cfg.calendar)?);
        let admin_token = if cfg.tokens.is_empty() {
            let token = opts.token.clone().unwrap_or_else(|| {
                crate::api::auth::generate("demo-admin", crate::config::Role::Admin, &[]).0
            });
            cfg.tokens.push(crate::config::TokenConfig {
                id: "demo-admin".into(),
                role: crate::config::Role::Admin,
                spaces: Vec::new(),
                sha256: crate::api::auth::hex(&crate::api::auth::sha256(&token)),
            });
            Some(token)
        } else {
            None
        };
        let service = Service::start(cfg.clone()).await?;
        if fell_back {
            notes.push(format!(
                "{DEFAULT_HTTP} is in use, so the API listens on {} (--http chooses)",
                service.http_addr
            ));
        }

        let start: DateTime<Utc> = tz
            .from_local_datetime(
                &day.and_time(NaiveTime::from_hms_opt(7, 0, 0).unwrap_or_default()),
            )
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let (sim_stop, stop_rx) = shutdown::channel();
        let filled = Arc::new(tokio::sync::Notify::new());
        let registry = service.registry.clone();
        let mqtt = cfg.mqtt.clone();
        // The service checked `[admission]` on start; the ticket office sells the same slots.
        // Only today's: slots run on the wall clock, so another day's bookings would all be
        // past (or future) slots to the service.
        let reservations = (day == today)
            .then(|| crate::admission::Reservations::build(&cfg.admission, &registry).ok())
            .flatten();
        if day != today && !cfg.admission.spaces.is_empty() {
            notes.push(format!(
                "timed entry is not simulated for {day}: slots follow the wall clock, so only today's are sold"
            ));
        }
        let sim_opts = SimulateOptions {
            seed: opts.seed,
            start: Some(start),
            speed: opts.speed,
            tick: Duration::from_secs(60),
            shutdown: Some(stop_rx),
            reservations: reservations.map(std::sync::Arc::new),
            calendar: Some(Arc::clone(&calendar)),
            backfill: history.map(|days| Backfill {
                days,
                tick: Duration::from_secs(3600),
            }),
            filled: Some(Arc::clone(&filled)),
            ..SimulateOptions::default()
        };
        if let Some(days) = history {
            started.push(format!(
                "history: {days} simulated days before today, then a forecast run"
            ));
            tokio::spawn(forecast_after_history(
                Arc::clone(&service.forecaster),
                Arc::clone(&filled),
                start,
            ));
        }
        let sim = tokio::spawn(async move { sim::simulate(sim_opts, &registry, &mqtt).await });
        started.push(format!(
            "simulator: {day} from 07:00 local at {}x speed",
            opts.speed
        ));
        Ok(Demo {
            service,
            started,
            notes,
            admin_token,
            sim_stop,
            sim,
            _pg: pg,
            _broker: broker,
            _lock: lock,
        })
    }

    /// Stops the simulator and the service, then (on drop) the broker and database it started.
    pub async fn stop(mut self) -> Option<SimStats> {
        self.sim_stop.trigger();
        // The simulator finishes its tick and waits for acknowledgements; a broker that is
        // already gone must not hold the demo open.
        let stats = match tokio::time::timeout(Duration::from_secs(15), &mut self.sim).await {
            Ok(Ok(Ok(s))) => Some(s),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "simulator failed");
                None
            }
            Ok(Err(_)) => None,
            Err(_) => {
                self.sim.abort();
                None
            }
        };
        self.service.shutdown().await;
        stats
    }
}

/// Makes tomorrow a one-day public holiday, 演示假日（模拟）, unless it is one already: a holiday
/// file of the configured holidays plus that day, written to `dir`. The forecast has not seen
/// this holiday before, so it applies what it learned from the other holidays in the history
/// (National Day lies within the 70 days before a December demo); the warning's lead is widened
/// so it is due now rather than at 18:00. The note says so.
fn simulated_holiday(
    cfg: &mut Config,
    dir: &std::path::Path,
    today: NaiveDate,
) -> Result<Option<String>, DemoError> {
    let tomorrow = today + chrono::TimeDelta::days(1);
    let mut text = match &cfg.calendar.holidays_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| DemoError::Dir(path.into(), e))?,
        None => crate::calendar::EMBEDDED_HOLIDAYS.to_owned(),
    };
    let calendar =
        crate::calendar::Calendar::build(&cfg.calendar, Some(&text)).map_err(RunError::from)?;
    if calendar.kind(tomorrow) != crate::calendar::DayKind::Holiday {
        if calendar.coverage(tomorrow.year()).is_none() {
            text.push_str(&format!("\n[[years]]\nyear = {}\n", tomorrow.year()));
        }
        text.push_str(&format!(
            "\n[[holidays]]\nkey = \"demo_holiday\"\nname = \"演示假日（模拟）\"\nfrom = {tomorrow}\nto = {tomorrow}\n"
        ));
        let path = dir.join("holidays-demo.toml");
        std::fs::write(&path, text).map_err(|e| DemoError::Dir(path.clone(), e))?;
        cfg.calendar.holidays_file = Some(path.to_string_lossy().into_owned());
    }
    // Tomorrow's warning due from now on, not only from 18:00.
    cfg.forecast.warn_lead_h = cfg.forecast.warn_lead_h.max(48);
    Ok(Some(format!(
        "{tomorrow} is a simulated public holiday in this demo: its forecast and the evening-before warning (forecast.*) show now"
    )))
}

/// Once the history is published and stored, a forecast run (the nightly one at start-up came
/// before any history).
async fn forecast_after_history(
    forecaster: Arc<crate::forecasting::Forecaster>,
    filled: Arc<tokio::sync::Notify>,
    start: DateTime<Utc>,
) {
    filled.notified().await;
    let county = forecaster
        .registry
        .spaces
        .iter()
        .find(|s| s.parent.is_none())
        .map(|s| s.id.to_string());
    for _ in 0..120 {
        let stored = match &county {
            Some(id) => crate::store::series(
                &forecaster.pool,
                id,
                start - chrono::TimeDelta::hours(2),
                start,
                crate::store::Step::Hour,
                2,
            )
            .await
            .is_ok_and(|p| !p.is_empty()),
            None => true,
        };
        if stored {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Err(e) = forecaster
        .once(
            crate::forecasting::Trigger::Manual,
            Some("demo"),
            Utc::now(),
        )
        .await
    {
        tracing::warn!(error = %e, "demo forecast after the history failed");
    }
}

async fn fresh_database(pg: &PgCluster, name: &str) -> Result<(), DemoError> {
    let admin = crate::store::connect(&pg.url("postgres"))
        .await
        .map_err(RunError::from)?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .map_err(|e| RunError::from(crate::store::StoreError::from(e)))?;
    pg.create_database(name)?;
    Ok(())
}

/// A broker configured explicitly (not the default localhost one) is used as it is.
async fn broker_reachable(cfg: &Config) -> bool {
    let addr = (cfg.mqtt.host.as_str(), cfg.mqtt.port);
    let is_default = cfg.mqtt.host == "127.0.0.1" || cfg.mqtt.host == "localhost";
    if is_default {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// The address to serve on and whether it is a fallback: one given is used as it is (a taken one
/// fails loudly); the default only when `default_free`, else any free port of 127.0.0.1.
fn http_listen(given: Option<SocketAddr>, default_free: bool) -> (SocketAddr, bool) {
    match given {
        Some(addr) => (addr, false),
        None if default_free => (DEFAULT_HTTP, false),
        None => ((Ipv4Addr::LOCALHOST, 0).into(), true),
    }
}

/// Free a moment ago; the service binds it right after, and a lost race fails loudly.
fn port_free(addr: SocketAddr) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// `DIR/demo.pid`: one demo per directory, since a start stops whatever servers it finds left
/// in the directory, and another live demo's are not leftovers.
struct DirLock {
    path: PathBuf,
}

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock, DemoError> {
        let path = dir.join("demo.pid");
        let me = std::process::id();
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pid) = text.trim().parse::<u32>()
            && pid != me
            && supervise::process_has_arg(pid, "demo".as_ref())
        {
            return Err(DemoError::Busy {
                pid,
                dir: dir.to_path_buf(),
            });
        }
        std::fs::write(&path, format!("{me}\n")).map_err(|e| DemoError::Dir(path.clone(), e))?;
        Ok(DirLock { path })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_address_given_is_kept_default_falls_back_when_taken() {
        let given: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(http_listen(Some(given), true), (given, false));
        assert_eq!(http_listen(Some(given), false), (given, false));
        assert_eq!(http_listen(None, true), (DEFAULT_HTTP, false));
        let (addr, fell_back) = http_listen(None, false);
        assert!(fell_back);
        assert_eq!(addr, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
    }
}
