//! The real `visitorflow demo` binary, started the way a new user starts it: from a private
//! (mode 700) working directory, which as root is what a checkout in root's home is (user
//! `postgres` cannot reach it). It must come up, serve the county, and leave nothing running
//! after SIGTERM; after SIGKILL the next demo in the same directory must recover.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the banner says.
#[derive(Debug)]
struct Banner {
    http: SocketAddr,
    token: String,
    pg_port: u16,
    pg_dir: PathBuf,
    broker_port: u16,
    /// Mosquitto's pid (none for the embedded broker).
    broker_pid: Option<u32>,
    notes: Vec<String>,
}

fn parse_banner(lines: &[String]) -> Banner {
    let after = |prefix: &str| -> Option<&str> {
        lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .map(str::trim)
    };
    let port_of = |s: &str| -> u16 {
        s.split_whitespace()
            .find_map(|w| w.strip_prefix("127.0.0.1:"))
            .and_then(|p| {
                p.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no 127.0.0.1:PORT in {s:?}"))
    };
    let pg = after("started PostgreSQL on ").expect("PostgreSQL line");
    let pg_dir = pg
        .split_once("(data in ")
        .and_then(|(_, d)| d.strip_suffix(')'))
        .expect("PostgreSQL data dir");
    let broker = lines
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("started mosquitto") || l.starts_with("started embedded"))
        .expect("broker line");
    let broker_pid = broker
        .split_once("(pid ")
        .and_then(|(_, p)| p.split(')').next())
        .map(|p| p.parse().unwrap());
    let http = after("control room")
        .and_then(|u| u.strip_prefix("http://"))
        .map(|u| u.trim_end_matches('/').parse().unwrap())
        .expect("control room URL");
    Banner {
        http,
        token: after("admin token").expect("admin token").to_owned(),
        pg_port: port_of(pg),
        pg_dir: PathBuf::from(pg_dir),
        broker_port: port_of(broker),
        broker_pid,
        notes: lines
            .iter()
            .filter_map(|l| l.trim().strip_prefix("note: "))
            .map(str::to_owned)
            .collect(),
    }
}

/// A demo process; dropping it (a failed test) stops it with SIGTERM, so nothing is left behind.
struct Demo {
    child: Child,
    banner: Banner,
}

fn start_demo(cwd: &Path, extra: &[&str]) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_visitorflow"))
        .args(["demo", "--speed", "600"])
        .args(extra)
        .current_dir(cwd)
        .env_remove("VISITORFLOW_DEMO_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning the demo");
    // Read on a thread for the demo's whole life: its logs go to stdout too, and a full pipe
    // would stall it.
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.starts_with("Press Ctrl-C") => break,
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "the demo did not come up within {READY_TIMEOUT:?} ({status:?}):\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    // Keep draining in the background.
    thread::spawn(move || while rx.recv().is_ok() {});
    let banner = parse_banner(&lines);
    Demo { child, banner }
}

impl Demo {
    fn signal(&self, signal: &str) {
        let status = Command::new("/bin/sh")
            .args(["-c", r#"kill -s "$1" "$2""#, "sh", signal])
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal}");
    }

    /// Sends `signal` and waits for the demo to exit.
    fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        self.signal(signal);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not exit within {STOP_TIMEOUT:?} of SIG{signal}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop_with("TERM");
        }
    }
}

