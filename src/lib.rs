//! visitorflow: live visitor-flow monitoring for a county's scenic areas.
//!
//! The modules follow the data: `source` (MQTT) → `decode` → `core` (de-duplication, occupancy,
//! buckets; pure) → `store` (PostgreSQL) → `api` (HTTP). `alerting` runs the capacity rules and
//! `dispatch` advises the distribution centres; `report` builds the daily county report and pushes
//! it upstream. `run` wires them; `partition` shares the
//! ingest among several instances; `supervise` starts local PostgreSQL and Mosquitto for the demo
//! and the tests; `sim` publishes simulated or replayed traffic.
#![forbid(unsafe_code)]

pub mod alerting;
pub mod api;
pub mod config;
pub mod core;
pub mod decode;
pub mod demo;
pub mod dispatch;
pub mod ids;
pub mod ingest;
pub mod live;
pub mod partition;
pub mod registry;
pub mod report;
pub mod retry;
pub mod rules;
pub mod run;
pub mod sim;
pub mod source;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod webhook;
