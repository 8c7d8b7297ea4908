//! The event store's HTTP server (`shop event-store`).
//!
//! Routes (JSON as in CONTRACT.md; every route also speaks the binary form of
//! [`crate::wire`] when asked with `Content-Type` / `Accept`):
//!
//! - `POST /streams/{stream}`: append;
//! - `POST /appends`: appends to several streams in one request, each with its
//!   own expected version and atomic on its own, answered per append (the
//!   services batch concurrent commands on different streams this way);
//! - `GET /streams/{stream}?from&limit&direction`: read a stream;
//! - `GET /all?from&limit&wait_ms`: read the global log; with `wait_ms`, a long
//!   poll that answers as soon as an event at `from` or later exists, or empty
//!   after `wait_ms` (at most `--max-waits` wait at once; the next is
//!   answered 503 `too_many_waits`);
//! - `GET /categories/{category}?from&limit`: read a category (`order` for `order-*`);
//! - `GET /info`: store id and head;
//! - `GET /health`, `/ready`, `/metrics`.
//!
//! Bad input is refused with a 4xx `{"error": CODE, "message": TEXT}` before
//! anything is written.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::codec;
use domain::envelope::{NewEvent, RecordedEvent};
use serde::{Deserialize, Serialize};
use service_runtime::api_error::ApiError;
use service_runtime::ops::{ops_router, ReadyCheck};
use service_runtime::shutdown::Shutdown;
use service_runtime::waits::WaitSlots;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::store::AppendResult;
use crate::store::{AppendError, Direction, ExpectedVersion, ReadError, Store, StoreOptions};
use crate::wire::{
    self, AppendFailure, AppendOutcome, AppendRequest, JsonAppendRequest, JsonEvent, JsonEvents,
    JsonMultiAppendRequest, JsonStreamAppendRequest, MultiAppendRequest, MultiAppendResponse,
    StoreInfo, StreamAppend, BINARY_CONTENT_TYPE,
};

/// Configuration of `shop event-store`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventStoreConfig {
    /// Directory of the store's files (log segments, index, store id).
    #[arg(long = "data", env = "SHOP_DATA", default_value = "./data/event-store")]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:2113")]
    pub listen: SocketAddr,
    /// RabbitMQ URL for the relay (unless `--no-relay`); the relay keeps
    /// retrying while the broker is down, and the store serves meanwhile.
    #[arg(
        long,
        env = "SHOP_AMQP",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp: Option<String>,
    /// Prefix of every RabbitMQ name, so several systems can share a broker.
    #[arg(long, env = "SHOP_NAMESPACE", default_value = "shop")]
    pub namespace: String,
    /// Do not relay events to RabbitMQ.
    #[arg(long, env = "SHOP_NO_RELAY")]
    pub no_relay: bool,
    /// The largest request body accepted, in bytes.
    #[arg(long, env = "SHOP_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Memory for the index's page cache, in MiB (sled holds a few times this).
    #[arg(long, env = "SHOP_INDEX_CACHE_MB", default_value_t = DEFAULT_INDEX_CACHE_MB)]
    pub index_cache_mb: u64,
    /// Stream categories the relay does not publish, comma-separated: their
    /// events stay in the store only (docs/adr/0012; by default the saga's
    /// record and payments, which no queue is bound for). `--unpublished ''`
    /// publishes every category.
    #[arg(
        long,
        env = "SHOP_UNPUBLISHED",
        value_delimiter = ',',
        default_value = "fulfillment,payment"
    )]
    pub unpublished: Vec<String>,
    /// The most long polls (`GET /all?wait_ms=`) waiting at once; the next
    /// is answered 503 `too_many_waits`.
    #[arg(long, env = "SHOP_MAX_WAITS", default_value_t = WaitSlots::DEFAULT)]
    pub max_waits: usize,
}

/// The default of `--index-cache-mb`.
pub const DEFAULT_INDEX_CACHE_MB: u64 = crate::store::DEFAULT_INDEX_CACHE_BYTES / (1024 * 1024);

