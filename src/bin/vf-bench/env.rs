//! The benchmark's environment: one throwaway PostgreSQL cluster (tuned, see [`PG_SETTINGS`]),
//! a fresh Mosquitto and a fresh database per measured run, and the processes a run starts —
//! the real service binary, `mosquitto_sub`, `mosquitto_pub`, and this binary's own publisher and
//! bare rumqttc subscriber — with their CPU time read from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use visitorflow::supervise::{Mosquitto, PgCluster};

use crate::procs;
use crate::workload::{self, Layout, ServiceSettings};

/// The benchmark cluster's settings (applied with ALTER SYSTEM and a restart). Durability is
/// untouched: fsync and synchronous_commit stay on, every batch commit waits for its WAL flush.
/// track_commit_timestamp lets the latency run read when each report's transaction committed.
pub const PG_SETTINGS: &[(&str, &str)] = &[
    ("shared_buffers", "256MB"),
    ("wal_buffers", "16MB"),
    ("max_wal_size", "1GB"),
    ("checkpoint_timeout", "15min"),
    ("track_commit_timestamp", "on"),
];

pub struct Env {
    pub dir: PathBuf,
    pub pg: PgCluster,
    pub admin: tokio_postgres::Client,
    /// The `visitorflow` binary next to this one (the same build).
    pub service_bin: PathBuf,
    pub me: PathBuf,
    next: u64,
}

impl Env {
    pub async fn start(dir: PathBuf) -> anyhow::Result<Env> {
        std::fs::create_dir_all(&dir)?;
        let me = std::env::current_exe()?;
        let service_bin = me.with_file_name("visitorflow");
        anyhow::ensure!(
            service_bin.is_file(),
            "{} not found: build both binaries (scripts/bench does)",
            service_bin.display()
        );
        let mut pg = PgCluster::start(&dir.join("pg")).context("starting PostgreSQL")?;
        {
            let admin = visitorflow::store::connect(&pg.url("postgres")).await?;
            for (k, v) in PG_SETTINGS {
                admin
                    .batch_execute(&format!("ALTER SYSTEM SET {k} = '{v}'"))
                    .await?;
            }
        }
        pg.stop()?;
        pg.start_again()?;
        let admin = visitorflow::store::connect(&pg.url("postgres")).await?;
        Ok(Env {
            dir,
            pg,
            admin,
            service_bin,
            me,
            next: 0,
        })
    }

    /// A name unique in this benchmark run.
    pub fn unique(&mut self, what: &str) -> String {
        self.next += 1;
        format!("{what}{}", self.next)
    }

    pub fn broker(&mut self) -> anyhow::Result<Mosquitto> {
        let name = self.unique("mq");
        Mosquitto::start(&self.dir.join(name)).context("starting Mosquitto")
    }

    pub async fn database(&mut self) -> anyhow::Result<Db> {
        let name = self.unique("run");
        self.admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = self.pg.url(&name);
        Ok(Db { name, url })
    }

    pub async fn drop_database(&self, db: Db) -> anyhow::Result<()> {
        self.admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name))
            .await?;
        Ok(())
    }

    pub fn pg_pid(&self) -> Option<u32> {
        procs::postmaster_pid(&self.pg.dir().join("data"))
    }

    /// Starts the service binary on `layout` and waits until it holds its broker session.
    pub async fn service(
        &mut self,
        layout: &Layout,
        db: &Db,
        broker: &Mosquitto,
        client_id: &str,
        webhook: Option<String>,
    ) -> anyhow::Result<Service> {
        let name = self.unique("svc");
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = self.dir.join(format!("{name}.toml"));
        workload::write_config(
            layout,
            &ServiceSettings {
                db_url: db.url.clone(),
                mqtt_port: broker.port(),
                client_id,
                http,
                webhook,
            },
            &config,
        )?;
        let svc = Service {
            config,
            http,
            log: self.dir.join(format!("{name}.log")),
            bin: self.service_bin.clone(),
            child: None,
            spawned: None,
            ready_after: None,
            ready_hwm_kib: None,
        };
        Ok(svc)
    }

    /// This binary with a helper subcommand.
    pub fn helper(&self) -> Command {
        Command::new(&self.me)
    }
}

pub struct Db {
    pub name: String,
    pub url: String,
}

impl Db {
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        Ok(visitorflow::store::connect(&self.url).await?)
    }
}

/// Reads the county's committed entries: every accepted report rolls up to it, so this reaching
/// the expected sum means every report is committed (the live view is published right after).
pub async fn county_entries(db: &tokio_postgres::Client) -> anyhow::Result<u64> {
    let rows = db
        .query(
            "SELECT entries FROM space_state WHERE space_id = $1",
            &[&workload::ROOT],
        )
        .await?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
}

