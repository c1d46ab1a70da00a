//! The words of `reports_lost`: which counters lost which reports in a database failover.

use super::Change;
use super::input::DeviceHealth;
use super::words::listed;

pub(crate) fn describe(
    (zh, en): (&str, &str),
    devices: &[DeviceHealth],
    change: Change,
) -> (String, String) {
    if change == Change::Resolve {
        return (
            format!("{zh}数据库切换丢失上报告警解除（记录保留在 report_losses）"),
            format!(
                "{en}: reports lost in a database failover, alert closed (recorded in report_losses)"
            ),
        );
    }
    let lost: Vec<_> = devices
        .iter()
        .filter_map(|d| d.lost.map(|l| (&d.device, l)))
        .collect();
    let total: u64 = lost.iter().map(|(_, l)| l.count).sum();
    let named: Vec<String> = lost
        .iter()
        .map(|(d, l)| format!("{d} seq {}–{} ({})", l.first, l.last, l.count))
        .collect();
    let names_zh = listed(&named, named.len(), "，", |n| format!(" 等另{n}台"));
    let names_en = listed(&named, named.len(), ", ", |n| format!(" +{n} more"));
    (
        format!("{zh}：数据库切换后{total}条已确认的上报不在新主库上，设备不会重发：{names_zh}"),
        format!(
            "{en}: {total} acknowledged reports are missing on the promoted database and will not be resent: {names_en}"
        ),
    )
}
