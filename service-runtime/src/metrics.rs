//! The process-wide Prometheus recorder.

use std::{sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How often histogram samples are folded into their buckets. The recorder
/// keeps every sample of a histogram until then (or until `/metrics` is
/// scraped), so a process nobody scrapes would otherwise grow with every
/// request, batch and group commit it times.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Runs `handle`'s upkeep every `every` on a thread of its own for the rest
/// of the process, calling `after_each` after each run.
fn spawn_upkeep(handle: PrometheusHandle, every: Duration, after_each: impl Fn() + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(every);
            handle.run_upkeep();
            after_each();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the metrics upkeep; histograms grow until /metrics is scraped");
    }
}

/// Buckets for histograms that count things rather than time them (their
/// names end in `_events`, `_size` or `_messages`): group-commit sizes, batch sizes.
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder on first call and returns its handle; later
/// calls return the same handle. If another recorder is already installed,
/// a detached recorder is returned so `/metrics` still answers.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0,
                ])
                .and_then(|builder| {
                    ["_events", "_size", "_messages"].into_iter().try_fold(
                        builder,
                        |builder, suffix| {
                            builder.set_buckets_for_metric(
                                Matcher::Suffix(suffix.to_owned()),
                                COUNT_BUCKETS,
                            )
                        },
                    )
                })
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Only the first recorder in a process wins; keep our handle either way.
            let _ = ::metrics::set_global_recorder(recorder);
            spawn_upkeep(handle.clone(), UPKEEP_EVERY, || {});
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upkeep_runs_on_its_own_thread_without_a_scrape() {
        let (runs, ran) = std::sync::mpsc::channel();
        let recorder = PrometheusBuilder::new().build_recorder();
        spawn_upkeep(recorder.handle(), Duration::from_millis(5), move || {
            let _ = runs.send(());
        });
        for run in 1..=3 {
            ran.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("upkeep run {run} did not come within 10 s"));
        }
    }
}
