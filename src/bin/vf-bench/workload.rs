//! What the benchmark feeds the service: a generated registry (county → areas → zones, counters on
//! the zones), the ~210-byte JSON count reports devices send, and the config of a service run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use visitorflow::config::{Config, DeviceConfig, DeviceKind, Direction, SpaceConfig, SpaceKind};

pub const ROOT: &str = "county";

/// A generated county: `spaces` spaces in total (the county, ~√n scenic areas, the rest zones)
/// and `devices` people counters spread round-robin over the zones. Every counter's reports roll
/// up zone → area → county, so the county's entries count every accepted report.
pub struct Layout {
    pub spaces: Vec<SpaceConfig>,
    pub devices: Vec<DeviceConfig>,
    /// Write the devices as a CSV beside the config (`[registry] devices_csv`) instead of
    /// `[[devices]]` tables: how a county with 100,000 counters is configured.
    pub devices_csv: bool,
}

impl Layout {
    pub fn new(spaces: usize, devices: usize) -> Layout {
        let spaces = spaces.max(3);
        let areas = (((spaces - 1) as f64).sqrt().round() as usize).clamp(1, spaces - 2);
        let zones = spaces - 1 - areas;
        let space = |id: String, kind, parent: Option<String>, capacity| SpaceConfig {
            name_zh: format!("空间 {id}"),
            name_en: format!("Space {id}"),
            id,
            kind,
            parent,
            instant_capacity: capacity,
            daily_capacity: capacity.map(|c| c.saturating_mul(4)),
            opens_at: None,
        };
        let mut out = vec![space(ROOT.into(), SpaceKind::County, None, None)];
        // Capacities far above any load in a run: the rules evaluate them, nothing fires.
        for a in 0..areas {
            out.push(space(
                format!("area-{a:04}"),
                SpaceKind::ScenicArea,
                Some(ROOT.into()),
                Some(100_000_000),
            ));
        }
        for z in 0..zones {
            out.push(space(
                format!("zone-{z:05}"),
                SpaceKind::Zone,
                Some(format!("area-{:04}", z % areas)),
                Some(10_000_000),
            ));
        }
        let devices = (0..devices)
            .map(|d| DeviceConfig {
                id: format!("cam-{d:06}"),
                space: format!("zone-{:05}", d % zones),
                kind: DeviceKind::Camera,
                format: Default::default(),
                direction: Direction::Normal,
                lines: Vec::new(),
                channel: None,
                http_sha256: None,
                poll: None,
            })
            .collect();
        Layout {
            spaces: out,
            devices,
            devices_csv: false,
        }
    }

    pub fn topic(&self, device: usize) -> String {
        let d = &self.devices[device];
        format!("vf/{}/{}/counts", d.space, d.id)
    }

    /// Adds `n` scenic areas with a small capacity and one gate each, for level crossings.
    pub fn add_alert_areas(&mut self, n: usize, capacity: u32) {
        for i in 0..n {
            let id = format!("hot-{i:03}");
            self.spaces.push(SpaceConfig {
                id: id.clone(),
                kind: SpaceKind::ScenicArea,
                parent: Some(ROOT.into()),
                name_zh: format!("热点 {i}"),
                name_en: format!("Hotspot {i}"),
                instant_capacity: Some(capacity),
                daily_capacity: None,
                opens_at: None,
            });
            self.devices.push(DeviceConfig {
                id: format!("{id}-gate"),
                space: id,
                kind: DeviceKind::Gate,
                format: Default::default(),
                direction: Direction::Normal,
                lines: Vec::new(),
                channel: None,
                http_sha256: None,
                poll: None,
            });
        }
    }

    /// Writes the topics of the devices at `indices`, one a line, for the publisher processes.
    pub fn write_topic_subset(&self, path: &Path, indices: &[usize]) -> anyhow::Result<()> {
        let mut s = String::new();
        for &d in indices {
            let _ = writeln!(s, "{}", self.topic(d));
        }
        std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
    }

    /// Writes the `(topic)` of each device, one a line, for the publisher processes.
    pub fn write_topics(&self, path: &Path, devices: usize) -> anyhow::Result<()> {
        let mut s = String::new();
        for d in 0..devices.min(self.devices.len()) {
            let _ = writeln!(s, "{}", self.topic(d));
        }
        std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
    }
}

/// What a service run needs besides the registry.
pub struct ServiceSettings<'a> {
    pub db_url: String,
    pub mqtt_port: u16,
    pub client_id: &'a str,
    pub http: std::net::SocketAddr,
    pub webhook: Option<String>,
}

/// A viewer token every benchmark service accepts (the reads scenario's `wrk` uses it).
pub const READER_TOKEN: &str = "vf_bench-reader";

