//! Traffic generators for the MQTT contract: `visitorflow simulate` (a seeded traffic model for every
//! device of the registry), `visitorflow replay FILE` (a real dataset published as one or more
//! devices' reports) and the simulator half of `visitorflow demo`.
//!
//! The module owns everything a device would put on the wire and nothing the ingester does:
//! - [`traffic`] (pure): the calendar, the per-space visitor model and the simulated [`Clock`];
//! - [`report`] (pure): topics and payloads, per-device `seq` and cumulative totals, the
//!   `direction` / Milesight line swaps;
//! - [`mod@replay`]: pure dataset parsers (CalIt2, Dublin footfall) and the replay publisher;
//! - [`publish`]: the MQTT shell (rumqttc client + event loop task, PubAck accounting) and
//!   [`simulate`];
//! - [`tickets`] (pure): the simulated ticket office of the areas selling timed entry (sales,
//!   cancellations, check-ins at the gates, no-shows);
//! - [`booking_eval`]: the ticketing evaluation, a Golden-Week day at the canyon with sales
//!   controlled by the live levels alone and booking-aware (pure; `examples/admission_eval`);
//! - [`forecast_eval`]: the day-ahead forecast's rolling-origin evaluation on the Dublin footfall
//!   year and the CalIt2 door (pure; `examples/forecast_eval`);
//! - [`dispatch`]: the dispatch advisor's evaluation, a seeded Golden-Week day of the county with
//!   and without the advice followed (pure; `examples/dispatch_eval`).
//!
//! The CLI lives elsewhere: callers fill an options struct and await [`simulate`] or [`replay()`].

pub mod booking_eval;
pub mod dispatch;
pub mod forecast_eval;
pub mod publish;
pub mod replay;
pub mod report;
pub mod tickets;
pub mod traffic;

use std::path::PathBuf;

pub use publish::{Backfill, DeviceStats, SimStats, SimulateOptions, simulate};
pub use replay::{
    Dataset, Dublin, DublinCounter, ReplayDeviceStats, ReplayOptions, ReplayStats, Slot,
    parse_calit2, parse_dublin, replay,
};
pub use traffic::{Clock, Flow, TrafficModel};

/// Everything the simulator and the replayer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dataset} line {line}: {message}")]
    Parse {
        dataset: &'static str,
        line: usize,
        message: String,
    },
    #[error(
        "unrecognised dataset (header {0:?}); expected CalIt2 `slot_start,in_count,out_count` or Dublin footfall `Time,…`"
    )]
    UnknownDataset(String),
    #[error("no device {0:?} in the registry")]
    UnknownDevice(String),
    #[error("device {device:?} cannot be used: {reason}")]
    UnsuitableDevice { device: String, reason: String },
    #[error("no device to publish as: {0}")]
    NoDevices(String),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("MQTT connection to {broker} failed: {message}")]
    Connection { broker: String, message: String },
    #[error("the broker acknowledged only {acked} of {published} QoS 1 publishes in time")]
    AckTimeout { published: u64, acked: u64 },
    #[error("cannot encode a report: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A small county exercising every role and payload variant, shared by the module's unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::config::Config;
    use crate::registry::Registry;

    /// Shared with `tests/sim.rs`.
    pub(crate) const COUNTY: &str = include_str!("../../tests/data/sim-county.toml");

    pub(crate) fn registry() -> Registry {
        Config::from_toml(COUNTY).unwrap().registry().unwrap()
    }

    /// A file of the shared datasets (`$VISITORFLOW_DATA_DIR`, default `/work/shared/data`).
    pub(crate) fn data_file(rel: &str) -> String {
        let dir =
            std::env::var("VISITORFLOW_DATA_DIR").unwrap_or_else(|_| "/work/shared/data".into());
        let path = std::path::Path::new(&dir).join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "dataset {} unavailable ({e}); set VISITORFLOW_DATA_DIR",
                path.display()
            )
        })
    }
}
