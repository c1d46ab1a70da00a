//! The retry policy of every outbound delivery (webhooks, the daily report push): after an
//! attempt, whether it is done, when to try again or whether it is a dead letter
//! ([`RetryPolicy::next_step`]); the exponential backoff behind it ([`backoff`]); and the same
//! backoff without jitter for reconnecting loops ([`Backoff`]).
//!
//! Pure: no clock, no I/O; randomness comes from the caller's generator. Sending, storing and
//! counting attempts belong to the callers, which act on the [`Step`] they are given.

use std::time::Duration;

use rand::Rng;

/// The receiver's `Retry-After` is obeyed up to this; beyond it a misconfigured receiver would
/// park an alert for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The deliveries' jitter: "equal jitter", each delay in [ceiling/2, ceiling], which spreads the
/// retries of many deliveries that failed together and still keeps the backoff growing.
pub const EQUAL_JITTER: f64 = 0.5;

/// When to try a failed delivery again, and when to give up. Built from `[alerting]`'s
/// `backoff_base_ms`, `backoff_max_ms` and `max_attempts` (the report push has its own
/// `max_attempts`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The first retry's ceiling is `2 · base` (the attempt count doubles it).
    pub base: Duration,
    /// No computed delay exceeds this; a receiver's `Retry-After` may (up to [`MAX_RETRY_AFTER`]).
    pub max: Duration,
    /// Attempts before a retryable failure is a dead letter (the last attempt included).
    pub max_attempts: u32,
    /// Fraction of the delay that may be taken off at random, 0 to 1 (see [`backoff`]).
    pub jitter: f64,
}

/// What the receiver's answer to one attempt means for the retry policy. `D` is what the
/// caller keeps of a delivery (status, latency), `F` of a failure (its reason): both pass through
/// into the [`Step`] untouched.
#[derive(Debug, Clone, PartialEq)]
pub enum Response<D, F> {
    Delivered(D),
    /// Worth another attempt: after `retry_after` when the receiver said so.
    Transient {
        retry_after: Option<Duration>,
        failure: F,
    },
    /// Will fail the same way again (the request itself is wrong).
    Permanent(F),
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<D, F> {
    /// Delivered: nothing more to do.
    Done(D),
    /// Attempt again `after` from now.
    Retry { after: Duration, failure: F },
    /// A dead letter: no further attempt.
    Dead { reason: DeadReason, failure: F },
}

/// Why a delivery became a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// The receiver's answer will not change on another attempt.
    Permanent,
    /// Still failing after `max_attempts` attempts.
    OutOfAttempts,
}

impl RetryPolicy {
    /// A policy with the deliveries' jitter ([`EQUAL_JITTER`]).
    pub fn new(base: Duration, max: Duration, max_attempts: u32) -> Self {
        Self {
            base,
            max,
            max_attempts,
            jitter: EQUAL_JITTER,
        }
    }

    /// The step after attempt number `attempts` (counted from 1, the attempt just answered
    /// included) was answered with `response`. The receiver's `Retry-After` wins, up to
    /// [`MAX_RETRY_AFTER`]; otherwise [`backoff`] from the attempt count.
    pub fn next_step<D, F>(
        &self,
        attempts: u32,
        response: Response<D, F>,
        rng: &mut impl Rng,
    ) -> Step<D, F> {
        match response {
            Response::Delivered(d) => Step::Done(d),
            Response::Permanent(failure) => Step::Dead {
                reason: DeadReason::Permanent,
                failure,
            },
            Response::Transient { failure, .. } if attempts >= self.max_attempts => Step::Dead {
                reason: DeadReason::OutOfAttempts,
                failure,
            },
            Response::Transient {
                retry_after,
                failure,
            } => Step::Retry {
                after: match retry_after {
                    Some(asked) => asked.min(MAX_RETRY_AFTER),
                    None => backoff(attempts, self.base, self.max, self.jitter, rng),
                },
                failure,
            },
        }
    }
}

/// Delay before retry number `attempt`: `base · 2^attempt`, capped at `max` (the ceiling), less a
/// random part of up to `jitter_fraction` of it. 1.0 is "full jitter" (uniform in [0, ceiling)),
/// 0.5 "equal jitter" (in [ceiling/2, ceiling)), 0 none.
pub fn backoff(
    attempt: u32,
    base: Duration,
    max: Duration,
    jitter_fraction: f64,
    rng: &mut impl Rng,
) -> Duration {
    let ceiling = backoff_ceiling(attempt, base, max);
    let f = if jitter_fraction.is_nan() {
        0.0
    } else {
        jitter_fraction.clamp(0.0, 1.0)
    };
    let u: f64 = rng.random();
    Duration::try_from_secs_f64(ceiling.as_secs_f64() * (1.0 - f * u))
        .unwrap_or(ceiling)
        .min(ceiling)
}

/// `min(max, base · 2^attempt)`, saturating: non-decreasing in `attempt`.
pub fn backoff_ceiling(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(Duration::MAX).min(max)
}

