//! visitorflow: live visitor-flow monitoring for a county's scenic areas.
//!
//! Modules are declared bottom-up in the order the data flows; each may import only the ones
//! above it in this list (docs/architecture.md draws the layers).
//!
//! Foundations
//! - `ids`: typed identifiers and dense indices.
//! - `telemetry`: metric names, logging set-up and typed internal events.
//! - `shutdown`: the one stop signal every long-running task listens to.
//! - `retry`: the one retry policy of outbound deliveries (backoff, `Retry-After`, dead letters).
//!
//! The county and the pure cores (no I/O)
//! - `registry`: the validated space tree and devices, and their `[[spaces]]`/`[[devices]]` sections.
//! - `calendar`: local days: public holidays and make-up working days, school holidays, events.
//! - `decode`: device payloads (native JSON, Milesight) to count reports, within limits.
//! - `core`: de-duplication and repair per device, occupancy per space, minute buckets, snapshots.
//! - `forecast`: day-ahead and 7-day forecasts of daily entries and hourly profiles, with intervals.
//! - `rules`: capacity levels, dwell and hysteresis, forecasts, data-quality alerts.
//! - `admission`: timed-entry reservations: slot quotas, bookings, expected arrivals.
//! - `dispatch`: distribution centres' shuttle and diversion advice.
//!
//! State and storage
//! - `store`: PostgreSQL/TimescaleDB: schema, every SQL statement, batch writes, reads.
//! - `live`: the latest committed figures the API and the rules read, and the live feed's marks.
//!
//! Workers (thin async shells over the cores)
//! - `source`: the MQTT session the ingester reads from.
//! - `partition`: which instance ingests which scenic areas; leader election for alerting.
//! - `ingest`: batches from the source (and HTTP pushes) through `decode` and `core` into `store`
//!   and `live`.
//! - `poll`: asks the devices that only answer requests, and hands their reports to `ingest`.
//! - `forecasting`: the nightly and on-demand day-ahead forecast runs, stored for the API,
//!   the evening-before warning and the report.
//! - `webhook`: alert formats, signatures and HTTP delivery attempts.
//! - `alerting`: runs `rules` and `dispatch` on `live`, records transitions, fills the outbox.
//! - `report`: the daily county report, its schedule and its push upstream.
//! - `api`: the HTTP API, the live feed, the control room and the public board.
//!
//! Assembly and tools
//! - `config`: the aggregate configuration file and its environment overrides.
//! - `run`: builds and starts every component from a `Config`, and stops them.
//! - `supervise`: private PostgreSQL and Mosquitto processes for the demo and the tests.
//! - `sim`: simulated and replayed device traffic.
//! - `demo`: `visitorflow demo`: everything above on one machine.
#![forbid(unsafe_code)]

pub mod ids;
pub mod telemetry;
pub mod shutdown;
pub mod retry;

pub mod registry;
pub mod calendar;
pub mod decode;
pub mod core;
pub mod forecast;
pub mod rules;
pub mod admission;
pub mod dispatch;

pub mod store;
pub mod live;

pub mod source;
pub mod partition;
pub mod ingest;
pub mod poll;
pub mod forecasting;
pub mod webhook;
pub mod alerting;
pub mod report;
pub mod api;

pub mod config;
pub mod run;
pub mod supervise;
pub mod sim;
pub mod demo;
