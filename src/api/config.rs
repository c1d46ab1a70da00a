//! `[http]` and `[[tokens]]`: the listener, its limits, and who may call the API.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// A client must send a request's headers within this (slowloris clients are dropped).
    pub header_read_timeout_ms: u64,
    /// Origins (`scheme://host[:port]`, exact) whose pages may call the API from a browser; the
    /// control room and the board are served by the service itself and need none.
    pub cors_origins: Vec<String>,
    /// A request not answered within this time gets 408 (the live stream is exempt once open).
    pub request_timeout_ms: u64,
    /// Largest request body accepted (413 beyond).
    pub body_limit_bytes: usize,
    /// Sustained requests per second allowed to one token…
    pub rate_per_token: f64,
    /// …and to one client address (public routes are limited by address only).
    pub rate_per_ip: f64,
    /// Requests a client may send at once above the sustained rate.
    pub rate_burst: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read_timeout_ms: 10_000,
            cors_origins: Vec::new(),
            request_timeout_ms: 10_000,
            body_limit_bytes: 64 * 1024,
            rate_per_token: 20.0,
            rate_per_ip: 50.0,
            rate_burst: 100,
        }
    }
}

/// What a bearer token may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads every `/api/v1` route except the audit log.
    Viewer,
    /// A ticketing system: also reports bookings of its own `spaces` (and reads their slots and
    /// admission state).
    Ticketing,
    /// Also acknowledges alerts, sets hazards and policy caps — in its own `spaces` only.
    Operator,
    /// Everything, in every space: dead-letter replay, the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Ticketing => "ticketing",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One API token. Only its SHA-256 is configured: `visitorflow token` makes both.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who the token is: recorded as the actor of everything done with it.
    pub id: String,
    pub role: Role,
    /// Spaces an operator may change, or a ticketing system sells (a scenic area covers its
    /// zones, car parks and hubs); empty: none. Ignored for viewers and admins.
    #[serde(default)]
    pub spaces: Vec<String>,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
}
