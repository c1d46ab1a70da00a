//! Loopback ports: a free one to listen on, and whether a server accepts connections yet.

use super::*;

/// A port that was free a moment ago: bind port 0 and release it. Another process may still take
/// it before our service binds, so starts retry with a fresh port on "address in use".
pub(super) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_err("binding 127.0.0.1:0 to find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("reading the probe socket's address"))?
        .port();
    Ok(port)
}

pub(super) fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}