pub fn write_config(layout: &Layout, s: &ServiceSettings, path: &Path) -> anyhow::Result<()> {
    let mut cfg = Config::from_toml("")?;
    cfg.spaces = layout.spaces.clone();
    if layout.devices_csv {
        let csv = path.with_extension("devices.csv");
        write_devices_csv(&layout.devices, &csv)?;
        cfg.registry.devices_csv = Some(csv);
    } else {
        cfg.devices = layout.devices.clone();
    }
    cfg.database.url = s.db_url.clone();
    cfg.database.timescaledb = false;
    cfg.database.raw_retention_days = 0;
    cfg.database.pool_size = 4;
    cfg.mqtt.port = s.mqtt_port;
    cfg.mqtt.client_id = s.client_id.into();
    cfg.mqtt.reconnect_delay_ms = 100;
    cfg.http.listen = s.http;
    cfg.tokens = vec![visitorflow::config::TokenConfig {
        id: "bench-reader".into(),
        role: visitorflow::config::Role::Viewer,
        spaces: Vec::new(),
        sha256: visitorflow::api::auth::hex(&visitorflow::api::auth::sha256(READER_TOKEN)),
    }];
    // The limits protect a deployment from one client; here that client is the load generator.
    cfg.http.rate_per_token = 1e9;
    cfg.http.rate_per_ip = 1e9;
    cfg.http.rate_burst = 1_000_000;
    if let Some(url) = &s.webhook {
        cfg.alerting.tick_ms = 1000;
        cfg.rules.dwell_s = 1;
        cfg.webhooks = vec![serde_json::from_value(serde_json::json!({
            "id": "bench",
            "url": url,
            "format": "json",
            "kinds": ["instant_level"],
            "min_severity": "info",
            "allow_private_network": true,
        }))?];
    }
    let text = toml::to_string(&cfg).context("serialising the config")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The devices as a registry CSV (only what [`Layout`] sets: id, space, kind; the rest default).
fn write_devices_csv(devices: &[DeviceConfig], path: &Path) -> anyhow::Result<()> {
    let mut s = String::with_capacity(devices.len() * 32 + 16);
    s.push_str("id,space,kind\n");
    for d in devices {
        let kind = match d.kind {
            DeviceKind::Gate => "gate",
            DeviceKind::Camera => "camera",
            DeviceKind::VehicleCounter => "vehicle_counter",
        };
        let _ = writeln!(s, "{},{},{kind}", d.id, d.space);
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// People in and out in report `seq` of a device (deterministic, so the expected totals are
/// known): entries 1–3, an exit every 4th report, never more out than in.
pub fn counts(seq: u64) -> (u64, u64) {
    (1 + seq % 3, u64::from(seq.is_multiple_of(4)))
}

/// Σ entries and Σ exits of reports 1..=seq (the device's cumulative counters).
pub fn totals(seq: u64) -> (u64, u64) {
    let cycles = seq / 3;
    let rest = match seq % 3 {
        0 => 0,
        1 => 1,
        _ => 3,
    };
    (seq + 3 * cycles + rest, seq / 4)
}

/// Σ entries of every device's reports 1..=last, given each device's last seq.
pub fn expected_entries(last_seqs: impl IntoIterator<Item = u64>) -> u64 {
    last_seqs.into_iter().map(|n| totals(n).0).sum()
}

/// China Standard Time, as the county's devices stamp their reports.
pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.with_timezone(&cst())
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// One report as a people counter sends it (~210 bytes: the contract's fields plus the
/// housekeeping fields real counters add, which the service ignores).
pub fn payload(out: &mut String, seq: u64, ts: &str) {
    let (e, x) = counts(seq);
    let (te, tx) = totals(seq);
    out.clear();
    let _ = write!(
        out,
        r#"{{"seq":{seq},"ts":"{ts}","in":{e},"out":{x},"period_s":60,"total_in":{te},"total_out":{tx},"model":"VF-PC200","fw":"3.2.1","battery_pct":97,"rssi_dbm":-67,"temp_c":18.5,"uptime_s":{}}}"#,
        86_400 + seq
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_the_running_sums() {
        let (mut e, mut x) = (0, 0);
        for s in 1..100 {
            let (de, dx) = counts(s);
            e += de;
            x += dx;
            assert_eq!(totals(s), (e, x), "seq {s}");
        }
    }

    #[test]
    fn payload_is_about_210_bytes_and_decodes() {
        let mut p = String::new();
        payload(&mut p, 123_456, &stamp(Utc::now()));
        assert!((195..=225).contains(&p.len()), "{} bytes: {p}", p.len());
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["seq"], 123_456);
    }

    #[test]
    fn layout_sizes_and_rollup() {
        for n in [10, 1000, 10_000] {
            let l = Layout::new(n, 2 * n);
            assert_eq!(l.spaces.len(), n);
            let mut cfg = Config::from_toml("").unwrap();
            cfg.spaces = l.spaces;
            cfg.devices = l.devices;
            let reg = cfg.registry().unwrap();
            assert_eq!(reg.targets(reg.device_idx("cam-000000").unwrap()).len(), 3);
        }
    }

    #[test]
    fn the_csv_registry_is_the_toml_one() {
        let dir = std::env::temp_dir().join(format!("vf-bench-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut layout = Layout::new(10, 40);
        layout.add_alert_areas(2, 5);
        let settings = ServiceSettings {
            db_url: "postgres://x@localhost/x".into(),
            mqtt_port: 1883,
            client_id: "c",
            http: "127.0.0.1:0".parse().unwrap(),
            webhook: None,
        };
        let mut regs = Vec::new();
        for csv in [false, true] {
            layout.devices_csv = csv;
            let path = dir.join(format!("{csv}.toml"));
            write_config(&layout, &settings, &path).unwrap();
            regs.push(Config::load(Some(&path)).unwrap().registry().unwrap());
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(regs[0].devices.len(), 42);
        assert_eq!(
            format!("{:?}", regs[0].devices),
            format!("{:?}", regs[1].devices)
        );
    }
}