impl EventStoreConfig {
    /// The relay's options from these flags (`--unpublished ''` is none).
    pub fn relay_options(&self) -> crate::relay::RelayOptions {
        crate::relay::RelayOptions {
            unpublished: self
                .unpublished
                .iter()
                .filter(|category| !category.is_empty())
                .cloned()
                .collect(),
            ..Default::default()
        }
    }

    /// A configuration for tests and benchmarks: the given data directory, a
    /// loopback port chosen by the OS, no relay.
    pub fn for_data_dir(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            amqp: None,
            namespace: "shop".into(),
            no_relay: true,
            max_body_bytes: 8 * 1024 * 1024,
            index_cache_mb: DEFAULT_INDEX_CACHE_MB,
            unpublished: crate::relay::RelayOptions::default().unpublished,
            max_waits: WaitSlots::DEFAULT,
        }
    }
}

/// The longest a long poll on `/all` may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The default and the largest `limit` of a read.
pub const DEFAULT_READ_LIMIT: usize = 1000;
/// The largest `limit` of a read; larger values are clamped to it.
pub const MAX_READ_LIMIT: usize = 10_000;
/// The most appends one `POST /appends` may carry.
pub const MAX_APPENDS_PER_REQUEST: usize = 1000;

/// What the handlers share.
#[derive(Clone)]
pub struct ServerState {
    store: Store,
    shutdown: Shutdown,
    max_body_bytes: usize,
    waits: WaitSlots,
}

impl ServerState {
    /// State over `store`; long polls end early when `shutdown` fires.
    pub fn new(store: Store, shutdown: Shutdown) -> Self {
        Self {
            store,
            shutdown,
            max_body_bytes: 8 * 1024 * 1024,
            waits: WaitSlots::default(),
        }
    }

    /// Sets how many long polls (`GET /all?wait_ms=`) may wait at once.
    pub fn with_max_waits(mut self, max_waits: usize) -> Self {
        self.waits = WaitSlots::new(max_waits);
        self
    }

    /// Sets the largest request body accepted.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }
}

/// The whole HTTP API, with `/health`, `/ready` and `/metrics`.
pub fn router(state: ServerState) -> Router {
    let store = state.store.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            if store.is_writable() {
                Ok(())
            } else {
                Err("the event store is not accepting appends".to_owned())
            }
        })
    });
    let max_body_bytes = state.max_body_bytes;
    Router::new()
        .route("/streams/{stream}", get(read_stream).post(append))
        .route("/appends", post(append_many))
        .route("/all", get(read_all))
        .route("/categories/{category}", get(read_category))
        .route("/info", get(info))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
        .merge(ops_router(ready))
}

/// A server started by [`start`].
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The store it serves.
    pub store: Store,
    /// Its long polls (how many wait now).
    pub waits: WaitSlots,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Waits until it has stopped (after the shutdown signal): in-flight requests
    /// answered, background tasks ended, the store synced and closed.
    pub async fn wait(self) -> anyhow::Result<()> {
        let Self { task, store, .. } = self;
        drop(store);
        task.await.context("the event store server task panicked")?
    }
}

