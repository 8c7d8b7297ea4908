//! `/health`, `/ready` and `/metrics`, the same on every component.

use std::sync::Arc;

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use futures::future::BoxFuture;
use serde_json::json;

/// Says whether the component's dependencies are reachable.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A readiness check that always passes, for components with no dependencies.
pub fn always_ready() -> ReadyCheck {
    Arc::new(|| Box::pin(async { Ok(()) }))
}

#[derive(Clone)]
struct OpsState {
    ready: ReadyCheck,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// The three operational routes: `/health` (the process answers), `/ready`
/// (dependencies reachable: 200, else 503 with the reason) and `/metrics`
/// (Prometheus text format).
pub fn ops_router(ready: ReadyCheck) -> Router {
    let state = OpsState {
        ready,
        metrics: crate::metrics::install(),
    };
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(readiness))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readiness(State(state): State<OpsState>) -> impl IntoResponse {
    match (state.ready)().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reason": reason})),
        ),
    }
}

async fn render_metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn status_of(router: Router, path: &str) -> StatusCode {
        router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn health_answers_ok_and_ready_reflects_the_check() {
        assert_eq!(
            status_of(ops_router(always_ready()), "/health").await,
            StatusCode::OK
        );
        assert_eq!(
            status_of(ops_router(always_ready()), "/ready").await,
            StatusCode::OK
        );
        let failing: ReadyCheck = Arc::new(|| Box::pin(async { Err("broker down".to_owned()) }));
        assert_eq!(
            status_of(ops_router(failing), "/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn metrics_render_in_prometheus_text_format() {
        // The recorder must be installed before anything is counted.
        crate::metrics::install();
        ::metrics::counter!("ops_test_counter").increment(3);
        let response = ops_router(always_ready())
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("ops_test_counter 3"), "{text}");
    }
}
