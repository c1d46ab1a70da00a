//! `vf-bench`: visitorflow's performance harness. `scripts/bench` builds it in release with the
//! service and runs `vf-bench run`, which starts a private PostgreSQL and a fresh Mosquitto per
//! measured run, drives the real `visitorflow` binary and the reference tools on the same streams
//! and prints every figure as a median ratio (docs/performance.md). The other subcommands are the
//! helper processes it spawns, separate so their CPU can be read from `/proc`, and `pipeline`,
//! the service's own work on a report in-process, for instruction counts under callgrind.

mod env;
mod pipeline;
mod procs;
mod publish;
mod rawpath;
mod scenarios;
mod stats;
mod subscribe;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "visitorflow performance harness")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the scenarios and prints every figure and ratio.
    Run(scenarios::RunOpts),
    /// Publishes generated count reports over many topics, optionally at a fixed rate.
    Publish(publish::PublishOpts),
    /// The bare rumqttc reference subscriber: counts and acknowledges.
    CountSub(subscribe::CountSubOpts),
    /// The service's own work on each report (routing, decoding, de-duplication, occupancy,
    /// minute buckets) in-process, without broker or database: run it under callgrind.
    Pipeline(pipeline::PipelineOpts),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Cmd::Run(o) => scenarios::run(o).await,
            Cmd::Publish(o) => publish::run(o).await.map(|()| ExitCode::SUCCESS),
            Cmd::CountSub(o) => subscribe::run(o).await.map(|()| ExitCode::SUCCESS),
            Cmd::Pipeline(o) => pipeline::run(&o).map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
