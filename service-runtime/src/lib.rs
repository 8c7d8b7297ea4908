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
pub mod waits;

pub use logging::{init_tracing, shutdown_tracing, LogFormat};

use std::future::Future;
use std::time::Instant;

use axum::http::Method;
use axum::{extract::MatchedPath, extract::Request, middleware::Next, response::Response, Router};

/// How long requests still running at shutdown may take to finish (a long
/// poll may hold one for longer) before the server stops without them.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish, for at most [`DRAIN`]. Every request is counted and timed in the
/// `http_requests_total` / `http_request_duration_seconds` metrics. Handlers
/// can read the peer's address as `ConnectInfo<SocketAddr>` (per-client limits).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The recorder must be in place before the first request caches handles.
    crate::metrics::install();
    let app = app.layer(axum::middleware::from_fn(record_http_metrics));
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping.send(true);
    });
    let mut graceful = stopped.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|stopping| *stopping).await;
    });
    let mut draining = stopped;
    let drained = async move {
        let _ = draining.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::select! {
        served = std::future::IntoFuture::into_future(server) => {
            served.map_err(|e| anyhow::anyhow!("http server failed: {e}"))
        }
        () = drained => {
            tracing::warn!(drain_seconds = DRAIN.as_secs(), "requests still running after shutdown; stopping without them");
            Ok(())
        }
    }
}

/// The counter and histogram of one (route, method, status).
type HttpMetrics = (::metrics::Counter, ::metrics::Histogram);

/// The most (method, status) pairs kept per route; beyond, handles are made
/// afresh for each request (only odd methods get there).
const MAX_CACHED_PER_ROUTE: usize = 64;

/// The handles of the HTTP metrics by route, then method and status, so that
/// a request seen before is counted without building labels.
type HttpMetricsCache =
    std::sync::RwLock<std::collections::HashMap<String, Vec<(Method, u16, HttpMetrics)>>>;

static HTTP_METRICS: std::sync::OnceLock<HttpMetricsCache> = std::sync::OnceLock::new();

fn http_metrics(route: &str, method: &Method, status: u16) -> HttpMetrics {
    let cache = HTTP_METRICS.get_or_init(Default::default);
    if let Ok(routes) = cache.read() {
        let found = routes.get(route).and_then(|entries| {
            entries
                .iter()
                .find(|(m, s, _)| m == method && *s == status)
                .map(|(_, _, handles)| handles.clone())
        });
        if let Some(handles) = found {
            return handles;
        }
    }
    let labels = [
        ("method", method.as_str().to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let handles = (
        ::metrics::counter!("http_requests_total", &labels),
        ::metrics::histogram!("http_request_duration_seconds", &labels),
    );
    if let Ok(mut routes) = cache.write() {
        let entries = routes.entry(route.to_owned()).or_default();
        if entries.len() < MAX_CACHED_PER_ROUTE
            && !entries.iter().any(|(m, s, _)| m == method && *s == status)
        {
            entries.push((method.clone(), status, handles.clone()));
        }
    }
    handles
}

async fn record_http_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let (requests, duration) = http_metrics(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        response.status().as_u16(),
    );
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[tokio::test]
    async fn requests_are_counted_by_route_method_and_status() {
        let handle = crate::metrics::install();
        let app = Router::new().route("/things/{id}", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, async move {
            let _ = stopped.await;
        }));
        let http = reqwest_free_get(addr);
        for path in ["/things/1", "/things/2", "/things/3", "/nowhere"] {
            http(path).await;
        }
        let text = handle.render();
        let line = |route: &str, status: &str| {
            text.lines()
                .find(|line| {
                    line.starts_with("http_requests_total{")
                        && line.contains(&format!("route=\"{route}\""))
                        && line.contains(&format!("status=\"{status}\""))
                        && line.contains("method=\"GET\"")
                })
                .map(str::to_owned)
        };
        assert!(
            line("/things/{id}", "200").is_some_and(|line| line.ends_with(" 3")),
            "{text}"
        );
        assert!(
            line("unmatched", "404").is_some_and(|line| line.ends_with(" 1")),
            "{text}"
        );
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    /// A GET over a raw TCP connection (this crate has no HTTP client).
    #[tokio::test]
    async fn a_request_still_running_at_shutdown_holds_the_server_at_most_the_drain_time() {
        let started = std::sync::Arc::new(tokio::sync::Notify::new());
        let app = Router::new().route(
            "/hang",
            get({
                let started = std::sync::Arc::clone(&started);
                move || async move {
                    started.notify_one();
                    std::future::pending::<()>().await;
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, async move {
            let _ = stopped.await;
        }));
        // A client whose request never gets an answer.
        let client = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            stream
        });
        started.notified().await;
        let asked_to_stop = std::time::Instant::now();
        let _ = stop.send(());
        tokio::time::timeout(DRAIN * 3, server)
            .await
            .expect("the server stops though a request still runs")
            .unwrap()
            .unwrap();
        assert!(
            asked_to_stop.elapsed() >= DRAIN,
            "the request had its drain time"
        );
        drop(client);
    }

    fn reqwest_free_get(
        addr: std::net::SocketAddr,
    ) -> impl Fn(&'static str) -> futures::future::BoxFuture<'static, ()> {
        move |path| {
            Box::pin(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(
                        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                            .as_bytes(),
                    )
                    .await
                    .unwrap();
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await.unwrap();
                assert!(answer.starts_with(b"HTTP/1.1 "));
            })
        }
    }
}
