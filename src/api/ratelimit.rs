//! Per-token and per-address rate limits: one token bucket per key (refilled at the sustained
//! rate, holding at most the burst), kept in a map behind a mutex held for a few arithmetic
//! operations. Idle full buckets are dropped when a map grows, so spoofed or roaming addresses
//! cannot grow it without bound.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Above this many keys, full buckets are pruned before another is added.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Buckets<K> {
    rate: f64,
    burst: f64,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate: rate.max(0.001),
            burst: f64::from(burst.max(1)),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket, or says how long until one is available.
    fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_ABOVE && !map.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = map.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.rate)
            .min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

pub struct RateLimiter {
    per_ip: Buckets<IpAddr>,
    per_token: Buckets<Arc<str>>,
}

impl RateLimiter {
    pub fn new(per_token: f64, per_ip: f64, burst: u32) -> Self {
        Self {
            per_ip: Buckets::new(per_ip, burst),
            per_token: Buckets::new(per_token, burst),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Duration> {
        self.per_ip.take(&ip, Instant::now())
    }

    pub fn check_token(&self, id: &Arc<str>) -> Result<(), Duration> {
        self.per_token.take(id, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let b = Buckets::new(10.0, 3);
        let t0 = Instant::now();
        let k = 1u8;
        assert!(b.take(&k, t0).is_ok());
        assert!(b.take(&k, t0).is_ok());
        assert!(b.take(&k, t0).is_ok());
        let wait = b.take(&k, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        // Other keys have their own bucket.
        assert!(b.take(&2, t0).is_ok());
        // 100 ms at 10/s refills one.
        assert!(b.take(&k, t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take(&k, t0 + Duration::from_millis(100)).is_err());
        // Never more than the burst, however long idle.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take(&k, later).is_ok());
        }
        assert!(b.take(&k, later).is_err());
    }

    #[test]
    fn idle_full_buckets_are_pruned_when_the_map_is_large() {
        let b = Buckets::new(1000.0, 1);
        let t0 = Instant::now();
        for k in 0..PRUNE_ABOVE as u32 {
            b.take(&k, t0).unwrap();
        }
        // A second later every bucket is full again: adding one more prunes them.
        b.take(&u32::MAX, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(b.map.lock().unwrap().len(), 1);
    }
}
