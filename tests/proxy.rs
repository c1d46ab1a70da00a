//! The fault proxy itself (`tests/common/proxy.rs`), against a local echo server: each mode does
//! what the fault tests rely on.

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Mode, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn connect(p: &Proxy) -> TcpStream {
    TcpStream::connect(("127.0.0.1", p.port())).await.unwrap()
}

/// Sends `msg` and reads the echo; `None` when nothing came back within `wait`.
async fn round_trip(s: &mut TcpStream, msg: &[u8], wait: Duration) -> Option<Vec<u8>> {
    s.write_all(msg).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    tokio::time::timeout(wait, async {
        while got.len() < msg.len() {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    (got.len() == msg.len()).then_some(got)
}

/// Whether the peer closed the connection within `wait` (EOF or reset), as opposed to silence.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

const WAIT: Duration = Duration::from_millis(300);

#[tokio::test]
async fn pass_and_delay_forward_both_ways() {
    let p = Proxy::start(echo_server().await).await;
    let mut s = connect(&p).await;
    assert_eq!(round_trip(&mut s, b"hello", WAIT).await.unwrap(), b"hello");

    p.set(Mode::Delay(Duration::from_millis(150)));
    let t = Instant::now();
    assert_eq!(
        round_trip(&mut s, b"slow", Duration::from_secs(2))
            .await
            .unwrap(),
        b"slow"
    );
    // One chunk each way, each delayed.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    p.set(Mode::Pass);
    assert_eq!(round_trip(&mut s, b"fast", WAIT).await.unwrap(), b"fast");
    assert!(
        p.stats()
            .forwarded_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 26
    );
}

#[tokio::test]
async fn blackhole_swallows_silently_and_blackholed_connections_stay_dead() {
    let p = Proxy::start(echo_server().await).await;
    let mut old = connect(&p).await;
    assert!(round_trip(&mut old, b"before", WAIT).await.is_some());

    p.set(Mode::Blackhole);
    // Writes succeed, nothing comes back, and the connection is not closed either.
    assert_eq!(round_trip(&mut old, b"lost", WAIT).await, None);
    assert!(!closed_within(&mut old, WAIT).await);
    // A newcomer is accepted (the connect succeeds) and swallowed.
    let mut during = connect(&p).await;
    assert_eq!(round_trip(&mut during, b"lost too", WAIT).await, None);
    assert_eq!(p.open_connections(), 2);
    assert!(
        p.stats()
            .swallowed_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 12
    );

    p.set(Mode::Pass);
    let mut fresh = connect(&p).await;
    assert_eq!(
        round_trip(&mut fresh, b"after", WAIT).await.unwrap(),
        b"after"
    );
    assert_eq!(round_trip(&mut old, b"still dead", WAIT).await, None);
    assert_eq!(round_trip(&mut during, b"still dead", WAIT).await, None);
}

#[tokio::test]
async fn cut_closes_open_connections_and_refuses_new_ones_until_pass() {
    let p = Proxy::start(echo_server().await).await;
    let mut a = connect(&p).await;
    assert!(round_trip(&mut a, b"x", WAIT).await.is_some());

    p.set(Mode::Cut);
    assert!(closed_within(&mut a, WAIT).await, "open connection closed");
    let refused = tokio::time::timeout(WAIT, async {
        loop {
            // The listener closes asynchronously: wait for the refusal.
            match TcpStream::connect(("127.0.0.1", p.port())).await {
                Err(e) => return e.kind(),
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("connects refused during a Cut");
    assert_eq!(refused, std::io::ErrorKind::ConnectionRefused);

    p.set(Mode::Pass);
    let mut b = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", p.port())).await {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("same port accepts again after Pass");
    assert_eq!(round_trip(&mut b, b"back", WAIT).await.unwrap(), b"back");
}

#[tokio::test]
async fn a_blink_of_cut_still_closes_every_connection() {
    let p = Proxy::start(echo_server().await).await;
    let mut a = connect(&p).await;
    assert!(round_trip(&mut a, b"x", WAIT).await.is_some());
    // Switched back before any task could look at the mode: the epoch still catches it.
    p.set(Mode::Cut);
    p.set(Mode::Pass);
    assert!(closed_within(&mut a, WAIT).await);
}
