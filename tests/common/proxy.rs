//! A fault-injecting TCP proxy for the fault tests (`tc netem` is not available here): listens on
//! 127.0.0.1:0 and forwards to a target port on 127.0.0.1, in a mode that can be switched while
//! connections are open.
//!
//! - [`Mode::Pass`]: forward both ways.
//! - [`Mode::Delay`]: forward, sleeping before every chunk (both directions).
//! - [`Mode::Blackhole`]: keep every connection open and keep reading, forward nothing — no RST, no
//!   FIN, the failure only a timeout can detect. New connections are accepted and swallowed too.
//!   A connection that was blackholed stays dead after `Pass`: the bytes it swallowed cannot be
//!   replayed, as when a partition outlasts TCP's retransmissions or a firewall drops a flow's
//!   state. Only new connections pass again.
//! - [`Mode::Cut`]: close every current connection now and refuse new ones (the listener is
//!   closed, so connects get ECONNREFUSED) until the mode changes; then the same port is bound
//!   again.
//!
//! Epochs rather than the current mode decide a connection's fate, so a `Blackhole` or `Cut` that
//! is switched back within microseconds still hits every connection that existed at the time.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Delay(Duration),
    Blackhole,
    Cut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    mode: Mode,
    /// Incremented on every switch to Blackhole / Cut.
    blackhole_epoch: u64,
    cut_epoch: u64,
}

/// Counters for assertions and for the fault log.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub open: AtomicU64,
    pub forwarded_bytes: AtomicU64,
    pub swallowed_bytes: AtomicU64,
}

pub struct Proxy {
    port: u16,
    state: watch::Sender<State>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy in `Pass` mode in front of `127.0.0.1:target`.
    pub async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind proxy listener");
        let port = listener.local_addr().unwrap().port();
        let (state, rx) = watch::channel(State {
            mode: Mode::Pass,
            blackhole_epoch: 0,
            cut_epoch: 0,
        });
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(accept_loop(listener, port, target, rx, Arc::clone(&stats)));
        Proxy {
            port,
            state,
            stats,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    pub fn set(&self, mode: Mode) {
        self.state.send_modify(|s| {
            s.mode = mode;
            match mode {
                Mode::Blackhole => s.blackhole_epoch += 1,
                Mode::Cut => s.cut_epoch += 1,
                Mode::Pass | Mode::Delay(_) => {}
            }
        });
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Connections currently open through the proxy (blackholed ones included).
    pub fn open_connections(&self) -> u64 {
        self.stats.open.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        // Connection tasks end on a Cut, so the proxy leaves nothing behind.
        self.set(Mode::Cut);
    }
}

async fn accept_loop(
    first: TcpListener,
    port: u16,
    target: u16,
    mut state: watch::Receiver<State>,
    stats: Arc<Stats>,
) {
    let mut listener = Some(first);
    loop {
        let s = *state.borrow_and_update();
        match (&listener, s.mode) {
            (Some(_), Mode::Cut) => listener = None,
            (None, Mode::Cut) => {}
            (None, _) => listener = Some(rebind(port).await),
            (Some(_), _) => {}
        }
        let Some(l) = &listener else {
            if state.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                let Ok((client, _)) = accepted else { continue };
                // A connect racing a Cut may still be accepted: it is closed at once below.
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(relay(client, target, state.clone(), Arc::clone(&stats)));
            }
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}

/// Binds the proxy's port again after a Cut. The old sockets may linger briefly; SO_REUSEADDR
/// (tokio's default on Unix) lets the bind through, so a failure here is a real port clash.
async fn rebind(port: u16) -> TcpListener {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("proxy could not bind 127.0.0.1:{port} again after a Cut");
}

struct OpenGuard(Arc<Stats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn relay(
    client: TcpStream,
    target: u16,
    mut state: watch::Receiver<State>,
    stats: Arc<Stats>,
) {
    stats.open.fetch_add(1, Ordering::Relaxed);
    let _guard = OpenGuard(Arc::clone(&stats));
    let born = *state.borrow_and_update();
    if born.mode == Mode::Cut {
        return;
    }
    let dead_at_birth = born.mode == Mode::Blackhole;
    let _ = client.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    // A blackholed newcomer never reaches the target, as a SYN lost on the way would not.
    let mut upstream = if dead_at_birth {
        None
    } else {
        match TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await {
            Ok(u) => {
                let _ = u.set_nodelay(true);
                Some(u.into_split())
            }
            Err(_) => return,
        }
    };
    let cut = |s: &State| s.cut_epoch != born.cut_epoch;
    let dead = |s: &State| dead_at_birth || s.blackhole_epoch != born.blackhole_epoch;
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_upstream = vec![0u8; 16 * 1024];
    loop {
        // Which way a chunk goes: true = client → target.
        let (n, up) = match &mut upstream {
            Some((ur, _)) => tokio::select! {
                r = cr.read(&mut from_client) => (r, true),
                r = ur.read(&mut from_upstream) => (r, false),
                c = state.changed() => { if c.is_err() || cut(&state.borrow()) { return } continue }
            },
            None => tokio::select! {
                r = cr.read(&mut from_client) => (r, true),
                c = state.changed() => { if c.is_err() || cut(&state.borrow()) { return } continue }
            },
        };
        let n = match n {
            Ok(0) | Err(_) => return, // either side closed: close both
            Ok(n) => n,
        };
        let s = *state.borrow();
        if cut(&s) {
            return;
        }
        if dead(&s) {
            stats.swallowed_bytes.fetch_add(n as u64, Ordering::Relaxed);
            continue;
        }
        let delay = match s.mode {
            Mode::Delay(d) => d,
            _ => Duration::ZERO,
        };
        let forward = async {
            tokio::time::sleep(delay).await;
            match (&mut upstream, up) {
                (Some((_, uw)), true) => uw.write_all(&from_client[..n]).await,
                (_, false) => cw.write_all(&from_upstream[..n]).await,
                (None, true) => Ok(()),
            }
        };
        // A peer that stopped reading must not keep a Cut from closing the connection.
        let written = tokio::select! {
            w = forward => w,
            _ = until_cut(&mut state, born.cut_epoch) => return,
        };
        if written.is_err() {
            return;
        }
        stats.forwarded_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn until_cut(state: &mut watch::Receiver<State>, epoch: u64) {
    // A closed channel means the proxy is gone: treat it as a Cut.
    let _ = state.wait_for(|s| s.cut_epoch != epoch).await;
}
