//! The text of the servers' configuration files and the parsing of what their tools print: pure
//! functions, so what the supervised servers are told is tested without starting them.

use std::fmt::Write as _;
use std::path::Path;

/// The settings file PostgreSQL includes (`visitorflow.conf`): loopback only on `port`, the
/// socket in `socket_dir`, TimescaleDB preloaded (without telemetry) when it is installed.
pub(super) fn postgres_settings(port: u16, socket_dir: &Path, timescaledb: bool) -> String {
    let quote = |p: &Path| p.display().to_string().replace('\'', "''");
    let mut s = String::from("# Written by visitorflow::supervise on every start.\n");
    let _ = writeln!(s, "listen_addresses = '127.0.0.1'");
    let _ = writeln!(s, "port = {port}");
    let _ = writeln!(s, "unix_socket_directories = '{}'", quote(socket_dir));
    if timescaledb {
        let _ = writeln!(s, "shared_preload_libraries = 'timescaledb'");
        // A private cluster (demo, tests) never phones home; a build without telemetry just
        // ignores the setting.
        let _ = writeln!(s, "timescaledb.telemetry_level = off");
    }
    s
}

/// `mosquitto.conf` of a private broker on loopback `port`, persisting in `dir`.
pub(super) fn mosquitto_conf(port: u16, dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# Written by visitorflow::supervise: a private broker for the demo and the tests.
# When started as root Mosquitto would switch to user `mosquitto`, which cannot write to a
# directory owned by root; this broker is private and listens on loopback only, so stay root.
# (Ignored when not started as root.)
user root
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {d}/
persistence_file mosquitto.db
# The default of 20 would throttle a subscriber that acknowledges only after its database commit;
# 30000 is six 5,000-message batches: one committing, one being applied, the rest on the wire.
max_inflight_messages 30000
# The default of 1000 silently drops a persistent session's backlog beyond it.
max_queued_messages 2000000
max_queued_bytes 0
set_tcp_nodelay true
log_dest file {d}/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
"
    )
}

/// The version in `mosquitto -h`'s first line ("mosquitto version 2.0.11").
pub(super) fn mosquitto_version(help: &str) -> Option<String> {
    let first = help.lines().next()?;
    first
        .strip_prefix("mosquitto version ")
        .map(|v| v.trim().to_owned())
}

/// The ordering key of a Debian PostgreSQL directory name ("15", "9.6"); `None` for anything else.
pub(super) fn pg_version_key(name: &str) -> Option<(u32, u32)> {
    let mut parts = name.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_listens_on_loopback_only_and_preloads_timescaledb_when_asked() {
        let plain = postgres_settings(5433, Path::new("/tmp/o'k"), false);
        assert!(plain.contains("listen_addresses = '127.0.0.1'\n"));
        assert!(plain.contains("port = 5433\n"));
        assert!(
            plain.contains("unix_socket_directories = '/tmp/o''k'\n"),
            "{plain}"
        );
        assert!(!plain.contains("timescaledb"));
        let ts = postgres_settings(5433, Path::new("/d"), true);
        assert!(ts.contains("shared_preload_libraries = 'timescaledb'\n"));
        assert!(ts.contains("timescaledb.telemetry_level = off\n"));
    }

    #[test]
    fn mosquitto_keeps_large_backlogs_on_loopback() {
        let c = mosquitto_conf(18830, Path::new("/var/tmp/mq"));
        for line in [
            "listener 18830 127.0.0.1",
            "persistence_location /var/tmp/mq/",
            "max_inflight_messages 30000",
            "max_queued_messages 2000000",
            "max_queued_bytes 0",
            "log_dest file /var/tmp/mq/mosquitto.log",
        ] {
            assert!(c.lines().any(|l| l == line), "missing {line:?}");
        }
    }

    #[test]
    fn versions_are_read_and_ordered() {
        let help = "mosquitto version 2.0.11\n\nmosquitto is an MQTT v5.0/v3.1.1/v3.1 broker.";
        assert_eq!(mosquitto_version(help).as_deref(), Some("2.0.11"));
        assert_eq!(mosquitto_version("Usage: something else"), None);
        assert_eq!(mosquitto_version(""), None);
        assert_eq!(pg_version_key("15"), Some((15, 0)));
        assert_eq!(pg_version_key("9.6"), Some((9, 6)));
        assert_eq!(pg_version_key("main"), None);
        assert!(pg_version_key("16") > pg_version_key("9.6"));
    }
}
