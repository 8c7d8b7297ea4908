//! Per-call timeouts and one circuit breaker per projector, around any
//! [`ReadModels`].
//!
//! A breaker counts consecutive outages (unreachable, 5xx, timeouts; a 404 is
//! an answer, not an outage). After `failure_threshold` of them it opens: calls
//! to that projector fail at once with `UNAVAILABLE` instead of each waiting
//! for a timeout, so one dead projector costs the rest of a query nothing.
//! After `open_for`, one probe call is let through (half-open); its success
//! closes the breaker, its failure opens it again.

use std::{
    collections::HashMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    ProductPage, Projector, ReadModels, Recommendation, SearchHit, VersionedDocument, View,
};
use crate::error::GatewayError;

/// How the breakers and timeouts behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardSettings {
    /// Consecutive outages that open a breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before letting one probe through.
    pub open_for: Duration,
    /// Time limit of each call.
    pub call_timeout: Duration,
}

/// What a breaker currently does with calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` consecutive outages so far.
    Closed {
        /// Consecutive outages so far.
        failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// When a probe may go through.
        until: Instant,
    },
    /// One probe call is in flight; others are refused.
    HalfOpen,
}

/// A circuit breaker for one backend.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: &'static str,
    settings: GuardSettings,
    state: Mutex<BreakerState>,
    open_gauge: metrics::Gauge,
}

/// Leave to make one call through a breaker. Dropped without a verdict (the
/// caller gave up), it counts as an outage, so a half-open breaker never stays
/// stuck waiting for a probe that nobody finishes.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    settled: bool,
}

impl Permit<'_> {
    /// Records the call's outcome.
    pub fn settle(mut self, outage: bool) {
        self.settled = true;
        self.breaker.record(outage, Instant::now());
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.record(true, Instant::now());
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker for the backend `name`.
    pub fn new(name: &'static str, settings: GuardSettings) -> Self {
        let open_gauge = metrics::gauge!("query_api_circuit_open", "backend" => name);
        open_gauge.set(0.0);
        Self {
            name,
            settings,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
            open_gauge,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        *self.state.lock()
    }

    /// Asks to make a call now.
    pub fn admit(&self) -> Option<Permit<'_>> {
        self.admit_at(Instant::now())
    }

    /// Asks to make a call at `now`: `None` while the breaker is open (or a
    /// probe is already in flight).
    pub fn admit_at(&self, now: Instant) -> Option<Permit<'_>> {
        let mut state = self.state.lock();
        match *state {
            BreakerState::Closed { .. } => {}
            BreakerState::Open { until } if now >= until => {
                tracing::info!(backend = self.name, "circuit half-open: probing");
                *state = BreakerState::HalfOpen;
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => return None,
        }
        Some(Permit {
            breaker: self,
            settled: false,
        })
    }

    /// Records the outcome of a call made at `now`.
    pub fn record(&self, outage: bool, now: Instant) {
        let mut state = self.state.lock();
        let next = match (*state, outage) {
            (_, false) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, true) => {
                let failures = failures.saturating_add(1);
                if failures >= self.settings.failure_threshold.max(1) {
                    BreakerState::Open {
                        until: now + self.settings.open_for,
                    }
                } else {
                    BreakerState::Closed { failures }
                }
            }
            (BreakerState::HalfOpen | BreakerState::Open { .. }, true) => BreakerState::Open {
                until: now + self.settings.open_for,
            },
        };
        let was_open = matches!(*state, BreakerState::Open { .. } | BreakerState::HalfOpen);
        let is_open = matches!(next, BreakerState::Open { .. });
        if is_open && !matches!(*state, BreakerState::Open { .. }) {
            tracing::warn!(backend = self.name, "circuit opened");
            self.open_gauge.set(1.0);
        } else if was_open && !is_open {
            tracing::info!(backend = self.name, "circuit closed");
            self.open_gauge.set(0.0);
        }
        *state = next;
    }
}

/// [`ReadModels`] with a timeout on every call and a breaker per projector.
pub struct GuardedReadModels {
    inner: Arc<dyn ReadModels>,
    breakers: HashMap<Projector, CircuitBreaker>,
    call_seconds: HashMap<Projector, metrics::Histogram>,
    settings: GuardSettings,
}

