//! When a batch is cut: the pure decision the ingest loop asks before every wait. A batch commits
//! when it holds `max` messages, or `linger` after its first message arrived, or at once when it
//! carries head counts to apply; while full, the loop stops reading so the broker holds the rest.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct BatchCut {
    pub max: usize,
    pub linger: Duration,
}

/// What the loop does next about the batch it is filling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Stop reading: the batch is at its size limit.
    pub full: bool,
    /// Commit it now (when no commit is in flight).
    pub due: bool,
}

impl BatchCut {
    /// `messages` in the batch, the linger `deadline` set by its first message, whether it carries
    /// head counts, at `now`.
    pub fn decide(
        &self,
        messages: usize,
        deadline: Option<Instant>,
        recounts: bool,
        now: Instant,
    ) -> Decision {
        let full = messages >= self.max.max(1);
        let lingered = deadline.is_some_and(|d| now >= d);
        Decision {
            full,
            due: (messages > 0 && (full || lingered)) || recounts,
        }
    }

    /// The deadline after a message arrived: set by a batch's first message, kept after.
    pub fn deadline(
        &self,
        current: Option<Instant>,
        messages: usize,
        now: Instant,
    ) -> Option<Instant> {
        match current {
            None if messages > 0 => Some(now + self.linger),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CUT: BatchCut = BatchCut {
        max: 3,
        linger: Duration::from_millis(10),
    };

    #[test]
    fn a_batch_commits_when_full_or_lingered_and_not_before() {
        let now = Instant::now();
        let later = now + Duration::from_millis(11);
        let d = CUT.deadline(None, 1, now);
        assert_eq!(d, Some(now + CUT.linger));
        assert_eq!(CUT.deadline(d, 2, later), d, "the first message sets it");
        assert_eq!(CUT.deadline(None, 0, now), None);
        let wait = CUT.decide(1, d, false, now);
        assert_eq!(
            wait,
            Decision {
                full: false,
                due: false
            }
        );
        assert!(CUT.decide(1, d, false, later).due);
        let full = CUT.decide(3, d, false, now);
        assert_eq!(
            full,
            Decision {
                full: true,
                due: true
            }
        );
    }

    #[test]
    fn an_empty_batch_commits_only_for_head_counts() {
        let now = Instant::now();
        let past = Some(now - Duration::from_secs(1));
        assert!(!CUT.decide(0, past, false, now).due);
        assert!(CUT.decide(0, None, true, now).due);
    }

    #[test]
    fn a_zero_size_limit_still_takes_one_message() {
        let cut = BatchCut { max: 0, ..CUT };
        assert!(!cut.decide(0, None, false, Instant::now()).full);
        assert!(cut.decide(1, None, false, Instant::now()).full);
    }
}
