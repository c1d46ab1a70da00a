//! Dispatch advice for the distribution centres (游客集散中心): LB/T 034 asks scenic areas to
//! coordinate guidance, diversion and interception (引导、分流、截流) with them once an area nears
//! its carrying capacity. This module owns that advice, and nothing here does I/O. Files in
//! import order (each imports only those above it):
//!
//! - [`model`]: the dispatch model (hubs, fleets, routes, car parks, policy) the rest runs on;
//! - [`config`]: the `[dispatch]` section and its validation against the registry, building the
//!   model;
//! - [`advice`]: what the advisor returns (per hub: shuttles, holds, pauses, diversions, reasons);
//! - [`ledger`]: the [`OnRoad`] ledger of shuttles on their way;
//! - [`inputs`]: what the advisor reads (live figures, the rule engine's view, the ledger);
//! - [`advisor`]: `advise(now, model, inputs)` — shuttles to send, routes to pause, diversions;
//! - [`diff`](mod@diff): what changed between two rounds, for delivery on change only;
//!
//! Its evaluation, a simulated Golden-Week day, is `sim::dispatch` (a tool above the config).
//!
//! The capacity rule engine's results (level, minutes to red, hazard closure) come in as plain
//! fields of [`Inputs`]; the wiring fills them.

pub mod advice;
pub mod advisor;
pub mod config;
pub mod diff;
pub mod inputs;
pub mod ledger;
pub mod model;

pub use advice::{
    Alternative, CarParkFigure, Diversion, Explanation, HeldRoute, HubAdvice, Mode, PausedRoute,
    Reason, ReasonCode, ShuttleAdvice, VehicleUse,
};
pub use advisor::advise;
pub use config::{DispatchConfig, DispatchConfigError};
pub use diff::{AdviceChange, Change, diff, diff_with_tolerance};
pub use inputs::{AreaInput, AreaQueue, CarParkInput, HubInput, Inputs};
pub use ledger::{OnRoad, Trip};
pub use model::{DispatchModel, Level, PolicyConfig};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