/// Fails unless the raw table holds exactly `n` reports, all distinct by (device, seq), and the
/// county's entries are exactly the published sum.
pub async fn verify_exactly_once(
    db: &tokio_postgres::Client,
    n: u64,
    entries: u64,
) -> anyhow::Result<()> {
    let r = db
        .query_one(
            "SELECT count(*), count(DISTINCT (device_id, seq)) FROM reports",
            &[],
        )
        .await?;
    let (rows, distinct): (i64, i64) = (r.get(0), r.get(1));
    // The state tables follow the committed figures at the service's next checkpoint, which
    // comes once input pauses.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut county = county_entries(db).await?;
    while county < entries && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        county = county_entries(db).await?;
    }
    if rows as u64 != n || distinct as u64 != n || county != entries {
        bail!(
            "exactly-once violated: published {n} reports ({entries} entries); stored {rows} rows, \
             {distinct} distinct (device, seq), county entries {county}"
        );
    }
    Ok(())
}

pub struct Service {
    pub config: PathBuf,
    pub http: SocketAddr,
    pub log: PathBuf,
    bin: PathBuf,
    pub child: Option<Child>,
    spawned: Option<Instant>,
    /// From spawning the process to its first `/readyz` 200 (registry loaded, database migrated,
    /// broker subscribed), polled every 10 ms.
    pub ready_after: Option<Duration>,
    /// VmHWM at that moment: the start-up peak, before any report.
    pub ready_hwm_kib: Option<u64>,
}

