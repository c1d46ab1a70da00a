//! The `visitorflow` command: run the service, check a config, run the demo, simulate or replay.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use visitorflow::api::auth::generate;
use visitorflow::config::{Config, Role};
use visitorflow::demo::{Demo, DemoOptions};
use visitorflow::run::Service;
use visitorflow::sim::{self, ReplayOptions, SimulateOptions};
use visitorflow::telemetry;

/// mimalloc returns freed memory to the system: with glibc's allocator the start-up's transient
/// peak (parsing a 100,000-device registry: ~150 MiB) stayed resident for the life of the process
/// (docs/performance.md, footprint). Built without transparent huge pages (`no_thp`): asking for
/// them made every touched 2 MiB of its heap resident (229 → 193 MiB under load with 100,000
/// devices).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Live visitor-flow monitoring for a county's scenic areas"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ingester and the API against the configured broker and database.
    Run {
        /// Config file (TOML); the embedded county default when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file and list every problem with its location.
    CheckConfig {
        /// Config file (TOML); the embedded county default when omitted.
        file: Option<PathBuf>,
    },
    /// The main job on an embedded default: starts a private PostgreSQL and broker when none is
    /// configured, runs the service and drives it with simulated county traffic.
    Demo {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where the demo keeps its broker files, and its database unless `--data-dir` says
        /// otherwise or PostgreSQL's user cannot reach it.
        #[arg(long, default_value = ".demo")]
        dir: PathBuf,
        /// Where the PostgreSQL cluster lives (default DIR/postgres, or a private temporary
        /// directory when PostgreSQL's user cannot reach that); an unreachable one is an error.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where the API listens [default: 127.0.0.1:8080, or a free port when that is taken].
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
        /// Simulated seconds per real second (60: a day in 24 minutes).
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// Local day to simulate, e.g. 2026-10-02 for a Golden Week crowd (default: today).
        #[arg(long)]
        day: Option<chrono::NaiveDate>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Admin token to configure when the config has none (default: a random one, printed).
        #[arg(long, env = "VISITORFLOW_DEMO_TOKEN")]
        token: Option<String>,
        /// Days of simulated history published first, for the day-ahead forecast (0: none).
        /// With history, tomorrow is a simulated holiday and its evening-before warning fires.
        #[arg(long, default_value_t = 70)]
        history_days: u32,
    },
    /// Make an API token: prints the token (for its holder) and the `[[tokens]]` entry holding
    /// only its SHA-256 (for the config).
    Token {
        /// Who holds it: recorded as the actor of everything done with it.
        #[arg(long)]
        id: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Viewer)]
        role: RoleArg,
        /// Spaces an operator may change (comma-separated; a scenic area covers its parts).
        #[arg(long, value_delimiter = ',')]
        spaces: Vec<String>,
    },
    /// Make a device's secret for pushing counts over HTTP (`POST /ingest/{device}`): prints the
    /// secret (for the camera's push settings) and the registry line holding only its SHA-256.
    DeviceSecret {
        /// The device's id in the registry (also the HTTP Basic user name).
        #[arg(long)]
        device: String,
    },
    /// Publish simulated county traffic to the configured broker.
    Simulate {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Simulated seconds per real second.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Simulated start (RFC 3339); default now.
        #[arg(long)]
        start: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Simulated minutes to run; default until Ctrl-C.
        #[arg(long)]
        minutes: Option<u64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Demand multiplier (1 = the calendar).
        #[arg(long, default_value_t = 1.0)]
        intensity: f64,
    },
    /// Publish a real people-counting dataset (CalIt2 or Dublin CSV) as count reports.
    Replay {
        file: PathBuf,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Device to publish as (CalIt2), or the first of the devices (Dublin).
        #[arg(long)]
        device: Option<String>,
        /// Devices for the Dublin counters, in order (comma-separated).
        #[arg(long, value_delimiter = ',')]
        devices: Vec<String>,
        /// Shift timestamps so the dataset ends now (otherwise its own 2005/2023 times are sent).
        #[arg(long)]
        rebase_to_now: bool,
        /// Reports per second (default: as fast as the broker acknowledges).
        #[arg(long)]
        rate: Option<u32>,
        /// Reports per MQTT message (JSON array when > 1).
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Viewer,
    Ticketing,
    Operator,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Ticketing => Role::Ticketing,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

fn main() -> ExitCode {
    telemetry::init_logging();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run { config } => {
            let cfg = Config::load(config.as_deref()).context("loading config")?;
            let service = Service::start(cfg).await.context("starting the service")?;
            wait_for_signal().await;
            service.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => Ok(check_config(file)),
        Command::Token { id, role, spaces } => {
            let (token, entry) = generate(&id, role.into(), &spaces);
            println!(
                "# The token, for {id:?} only (it is stored nowhere; a lost token is replaced):"
            );
            println!("{token}");
            println!("# The entry for the config (only the token's SHA-256):");
            print!("{entry}");
            Ok(ExitCode::SUCCESS)
        }
        Command::DeviceSecret { device } => {
            let (secret, line) = visitorflow::api::auth::device_secret();
            println!("# The secret, for device {device:?}'s push settings (user name {device:?}):");
            println!("{secret}");
            println!("# The line for its [[devices]] entry (only the secret's SHA-256):");
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            config,
            dir,
            data_dir,
            http,
            speed,
            day,
            seed,
            token,
            history_days,
        } => {
            let cfg = Config::load(config.as_deref()).context("loading config")?;
            // Listening from the start: a Ctrl-C during start-up drops the half-started demo,
            // which stops what it had started, instead of killing the process under it.
            let mut signal = tokio::spawn(wait_for_signal());
            let opts = DemoOptions {
                dir,
                data_dir,
                http,
                speed,
                day,
                seed,
                token,
                history_days,
            };
            let demo = tokio::select! {
                demo = Demo::start(cfg, opts) => demo.context("starting the demo")?,
                _ = &mut signal => return Ok(ExitCode::SUCCESS),
            };
            println!("visitorflow demo");
            for s in &demo.started {
                println!("  started {s}");
            }
            for n in &demo.notes {
                println!("  note: {n}");
            }
            let url = format!("http://{}", demo.service.http_addr);
            println!("  control room  {url}/");
            println!("  crowd board   {url}/board");
            println!("  API           {url}/api/v1/spaces (docs: {url}/api/docs)");
            println!("  metrics       {url}/metrics");
            if let Some(t) = &demo.admin_token {
                println!("  admin token   {t}");
            }
            println!("Press Ctrl-C to stop; everything started here stops with it.");
            let _ = signal.await;
            if let Some(stats) = demo.stop().await {
                println!(
                    "simulated {} reports from {} to {}",
                    stats.reports, stats.start, stats.end
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate {
            config,
            speed,
            start,
            minutes,
            seed,
            intensity,
        } => {
            let cfg = Config::load(config.as_deref()).context("loading config")?;
            let registry = cfg.registry()?;
            let reservations =
                visitorflow::admission::Reservations::build(&cfg.admission, &registry)?;
            let (stop, stopped) = visitorflow::shutdown::channel();
            tokio::spawn(async move {
                wait_for_signal().await;
                stop.trigger();
            });
            let opts = SimulateOptions {
                seed,
                speed,
                intensity,
                start: start.map(|t| t.with_timezone(&chrono::Utc)),
                duration: minutes.map(|m| std::time::Duration::from_secs(m * 60)),
                shutdown: Some(stopped),
                reservations: Some(std::sync::Arc::new(reservations)),
                ..SimulateOptions::default()
            };
            let stats = sim::simulate(opts, &registry, &cfg.mqtt).await?;
            println!(
                "published {} reports ({} messages, {} acknowledged) from {} to {}",
                stats.reports, stats.messages, stats.acked, stats.start, stats.end
            );
            let t = stats.tickets;
            if t.messages > 0 {
                println!(
                    "ticket office: {} people booked, {} cancelled, {} checked in ({} messages)",
                    t.booked, t.cancelled, t.checked_in, t.messages
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            file,
            config,
            device,
            devices,
            rebase_to_now,
            rate,
            batch,
        } => {
            let cfg = Config::load(config.as_deref()).context("loading config")?;
            let registry = cfg.registry()?;
            let mut opts = ReplayOptions::new(&file);
            opts.device = device;
            opts.devices = devices;
            opts.rate = rate;
            opts.batch = batch.max(1);
            if rebase_to_now {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                opts.rebase = Some(rebase_to_end_now(&text)?);
            }
            let stats = sim::replay(opts, &registry, &cfg.mqtt).await?;
            println!(
                "replayed {} reports ({} messages): in {}, out {}, {} empty cells, in {:.1} s",
                stats.reports,
                stats.messages,
                stats.total_in,
                stats.total_out,
                stats.empty_cells,
                stats.elapsed.as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The instant the dataset must start at so that its last slot ends now.
fn rebase_to_end_now(text: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let (first, last, period) = match sim::Dataset::detect(text) {
        Some(sim::Dataset::Calit2) => {
            let slots = sim::parse_calit2(text)?;
            (
                slots.first().map(|s| s.start),
                slots.last().map(|s| s.start),
                sim::Dataset::Calit2.period(),
            )
        }
        Some(sim::Dataset::Dublin) => {
            let d = sim::parse_dublin(text)?;
            (
                d.times.first().copied(),
                d.times.last().copied(),
                sim::Dataset::Dublin.period(),
            )
        }
        None => anyhow::bail!("not a CalIt2 or Dublin dataset"),
    };
    let (Some(first), Some(last)) = (first, last) else {
        anyhow::bail!("the dataset is empty")
    };
    let span = (last - first) + chrono::TimeDelta::from_std(period)?;
    Ok(chrono::Utc::now() - span)
}

fn check_config(file: Option<PathBuf>) -> ExitCode {
    let name = file.as_ref().map_or("(embedded default)".to_string(), |f| {
        f.display().to_string()
    });
    let cfg = match Config::load(file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cfg.registry() {
        Ok(r) => {
            let mut problems: Vec<String> = Vec::new();
            if let Err(e) = visitorflow::api::Tokens::build(&cfg.tokens, &r) {
                problems.extend(e);
            }
            if let Err(e) = visitorflow::dispatch::DispatchModel::build(&cfg.dispatch, &r) {
                problems.extend(e.0.iter().map(ToString::to_string));
            }
            if let Err(e) = cfg.report_push.plan() {
                problems.extend(e.0.iter().map(ToString::to_string));
            }
            if let Err(e) = cfg.forecast.plan() {
                problems.extend(e.0.iter().map(ToString::to_string));
            }
            if let Err(e) = visitorflow::run::calendar(&cfg.calendar) {
                problems.push(e.to_string());
            }
            if let Err(e) = cfg.live_feed.plan() {
                problems.extend(e.0.iter().map(ToString::to_string));
            }
            if !problems.is_empty() {
                for p in problems {
                    eprintln!("{name}: {p}");
                }
                return ExitCode::FAILURE;
            }
            println!(
                "{name}: ok — {} spaces, {} devices, time zone {}",
                r.spaces.len(),
                r.devices.len(),
                r.tz
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