/// Consecutive failures of a reconnecting loop (one client: no jitter, there is nobody to spread
/// from) and the pause after each: `base`, `2 · base`, `4 · base` … up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    /// The pause after a failure: [`backoff_ceiling`] of the failures before this one.
    pub fn failed(&mut self) -> Duration {
        let pause = backoff_ceiling(self.failures, self.base, self.max);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    /// After a try that went well: the count starts again, and the pause is `base` (capped at
    /// `max`), like a first failure's.
    pub fn reset(&mut self) -> Duration {
        self.failures = 0;
        self.base.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::new(secs(1), secs(60), 5)
    }

    fn transient(retry_after: Option<Duration>) -> Response<(), &'static str> {
        Response::Transient {
            retry_after,
            failure: "HTTP 503",
        }
    }

    #[test]
    fn backoff_examples() {
        let mut rng = StdRng::seed_from_u64(7);
        let s = Duration::from_secs;
        assert_eq!(backoff(0, s(1), s(60), 0.0, &mut rng), s(1));
        assert_eq!(backoff(3, s(1), s(60), 0.0, &mut rng), s(8));
        assert_eq!(backoff(10, s(1), s(60), 0.0, &mut rng), s(60));
        assert_eq!(
            backoff_ceiling(u32::MAX, s(1), Duration::MAX),
            s(u64::from(u32::MAX))
        );
        assert_eq!(
            backoff_ceiling(40, Duration::MAX, Duration::MAX),
            Duration::MAX
        );
        let d = backoff(64, Duration::MAX, Duration::MAX, 0.3, &mut rng);
        assert!(d <= Duration::MAX);
        assert_eq!(backoff(2, s(1), s(60), f64::NAN, &mut rng), s(4));
    }

    #[test]
    fn steps() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            p.next_step(1, Response::<_, ()>::Delivered(204), &mut rng),
            Step::Done(204)
        );
        // Permanent: dead at once, whatever the count.
        assert_eq!(
            p.next_step(1, Response::<(), _>::Permanent("HTTP 400"), &mut rng),
            Step::Dead {
                reason: DeadReason::Permanent,
                failure: "HTTP 400"
            }
        );
        // Retry-After wins over the backoff, also above `max`, up to the cap.
        assert_eq!(
            p.next_step(1, transient(Some(secs(90))), &mut rng),
            Step::Retry {
                after: secs(90),
                failure: "HTTP 503"
            }
        );
        assert_eq!(
            p.next_step(2, transient(Some(secs(99_999_999))), &mut rng),
            Step::Retry {
                after: MAX_RETRY_AFTER,
                failure: "HTTP 503"
            }
        );
        // Without it, equal jitter under base · 2^attempts.
        let Step::Retry { after, .. } = p.next_step(3, transient(None), &mut rng) else {
            panic!("attempt 3 of 5 is retried");
        };
        assert!(after >= secs(4) && after <= secs(8), "{after:?}");
        assert_eq!(
            p.next_step(5, transient(Some(secs(1))), &mut rng),
            Step::Dead {
                reason: DeadReason::OutOfAttempts,
                failure: "HTTP 503"
            }
        );
    }

    #[test]
    fn reconnect_backoff_doubles_to_its_ceiling_and_restarts() {
        let mut b = Backoff::new(secs(1), secs(16));
        let pauses: Vec<_> = (0..7).map(|_| b.failed().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 16, 16]);
        assert_eq!(b.reset(), secs(1));
        assert_eq!(
            b.failed(),
            secs(1),
            "a failure after a reset is a first one"
        );
        assert_eq!(b.failed(), secs(2));
        for _ in 0..100 {
            b.failed();
        }
        assert_eq!(b.failed(), secs(16), "the count saturates");
    }

    proptest::proptest! {
        #[test]
        fn backoff_is_bounded_with_a_non_decreasing_ceiling(
            attempt in 0u32..80,
            base_ms in 1u64..10_000,
            max_ms in 1u64..10_000_000,
            jitter in 0.0f64..=1.0,
            seed: u64,
        ) {
            let base = Duration::from_millis(base_ms);
            let max = Duration::from_millis(max_ms);
            let mut rng = StdRng::seed_from_u64(seed);
            let ceiling = backoff_ceiling(attempt, base, max);
            let next = backoff_ceiling(attempt + 1, base, max);
            proptest::prop_assert!(ceiling <= next);
            proptest::prop_assert!(ceiling <= max);
            let d = backoff(attempt, base, max, jitter, &mut rng);
            proptest::prop_assert!(d <= ceiling);
            // Equal jitter keeps at least half, full jitter may go to zero.
            let floor = ceiling.as_secs_f64() * (1.0 - jitter);
            proptest::prop_assert!(d.as_secs_f64() + 1e-6 >= floor, "{d:?} < {floor}");
        }

        #[test]
        fn next_step_is_bounded_and_dead_exactly_at_max_attempts(
            attempts in 1u32..40,
            max_attempts in 1u32..30,
            base_ms in 1u64..10_000,
            max_ms in 1u64..10_000_000,
            jitter in 0.0f64..=1.0,
            retry_after_s in proptest::option::of(0u64..100_000),
            seed: u64,
        ) {
            let p = RetryPolicy {
                base: Duration::from_millis(base_ms),
                max: Duration::from_millis(max_ms),
                max_attempts,
                jitter,
            };
            let asked = retry_after_s.map(Duration::from_secs);
            let mut rng = StdRng::seed_from_u64(seed);
            match p.next_step(attempts, transient(asked), &mut rng) {
                Step::Dead { reason, .. } => {
                    proptest::prop_assert_eq!(reason, DeadReason::OutOfAttempts);
                    proptest::prop_assert!(attempts >= max_attempts);
                }
                Step::Retry { after, .. } => {
                    proptest::prop_assert!(attempts < max_attempts);
                    match asked {
                        Some(a) => proptest::prop_assert_eq!(after, a.min(MAX_RETRY_AFTER)),
                        None => {
                            let ceiling = backoff_ceiling(attempts, p.base, p.max);
                            proptest::prop_assert!(after <= ceiling && ceiling <= p.max);
                            let floor = ceiling.as_secs_f64() * (1.0 - jitter);
                            proptest::prop_assert!(after.as_secs_f64() + 1e-6 >= floor);
                        }
                    }
                }
                Step::Done(()) => proptest::prop_assert!(false, "a failure is never done"),
            }
        }
    }
}
