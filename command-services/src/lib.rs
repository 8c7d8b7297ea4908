//! The command side of the shop: one HTTP service per bounded context, and
//! the order fulfillment saga.
//!
//! A command service takes `POST /commands/{name}` with a JSON body, parses
//! it into domain values (400 naming the field), loads the aggregate from its
//! stream, runs the domain's `decide`, and appends the events with the
//! expected version, retrying on a conflict (see [`repository`]). Event ids
//! are derived from the `Idempotency-Key` header, so a retried command has
//! one effect. With `Prefer: return=representation` the answer carries the
//! command's events as stored. The saga consumes the events no command of
//! its own causes from its own queue, runs `domain::saga`, records its
//! decisions in `fulfillment-<order>`, sends the commands they ask for and
//! handles the events those answer with (docs/adr/0014).
//!
//! Layout:
//! - [`config`]: [`ServiceName`] and [`ServiceConfig`] (clap flags and env);
//! - [`api`]: the HTTP edge: headers, body fields, answers, error statuses;
//! - [`services`]: the eight services, one module each, and their command tables;
//! - [`repository`]: load → decide → append → retry, batched per stream;
//! - [`aggregates`]: what the repository needs of an aggregate (snapshot schema);
//! - [`snapshots`]: the snapshot tree beside each service;
//! - [`idempotency`]: keys, derived event ids, recent ids per stream;
//! - [`event_log`]: the port to the event store and its implementations;
//! - [`wire`]: domain events to store records and back, through the catalogue;
//! - [`openapi`]: the `/openapi.json` document;
//! - [`saga`]: the fulfillment saga's runtime ([`saga::SagaConfig`], [`saga::run`]);
//! - [`cluster`]: the store and the services (and the saga) in one process, for
//!   the benchmark, tests and `shop dev`;
//! - [`bench`]: the `shop bench commands` benchmark.
#![warn(missing_docs)]

pub mod aggregates;
pub mod api;
pub mod bench;
pub mod cluster;
pub mod config;
pub mod event_log;
pub mod idempotency;
pub mod openapi;
pub mod repository;
pub mod saga;
pub mod services;
pub mod snapshots;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use tracing::Instrument as _;

use anyhow::Context as _;
use axum::extract::{rejection::JsonRejection, Path, State};
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use axum::{Json, Router};
use service_runtime::api_error::ApiError;
use service_runtime::ops::ReadyCheck;
use service_runtime::shutdown::Shutdown;

pub use config::{ServiceConfig, ServiceName};

use crate::api::{CommandContext, Input};
use crate::event_log::EventLog;
use crate::repository::RepositoryOptions;
use crate::services::Backend;
use crate::snapshots::SnapshotStore;

/// The shared state of one service's router.
#[derive(Clone)]
pub struct ServiceState {
    backend: Arc<Backend>,
}

impl ServiceState {
    /// The state of service `name` over `log`, with the config's tuning.
    pub fn new(
        name: ServiceName,
        config: &ServiceConfig,
        log: Arc<dyn EventLog>,
    ) -> anyhow::Result<Self> {
        let snapshots = match &config.data {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                SnapshotStore::open(&dir.join(format!("snapshots-{name}")))?
            }
            None => SnapshotStore::disabled(),
        };
        let options = RepositoryOptions {
            snapshot_every: config.snapshot_every,
            conflict_retries: config.conflict_retries,
            cache_capacity: config.aggregate_cache,
        };
        Ok(Self {
            backend: Arc::new(Backend::new(
                name,
                log,
                snapshots,
                options,
                &config.orders_url,
            )),
        })
    }

    /// Which service this is.
    pub fn name(&self) -> ServiceName {
        self.backend.name
    }
}

/// The routes of one service: `POST /commands/{name}`, `GET /openapi.json`,
/// `/health`, `/ready` (the store answers) and `/metrics`.
pub fn router(state: ServiceState) -> Router {
    let log = Arc::clone(&state.backend.log);
    let ready: ReadyCheck = Arc::new(move || {
        let log = Arc::clone(&log);
        Box::pin(async move { log.ping().await.map_err(|e| e.to_string()) })
    });
    Router::new()
        .route("/commands/{command}", post(command))
        .route("/openapi.json", get(openapi))
        .with_state(state)
        .merge(service_runtime::ops::ops_router(ready))
}