/// `amqp://user:secret@host` → `amqp://user:***@host`, for the start-up log.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Opens the store and serves it on `listener` until `shutdown` fires; returns
/// at once with the bound address. Use [`RunningServer::wait`] to wait for the end.
pub async fn start(
    config: &EventStoreConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<RunningServer> {
    let addr = listener
        .local_addr()
        .context("failed to read the listening address")?;
    let options = StoreOptions {
        index_cache_bytes: config.index_cache_mb.max(1) * 1024 * 1024,
        ..StoreOptions::default()
    };
    let store = Store::open(&config.data, options).await.with_context(|| {
        format!(
            "failed to open the event store in {}",
            config.data.display()
        )
    })?;
    tracing::info!(
        data = %config.data.display(),
        listen = %addr,
        amqp = config.amqp.as_deref().map(redact_url).unwrap_or_default(),
        namespace = %config.namespace,
        relay = !config.no_relay,
        store_id = %store.store_id(),
        head = store.head(),
        "event store listening"
    );

    // Tasks that run beside the HTTP server until `shutdown` fires; they are
    // awaited after the server has drained and before the store is closed.
    #[allow(unused_mut)]
    let mut background: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)> = Vec::new();

    // ===================== RELAY START (owned by the relay) =====================
    if let (false, Some(amqp)) = (config.no_relay, &config.amqp) {
        let namespace = messaging::Namespace::parse(&config.namespace)
            .context("invalid --namespace for the relay")?;
        let relay = crate::relay::run_amqp_relay(
            store.clone(),
            amqp.clone(),
            namespace,
            config.relay_options(),
            shutdown.clone(),
        );
        background.push(("relay", tokio::spawn(relay)));
    }
    // =================== END RELAY START ========================================

    let state = ServerState::new(store.clone(), shutdown.clone())
        .with_max_body_bytes(config.max_body_bytes)
        .with_max_waits(config.max_waits);
    let waits = state.waits.clone();
    let app = router(state);
    let serving_store = store.clone();
    let task = tokio::spawn(async move {
        let served = service_runtime::serve(listener, app, shutdown.waiter()).await;
        for (name, task) in background {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(task = name, error = %format!("{error:#}"), "background task failed")
                }
                Err(error) => tracing::error!(task = name, %error, "background task panicked"),
            }
        }
        let closed = serving_store
            .shutdown()
            .await
            .map_err(|error| anyhow::anyhow!("failed to close the event store: {error}"));
        tracing::info!("event store stopped");
        served.and(closed)
    });
    Ok(RunningServer {
        addr,
        store,
        waits,
        task,
    })
}

/// Runs `shop event-store` until `shutdown` fires, then drains and exits.
pub async fn run(config: EventStoreConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    start(&config, listener, shutdown).await?.wait().await
}

fn wants_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains(BINARY_CONTENT_TYPE))
}

fn sends_binary(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| content_type.starts_with(BINARY_CONTENT_TYPE))
}

fn binary_response<T: Serialize + ?Sized>(value: &T) -> Result<Response, ApiError> {
    let body = codec::encode(value).map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(BINARY_CONTENT_TYPE),
        )],
        body,
    )
        .into_response())
}

fn append_error(error: AppendError) -> ApiError {
    let message = error.to_string();
    match error {
        AppendError::InvalidStreamName { .. } => {
            ApiError::bad_request("invalid_stream_name", message)
        }
        AppendError::InvalidEventType { .. } => {
            ApiError::bad_request("invalid_event_type", message)
        }
        AppendError::NoEvents => ApiError::bad_request("no_events", message),
        AppendError::TooManyEvents { max, .. } => {
            ApiError::bad_request("too_many_events", message).with("max", max)
        }
        AppendError::EventTooLarge { max, .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "event_too_large", message)
                .with("max", max)
        }
        AppendError::AppendTooLarge { max, .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "append_too_large", message)
                .with("max", max)
        }
        AppendError::InvalidJson { .. } => ApiError::bad_request("invalid_event_data", message),
        AppendError::DuplicateEventId { .. } => {
            ApiError::bad_request("duplicate_event_id", message)
        }
        AppendError::WrongExpectedVersion { current, .. } => {
            ApiError::conflict("wrong_expected_version", message).with("current_version", current)
        }
        AppendError::EventIdReused { event_id } => {
            ApiError::conflict("event_id_reused", message).with("event_id", event_id.to_string())
        }
        AppendError::Closed => ApiError::unavailable(message),
        AppendError::Storage(error) => ApiError::internal(error),
    }
}

fn read_error(error: ReadError) -> ApiError {
    let message = error.to_string();
    match error {
        ReadError::InvalidStreamName { .. } => {
            ApiError::bad_request("invalid_stream_name", message)
        }
        ReadError::InvalidCategory { .. } => ApiError::bad_request("invalid_category", message),
        ReadError::StreamNotFound { .. } => ApiError::not_found("stream_not_found", message),
        ReadError::Cancelled => ApiError::unavailable(message),
        ReadError::Storage(error) => ApiError::internal(error),
    }
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the request body is larger than the server accepts")
    } else {
        ApiError::bad_request("invalid_body", rejection.body_text())
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path", rejection.body_text())
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

fn json_error(error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Data => ApiError::bad_request(
            "invalid_body",
            format!("the body does not have the expected shape: {error}"),
        ),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("malformed_json", format!("the body is not JSON: {error}"))
        }
    }
}

