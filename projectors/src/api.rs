//! The read API of a projector (docs/internal-apis.md): documents by key,
//! batch gets for the gateway's data loaders, per-stream positions for
//! consistency tokens, status, digest, each view's own queries, and the
//! live replay.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use axum::{
    extract::{rejection::JsonRejection, Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use service_runtime::{
    api_error::ApiError,
    ops::{ops_router, ReadyCheck},
};

use crate::{
    name::ProjectorName,
    runtime::{Projector, ReplayProgress, RuntimeError},
    views,
};

/// The most keys one batch get may ask for.
pub const MAX_BATCH_KEYS: usize = 1000;
/// The longest a position query may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// The most items a listing returns.
pub const MAX_PAGE: usize = 1000;

type AppState = Arc<Projector>;

/// The read API of one projector, with `/health`, `/ready` and `/metrics`.
pub fn router(projector: Arc<Projector>) -> Router {
    let ready_projector = Arc::clone(&projector);
    let ready: ReadyCheck = Arc::new(move || {
        let projector = Arc::clone(&ready_projector);
        Box::pin(async move {
            if !projector.is_caught_up() {
                return Err("still catching up from the event store".to_owned());
            }
            projector
                .source()
                .head()
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    });
    let mut routes = Router::new()
        .route("/views/{view}/batch", post(batch))
        .route("/views/{view}/{key}", get(document))
        .route("/views/{view}/{key}/wait", get(document_at))
        .route("/positions", get(position))
        .route("/status", get(status))
        .route("/digest", get(digest))
        .route("/admin/replay", post(start_replay).get(replay_progress));
    routes = match projector.name() {
        ProjectorName::Catalog => routes.route("/products", get(products)),
        ProjectorName::Search => routes.route("/search", get(search)),
        ProjectorName::Recommendations => {
            routes.route("/recommendations/{sku}", get(recommendations))
        }
        ProjectorName::Sales => routes.route("/stats", get(stats)),
        _ => routes,
    };
    routes.with_state(projector).merge(ops_router(ready))
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::internal(error)
}

fn check_view(projector: &Projector, view: &str) -> Result<(), ApiError> {
    if projector.projection().views().contains(&view) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "unknown_view",
            format!(
                "the {} projector serves no view {view:?}; it serves: {}",
                projector.name(),
                projector.projection().views().join(", ")
            ),
        ))
    }
}

/// A document of one of the projector's views, read off the async threads.
async fn read_document(
    projector: &Arc<Projector>,
    view: String,
    key: String,
) -> Result<Option<Value>, ApiError> {
    let db = projector.db();
    let projector = Arc::clone(projector);
    tokio::task::spawn_blocking(move || projector.projection().document(&db, &view, &key))
        .await
        .map_err(internal)?
        .map_err(internal)
}