impl Service {
    pub fn spawn(&mut self) -> anyhow::Result<u32> {
        let log = std::fs::File::create(&self.log)?;
        let child = Command::new(&self.bin)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            // As deploy/Dockerfile and deploy/visitorflow.service run it.
            .env("MIMALLOC_PURGE_DELAY", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting visitorflow")?;
        self.spawned = Some(Instant::now());
        let pid = child.id();
        self.child = Some(child);
        Ok(pid)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!("visitorflow exited ({status}); see {}", self.log.display());
            }
            let url = format!("http://{}/readyz", self.http);
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                self.ready_after = self.spawned.map(|t| t.elapsed());
                self.ready_hwm_kib = self.pid().and_then(|p| procs::status_kib(p, "VmHWM:"));
                // Readiness is set on ConnAck with the SUBSCRIBEs already written; give the
                // broker a moment to process them before anything is published.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("visitorflow not ready in 120 s; see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What a line-reading subscriber saw: JSON reports counted, the instant the expected count was
/// reached, and (when asked) each report's delivery latency from its `ts` stamp.
#[derive(Default)]
pub struct Seen {
    pub reports: u64,
    pub other: u64,
    pub done_at: Option<Instant>,
    /// When a line starting with `done` arrived (`vf-bench count-sub` prints one).
    pub marker_at: Option<Instant>,
    pub latencies: Vec<f64>,
}

/// A child process whose stdout lines are read on a thread.
pub struct Lines {
    pub child: Child,
    pub seen: Arc<Mutex<Seen>>,
}

impl Lines {
    /// `expect`: the report count whose arrival is timed. `latency`: parse each line's `ts`.
    pub fn spawn(mut cmd: Command, expect: u64, latency: bool) -> anyhow::Result<Lines> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        let out = child.stdout.take().expect("piped stdout");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let s = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 20, out);
            let mut line = Vec::with_capacity(512);
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let now = Instant::now();
                let lat = if latency && line.first() == Some(&b'{') {
                    report_latency(&line)
                } else {
                    None
                };
                let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                if line.first() == Some(&b'{') {
                    s.reports += 1;
                    if s.reports == expect {
                        s.done_at = Some(now);
                    }
                } else {
                    s.other += 1;
                    if line.starts_with(b"done") {
                        s.marker_at = Some(now);
                    }
                }
                if let Some(l) = lat {
                    s.latencies.push(l);
                }
            }
        });
        Ok(Lines { child, seen })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn reports(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).reports
    }

    pub fn others(&self) -> u64 {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).other
    }

    pub fn done_at(&self) -> Option<Instant> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).done_at
    }

    /// Waits until the expected count arrived; fails if nothing new arrives for `stall`.
    pub async fn wait_done(&mut self, what: &str, stall: Duration) -> anyhow::Result<Instant> {
        let mut last = (0, Instant::now());
        loop {
            if let Some(t) = self.done_at() {
                return Ok(t);
            }
            let n = self.reports();
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() > stall {
                bail!("{what}: stalled at {n} reports");
            }
            if let Some(status) = self.child.try_wait()? {
                if let Some(t) = self.done_at() {
                    return Ok(t);
                }
                bail!("{what} exited ({status}) after {n} reports");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for the `done` line of a `vf-bench count-sub`.
    pub async fn wait_marker(&mut self, what: &str, timeout: Duration) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .marker_at
            {
                return Ok(t);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{what} exited ({status}) before it was done");
            }
            anyhow::ensure!(Instant::now() < deadline, "{what}: not done in {timeout:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Seconds from a report's `"ts"` stamp to now.
fn report_latency(line: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(line).ok()?;
    let start = text.find("\"ts\":\"")? + 6;
    let end = start + text[start..].find('"')?;
    let ts = DateTime::parse_from_rfc3339(&text[start..end]).ok()?;
    let d = Utc::now() - ts.with_timezone(&Utc);
    Some(d.as_seconds_f64())
}

/// `mosquitto_sub` on the report topics (and a probe topic, to know when it is subscribed).
pub fn mosquitto_sub(port: u16, id: &str, persistent: bool, line_buffered: bool) -> Command {
    let mut cmd = if line_buffered {
        // Through a pipe stdio buffers 4 KiB; the latency run needs each line when it arrives.
        let mut c = Command::new("stdbuf");
        c.args(["-oL", "mosquitto_sub"]);
        c
    } else {
        Command::new("mosquitto_sub")
    };
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-i",
        id,
    ])
    .args(["--nodelay", "-t", "vf/+/+/counts", "-t", "bench/probe"]);
    if persistent {
        cmd.arg("-c");
    }
    cmd
}

/// Publishes probes until a freshly started `mosquitto_sub` shows it is subscribed.
pub async fn wait_subscribed(sub: &Lines, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sub.others() == 0 {
        anyhow::ensure!(Instant::now() < deadline, "mosquitto_sub never subscribed");
        let _ = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "bench/probe", "-m", "probe", "-q", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One `mosquitto_pub -l` input: a device's topic and a file of its reports, one a line.
pub struct Chunk {
    pub topic: String,
    pub file: PathBuf,
    pub lines: u64,
}

/// Splits `n` reports into chunks of at most `per_chunk` lines, one device each (`mosquitto_pub
/// -l` stops early on long input and publishes to a single topic).
pub fn write_chunks(
    dir: &Path,
    layout: &Layout,
    n: u64,
    per_chunk: u64,
    seq_base: u64,
) -> anyhow::Result<Vec<Chunk>> {
    use std::io::Write as _;
    let chunks = n.div_ceil(per_chunk) as usize;
    anyhow::ensure!(
        chunks <= layout.devices.len(),
        "{chunks} chunks need as many devices; the layout has {}",
        layout.devices.len()
    );
    let ts = workload::stamp(Utc::now());
    let mut out = Vec::new();
    let mut body = String::new();
    for c in 0..chunks {
        let lines = per_chunk.min(n - c as u64 * per_chunk);
        let file = dir.join(format!("chunk-{c:03}.jsonl"));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for seq in seq_base + 1..=seq_base + lines {
            workload::payload(&mut body, seq, &ts);
            writeln!(w, "{body}")?;
        }
        w.flush()?;
        out.push(Chunk {
            topic: layout.topic(c),
            file,
            lines,
        });
    }
    Ok(out)
}

/// Runs `mosquitto_pub -l -M 1000` over the chunks, `lanes` processes at a time, each with its own
/// client id; returns when all have exited.
pub async fn mosquitto_pub(
    port: u16,
    chunks: &[Chunk],
    qos: u8,
    lanes: usize,
    tag: &str,
) -> anyhow::Result<()> {
    let mut next = 0;
    let mut running: Vec<Child> = Vec::new();
    while next < chunks.len() || !running.is_empty() {
        while running.len() < lanes.max(1) && next < chunks.len() {
            let c = &chunks[next];
            let child = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-q", &qos.to_string(), "-M", "1000", "--nodelay", "-l"])
                .args(["-i", &format!("{tag}-{next}"), "-t", &c.topic])
                .stdin(std::fs::File::open(&c.file)?)
                .stdout(Stdio::null())
                .spawn()
                .context("starting mosquitto_pub")?;
            running.push(child);
            next += 1;
        }
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].try_wait()? {
                anyhow::ensure!(status.success(), "mosquitto_pub failed: {status}");
                // Already reaped by try_wait.
                let _ = running.swap_remove(i).wait();
            } else {
                i += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// CPU seconds so far of the processes a run measures.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSnap {
    pub at: Option<Instant>,
    pub sink: f64,
    pub pg: f64,
    pub broker: f64,
}

impl CpuSnap {
    pub fn take(sink: Option<u32>, pg: Option<u32>, broker: Option<u32>) -> CpuSnap {
        CpuSnap {
            at: Some(Instant::now()),
            sink: sink.and_then(procs::cpu_secs).unwrap_or(0.0),
            pg: pg.map(procs::tree_cpu_secs).unwrap_or(0.0),
            broker: broker.and_then(procs::cpu_secs).unwrap_or(0.0),
        }
    }

    pub fn since(&self, before: &CpuSnap) -> CpuSnap {
        CpuSnap {
            at: None,
            sink: self.sink - before.sink,
            pg: self.pg - before.pg,
            broker: self.broker - before.broker,
        }
    }
}