impl GuardedReadModels {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ReadModels>, settings: GuardSettings) -> Self {
        let breakers = Projector::ALL
            .into_iter()
            .map(|projector| (projector, CircuitBreaker::new(projector.as_str(), settings)))
            .collect();
        let call_seconds = Projector::ALL
            .into_iter()
            .map(|projector| {
                let histogram = metrics::histogram!(
                    "query_api_backend_call_seconds",
                    "backend" => projector.as_str()
                );
                (projector, histogram)
            })
            .collect();
        Self {
            inner,
            breakers,
            call_seconds,
            settings,
        }
    }

    /// The breaker of one projector.
    pub fn breaker(&self, projector: Projector) -> Option<&CircuitBreaker> {
        self.breakers.get(&projector)
    }

    async fn guarded<T>(
        &self,
        projector: Projector,
        call: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        self.guarded_within(projector, None, call).await
    }

    /// Like [`guarded`](Self::guarded), for a call the projector may hold for
    /// up to `wait` on purpose (a long poll): its bound is the call timeout
    /// plus `wait`, and its duration is not a call latency.
    async fn guarded_within<T>(
        &self,
        projector: Projector,
        wait: Option<Duration>,
        call: impl Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        let Some(breaker) = self.breakers.get(&projector) else {
            return call.await;
        };
        let Some(permit) = breaker.admit() else {
            metrics::counter!("query_api_circuit_refusals_total", "backend" => projector.as_str())
                .increment(1);
            return Err(GatewayError::Unavailable {
                service: projector.to_string(),
                message: "circuit open after repeated failures".to_owned(),
            });
        };
        let started = Instant::now();
        let bound = self.settings.call_timeout + wait.unwrap_or_default();
        let outcome = match tokio::time::timeout(bound, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(GatewayError::call_timeout(projector.as_str(), bound)),
        };
        if let (None, Some(histogram)) = (wait, self.call_seconds.get(&projector)) {
            histogram.record(started.elapsed().as_secs_f64());
        }
        permit.settle(outcome.as_ref().is_err_and(GatewayError::is_outage));
        outcome
    }
}

#[async_trait]
impl ReadModels for GuardedReadModels {
    async fn batch(
        &self,
        view: View,
        keys: &[String],
    ) -> Result<HashMap<String, Option<serde_json::Value>>, GatewayError> {
        self.guarded(view.projector(), self.inner.batch(view, keys))
            .await
    }

    async fn position(
        &self,
        projector: Projector,
        stream: &str,
    ) -> Result<Option<u64>, GatewayError> {
        self.guarded(projector, self.inner.position(projector, stream))
            .await
    }

    async fn wait_for_position(
        &self,
        projector: Projector,
        stream: &str,
        min_version: u64,
        wait: Duration,
    ) -> Result<Option<u64>, GatewayError> {
        self.guarded_within(
            projector,
            Some(wait),
            self.inner
                .wait_for_position(projector, stream, min_version, wait),
        )
        .await
    }

    async fn document_at(
        &self,
        view: View,
        key: &str,
        stream: &str,
        min_version: Option<u64>,
        wait: Duration,
    ) -> Result<VersionedDocument, GatewayError> {
        let call = self.inner.document_at(view, key, stream, min_version, wait);
        match min_version {
            Some(_) => {
                self.guarded_within(view.projector(), Some(wait), call)
                    .await
            }
            None => self.guarded(view.projector(), call).await,
        }
    }

    async fn products(
        &self,
        first: usize,
        after: Option<&str>,
        category: Option<&str>,
    ) -> Result<ProductPage, GatewayError> {
        self.guarded(
            Projector::Catalog,
            self.inner.products(first, after, category),
        )
        .await
    }

    async fn search(&self, query: &str, first: usize) -> Result<Vec<SearchHit>, GatewayError> {
        self.guarded(Projector::Search, self.inner.search(query, first))
            .await
    }

    async fn recommendations(
        &self,
        sku: &str,
        first: usize,
    ) -> Result<Vec<Recommendation>, GatewayError> {
        self.guarded(
            Projector::Recommendations,
            self.inner.recommendations(sku, first),
        )
        .await
    }

    async fn sales_stats(&self, top: usize) -> Result<serde_json::Value, GatewayError> {
        self.guarded(Projector::Sales, self.inner.sales_stats(top))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GuardSettings {
        GuardSettings {
            failure_threshold: 3,
            open_for: Duration::from_secs(10),
            call_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_breaker_opens_after_consecutive_outages_and_refuses_calls() {
        let breaker = CircuitBreaker::new("orders", settings());
        let now = Instant::now();
        for _ in 0..2 {
            breaker.admit_at(now).expect("closed").settle(true);
        }
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 2 });
        breaker.admit_at(now).expect("still closed").settle(true);
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
        assert!(breaker.admit_at(now + Duration::from_secs(9)).is_none());
    }

    #[test]
    fn a_success_resets_the_count_of_outages() {
        let breaker = CircuitBreaker::new("orders", settings());
        let now = Instant::now();
        breaker.admit_at(now).expect("closed").settle(true);
        breaker.admit_at(now).expect("closed").settle(true);
        breaker.admit_at(now).expect("closed").settle(false);
        breaker.admit_at(now).expect("closed").settle(true);
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 1 });
    }

    #[test]
    fn after_the_open_period_one_probe_goes_through_and_its_success_closes_the_breaker() {
        let breaker = CircuitBreaker::new("orders", settings());
        let now = Instant::now();
        breaker.record(true, now);
        breaker.record(true, now);
        breaker.record(true, now);
        let later = now + Duration::from_secs(10);
        let probe = breaker.admit_at(later).expect("probe admitted");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(
            breaker.admit_at(later).is_none(),
            "only one probe at a time"
        );
        probe.settle(false);
        assert_eq!(breaker.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_failed_or_abandoned_probe_opens_the_breaker_again() {
        let breaker = CircuitBreaker::new("orders", settings());
        let now = Instant::now();
        for _ in 0..3 {
            breaker.record(true, now);
        }
        let later = now + Duration::from_secs(10);
        drop(breaker.admit_at(later).expect("probe admitted"));
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
        let probe = breaker
            .admit_at(later + Duration::from_secs(3600))
            .expect("a new probe after another open period");
        probe.settle(true);
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
    }
}