async fn document(
    State(projector): State<AppState>,
    Path((view, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_view(&projector, &view)?;
    match read_document(&projector, view, key.clone()).await? {
        Some(doc) => Ok(Json(doc)),
        None => Err(ApiError::not_found(
            "not_found",
            format!("no document with key {key:?}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct BatchRequest {
    keys: Vec<String>,
}

async fn batch(
    State(projector): State<AppState>,
    Path(view): Path<String>,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    check_view(&projector, &view)?;
    let Json(request) = body?;
    if request.keys.len() > MAX_BATCH_KEYS {
        return Err(ApiError::bad_request(
            "too_many_keys",
            format!(
                "at most {MAX_BATCH_KEYS} keys per batch, got {}",
                request.keys.len()
            ),
        )
        .with("field", "keys"));
    }
    let db = projector.db();
    let items = tokio::task::spawn_blocking({
        let projector = Arc::clone(&projector);
        move || {
            let mut items = BTreeMap::new();
            for key in request.keys {
                let doc = projector.projection().document(&db, &view, &key)?;
                items.insert(key, doc.unwrap_or(Value::Null));
            }
            Ok::<_, crate::viewdb::ViewError>(items)
        }
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
struct PositionQuery {
    stream: Option<String>,
    /// Wait until the stream's applied version is at least this.
    min_version: Option<u64>,
    /// How long to wait for it, in milliseconds (at most 30 s).
    timeout_ms: Option<u64>,
}

/// The stream of a position query or a document wait, or a 400.
fn required_stream(stream: Option<String>) -> Result<String, ApiError> {
    stream.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::bad_request("missing_stream", "give the stream: ?stream=<stream>")
            .with("field", "stream")
    })
}

/// A stream's applied version, waiting for `min_version` up to the query's timeout.
async fn wait_for(
    projector: &Projector,
    stream: &str,
    query: &PositionQuery,
) -> Result<Option<u64>, ApiError> {
    let wait = Duration::from_millis(query.timeout_ms.unwrap_or(0)).min(MAX_WAIT);
    projector
        .position(stream, query.min_version, wait)
        .await
        .map_err(|error| match error {
            RuntimeError::TooManyWaits(refused) => ApiError::from(refused),
            other => internal(other),
        })
}

async fn position(
    State(projector): State<AppState>,
    query: Result<Query<PositionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
    let stream = required_stream(query.stream.clone())?;
    let version = wait_for(&projector, &stream, &query).await?;
    Ok(Json(json!({ "stream": stream, "version": version })))
}

/// `GET /views/{view}/{key}/wait?stream=&min_version=&timeout_ms=`: the
/// document once the projector has applied `min_version` of `stream` (or
/// the timeout passed), with the stream's version read just before it: a
/// client following a document waits and reads in one request, and waiting
/// next for a version above the one answered misses no change.
async fn document_at(
    State(projector): State<AppState>,
    Path((view, key)): Path<(String, String)>,
    query: Result<Query<PositionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
    check_view(&projector, &view)?;
    let stream = required_stream(query.stream.clone())?;
    let version = wait_for(&projector, &stream, &query).await?;
    let document = read_document(&projector, view, key).await?;
    Ok(Json(
        json!({ "stream": stream, "version": version, "document": document }),
    ))
}

async fn status(State(projector): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = projector.status().await.map_err(internal)?;
    Ok(Json(serde_json::to_value(status).map_err(internal)?))
}

async fn digest(State(projector): State<AppState>) -> Result<Json<Value>, ApiError> {
    let digest = projector.digest().await.map_err(internal)?;
    Ok(Json(
        json!({ "name": projector.name().as_str(), "digest": digest }),
    ))
}

async fn start_replay(State(projector): State<AppState>) -> Response {
    {
        let mut progress = projector.replay.lock();
        if progress.state == "running" {
            return (StatusCode::ACCEPTED, Json(progress.clone())).into_response();
        }
        *progress = ReplayProgress {
            state: "running",
            ..ReplayProgress::default()
        };
    }
    let task_projector = Arc::clone(&projector);
    tokio::spawn(async move {
        let result = task_projector.replay_live().await;
        let mut progress = task_projector.replay.lock();
        match result {
            Ok(digest) => {
                progress.state = "done";
                progress.digest = Some(digest);
            }
            Err(error) => {
                tracing::error!(projector = %task_projector.name(), error = %format!("{error:#}"), "live replay failed");
                progress.state = "failed";
                progress.error = Some(format!("{error:#}"));
            }
        }
    });
    let progress = projector.replay.lock().clone();
    (StatusCode::ACCEPTED, Json(progress)).into_response()
}

async fn replay_progress(State(projector): State<AppState>) -> Json<ReplayProgress> {
    Json(projector.replay.lock().clone())
}

fn page_size(first: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match first.unwrap_or(default) {
        0 => Err(
            ApiError::bad_request("invalid_first", "first must be at least 1")
                .with("field", "first"),
        ),
        n if n > MAX_PAGE => Err(ApiError::bad_request(
            "invalid_first",
            format!("first must be at most {MAX_PAGE}"),
        )
        .with("field", "first")),
        n => Ok(n),
    }
}

fn query_of<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
}

#[derive(Debug, Deserialize)]
struct ProductsQuery {
    first: Option<usize>,
    after: Option<String>,
    category: Option<String>,
}

async fn products(
    State(projector): State<AppState>,
    query: Result<Query<ProductsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<views::catalog::ProductPage>, ApiError> {
    let query = query_of(query)?;
    let first = page_size(query.first, 20)?;
    let db = projector.db();
    let page = tokio::task::spawn_blocking(move || {
        views::catalog::list(
            &db,
            first,
            query.after.as_deref(),
            query.category.as_deref(),
        )
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(page))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    first: Option<usize>,
}

async fn search(
    State(projector): State<AppState>,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let query = query_of(query)?;
    let first = page_size(query.first, 10)?;
    let text = query.q.unwrap_or_default();
    if text.chars().count() > 200 {
        return Err(
            ApiError::bad_request("invalid_query", "q must be at most 200 characters")
                .with("field", "q"),
        );
    }
    let db = projector.db();
    let hits = tokio::task::spawn_blocking(move || views::search::search(&db, &text, first))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    Ok(Json(json!({ "items": hits })))
}

#[derive(Debug, Deserialize)]
struct FirstQuery {
    first: Option<usize>,
}

async fn recommendations(
    State(projector): State<AppState>,
    Path(sku): Path<String>,
    query: Result<Query<FirstQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let query = query_of(query)?;
    let first = page_size(query.first, 5)?;
    let sku = domain::values::Sku::parse(&sku).map_err(|error| {
        ApiError::bad_request("invalid_sku", error.to_string()).with("field", "sku")
    })?;
    let db = projector.db();
    let items = tokio::task::spawn_blocking(move || {
        views::recommendations::recommend(&db, sku.as_str(), first)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    top: Option<usize>,
}

async fn stats(
    State(projector): State<AppState>,
    query: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<views::sales::Stats>, ApiError> {
    let query = query_of(query)?;
    let top = page_size(query.top, 5)?;
    let db = projector.db();
    let stats = tokio::task::spawn_blocking(move || views::sales::stats(&db, top))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    Ok(Json(stats))
}
