//! What every process of the shop shares, so that each service looks the same
//! from the outside.
//!
//! Layout:
//! - [`logging`]: `tracing` set-up, human or JSON;
//! - [`metrics`]: the global Prometheus recorder;
//! - [`ops`]: the `/health`, `/ready` and `/metrics` routes;
//! - [`shutdown`]: a clonable shutdown signal fired by SIGINT/SIGTERM;
//! - [`api_error`]: the JSON error body every HTTP API answers with;
//! - [`serve`]: runs an axum router with HTTP metrics and graceful shutdown.
#![warn(missing_docs)]

pub mod api_error;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod shutdown;

pub use logging::{init_tracing, shutdown_tracing, LogFormat};

use std::future::Future;
use std::time::Instant;

use axum::{extract::MatchedPath, extract::Request, middleware::Next, response::Response, Router};

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish. Every request is counted and timed in the
/// `http_requests_total` / `http_request_duration_seconds` metrics. Handlers
/// can read the peer's address as `ConnectInfo<SocketAddr>` (per-client limits).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = app.layer(axum::middleware::from_fn(record_http_metrics));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| anyhow::anyhow!("http server failed: {e}"))
}

async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    ::metrics::counter!("http_requests_total", &labels).increment(1);
    ::metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
