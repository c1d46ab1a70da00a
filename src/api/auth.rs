//! Who may call the API: bearer tokens (configured only as SHA-256 hashes, each with a role and
//! the spaces it may operate), the request guard that authenticates and rate-limits every request
//! before routing, and the checks handlers make on the caller ([`Caller::operate`], admin only).
//!
//! Cost per request: one SHA-256 of the presented token, one hash-map lookup on a prefix of that
//! hash and one constant-time comparison of the full hash, then two token-bucket updates.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ratelimit::RateLimiter;
use super::{ApiError, AppState};
use super::{Role, TokenConfig};
use crate::ids::SpaceIdx;
use crate::registry::Registry;

/// The authenticated caller, put in the request's extensions by [`guard`].
#[derive(Debug)]
pub struct Caller {
    /// The token's configured id: the actor in the audit log and on acknowledgements.
    pub id: Arc<str>,
    pub role: Role,
    /// Indexed by space: whether an operator may change it (its own spaces and their parts).
    operates: Vec<bool>,
}

impl Caller {
    /// Allows a change to `space`: admins anywhere, operators in their own spaces.
    pub fn operate(&self, reg: &Registry, space: SpaceIdx) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Operator if self.operates.get(space.get()).copied().unwrap_or(false) => Ok(()),
            Role::Operator => Err(ApiError::Forbidden(format!(
                "token {:?} may not operate {}",
                &*self.id,
                reg.space(space).id
            ))),
            Role::Viewer | Role::Ticketing => Err(ApiError::Forbidden(format!(
                "token {:?} is a {}: changes need an operator or admin token",
                &*self.id,
                self.role.as_str()
            ))),
        }
    }

    /// Allows reporting bookings of `space`: admins anywhere, ticketing systems and operators in
    /// their own spaces.
    pub fn sell(&self, reg: &Registry, space: SpaceIdx) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Ticketing | Role::Operator
                if self.operates.get(space.get()).copied().unwrap_or(false) =>
            {
                Ok(())
            }
            Role::Viewer => Err(ApiError::Forbidden(format!(
                "token {:?} is a viewer: bookings need a ticketing token",
                &*self.id
            ))),
            _ => Err(ApiError::Forbidden(format!(
                "token {:?} does not sell {}",
                &*self.id,
                reg.space(space).id
            ))),
        }
    }

    pub fn admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token {:?} is not an admin token",
                &*self.id
            )))
        }
    }
}

/// The configured tokens, looked up by the hash of the presented one.
pub struct Tokens {
    /// Keyed by the first 8 bytes of the SHA-256; the full hash is compared in constant time.
    by_prefix: HashMap<u64, ([u8; 32], Arc<Caller>)>,
}

fn prefix(h: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_le_bytes(b)
}

pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Tokens {
    /// Checks and indexes `[[tokens]]`: ids unique and non-empty, hashes 64 hex digits and unique,
    /// spaces known. Every problem is listed.
    pub fn build(cfg: &[TokenConfig], reg: &Registry) -> Result<Tokens, Vec<String>> {
        let mut problems = Vec::new();
        let mut by_prefix = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for (n, t) in cfg.iter().enumerate() {
            let at = format!("tokens[{n}] ({:?})", t.id);
            if t.id.trim().is_empty() || t.id.len() > 100 {
                problems.push(format!("{at}: id must be 1–100 characters"));
            }
            if !ids.insert(t.id.as_str()) {
                problems.push(format!("{at}: id given twice"));
            }
            let mut operates = vec![false; reg.spaces.len()];
            for s in &t.spaces {
                match reg.space_idx(s) {
                    Some(i) => mark_subtree(reg, i, &mut operates),
                    None => problems.push(format!("{at}: no space {s:?}")),
                }
            }
            let Some(hash) = parse_hex(&t.sha256) else {
                problems.push(format!(
                    "{at}: sha256 must be 64 hex digits (run `visitorflow token`)"
                ));
                continue;
            };
            let caller = Arc::new(Caller {
                id: Arc::from(t.id.as_str()),
                role: t.role,
                operates,
            });
            if by_prefix.insert(prefix(&hash), (hash, caller)).is_some() {
                problems.push(format!("{at}: the same token hash is configured twice"));
            }
        }
        if problems.is_empty() {
            Ok(Tokens { by_prefix })
        } else {
            Err(problems)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// The caller a presented token belongs to.
    pub fn find(&self, token: &str) -> Option<Arc<Caller>> {
        let h = sha256(token);
        let (stored, caller) = self.by_prefix.get(&prefix(&h))?;
        bool::from(stored.ct_eq(&h)).then(|| Arc::clone(caller))
    }
}

fn mark_subtree(reg: &Registry, s: SpaceIdx, out: &mut [bool]) {
    out[s.get()] = true;
    for &c in &reg.space(s).children {
        mark_subtree(reg, c, out);
    }
}

/// A fresh random token (256 bits, URL-safe) and its config entry.
/// A device's HTTP push secret and its registry line (`http_sha256 = "…"`).
pub fn device_secret() -> (String, String) {
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    let secret = hex(&raw);
    let line = format!("http_sha256 = \"{}\"", hex(&sha256(&secret)));
    (secret, line)
}

pub fn generate(id: &str, role: Role, spaces: &[String]) -> (String, String) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = format!("vf_{}", hex(&raw));
    let spaces = spaces
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let entry = format!(
        "[[tokens]]\nid = {id:?}\nrole = \"{}\"\nspaces = [{spaces}]\nsha256 = \"{}\"\n",
        role.as_str(),
        hex(&sha256(&token))
    );
    (token, entry)
}

/// How a path is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// Health, readiness and the scrape: probes and Prometheus must reach them without a token
    /// or a rate limit, and they reveal no visitor data.
    Ops,
    /// The pages, the public board's API and the OpenAPI document: no token, limited per address.
    Open,
    /// Everything else under `/api/`: a token, limited per token and per address.
    Token,
}

