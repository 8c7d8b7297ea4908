//! A bound on long polls.
//!
//! A long poll (`GET /all?wait_ms=` on the store, `GET /positions?timeout_ms=`
//! on a projector) holds a task, a connection and a watch until it answers.
//! A server admits at most [`WaitSlots::max`] at once; the next one is
//! answered at once with 503 `too_many_waits` (and `retry_after_ms`), so a
//! flood of waiting clients costs a refusal each rather than memory
//! (docs/adr/0009). A request that need not wait takes no slot.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api_error::ApiError;

/// How long a refused client is told to wait before asking again.
pub const RETRY_AFTER_MS: u64 = 1000;

/// The long polls a server may hold at once.
#[derive(Clone, Debug)]
pub struct WaitSlots {
    semaphore: Arc<Semaphore>,
    max: usize,
}

/// One admitted long poll; dropping it frees the slot.
#[derive(Debug)]
pub struct WaitSlot {
    _permit: OwnedSemaphorePermit,
}

/// Every slot is taken; answered as 503 `too_many_waits`.
#[derive(Debug, thiserror::Error)]
#[error("{max} requests are waiting already, the most this server holds; ask again later or without a wait")]
pub struct TooManyWaits {
    /// The bound.
    pub max: usize,
}

impl From<TooManyWaits> for ApiError {
    fn from(refused: TooManyWaits) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_waits",
            refused.to_string(),
        )
        .with("retry_after_ms", RETRY_AFTER_MS)
    }
}

impl WaitSlots {
    /// The default bound of every server.
    pub const DEFAULT: usize = 1024;

    /// At most `max` long polls at once (at least one).
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Long polls waiting now.
    pub fn waiting(&self) -> usize {
        self.max - self.semaphore.available_permits()
    }

    /// A slot for one long poll, or [`TooManyWaits`] when all are taken.
    pub fn enter(&self) -> Result<WaitSlot, TooManyWaits> {
        match Arc::clone(&self.semaphore).try_acquire_owned() {
            Ok(permit) => Ok(WaitSlot { _permit: permit }),
            Err(_) => {
                ::metrics::counter!("long_polls_refused_total").increment(1);
                Err(TooManyWaits { max: self.max })
            }
        }
    }
}

impl Default for WaitSlots {
    fn default() -> Self {
        Self::new(Self::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_refused_when_all_are_taken_and_freed_when_dropped() {
        let slots = WaitSlots::new(2);
        let first = slots.enter().unwrap();
        let second = slots.clone().enter().unwrap();
        assert_eq!(slots.waiting(), 2);
        let refused = ApiError::from(slots.enter().unwrap_err());
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.code, "too_many_waits");
        assert_eq!(refused.extra["retry_after_ms"], RETRY_AFTER_MS);
        drop(first);
        assert_eq!(slots.waiting(), 1);
        let _third = slots.enter().unwrap();
        drop(second);
        assert_eq!(slots.waiting(), 1);
        assert_eq!(WaitSlots::new(0).max(), 1);
    }
}
