//! The load step: orders at a fixed rate, each followed to a final status.
//!
//! The load is open-loop: order `n` starts at `n / rate` seconds whatever
//! happened to the earlier ones, so a slow system shows as latency and a
//! lower achieved rate, not as a politely slower client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::actors::Session;
use crate::format::LoadSpec;
use crate::graphql::GraphQlClient;
use crate::runner::{RunCtx, StepError};
use crate::variables::{lookup, Vars};

/// The figures of one load step.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadReport {
    /// Orders per second asked for.
    pub target_rate: f64,
    /// For how long.
    pub duration: Duration,
    /// Orders started.
    pub orders: u64,
    /// Orders the mutation accepted.
    pub placed: u64,
    /// Orders that reached the confirmed status.
    pub confirmed: u64,
    /// Orders that reached another final status.
    pub cancelled: u64,
    /// Orders whose mutation or status query failed.
    pub failed: u64,
    /// Orders still not final when their time ran out.
    pub pending: u64,
    /// Accepted orders per second over the placement window.
    pub achieved_rate: f64,
    /// Confirmed orders per second until the last confirmation.
    pub confirmed_rate: f64,
    /// Median time from the mutation to the confirmed status.
    pub p50: Option<Duration>,
    /// 99th percentile of the same.
    pub p99: Option<Duration>,
    /// Slowest of the same.
    pub max: Option<Duration>,
    /// Median time from the mutation to the timestamp of the confirmed entry
    /// of the order's timeline (with the spec's `timeline_path`).
    pub p50_recorded: Option<Duration>,
    /// 99th percentile of the same.
    pub p99_recorded: Option<Duration>,
    /// The first error met, if any.
    pub first_error: Option<String>,
}

impl LoadReport {
    /// The report as a step result, for `expect` and `capture`.
    pub fn to_json(&self) -> Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        json!({
            "target_rate": self.target_rate,
            "duration_secs": self.duration.as_secs_f64(),
            "orders": self.orders,
            "placed": self.placed,
            "confirmed": self.confirmed,
            "cancelled": self.cancelled,
            "failed": self.failed,
            "pending": self.pending,
            "achieved_rate": self.achieved_rate,
            "confirmed_rate": self.confirmed_rate,
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
            "p50_recorded_ms": ms(self.p50_recorded),
            "p99_recorded_ms": ms(self.p99_recorded),
            "first_error": self.first_error,
        })
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map_or_else(
                || "-".to_owned(),
                |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0),
            )
        };
        write!(
            f,
            "load {:.0}/s for {:.0} s: {} placed, {} confirmed, {} cancelled, {} failed, {} pending; \
             achieved {:.1} orders/s, confirmed {:.1}/s; to confirmed p50 {} p99 {} max {}",
            self.target_rate,
            self.duration.as_secs_f64(),
            self.placed,
            self.confirmed,
            self.cancelled,
            self.failed,
            self.pending,
            self.achieved_rate,
            self.confirmed_rate,
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
        )?;
        if let (Some(p50), Some(p99)) = (self.p50_recorded, self.p99_recorded) {
            write!(
                f,
                "; to the confirmation's own timestamp p50 {} p99 {}",
                ms(Some(p50)),
                ms(Some(p99))
            )?;
        }
        if let Some(error) = &self.first_error {
            write!(f, "; first error: {error}")?;
        }
        Ok(())
    }
}

enum Outcome {
    Confirmed {
        placed_at: Duration,
        latency: Duration,
        /// To the confirmed timeline entry's timestamp, when the spec asks.
        recorded: Option<Duration>,
        done_at: Duration,
    },
    Cancelled {
        placed_at: Duration,
    },
    Pending {
        placed_at: Duration,
    },
    Failed(String),
}

struct OrderJob {
    client: GraphQlClient,
    session: Arc<Session>,
    spec: Arc<LoadSpec>,
    vars: Vars,
    start: Instant,
}