async fn command(
    State(state): State<ServiceState>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    context: CommandContext,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    let service = state.backend.name;
    let return_events = api::wants_events(&headers);
    let started = std::time::Instant::now();
    // One span per command, carrying the ids that tie it to the GraphQL
    // request before it and the events and projections after it.
    let span = tracing::info_span!(
        "command",
        service = %service,
        command = %name,
        correlation_id = ?context.metadata.correlation_id,
        causation_id = ?context.metadata.causation_id,
        traceparent = context.metadata.traceparent.as_deref().unwrap_or(""),
    );
    let result = async {
        match Input::from_json(body) {
            Ok(input) => services::handle(&state.backend, &name, context, input).await,
            Err(error) => Err(error),
        }
    }
    .instrument(span)
    .await;
    let command = services::commands(service)
        .iter()
        .find(|spec| spec.name == name)
        .map_or("unknown", |spec| spec.name);
    let elapsed = started.elapsed().as_secs_f64();
    // Static labels on the hot path: no allocation for an accepted command.
    match &result {
        Ok(_) => metrics::counter!(
            "commands_total",
            "service" => service.as_str(),
            "command" => command,
            "outcome" => "accepted"
        )
        .increment(1),
        Err(error) => metrics::counter!(
            "commands_total",
            "service" => service.as_str(),
            "command" => command,
            "outcome" => error.code.clone()
        )
        .increment(1),
    }
    metrics::histogram!(
        "command_duration_seconds",
        "service" => service.as_str(),
        "command" => command
    )
    .record(elapsed);
    let mut reply = result?;
    if !return_events {
        reply.events = None;
        return Ok(Json(reply).into_response());
    }
    Ok((
        [(api::headers::PREFERENCE_APPLIED, api::RETURN_REPRESENTATION)],
        Json(reply),
    )
        .into_response())
}

async fn openapi(State(state): State<ServiceState>) -> Json<serde_json::Value> {
    let name = state.backend.name;
    Json(openapi::document(name, services::commands(name)))
}

/// A service bound to its address, not yet serving.
pub struct BoundService {
    listener: tokio::net::TcpListener,
    state: ServiceState,
}

impl BoundService {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("cannot read the listening address")
    }

    /// Serves until `shutdown` fires, then drains in-flight requests and
    /// flushes snapshots.
    pub async fn serve(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let backend = Arc::clone(&self.state.backend);
        let name = backend.name;
        let result =
            service_runtime::serve(self.listener, router(self.state), shutdown.waiter()).await;
        backend.flush();
        tracing::info!(service = %name, "command service stopped");
        result
    }
}

/// Binds service `name` as `config` says, over the store at `config.store_url`.
pub async fn bind(name: ServiceName, config: &ServiceConfig) -> anyhow::Result<BoundService> {
    let log: Arc<dyn EventLog> = Arc::new(event_log::StoreLog::with_append_requests(
        &config.store_url,
        usize::from(config.store_append_requests),
    )?);
    bind_with(name, config, log).await
}

/// Binds service `name` over any [`EventLog`] (the store in the same process, say).
pub async fn bind_with(
    name: ServiceName,
    config: &ServiceConfig,
    log: Arc<dyn EventLog>,
) -> anyhow::Result<BoundService> {
    let state = ServiceState::new(name, config, log)?;
    let address = config.listen.unwrap_or_else(|| name.default_listen());
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!(
        service = %name,
        listen = %listener.local_addr().map_or_else(|_| address.to_string(), |a| a.to_string()),
        store = %config.store_url,
        data = ?config.data,
        snapshot_every = config.snapshot_every,
        "command service started"
    );
    Ok(BoundService { listener, state })
}

/// Runs service `name` until `shutdown` fires (`shop command-service NAME`).
pub async fn run(
    name: ServiceName,
    config: ServiceConfig,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    bind(name, &config).await?.serve(shutdown).await
}
