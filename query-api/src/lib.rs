//! The GraphQL gateway (`shop query-api`): one GraphQL schema over the whole
//! shop. Queries are answered from the projectors' read APIs, aggregated
//! through DataLoaders; mutations are forwarded to the command services;
//! `orderUpdates` follows the orders projector. The only crate that knows
//! GraphQL.
//!
//! Layout:
//! - [`config`]: [`QueryApiConfig`], the flags and `SHOP_…` variables;
//! - [`backend`]: the ports (`CommandSender`, `ReadModels`), their HTTP
//!   clients, in-memory fakes, and the timeout/circuit-breaker guard;
//! - [`views`]: the projectors' documents as the gateway reads them;
//! - [`loaders`]: DataLoaders batching view reads per request;
//! - [`catalog_cache`]: hot product reads, never older than a consistency token;
//! - [`consistency`]: consistency tokens and the bounded read-your-writes wait;
//! - [`auth`]: credentials (sled, argon2), bearer tokens (JWT), roles;
//! - [`schema`]: the GraphQL types, queries, mutations and the subscription,
//!   and [`ShopSchema`], the schema every transport executes through;
//! - [`limits`]: depth and alias limits, parsed-document reuse (complexity is
//!   async-graphql's);
//! - [`rate_limit`]: the per-client token buckets;
//! - [`graphiql`]: the GraphiQL page with example operations;
//! - [`server`]: the axum routes ([`router`]);
//! - [`bench`](mod@bench): `shop bench graphql`.
//!
//! Entry points: [`run`] (binds `--listen`), [`serve`] (on a given listener),
//! [`build_state`], [`router`], [`build_schema`].
#![warn(missing_docs)]

pub mod auth;
pub mod backend;
pub mod bench;
pub mod catalog_cache;
pub mod config;
pub mod consistency;
pub mod error;
pub mod graphiql;
pub mod limits;
pub mod loaders;
pub mod rate_limit;
pub mod schema;
pub mod server;
pub mod views;

use std::sync::Arc;

use anyhow::Context as _;
use rand::RngCore;
use service_runtime::shutdown::Shutdown;
use tokio::net::TcpListener;

pub use config::QueryApiConfig;
pub use error::GatewayError;
pub use schema::{build_schema, Caller, Gateway, ShopSchema};
pub use server::{router, AppState};

use crate::{
    auth::{AuthSettings, Authenticator, PasswordHashing},
    backend::{
        guard::{GuardSettings, GuardedReadModels},
        http::{HttpCommands, HttpReadModels},
    },
    catalog_cache::CatalogCache,
    consistency::{AppliedVersions, WaitSettings},
    rate_limit::RateLimiter,
};

/// Runs the gateway on `config.listen` until `shutdown` fires.
pub async fn run(config: QueryApiConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    serve(listener, config, shutdown).await
}

/// Runs the gateway on `listener` (tests bind port 0) until `shutdown` fires,
/// then lets in-flight requests finish and flushes the credentials.
pub async fn serve(
    listener: TcpListener,
    config: QueryApiConfig,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let state = build_state(&config, shutdown.clone())?;
    let address = listener
        .local_addr()
        .context("failed to read the listening address")?;
    tracing::info!(
        %address,
        data = %config.data.display(),
        call_timeout_ms = config.call_timeout_ms,
        consistency_timeout_ms = config.consistency_timeout_ms,
        rate_limit = config.rate_limit_per_second,
        commands = ?config.commands,
        projectors = ?config.projectors,
        "query API listening: GraphiQL at http://{address}/"
    );
    let gateway = Arc::clone(&state.gateway);
    service_runtime::serve(listener, router(state), shutdown.waiter()).await?;
    gateway
        .auth
        .flush()
        .await
        .map_err(|error| anyhow::anyhow!("failed to flush the credentials: {error}"))?;
    tracing::info!("query API stopped");
    Ok(())
}

/// Builds the gateway from its configuration: HTTP clients of every backend
/// behind timeouts and circuit breakers, the credentials database, the cache.
/// Says at start which development defaults (admin account, JWT secret) are in use.
pub fn build_state(config: &QueryApiConfig, shutdown: Shutdown) -> anyhow::Result<AppState> {
    let admin_email = config.admin_email.clone().unwrap_or_else(|| {
        tracing::warn!(
            email = config::DEV_ADMIN_EMAIL,
            "SHOP_ADMIN_EMAIL is not set: using the development admin e-mail"
        );
        config::DEV_ADMIN_EMAIL.to_owned()
    });
    let admin_password = config.admin_password.clone().unwrap_or_else(|| {
        tracing::warn!(
            password = config::DEV_ADMIN_PASSWORD,
            "SHOP_ADMIN_PASSWORD is not set: using the development admin password"
        );
        config::DEV_ADMIN_PASSWORD.to_owned()
    });
    let jwt_secret = match &config.jwt_secret {
        Some(secret) if !secret.is_empty() => secret.as_bytes().to_vec(),
        _ => {
            tracing::warn!(
                "SHOP_JWT_SECRET is not set: generated a random development secret; \
                 bearer tokens will not survive a restart"
            );
            let mut secret = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut secret);
            secret
        }
    };
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("failed to create {}", config.data.display()))?;
    let auth = Authenticator::open(
        &config.data,
        AuthSettings {
            admin_email,
            admin_password,
            jwt_secret,
            token_ttl: std::time::Duration::from_secs(config.token_ttl_secs),
            hashing: PasswordHashing::Standard,
        },
    )
    .context("failed to open the credentials database")?;
    let read_models = HttpReadModels::new(config.projectors.clone(), config.call_timeout())
        .context("failed to build the projectors' HTTP client")?;
    let commands = HttpCommands::new(config.commands.clone(), config.call_timeout())
        .context("failed to build the command services' HTTP client")?;
    let guarded = GuardedReadModels::new(
        Arc::new(read_models),
        GuardSettings {
            failure_threshold: config.breaker_failures,
            open_for: std::time::Duration::from_millis(config.breaker_open_ms),
            call_timeout: config.call_timeout(),
        },
    );
    let gateway = Arc::new(Gateway {
        read_models: Arc::new(guarded),
        commands: Arc::new(commands),
        auth: Arc::new(auth),
        catalog_cache: Arc::new(CatalogCache::new(
            std::time::Duration::from_millis(config.catalog_cache_ms),
            config.catalog_cache_size,
        )),
        applied: Arc::new(AppliedVersions::new()),
        wait: WaitSettings {
            timeout: config.consistency_timeout(),
            poll_interval: config.poll_interval(),
        },
        shutdown,
    });
    Ok(state_for(
        gateway,
        config.limits(),
        RateLimiter::new(config.rate_limit_per_second, config.rate_limit_burst),
        config.max_body_bytes,
    ))
}

/// The routes' state around a ready gateway (tests build the gateway from fakes).
pub fn state_for(
    gateway: Arc<Gateway>,
    limits: limits::QueryLimits,
    rate_limiter: RateLimiter,
    max_body_bytes: usize,
) -> AppState {
    let schema = build_schema(Arc::clone(&gateway), limits);
    let auth = Arc::clone(&gateway.auth);
    let ready: service_runtime::ops::ReadyCheck = Arc::new(move || {
        let auth = Arc::clone(&auth);
        Box::pin(async move { auth.check() })
    });
    AppState {
        schema,
        gateway,
        rate_limiter: Arc::new(rate_limiter),
        max_body_bytes,
        ready,
    }
}
