//! The `visitorflow` command: run the service, check a config, run the demo, simulate or replay.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use visitorflow::config::Config;
use visitorflow::registry::Registry;
use visitorflow::run::Service;
use visitorflow::telemetry;

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
    }
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
    match Registry::build(&cfg) {
        Ok(r) => {
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