/// Turns a JSON append body into the store's terms, with one error code per kind of mistake.
fn parse_json_append(body: &[u8]) -> Result<(ExpectedVersion, Vec<NewEvent>), ApiError> {
    let request: JsonAppendRequest = serde_json::from_slice(body).map_err(json_error)?;
    json_append(request)
}

/// A parsed JSON append body in the store's terms.
fn json_append(request: JsonAppendRequest) -> Result<(ExpectedVersion, Vec<NewEvent>), ApiError> {
    let expected = match &request.expected_version {
        None => {
            return Err(ApiError::bad_request(
                "invalid_expected_version",
                "expected_version is required: \"any\", \"no_stream\", \"stream_exists\" or a version number",
            ))
        }
        Some(value) => wire::parse_expected_version(value).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_expected_version",
                format!(
                    "expected_version {value} is not \"any\", \"no_stream\", \"stream_exists\" or a version number"
                ),
            )
        })?,
    };
    let mut events = Vec::with_capacity(request.events.len());
    for (index, event) in request.events.into_iter().enumerate() {
        let event_id = event
            .event_id
            .as_str()
            .and_then(|text| uuid::Uuid::parse_str(text).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_event_id",
                    format!("events[{index}].event_id {} is not a UUID", event.event_id),
                )
            })?;
        let metadata = match event.metadata {
            Some(raw) if raw.get() != "null" => raw.get().to_owned(),
            _ => "{}".to_owned(),
        };
        events.push(NewEvent {
            event_id,
            event_type: event.event_type,
            schema_version: event.schema_version.unwrap_or(1),
            data: event.data.get().to_owned(),
            metadata,
        });
    }
    Ok((expected, events))
}

async fn append(
    State(state): State<ServerState>,
    stream: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path(stream) = stream.map_err(path_error)?;
    let body = body.map_err(body_error)?;
    let (expected, events) = if sends_binary(&headers) {
        let request: AppendRequest = codec::decode(&body).map_err(|error| {
            ApiError::bad_request(
                "malformed_body",
                format!("the body is not a binary append request: {error}"),
            )
        })?;
        (request.expected_version, request.events)
    } else {
        parse_json_append(&body)?
    };
    let result = state
        .store
        .append(&stream, expected, events)
        .await
        .map_err(append_error)?;
    if wants_binary(&headers) {
        binary_response(&result)
    } else {
        Ok(Json(result.to_json()).into_response())
    }
}

/// Turns a JSON multi-stream append body into the store's terms; an error
/// names the entry (`index`).
fn parse_json_multi_append(body: &[u8]) -> Result<Vec<StreamAppend>, ApiError> {
    let request: JsonMultiAppendRequest = serde_json::from_slice(body).map_err(json_error)?;
    let mut appends = Vec::with_capacity(request.appends.len());
    for (index, raw) in request.appends.iter().enumerate() {
        let in_entry = |error: ApiError| {
            ApiError {
                message: format!("appends[{index}]: {}", error.message),
                ..error
            }
            .with("index", index)
        };
        let JsonStreamAppendRequest {
            stream,
            expected_version,
            events,
        } = serde_json::from_str(raw.get())
            .map_err(json_error)
            .map_err(in_entry)?;
        let (expected_version, events) = json_append(JsonAppendRequest {
            expected_version,
            events,
        })
        .map_err(in_entry)?;
        appends.push(StreamAppend {
            stream,
            expected_version,
            events,
        });
    }
    Ok(appends)
}

/// Submits every append at once, so the writer can group them into one
/// commit; appends to the same stream go one after the other, in order.
async fn append_all(
    store: &Store,
    appends: Vec<StreamAppend>,
) -> Vec<Result<AppendResult, AppendError>> {
    let count = appends.len();
    let mut groups: Vec<Vec<(usize, StreamAppend)>> = Vec::new();
    let mut group_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (index, append) in appends.into_iter().enumerate() {
        match group_of.get(&append.stream) {
            Some(&group) => groups[group].push((index, append)),
            None => {
                group_of.insert(append.stream.clone(), groups.len());
                groups.push(vec![(index, append)]);
            }
        }
    }
    let done = futures::future::join_all(groups.into_iter().map(|group| async move {
        let mut results = Vec::with_capacity(group.len());
        for (index, append) in group {
            let result = store
                .append(&append.stream, append.expected_version, append.events)
                .await;
            results.push((index, result));
        }
        results
    }))
    .await;
    let mut results: Vec<Option<Result<AppendResult, AppendError>>> =
        (0..count).map(|_| None).collect();
    for (index, result) in done.into_iter().flatten() {
        results[index] = Some(result);
    }
    results
        .into_iter()
        .map(|result| result.unwrap_or(Err(AppendError::Closed)))
        .collect()
}

