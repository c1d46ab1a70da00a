//! The registry's sections of the TOML file: `[county]`, `[registry]`, `[[spaces]]` and
//! `[[devices]]` (kinds, payload formats, counting lines and directions). Validated by
//! [`super::Registry::build_with`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountyConfig {
    /// IANA time zone in which days roll and local times are shown (storage is UTC).
    pub time_zone: String,
}

impl Default for CountyConfig {
    fn default() -> Self {
        Self {
            time_zone: "Asia/Shanghai".into(),
        }
    }
}

/// Where else the registry is read from besides the TOML file's tables.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// A CSV of devices, one a row, read after the `[[devices]]` tables (a relative path is
    /// relative to the config file). For large registries: it is validated as it is read,
    /// where a TOML file of 100,000 devices is first parsed whole (~150 MiB at start-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices_csv: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpaceKind {
    County,
    ScenicArea,
    Zone,
    CarPark,
    Hub,
}

impl SpaceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpaceKind::County => "county",
            SpaceKind::ScenicArea => "scenic_area",
            SpaceKind::Zone => "zone",
            SpaceKind::CarPark => "car_park",
            SpaceKind::Hub => "hub",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceConfig {
    pub id: String,
    pub kind: SpaceKind,
    #[serde(default)]
    pub parent: Option<String>,
    pub name_zh: String,
    pub name_en: String,
    /// LB/T 034 瞬时最大承载量 (people; vehicles for a car park).
    #[serde(default)]
    pub instant_capacity: Option<u32>,
    /// LB/T 034 日最大承载量 (people per local day).
    #[serde(default)]
    pub daily_capacity: Option<u32>,
    /// Local time at which this space's day starts ("06:00"); counts reset then.
    #[serde(default)]
    pub opens_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Gate,
    Camera,
    VehicleCounter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// `{"seq","ts","in","out",…}` as in the README's MQTT contract.
    #[default]
    Native,
    /// Milesight VS133/VS135 decoded uplink (`line_N_period_in`, `line_N_total_in`, …).
    MilesightVs13x,
    /// Hikvision ISAPI people-counting event (`EventNotificationAlert`, `timeRange` statistics).
    HikvisionIsapi,
    /// Xovis line-count push (JSON; `fw`/`bw` per element and window).
    Xovis,
    /// Axis People Counter `live-sum.json`, polled (running totals of the day).
    AxisLiveSum,
    /// Dahua `videoStatServer.cgi?action=getSummary`, polled (running totals).
    DahuaSummary,
    /// Hikvision ISAPI `counting/search`, polled (the day's hourly buckets, summed).
    HikvisionCounting,
}

impl PayloadFormat {
    /// Formats that report every time window, busy or not: the window is the sequence, so a
    /// window not sent is a missing report.
    pub fn windowed(self) -> bool {
        matches!(
            self,
            PayloadFormat::HikvisionIsapi
                | PayloadFormat::Xovis
                | PayloadFormat::AxisLiveSum
                | PayloadFormat::DahuaSummary
                | PayloadFormat::HikvisionCounting
        )
    }

    /// Formats read by polling the device (`poll`), never pushed.
    pub fn polled(self) -> bool {
        matches!(
            self,
            PayloadFormat::AxisLiveSum
                | PayloadFormat::DahuaSummary
                | PayloadFormat::HikvisionCounting
        )
    }
}

/// Whether a device's "in" means entering its space (`normal`) or leaving it (`reversed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Normal,
    Reversed,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    pub line: u8,
    #[serde(default)]
    pub direction: Direction,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub id: String,
    pub space: String,
    pub kind: DeviceKind,
    #[serde(default)]
    pub format: PayloadFormat,
    #[serde(default)]
    pub direction: Direction,
    /// Which counting lines to use, each with its own direction: Milesight lines 1–4 (default:
    /// line 1), the Hikvision counting region (at most one; default: any), the Xovis element ids
    /// (default: every element).
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Hikvision: the camera channel whose events this device is (default 1).
    #[serde(default)]
    pub channel: Option<u32>,
    /// The SHA-256 (hex) of the device's secret for pushing over HTTP (`POST /ingest/{device}`,
    /// HTTP Basic with the device id as user name, or a bearer token); none: the device cannot
    /// push over HTTP. `visitorflow device-secret --device ID` makes one.
    #[serde(default)]
    pub http_sha256: Option<String>,
    /// Polled devices (`axis_live_sum`, `dahua_summary`, `hikvision_counting`): where and how
    /// often to ask.
    #[serde(default)]
    pub poll: Option<PollConfig>,
}

/// How a polled device is asked for its totals.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// The device's answer, e.g. `http://10.0.0.21/local/tvpc/.api?live-sum.json` or
    /// `http://10.0.0.22/cgi-bin/videoStatServer.cgi?action=getSummary&channel=1`. Only this
    /// host is ever asked; redirects are not followed.
    pub url: String,
    /// Seconds between polls, and the length of a polled window (10–3600; default 60).
    #[serde(default = "sixty")]
    pub interval_s: u32,
    /// The device's credentials, if it asks for them (HTTP Digest or Basic, as it challenges).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The password from a file instead (first line).
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
}

fn sixty() -> u32 {
    60
}
