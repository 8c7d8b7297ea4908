//! `tracing` set-up shared by every process: human or JSON lines on stderr,
//! and, with the `otlp` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans
//! exported over OTLP/HTTP (the compose `tracing` profile sends them to Jaeger).

use std::sync::Once;

use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

static INIT: Once = Once::new();

type BoxedLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

/// The log filter when `RUST_LOG` is not set. lapin logs every message the
/// broker returns (at `warn`, with its whole body); the relay's returns are
/// its everyday unroutable `fulfillment.*` events (docs/adr/0005), which it
/// counts and reports itself, so that target only shows errors.
pub const DEFAULT_FILTER: &str =
    "info,lapin=warn,lapin::returned_messages=error,sled=warn,hyper=warn";

/// Installs the global subscriber once; later calls do nothing, so tests and
/// `shop dev` (many components in one process) can all call it.
/// The filter comes from `RUST_LOG`, defaulting to `info`.
pub fn init_tracing(format: LogFormat) {
    INIT.call_once(|| {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
        let lines: BoxedLayer = match format {
            LogFormat::Pretty => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_writer(std::io::stderr)
                .boxed(),
        };
        let layers: Vec<BoxedLayer> = vec![lines];
        #[cfg(feature = "otlp")]
        let layers = {
            let mut layers = layers;
            if let Some(layer) = otlp::layer() {
                layers.push(layer);
            }
            layers
        };
        // A subscriber may already be set (by a test harness); that is fine.
        let _ = tracing_subscriber::registry()
            .with(layers)
            .with(filter)
            .try_init();
    });
}

/// Flushes exported spans (call before the process exits).
pub fn shutdown_tracing() {
    #[cfg(feature = "otlp")]
    otlp::shutdown();
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;
    use tracing_subscriber::Layer;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The OTLP layer, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and non-empty.
    pub(super) fn layer() -> Option<super::BoxedLayer> {
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|endpoint| !endpoint.trim().is_empty())?;
        // Default service name: the component, e.g. `shop-projector-orders`.
        let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| {
            let words: Vec<String> = std::env::args()
                .skip(1)
                .filter(|arg| !arg.starts_with('-'))
                .take(2)
                .collect();
            std::iter::once("shop".to_owned())
                .chain(words)
                .collect::<Vec<_>>()
                .join("-")
        });
        let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = match SpanExporter::builder()
            .with_http()
            .with_endpoint(traces.clone())
            .build()
        {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("cannot export traces to {traces}: {error}; going on without");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        let tracer = provider.tracer("shop");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer).boxed())
    }

    pub(super) fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    /// Runs `check` under a subscriber with the default filter.
    fn with_default_filter(check: impl FnOnce() -> bool) -> bool {
        let subscriber = tracing_subscriber::registry().with(EnvFilter::new(DEFAULT_FILTER));
        tracing::subscriber::with_default(subscriber, check)
    }

    #[test]
    fn returned_messages_log_only_errors_and_the_rest_of_lapin_warnings() {
        assert!(!with_default_filter(|| tracing::event_enabled!(
            target: "lapin::returned_messages",
            Level::WARN
        )));
        assert!(with_default_filter(|| tracing::event_enabled!(
            target: "lapin::returned_messages",
            Level::ERROR
        )));
        assert!(with_default_filter(|| tracing::event_enabled!(
            target: "lapin::channel",
            Level::WARN
        )));
        assert!(!with_default_filter(|| tracing::event_enabled!(
            target: "lapin::channel",
            Level::INFO
        )));
    }
}