/// A private working directory: mode 700, owned by whoever runs the tests (root in CI).
fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// The county's scenic areas, from the embedded default the demo runs on.
fn county_scenic_areas() -> HashSet<String> {
    let cfg: toml::Value = toml::from_str(visitorflow::config::EMBEDDED_DEFAULT).unwrap();
    cfg["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"].as_str() == Some("scenic_area"))
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET /api/v1/spaces` with the printed admin token lists every scenic area of the county.
fn assert_serves_the_county(banner: &Banner) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let spaces: serde_json::Value = rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("http://{}/api/v1/spaces", banner.http))
            .bearer_auth(&banner.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    });
    let listed: HashSet<String> = spaces
        .as_array()
        .expect("a list of spaces")
        .iter()
        .filter(|s| s["kind"] == "scenic_area")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let want = county_scenic_areas();
    assert!(want.len() >= 2, "{want:?}");
    assert_eq!(listed, want);
    assert!(
        spaces
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "county")
    );
    // The simulated ticket office sells the canyon's slots: booked places show within seconds,
    // and the booking data is fresh.
    let day = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let url = format!(
        "http://{}/api/v1/spaces/tianshan-canyon/slots?day={day}",
        banner.http
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let slots = loop {
        let v: serde_json::Value = rt.block_on(async {
            let resp = reqwest::Client::new()
                .get(&url)
                .bearer_auth(&banner.token)
                .send()
                .await
                .unwrap();
            resp.json().await.unwrap()
        });
        let sold: u64 = v["slots"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["sold"].as_u64()).sum())
            .unwrap_or(0);
        if sold > 0 && v["stale"] == false {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no tickets sold in the demo: {v}"
        );
        thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(slots["slots"].as_array().unwrap().len(), 9, "{slots}");

    // With its history in, tomorrow — a simulated public holiday — is forecast busier and the
    // evening-before warning opens for the canyon, worded for tomorrow.
    let url = format!("http://{}/api/v1/alerts?limit=1000", banner.http);
    let deadline = Instant::now() + Duration::from_secs(90);
    let warning = loop {
        let v: serde_json::Value = rt.block_on(async {
            let resp = reqwest::Client::new()
                .get(&url)
                .bearer_auth(&banner.token)
                .send()
                .await
                .unwrap();
            resp.json().await.unwrap()
        });
        let found = v["alerts"].as_array().into_iter().flatten().find(|a| {
            a["space_id"] == "tianshan-canyon"
                && a["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("forecast."))
                && a["state"] == "firing"
        });
        if let Some(a) = found {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no evening-before warning for the canyon in the demo"
        );
        thread::sleep(Duration::from_millis(500));
    };
    let msg = warning["details"]["message_zh"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("明日"), "{warning}");
    let url = format!(
        "http://{}/api/v1/spaces/tianshan-canyon/forecast?days=2",
        banner.http
    );
    let f: serde_json::Value = rt.block_on(async {
        reqwest::Client::new()
            .get(&url)
            .bearer_auth(&banner.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let days = f["days"].as_array().expect("forecast days");
    assert_eq!(days[0]["day_kind"], "holiday", "{f}");
    let entries = |d: &serde_json::Value| d["entries"]["mean"].as_f64().unwrap();
    assert!(
        entries(&days[0]) > 2.0 * entries(&days[1]),
        "the holiday is not forecast busier: {f}"
    );
}

/// Processes whose command line mentions any of `needles` (a zombie's is empty: it is gone).
fn processes_mentioning(needles: &[&Path]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if needles
            .iter()
            .any(|n| cmdline.contains(n.to_string_lossy().as_ref()))
        {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(250),
    )
    .is_ok()
}

/// Nothing the demo started is left: no process mentions its directories, its ports are closed,
/// and its HTTP address can be bound again at once.
fn assert_nothing_left(cwd: &Path, banner: &Banner) {
    let left = processes_mentioning(&[cwd, &banner.pg_dir]);
    assert!(left.is_empty(), "left running: {left:#?}");
    assert!(!accepts(banner.pg_port), "PostgreSQL port still open");
    assert!(!accepts(banner.broker_port), "broker port still open");
    TcpListener::bind(banner.http).expect("the demo's HTTP port is free again");
}

/// The cluster may live outside `cwd` (under the temporary directory, see the banner's note).
fn remove_cluster(cwd: &Path, banner: &Banner) {
    if !banner.pg_dir.starts_with(cwd) {
        std::fs::remove_dir_all(&banner.pg_dir).unwrap();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            line.split_whitespace().nth(2).map(|u| u == "0")
        })
        .unwrap_or(false)
}

#[test]
fn demo_from_a_private_directory_serves_the_county_and_sigterm_stops_everything() {
    let cwd = private_dir();
    // 8080 taken (by us, or already by someone else): the demo must pick another port.
    let _taken = TcpListener::bind("127.0.0.1:8080");
    let started = Instant::now();
    let mut demo = start_demo(cwd.path(), &[]);
    let ready = started.elapsed();
    let banner = &demo.banner;
    assert_ne!(banner.http.port(), 8080, "{banner:?}");
    assert!(
        banner.notes.iter().any(|n| n.contains("8080 is in use")),
        "{banner:?}"
    );
    if is_root() {
        // User postgres cannot reach a mode-700 directory of root's: the cluster went elsewhere,
        // private to it, and the banner says where.
        assert!(!banner.pg_dir.starts_with(cwd.path()), "{banner:?}");
        assert!(
            banner
                .notes
                .iter()
                .any(|n| n.contains(&*banner.pg_dir.to_string_lossy())),
            "{banner:?}"
        );
        let parent = banner.pg_dir.parent().unwrap();
        let mode = std::fs::metadata(parent).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", parent.display());
    }
    assert_serves_the_county(&demo.banner);

    let status = demo.stop_with("TERM");
    assert!(status.success(), "{status}");
    assert_nothing_left(cwd.path(), &demo.banner);
    remove_cluster(cwd.path(), &demo.banner);
    eprintln!("ready in {ready:?}");
}

#[test]
fn after_a_sigkill_the_next_demo_in_the_directory_recovers() {
    let cwd = private_dir();
    let any_port = ["--http", "127.0.0.1:0"];
    let mut killed = start_demo(cwd.path(), &any_port);
    killed.stop_with("KILL");
    // Its servers run in their own process groups, so they outlive it: the case to recover from.
    let pg_data = killed.banner.pg_dir.join("data");
    assert!(
        !processes_mentioning(&[&pg_data]).is_empty(),
        "expected the killed demo's PostgreSQL to be still running"
    );

    let mut demo = start_demo(cwd.path(), &any_port);
    assert_eq!(demo.banner.pg_dir, killed.banner.pg_dir, "same cluster");
    assert_serves_the_county(&demo.banner);
    if let Some(pid) = killed.banner.broker_pid {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(
            cmdline.is_empty(),
            "the killed demo's mosquitto (pid {pid}) is still running"
        );
    }
    if killed.banner.pg_port != demo.banner.pg_port {
        assert!(
            !accepts(killed.banner.pg_port),
            "the killed demo's PostgreSQL port"
        );
    }

    let status = demo.stop_with("TERM");
    assert!(status.success(), "{status}");
    // The same directories as the killed demo's, so its processes are covered too.
    assert_nothing_left(cwd.path(), &demo.banner);
    remove_cluster(cwd.path(), &demo.banner);
}
