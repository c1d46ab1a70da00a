//! visitorflow: live visitor-flow monitoring for a county's scenic areas.
//!
//! The modules follow the data: `source` (MQTT) → `decode` → `core` (de-duplication, occupancy,
//! buckets; pure) → `store` (PostgreSQL) → `api` (HTTP). `run` wires them; `supervise` starts local
//! PostgreSQL and Mosquitto for the demo and the tests; `sim` publishes simulated or replayed traffic.
#![forbid(unsafe_code)]

pub mod config;
pub mod ids;
pub mod registry;
pub mod sim;
