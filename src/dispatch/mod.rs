//! Dispatch advice for the distribution centres (游客集散中心): LB/T 034 asks scenic areas to
//! coordinate guidance, diversion and interception (引导、分流、截流) with them once an area nears
//! its carrying capacity. This module owns that advice, and nothing here does I/O:
//!
//! - [`config`]: the dispatch model (hubs, fleets, routes, car parks, policy) and its validation
//!   against the registry;
//! - [`advisor`]: `advise(now, model, inputs)` — shuttles to send, routes to pause, diversions;
//! - [`ledger`]: the [`OnRoad`] ledger of shuttles on their way;
//! - [`diff`]: what changed between two rounds, for delivery on change only;
//! - [`simulation`]: a seeded Golden-Week day of the county comparing no advice with advice
//!   followed (`evaluate(seed)`).
//!
//! The capacity rule engine's results (level, minutes to red, hazard closure) come in as plain
//! fields of [`Inputs`]; the wiring fills them.

pub mod advisor;
pub mod config;
pub mod diff;
pub mod ledger;
pub mod simulation;
#[cfg(test)]
mod tests;

pub use advisor::{
    Alternative, AreaInput, AreaQueue, CarParkFigure, CarParkInput, Diversion, Explanation,
    HeldRoute, HubAdvice, HubInput, Inputs, Level, Mode, PausedRoute, Reason, ReasonCode,
    ShuttleAdvice, VehicleUse, advise,
};
pub use config::{DispatchConfig, DispatchConfigError, DispatchModel, PolicyConfig};
pub use diff::{AdviceChange, Change, diff, diff_with_tolerance};
pub use ledger::{OnRoad, Trip};
pub use simulation::{Comparison, Metrics, Policy, evaluate};
