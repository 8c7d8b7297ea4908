//! A per-client rate limit: a token bucket per client key (the bearer
//! token's subject when there is a valid one, else the peer's IP address).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

/// Buckets are pruned when more than this many clients are tracked.
const PRUNE_ABOVE: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by client.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// `per_second` requests per second with bursts of up to `burst` more;
    /// `per_second == 0` turns the limit off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.per_second > 0.0
    }

    /// Takes one request from `client`'s bucket now; when empty, how long
    /// until the next request is allowed.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    /// [`check`](Self::check) at `now`.
    pub fn check_at(&self, client: &str, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock();
        if buckets.len() > PRUNE_ABOVE {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, bucket| {
                let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
                bucket.tokens + elapsed * per_second < burst
            });
        }
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_the_steady_rate() {
        let limiter = RateLimiter::new(10, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("ann", now).is_ok());
        }
        let wait = limiter.check_at("ann", now).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter
            .check_at("ann", now + Duration::from_millis(100))
            .is_ok());
        assert!(limiter
            .check_at("ann", now + Duration::from_millis(100))
            .is_err());
    }

    #[test]
    fn clients_have_separate_buckets_and_zero_turns_the_limit_off() {
        let limiter = RateLimiter::new(1, 1);
        let now = Instant::now();
        assert!(limiter.check_at("ann", now).is_ok());
        assert!(limiter.check_at("ann", now).is_err());
        assert!(limiter.check_at("bo", now).is_ok());
        let off = RateLimiter::new(0, 1);
        for _ in 0..1000 {
            assert!(off.check_at("ann", now).is_ok());
        }
    }
}
