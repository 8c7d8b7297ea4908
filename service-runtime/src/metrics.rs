//! The process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

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
            handle
        })
        .clone()
}