pub(crate) async fn run_load(
    ctx: &RunCtx,
    spec: &LoadSpec,
    actor_template: &str,
    vars: &Vars,
) -> Result<LoadReport, StepError> {
    // Sign every customer in first, so sign-up is not part of the timing.
    let mut sessions = Vec::with_capacity(spec.customers as usize);
    let mut customer_vars = Vec::with_capacity(spec.customers as usize);
    for index in 0..spec.customers {
        let mut own = vars.clone();
        own.set("index", json!(index));
        let actor = own.interpolate_str(actor_template)?;
        customer_vars.push(own);
        sessions.push(actor);
    }
    let sessions = futures::future::try_join_all(
        sessions
            .iter()
            .map(|actor| ctx.actors.session(Some(actor.as_str()))),
    )
    .await?;

    let spec = Arc::new(spec.clone());
    let total = (spec.rate * spec.duration.as_secs_f64()).ceil().max(1.0) as u64;
    let interval = Duration::from_secs_f64(1.0 / spec.rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let customer = (n % u64::from(spec.customers)) as usize;
        let mut own = customer_vars[customer].clone();
        own.set("n", json!(n));
        let job = OrderJob {
            client: ctx.shared.client.clone(),
            session: sessions[customer].clone(),
            spec: spec.clone(),
            vars: own,
            start,
        };
        tasks.push(tokio::spawn(job.run()));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(
            task.await
                .unwrap_or_else(|error| Outcome::Failed(format!("order task failed: {error}"))),
        );
    }
    Ok(summarise(&spec, total, &outcomes))
}

impl OrderJob {
    /// From `sent` to the time the timeline at `path` in `data` gives the
    /// confirmation.
    fn to_confirmation(
        &self,
        data: &Value,
        path: &str,
        sent: chrono::DateTime<chrono::Utc>,
    ) -> Result<Duration, String> {
        let confirmed = &self.spec.confirmed;
        let at = entered_at(data, path, confirmed)
            .ok_or_else(|| format!("no {confirmed} entry with a time at {path:?} in {data}"))?;
        // The server's clock is this machine's: a negative span is rounding,
        // not travel in time.
        Ok(at
            .signed_duration_since(sent)
            .to_std()
            .unwrap_or(Duration::ZERO))
    }

    async fn run(self) -> Outcome {
        match self.follow().await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Failed(error),
        }
    }

    async fn call(&self, document: &str, variables: &Value) -> Result<Value, String> {
        let document = self
            .vars
            .interpolate_str(document)
            .map_err(|e| e.to_string())?;
        let variables = self
            .vars
            .interpolate(variables)
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .execute(&document, &variables, self.session.token.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        match response.errors.first() {
            Some(error) => Err(error.to_string()),
            None => Ok(response.data),
        }
    }

    async fn follow(mut self) -> Result<Outcome, String> {
        if let Some(before) = &self.spec.before {
            self.call(before, &json!({})).await?;
        }
        let sent = Instant::now();
        let sent_wall = chrono::Utc::now();
        let data = self
            .call(&self.spec.order, &self.spec.order_variables)
            .await?;
        let order_id = lookup(&data, &self.spec.order_id)
            .ok_or_else(|| format!("no order id at {:?} in {data}", self.spec.order_id))?;
        let placed_at = self.start.elapsed();
        self.vars.set("order_id", order_id);
        let deadline = sent + self.spec.settle;
        loop {
            // A status the view does not know yet reads as an error; keep polling.
            if let Ok(data) = self
                .call(&self.spec.status_query, &self.spec.status_variables)
                .await
            {
                let status = lookup(&data, &self.spec.status_path);
                let status = status.as_ref().and_then(Value::as_str);
                if status == Some(self.spec.confirmed.as_str()) {
                    let latency = sent.elapsed();
                    let recorded = self
                        .spec
                        .timeline_path
                        .as_deref()
                        .map(|path| self.to_confirmation(&data, path, sent_wall))
                        .transpose()?;
                    return Ok(Outcome::Confirmed {
                        placed_at,
                        latency,
                        recorded,
                        done_at: self.start.elapsed(),
                    });
                }
                if status.is_some_and(|s| self.spec.cancelled.iter().any(|c| c == s)) {
                    return Ok(Outcome::Cancelled { placed_at });
                }
            }
            if Instant::now() >= deadline {
                return Ok(Outcome::Pending { placed_at });
            }
            // Polling the status with a deadline.
            let wait = next_poll(self.spec.poll, self.spec.poll_max, sent.elapsed());
            tokio::time::sleep(wait).await;
        }
    }
}

