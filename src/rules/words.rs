//! Lists in alert messages: at most a few names, then "+N more".

/// How many names a message lists before "+N more".
pub(super) const LISTED: usize = 5;

/// The first [`LISTED`] of `shown` joined by `sep`, then how many of `total` were left out:
/// messages stay short however many devices an alert is about.
pub(super) fn listed(
    shown: &[String],
    total: usize,
    sep: &str,
    more: impl Fn(usize) -> String,
) -> String {
    let mut s = shown[..shown.len().min(LISTED)].join(sep);
    if total > LISTED {
        s.push_str(&more(total - LISTED));
    }
    s
}
