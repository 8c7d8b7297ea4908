//! Exponential backoff with a cap, for reconnecting and retrying.

use std::time::Duration;

/// How long to wait between attempts: `initial`, doubling, never more than `max`,
/// each delay shortened by up to a fifth at random so that many clients
/// losing the same broker do not all come back at the same instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// A fresh sequence of delays.
    pub fn delays(&self) -> Delays {
        Delays {
            next: self.initial,
            max: self.max,
        }
    }
}

/// An endless sequence of growing delays; see [`Backoff`].
#[derive(Clone, Debug)]
pub struct Delays {
    next: Duration,
    max: Duration,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next.min(self.max);
        self.next = base.saturating_mul(2).min(self.max);
        let jitter = base.mul_f64(rand::random::<f64>() * 0.2);
        Some(base.saturating_sub(jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(700),
        };
        let delays: Vec<Duration> = backoff.delays().take(6).collect();
        let bases = [100, 200, 400, 700, 700, 700];
        for (delay, base) in delays.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(
                *delay <= base && *delay >= base.mul_f64(0.8),
                "{delay:?} vs {base:?}"
            );
        }
    }
}