async fn append_many(
    State(state): State<ServerState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let appends = if sends_binary(&headers) {
        let request: MultiAppendRequest = codec::decode(&body).map_err(|error| {
            ApiError::bad_request(
                "malformed_body",
                format!("the body is not a binary multi-stream append request: {error}"),
            )
        })?;
        request.appends
    } else {
        parse_json_multi_append(&body)?
    };
    if appends.is_empty() {
        return Err(ApiError::bad_request(
            "no_appends",
            "a multi-stream append needs at least one append",
        ));
    }
    if appends.len() > MAX_APPENDS_PER_REQUEST {
        return Err(ApiError::bad_request(
            "too_many_appends",
            format!(
                "a multi-stream append may carry at most {MAX_APPENDS_PER_REQUEST} appends, this one has {}",
                appends.len()
            ),
        )
        .with("max", MAX_APPENDS_PER_REQUEST));
    }
    let streams: Vec<String> = if wants_binary(&headers) {
        Vec::new()
    } else {
        appends.iter().map(|append| append.stream.clone()).collect()
    };
    let results = append_all(&state.store, appends).await;
    if wants_binary(&headers) {
        let results = results
            .into_iter()
            .map(|result| match result {
                Ok(appended) => AppendOutcome::Appended(appended),
                Err(error) => {
                    let error = append_error(error);
                    AppendOutcome::Failed(AppendFailure {
                        status: error.status.as_u16(),
                        current_version: error
                            .extra
                            .get("current_version")
                            .and_then(serde_json::Value::as_u64),
                        error: error.code,
                        message: error.message,
                    })
                }
            })
            .collect();
        return binary_response(&MultiAppendResponse { results });
    }
    let results: Vec<serde_json::Value> = results
        .into_iter()
        .zip(streams)
        .map(|(result, stream)| {
            let mut body = serde_json::Map::new();
            body.insert("stream".into(), stream.into());
            match result {
                Ok(appended) => body.extend(appended.to_json()),
                Err(error) => {
                    let error = append_error(error);
                    body.insert("status".into(), error.status.as_u16().into());
                    body.insert("error".into(), error.code.into());
                    body.insert("message".into(), error.message.into());
                    body.extend(error.extra);
                }
            }
            serde_json::Value::Object(body)
        })
        .collect();
    Ok(Json(serde_json::json!({ "results": results })).into_response())
}

fn events_response(headers: &HeaderMap, events: &[RecordedEvent]) -> Result<Response, ApiError> {
    if wants_binary(headers) {
        binary_response(events)
    } else {
        Ok(Json(JsonEvents {
            events: events.iter().map(JsonEvent::from).collect(),
        })
        .into_response())
    }
}

fn checked_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_READ_LIMIT),
        Some(0) => Err(ApiError::bad_request(
            "invalid_query",
            "limit must be at least 1",
        )),
        Some(limit) => Ok(limit.min(MAX_READ_LIMIT)),
    }
}

/// Query of `GET /streams/{stream}`.
#[derive(Debug, Deserialize)]
struct StreamQuery {
    from: Option<u64>,
    limit: Option<usize>,
    direction: Option<String>,
}

async fn read_stream(
    State(state): State<ServerState>,
    stream: Result<Path<String>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(stream) = stream.map_err(path_error)?;
    let Query(query) = query.map_err(query_error)?;
    let direction = match query.direction.as_deref() {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("direction {other:?} is not \"forward\" or \"backward\""),
            ))
        }
    };
    let from = query.from.unwrap_or(match direction {
        Direction::Forward => 0,
        Direction::Backward => u64::MAX,
    });
    let limit = checked_limit(query.limit)?;
    let events = state
        .store
        .read_stream(&stream, from, limit, direction)
        .await
        .map_err(read_error)?;
    events_response(&headers, &events)
}