/// How long to wait before the next status poll, `elapsed` after the mutation.
fn next_poll(poll: Duration, poll_max: Duration, elapsed: Duration) -> Duration {
    (elapsed / 4).clamp(poll, poll_max.max(poll))
}

/// When the timeline at `path` entered `status` (its first such entry).
fn entered_at(data: &Value, path: &str, status: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let timeline = lookup(data, path)?;
    let entry = timeline
        .as_array()?
        .iter()
        .find(|entry| entry.get("status").and_then(Value::as_str) == Some(status))?;
    let at = entry.get("at").and_then(Value::as_str)?;
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}

fn summarise(spec: &LoadSpec, total: u64, outcomes: &[Outcome]) -> LoadReport {
    let mut latencies = Vec::new();
    let mut recorded_latencies = Vec::new();
    let (mut confirmed, mut cancelled, mut pending, mut failed) = (0, 0, 0, 0);
    let mut last_placed = Duration::ZERO;
    let mut last_confirmed = Duration::ZERO;
    let mut first_error = None;
    for outcome in outcomes {
        match outcome {
            Outcome::Confirmed {
                placed_at,
                latency,
                recorded,
                done_at,
            } => {
                confirmed += 1;
                latencies.push(*latency);
                recorded_latencies.extend(*recorded);
                last_placed = last_placed.max(*placed_at);
                last_confirmed = last_confirmed.max(*done_at);
            }
            Outcome::Cancelled { placed_at } => {
                cancelled += 1;
                last_placed = last_placed.max(*placed_at);
            }
            Outcome::Pending { placed_at } => {
                pending += 1;
                last_placed = last_placed.max(*placed_at);
            }
            Outcome::Failed(error) => {
                failed += 1;
                first_error.get_or_insert_with(|| error.clone());
            }
        }
    }
    latencies.sort();
    recorded_latencies.sort();
    let placed = confirmed + cancelled + pending;
    let rate = |count: u64, window: Duration| {
        let window = window.max(spec.duration).as_secs_f64();
        count as f64 / window
    };
    LoadReport {
        target_rate: spec.rate,
        duration: spec.duration,
        orders: total,
        placed,
        confirmed,
        cancelled,
        failed,
        pending,
        achieved_rate: rate(placed, last_placed),
        confirmed_rate: rate(confirmed, last_confirmed),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied(),
        p50_recorded: percentile(&recorded_latencies, 0.50),
        p99_recorded: percentile(&recorded_latencies, 0.99),
        first_error,
    }
}

/// The nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[Duration], quantile: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(
            percentile(&samples[..1], 0.99),
            Some(Duration::from_millis(1))
        );
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn polls_slow_down_with_the_wait_up_to_the_maximum() {
        let ms = Duration::from_millis;
        assert_eq!(next_poll(ms(50), ms(50), ms(10_000)), ms(50));
        assert_eq!(next_poll(ms(50), ms(1000), ms(100)), ms(50));
        assert_eq!(next_poll(ms(50), ms(1000), ms(400)), ms(100));
        assert_eq!(next_poll(ms(50), ms(1000), ms(60_000)), ms(1000));
        // A maximum below the start is the start.
        assert_eq!(next_poll(ms(50), ms(10), ms(400)), ms(50));
    }

    #[test]
    fn the_confirmed_entry_of_a_timeline_gives_its_time() {
        let data = json!({"order": {"status": "CONFIRMED", "timeline": [
            {"status": "PLACED", "at": "2026-11-22T10:00:00Z"},
            {"status": "CONFIRMED", "at": "2026-11-22T10:00:00.125+00:00"},
        ]}});
        let at = entered_at(&data, "order.timeline", "CONFIRMED").expect("an entry");
        assert_eq!(at.to_rfc3339(), "2026-11-22T10:00:00.125+00:00");
        assert_eq!(entered_at(&data, "order.timeline", "SHIPPED"), None);
        assert_eq!(entered_at(&data, "order.nothing", "CONFIRMED"), None);
        let bad = json!({"order": {"timeline": [{"status": "CONFIRMED", "at": "yesterday"}]}});
        assert_eq!(entered_at(&bad, "order.timeline", "CONFIRMED"), None);
    }
}