fn guard_of(path: &str) -> Guard {
    match path {
        "/healthz" | "/readyz" | "/metrics" => Guard::Ops,
        "/api/openapi.json" | "/api/docs" => Guard::Open,
        p if p.starts_with("/api/v1/public/") => Guard::Open,
        p if p.starts_with("/api/") => Guard::Token,
        _ => Guard::Open,
    }
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticates and rate-limits before routing; puts the [`Caller`] in the extensions.
pub async fn guard(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let g = guard_of(req.uri().path());
    if g == Guard::Ops {
        return next.run(req).await;
    }
    let limiter: &RateLimiter = &st.limiter;
    if let Err(wait) = limiter.check_ip(client_ip(&req)) {
        return ApiError::TooManyRequests(wait).into_response();
    }
    if g == Guard::Open {
        return next.run(req).await;
    }
    let Some(token) = bearer(&req) else {
        return ApiError::Unauthorized(
            "a bearer token is required (Authorization: Bearer …)".into(),
        )
        .into_response();
    };
    let Some(caller) = st.tokens.find(token) else {
        return ApiError::Unauthorized("unknown token".into()).into_response();
    };
    if let Err(wait) = limiter.check_token(&caller.id) {
        return ApiError::TooManyRequests(wait).into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn registry() -> Registry {
        let cfg = Config::from_toml(
            r#"
[[spaces]]
id = "county"
kind = "county"
name_zh = "县"
name_en = "County"
[[spaces]]
id = "canyon"
kind = "scenic_area"
parent = "county"
name_zh = "峡谷"
name_en = "Canyon"
[[spaces]]
id = "pines"
kind = "zone"
parent = "canyon"
name_zh = "松林"
name_en = "Pines"
[[spaces]]
id = "village"
kind = "scenic_area"
parent = "county"
name_zh = "村"
name_en = "Village"
"#,
        )
        .unwrap();
        cfg.registry().unwrap()
    }

    fn entry(id: &str, role: Role, spaces: &[&str], token: &str) -> TokenConfig {
        TokenConfig {
            id: id.into(),
            role,
            spaces: spaces.iter().map(|s| s.to_string()).collect(),
            sha256: hex(&sha256(token)),
        }
    }

    #[test]
    fn finds_tokens_by_hash_and_rejects_others() {
        let reg = registry();
        let t = Tokens::build(
            &[
                entry("ops-canyon", Role::Operator, &["canyon"], "secret-1"),
                entry("bureau", Role::Viewer, &[], "secret-2"),
            ],
            &reg,
        )
        .unwrap();
        assert_eq!(&*t.find("secret-1").unwrap().id, "ops-canyon");
        assert_eq!(t.find("secret-2").unwrap().role, Role::Viewer);
        assert!(t.find("secret-3").is_none());
        assert!(t.find("").is_none());
    }

    #[test]
    fn an_operator_operates_its_areas_and_their_parts_only() {
        let reg = registry();
        let t = Tokens::build(
            &[
                entry("op", Role::Operator, &["canyon"], "a"),
                entry("none", Role::Operator, &[], "b"),
                entry("admin", Role::Admin, &[], "c"),
                entry("viewer", Role::Viewer, &["canyon"], "d"),
            ],
            &reg,
        )
        .unwrap();
        let idx = |s| reg.space_idx(s).unwrap();
        let op = t.find("a").unwrap();
        assert!(op.operate(&reg, idx("canyon")).is_ok());
        assert!(op.operate(&reg, idx("pines")).is_ok());
        assert!(op.operate(&reg, idx("village")).is_err());
        assert!(op.operate(&reg, idx("county")).is_err());
        assert!(t.find("b").unwrap().operate(&reg, idx("canyon")).is_err());
        assert!(t.find("c").unwrap().operate(&reg, idx("village")).is_ok());
        assert!(t.find("d").unwrap().operate(&reg, idx("canyon")).is_err());
        assert!(op.admin().is_err());
        assert!(t.find("c").unwrap().admin().is_ok());
    }

    #[test]
    fn bad_entries_are_all_listed() {
        let reg = registry();
        let mut bad = entry("x", Role::Admin, &["nowhere"], "t");
        bad.sha256 = "abc".into();
        let errs = Tokens::build(
            &[
                bad,
                entry("y", Role::Viewer, &[], "same"),
                entry("y", Role::Viewer, &[], "same"),
            ],
            &reg,
        )
        .err()
        .unwrap();
        let all = errs.join("\n");
        assert!(all.contains("no space \"nowhere\""), "{all}");
        assert!(all.contains("64 hex digits"), "{all}");
        assert!(all.contains("id given twice"), "{all}");
        assert!(all.contains("configured twice"), "{all}");
    }

    #[test]
    fn generated_entries_parse_and_match_their_token() {
        let reg = registry();
        let (token, entry) = generate("duty", Role::Operator, &["canyon".into()]);
        let cfg: Config = Config::from_toml(&entry).unwrap();
        let t = Tokens::build(&cfg.tokens, &reg).unwrap();
        let c = t.find(&token).unwrap();
        assert_eq!((&*c.id, c.role), ("duty", Role::Operator));
        assert!(c.operate(&reg, reg.space_idx("pines").unwrap()).is_ok());
        let (other, _) = generate("duty", Role::Operator, &[]);
        assert_ne!(token, other);
    }

    #[test]
    fn paths_are_guarded_by_kind() {
        assert_eq!(guard_of("/healthz"), Guard::Ops);
        assert_eq!(guard_of("/metrics"), Guard::Ops);
        assert_eq!(guard_of("/"), Guard::Open);
        assert_eq!(guard_of("/board"), Guard::Open);
        assert_eq!(guard_of("/api/v1/public/areas"), Guard::Open);
        assert_eq!(guard_of("/api/openapi.json"), Guard::Open);
        assert_eq!(guard_of("/api/v1/spaces"), Guard::Token);
        assert_eq!(guard_of("/api/v1/live"), Guard::Token);
        assert_eq!(guard_of("/api/v1/publicity"), Guard::Token);
        assert_eq!(guard_of("/api/v1/nothing"), Guard::Token);
    }
}
