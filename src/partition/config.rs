//! `[partition]`: how the county's ingest is split among instances (docs/scaling.md).

use serde::{Deserialize, Serialize};

/// `[partition]`: the county is split into `count` fixed partitions, each a set of scenic areas
/// with everything under them; an instance runs some of them and stands by for others.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// Fixed for the deployment: instances come and go, partitions (and so areas) do not move.
    pub count: u32,
    /// Partitions this instance takes as soon as they are free. `[0, 2]`, or `"0,2"` from
    /// `VISITORFLOW__PARTITION__RUN`.
    #[serde(default, deserialize_with = "partition_list")]
    pub run: Vec<u32>,
    /// Partitions this instance takes over when their holder is gone (after `standby_delay_ms`
    /// from start, so the instances that `run` them win a cold start).
    #[serde(default, deserialize_with = "partition_list")]
    pub standby: Vec<u32>,
    /// Explicit placements, `{ canyon = 0 }`, overriding the hash for an area (or the root).
    #[serde(default)]
    pub assign: std::collections::BTreeMap<String, u32>,
    /// How often a partition that is held elsewhere is tried again.
    #[serde(default = "default_standby_poll_ms")]
    pub standby_poll_ms: u64,
    #[serde(default = "default_standby_delay_ms")]
    pub standby_delay_ms: u64,
    /// How often the figures of partitions held elsewhere are read from the database.
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
    /// This instance's name in `partition_owner` (default: host name and process id).
    #[serde(default)]
    pub instance: Option<String>,
}

fn default_standby_poll_ms() -> u64 {
    2_000
}
fn default_standby_delay_ms() -> u64 {
    5_000
}
fn default_refresh_ms() -> u64 {
    1_000
}

/// A list of partition numbers as a TOML array, one number, or a comma-separated string (what
/// an environment variable gives).
fn partition_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<u32>),
        One(u32),
        Text(String),
    }
    match Form::deserialize(d)? {
        Form::List(v) => Ok(v),
        Form::One(n) => Ok(vec![n]),
        Form::Text(t) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not a partition number"))
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn partition_lists_come_from_toml_or_the_environment() {
        let p = |s: &str| {
            Config::from_toml(&format!("[partition]\ncount = 4\n{s}"))
                .unwrap()
                .partition
                .unwrap()
        };
        assert_eq!(p("run = [0, 2]").run, [0, 2]);
        assert_eq!(p("run = 3").run, [3]);
        assert_eq!(p("run = \"1, 2\"\nstandby = \"0\"").run, [1, 2]);
        assert_eq!(p("standby = \"0,3\"").standby, [0, 3]);
        let mut vars = std::collections::HashMap::new();
        vars.insert("VISITORFLOW__PARTITION__RUN".to_string(), "1,3".to_string());
        vars.insert(
            "VISITORFLOW__PARTITION__STANDBY".to_string(),
            "2".to_string(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[partition]\ncount = 4\n").unwrap();
        let c = Config::load_with_vars(&path, vars)
            .unwrap()
            .partition
            .unwrap();
        assert_eq!((c.run, c.standby), (vec![1, 3], vec![2]));
    }
}
