//! The advisor's evaluation: a minute-by-minute Golden-Week day (2 October) for the county, run
//! once with shuttles that ignore crowding (`NoAdvice`) and once following `advise` every minute
//! (`AdviceFollowed`), on the same seeded demand. Pure and deterministic for a seed (and a build:
//! `StdRng`'s algorithm may change between `rand` releases).
//!
//! The day, 06:00–22:00 local time:
//! - **Hub arrivals** (tour coaches, city buses) from 07:00 to 16:00, 80% in a morning wave centred
//!   on 09:30 (sd 60 min: most between 08:00 and 11:00) and 20% in an early-afternoon one, in
//!   parties of 1–5 with a destination drawn from the hub's preferences (most want the Tianshan
//!   Grand Canyon). Visitors queue per destination and give up after 90–180 min of waiting.
//! - **Self-drive** cars (1–5 people) on the same curve, half an hour later. An area with car parks
//!   in the dispatch model needs a bay (a full car park turns the car away); a bay at a hub's car
//!   park means park-and-ride: the party joins that hub's queue (the canyon's visitor centre). An
//!   area without modelled car parks is walked into.
//! - **Shuttles**: the example fleets and travel times (the `[dispatch]` section of `config/county.toml`), vehicles
//!   busy for the round trip plus turnaround. Both policies load buses the same way (the advisor's
//!   vehicle choice): full vehicles leave at once, as does one at least half full that takes
//!   everyone left; a less full one leaves once its first passenger has waited 15 min.
//! - **Areas**: the shipped registry's instantaneous capacities; the gate refuses a party that
//!   would take the area past 100% (LB/T 034: stop admissions at the maximum), and the party is
//!   turned away. Visitors stay 2–4 h (uniform).
//! - **AdviceFollowed**: the rule engine is emulated (level from utilisation, net inflow at the
//!   gates over the last 10 minutes, minutes to red from it); the wiring's part is too (the
//!   net inflow given to the advisor excludes shuttle arrivals, which the ledger knows); the hubs
//!   send exactly the advised shuttles, offer
//!   each waiting party a diversion once (70% accept, within the alternative's spare), and drivers
//!   heading to full car parks are intercepted to a hub's park-and-ride (or the first alternative,
//!   or told not to come: turned away) using the previous minute's advice.
//!
//! Files: `scenario` (the day, its demand and its people), `step` (one minute of the county),
//! `follow` (the advised policy), `metrics` (the day's figures and the comparison table).

mod follow;
mod metrics;
mod scenario;
mod step;

pub use self::metrics::{Comparison, Metrics};
pub use self::scenario::{DAY, Policy};
use self::scenario::{MINUTES, date};
use self::step::Sim;
use crate::config::{Config, EMBEDDED_DEFAULT};
use crate::dispatch::DispatchModel;
use crate::registry::Registry;

/// Both policies on the shipped registry and the example dispatch model, same demand.
pub fn evaluate(seed: u64) -> Comparison {
    let (registry, model) = shipped();
    Comparison {
        seed,
        date: date(),
        no_advice: run(&registry, &model, seed, Policy::NoAdvice),
        advice_followed: run(&registry, &model, seed, Policy::AdviceFollowed),
    }
}

/// The shipped registry and the example dispatch model (both validated by tests).
pub fn shipped() -> (Registry, DispatchModel) {
    let cfg = Config::from_toml(EMBEDDED_DEFAULT).expect("the embedded config parses");
    let registry = cfg.registry().expect("the embedded registry is valid");
    let model = DispatchModel::build(&cfg.dispatch, &registry)
        .expect("the shipped dispatch model is valid");
    (registry, model)
}

/// One policy's day on `registry` and `model`.
pub fn run(registry: &Registry, model: &DispatchModel, seed: u64, policy: Policy) -> Metrics {
    let mut sim = Sim::new(registry, model, seed, policy);
    for m in 0..MINUTES {
        sim.minute(m);
    }
    sim.finish()
}

#[cfg(test)]
mod tests;
