//! The SSRF guard: deliveries go to public addresses only, unless a target sets
//! `allow_private_network`. [`check_url`] refuses bad schemes, `localhost` and literal internal
//! addresses before anything is sent; [`GuardedResolver`] refuses the same ranges when a name is
//! resolved, at each connection, so a name that resolves (or re-resolves, DNS rebinding) to an
//! internal address is never connected to.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL: {0}")]
    Parse(#[from] url::ParseError),
    #[error("scheme {0}: only http and https are delivered to")]
    UnsupportedScheme(String),
    #[error("the URL has no host")]
    MissingHost,
    #[error("{0} is this machine (set allow_private_network to deliver to it)")]
    LocalName(String),
    #[error("{host} is {addr}, a {why} address (set allow_private_network to deliver to it)")]
    Forbidden {
        host: String,
        addr: IpAddr,
        why: &'static str,
    },
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} resolves to no address")]
    NoAddress(String),
}

/// The guard on the URL alone: http or https, a host, and unless `allow_private`, neither
/// `localhost` nor a literal loopback, private, link-local (cloud metadata at 169.254.169.254),
/// shared, multicast or reserved address. Names are checked when resolved (see
/// [`check_url_resolved`] and the delivery client).
pub fn check_url(url: &Url, allow_private: bool) -> Result<(), UrlError> {
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(UrlError::UnsupportedScheme(other.to_owned())),
    }
    let host = url.host().ok_or(UrlError::MissingHost)?;
    if allow_private {
        return Ok(());
    }
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return Err(UrlError::LocalName(d));
            }
            Ok(())
        }
        Host::Ipv4(ip) => check_ip(&ip.to_string(), IpAddr::V4(ip)),
        Host::Ipv6(ip) => check_ip(&ip.to_string(), IpAddr::V6(ip)),
    }
}

/// [`check_url`], then resolves the host and checks every address it has (for validating a
/// configuration at start-up; delivery checks again at each connection).
pub async fn check_url_resolved(
    url: &Url,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, UrlError> {
    check_url(url, allow_private)?;
    let port = url.port_or_known_default().unwrap_or(0);
    match url.host().ok_or(UrlError::MissingHost)? {
        Host::Domain(d) => resolve_checked(d, port, allow_private).await,
        Host::Ipv4(ip) => Ok(vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Host::Ipv6(ip) => Ok(vec![SocketAddr::new(IpAddr::V6(ip), port)]),
    }
}

async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, UrlError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| UrlError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(UrlError::NoAddress(host.to_owned()));
    }
    if !allow_private {
        // All or nothing: one internal address among public ones is still a way in.
        for a in &addrs {
            check_ip(host, a.ip())?;
        }
    }
    Ok(addrs)
}

fn check_ip(host: &str, addr: IpAddr) -> Result<(), UrlError> {
    match forbidden(addr) {
        Some(why) => Err(UrlError::Forbidden {
            host: host.to_owned(),
            addr,
            why,
        }),
        None => Ok(()),
    }
}

/// Why `addr` must not be delivered to from a public-only target, or `None` if it may.
pub fn forbidden(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if a == 0 {
        Some("this-network (0.0.0.0/8)")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (b & 0xc0) == 64 {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if s[..6] == [0; 6] {
        Some("IPv4-compatible (deprecated)")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Some("site-local")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique-local (private)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: the IPv4 address inside is the real destination.
        forbidden_v4(embedded(s[6], s[7]))
    } else if s[0] == 0x2002 {
        // 6to4: likewise.
        forbidden_v4(embedded(s[1], s[2]))
    } else {
        None
    }
}

/// reqwest resolver for public-only targets: the system resolver, then [`forbidden`] on every
/// address, at each connection.
pub(super) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_checked(&host, 0, false).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The guard's refusal, if that is why the request failed (it travels inside reqwest's error).
pub(super) fn find_refusal<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a UrlError> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(u) = c.downcast_ref::<UrlError>() {
            return Some(u);
        }
        cur = c.source();
    }
    None
}