/// Query of `GET /all`.
#[derive(Debug, Deserialize)]
struct AllQuery {
    from: Option<u64>,
    limit: Option<usize>,
    wait_ms: Option<u64>,
}

async fn read_all(
    State(state): State<ServerState>,
    query: Result<Query<AllQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let from = query.from.unwrap_or(0);
    let limit = checked_limit(query.limit)?;
    if let Some(wait_ms) = query.wait_ms.filter(|wait| *wait > 0) {
        if state.store.head() <= from {
            let _slot = state.waits.enter()?;
            let wait = Duration::from_millis(wait_ms).min(MAX_WAIT);
            tokio::select! {
                _ = state.store.wait_for_head_beyond(from, wait) => {}
                () = state.shutdown.wait() => {}
            }
        }
    }
    let events = state
        .store
        .read_all(from, limit)
        .await
        .map_err(read_error)?;
    events_response(&headers, &events)
}

/// Query of `GET /categories/{category}`.
#[derive(Debug, Deserialize)]
struct CategoryQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

async fn read_category(
    State(state): State<ServerState>,
    category: Result<Path<String>, PathRejection>,
    query: Result<Query<CategoryQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(category) = category.map_err(path_error)?;
    let Query(query) = query.map_err(query_error)?;
    let limit = checked_limit(query.limit)?;
    let events = state
        .store
        .read_category(&category, query.from.unwrap_or(0), limit)
        .await
        .map_err(read_error)?;
    events_response(&headers, &events)
}

async fn info(State(state): State<ServerState>) -> Json<StoreInfo> {
    Json(StoreInfo {
        store_id: state.store.store_id(),
        head: state.store.head(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saga_events_are_unpublished_unless_the_flag_says_otherwise() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: EventStoreConfig,
        }
        let unpublished = |args: &[&str]| {
            let argv = std::iter::once("event-store").chain(args.iter().copied());
            Cli::try_parse_from(argv)
                .unwrap()
                .config
                .relay_options()
                .unpublished
        };
        assert_eq!(unpublished(&[]), ["fulfillment", "payment"]);
        assert_eq!(
            unpublished(&[]),
            crate::relay::RelayOptions::default().unpublished
        );
        assert_eq!(
            EventStoreConfig::for_data_dir("d")
                .relay_options()
                .unpublished,
            ["fulfillment", "payment"]
        );
        assert!(unpublished(&["--unpublished", ""]).is_empty());
        assert_eq!(
            unpublished(&["--unpublished", "fulfillment,stock"]),
            ["fulfillment", "stock"]
        );
    }

    #[test]
    fn urls_are_logged_without_their_password() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://host/"), "amqp://host/");
        assert_eq!(redact_url("amqp://user@host/"), "amqp://user@host/");
    }

    #[test]
    fn json_appends_are_refused_field_by_field() {
        let code = |body: &str| parse_json_append(body.as_bytes()).unwrap_err().code;
        assert_eq!(code("{not json"), "malformed_json");
        assert_eq!(code(r#"{"expected_version":"any"}"#), "invalid_body");
        assert_eq!(
            code(r#"{"expected_version":"maybe","events":[]}"#),
            "invalid_expected_version"
        );
        assert_eq!(code(r#"{"events":[]}"#), "invalid_expected_version");
        assert_eq!(
            code(
                r#"{"expected_version":0,"events":[{"event_id":"nope","event_type":"A","data":{}}]}"#
            ),
            "invalid_event_id"
        );
        let (expected, events) = parse_json_append(
            br#"{"expected_version":3,"events":[{"event_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","event_type":"A","data":{"x":[1,2]}}]}"#,
        )
        .unwrap();
        assert_eq!(expected, ExpectedVersion::Exact(3));
        assert_eq!(events[0].data, r#"{"x":[1,2]}"#);
        assert_eq!(events[0].metadata, "{}");
        assert_eq!(events[0].schema_version, 1);
    }
}
