//! `shop bench graphql`: `order(id)` and `product(sku)` queries per second and
//! latency percentiles over N concurrent connections, beside a plain axum
//! endpoint returning the same record, in the same run.
//!
//! Both servers read the same in-process fake projector backend (an in-memory
//! [`MemoryReadModels`]), so the difference is what the gateway adds: HTTP
//! body parsing, JWT verification, GraphQL parsing, validation and limits,
//! the DataLoader, the guard (timeout, breaker), and response serialisation.
//! The gateway runs with its production settings except the rate limit,
//! which is off (the load generator is one client).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};
use service_runtime::shutdown::Shutdown;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::{
    auth::{AuthSettings, Authenticator, PasswordHashing},
    backend::{
        guard::{GuardSettings, GuardedReadModels},
        memory::{MemoryCommands, MemoryReadModels},
        Actor, ReadModels, View,
    },
    catalog_cache::CatalogCache,
    consistency::{AppliedVersions, WaitSettings},
    limits::QueryLimits,
    rate_limit::RateLimiter,
    schema::Gateway,
    views::{OrderDoc, ProductDoc},
};

/// How the benchmark runs.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Concurrent connections (each a client with its own keep-alive connection).
    pub connections: usize,
    /// How long each side of each case is measured in all.
    pub duration: Duration,
    /// In how many turns the two sides of a case alternate.
    pub rounds: usize,
    /// Load before each measurement, not counted.
    pub warmup: Duration,
    /// How many orders and products the fake backend holds.
    pub records: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            connections: 64,
            duration: Duration::from_secs(5),
            rounds: 5,
            warmup: Duration::from_secs(1),
            records: 1000,
        }
    }
}

const ORDER_QUERY: &str = "query Order($id: ID!) { order(id: $id) { id customerId status \
     cancellationReason lines { sku quantity unitPriceCents } subtotalCents totalCents \
     shippingCostCents timeline { status at } createdAt } }";

const PRODUCT_QUERY: &str = "query Product($sku: String!) { product(sku: $sku) { sku name \
     description priceCents category discontinued stock { available reserved } } }";

struct Fixture {
    read_models: MemoryReadModels,
    order_ids: Vec<String>,
    skus: Vec<String>,
    customer: Uuid,
}

fn fixture(records: usize) -> Fixture {
    let read_models = MemoryReadModels::new();
    let customer = Uuid::new_v4();
    let mut skus = Vec::with_capacity(records);
    let mut order_ids = Vec::with_capacity(records);
    for index in 0..records.max(1) {
        let sku = format!("SKU-{index:05}");
        read_models.put(
            View::Products,
            sku.clone(),
            json!({
                "sku": sku, "name": format!("Product {index}"),
                "description": "A thing that is benchmarked, with a description of some length.",
                "price_cents": 1000 + index, "category": "bench", "discontinued": false,
                "stock": {"available": 100, "reserved": 3},
            }),
        );
        let order_id = Uuid::new_v4().to_string();
        read_models.put(
            View::Orders,
            order_id.clone(),
            json!({
                "order_id": order_id, "customer_id": customer, "status": "SHIPPED",
                "cancellation_reason": null,
                "lines": [
                    {"sku": sku, "quantity": 2, "unit_price_cents": 1000 + index},
                    {"sku": "SKU-00000", "quantity": 1, "unit_price_cents": 1000},
                ],
                "subtotal_cents": 3000 + 2 * index, "shipping_cost_cents": 499,
                "total_cents": 3499 + 2 * index,
                "timeline": [
                    {"status": "PLACED", "at": "2024-01-01T10:00:00Z"},
                    {"status": "CONFIRMED", "at": "2024-01-01T10:00:01Z"},
                    {"status": "SHIPPED", "at": "2024-01-02T09:00:00Z"},
                ],
                "created_at": "2024-01-01T10:00:00Z",
            }),
        );
        skus.push(sku);
        order_ids.push(order_id);
    }
    Fixture {
        read_models,
        order_ids,
        skus,
        customer,
    }
}

/// The plain endpoint: the same record, as the GraphQL query shapes it, without GraphQL.
async fn plain_order(
    State(read_models): State<Arc<dyn ReadModels>>,
    Path(id): Path<String>,
) -> Response {
    let Ok(mut found) = read_models
        .batch(View::Orders, std::slice::from_ref(&id))
        .await
    else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let Some(Ok(doc)) = found
        .remove(&id)
        .flatten()
        .map(serde_json::from_value::<OrderDoc>)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    Json(json!({"data": {"order": {
        "id": doc.order_id, "customerId": doc.customer_id, "status": doc.status,
        "cancellationReason": doc.cancellation_reason,
        "lines": doc.lines.iter().map(|line| json!({
            "sku": line.sku, "quantity": line.quantity, "unitPriceCents": line.unit_price_cents,
        })).collect::<Vec<_>>(),
        "subtotalCents": doc.subtotal_cents, "totalCents": doc.total_cents,
        "shippingCostCents": doc.shipping_cost_cents,
        "timeline": doc.timeline.iter().map(|entry| json!({"status": entry.status, "at": entry.at}))
            .collect::<Vec<_>>(),
        "createdAt": doc.created_at,
    }}}))
    .into_response()
}

async fn plain_product(
    State(read_models): State<Arc<dyn ReadModels>>,
    Path(sku): Path<String>,
) -> Response {
    let Ok(mut found) = read_models
        .batch(View::Products, std::slice::from_ref(&sku))
        .await
    else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let Some(Ok(doc)) = found
        .remove(&sku)
        .flatten()
        .map(serde_json::from_value::<ProductDoc>)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    Json(json!({"data": {"product": {
        "sku": doc.sku, "name": doc.name, "description": doc.description,
        "priceCents": doc.price_cents, "category": doc.category, "discontinued": doc.discontinued,
        "stock": {"available": doc.stock.available, "reserved": doc.stock.reserved},
    }}}))
    .into_response()
}

async fn spawn(router: Router, shutdown: &Shutdown) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("failed to bind a benchmark port")?;
    let address = listener.local_addr()?;
    let waiter = shutdown.waiter();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(waiter)
            .await
        {
            tracing::error!(%error, "benchmark server failed");
        }
    });
    Ok(address)
}

#[derive(Clone, Copy)]
enum Target {
    GraphqlOrder,
    GraphqlProduct,
    PlainOrder,
    PlainProduct,
}

struct Load {
    client: reqwest::Client,
    url: String,
    bearer: String,
    keys: Arc<Vec<String>>,
    target: Target,
}

impl Load {
    async fn one(&self, index: usize) -> anyhow::Result<()> {
        let key = &self.keys[index % self.keys.len()];
        let response = match self.target {
            Target::GraphqlOrder | Target::GraphqlProduct => {
                let (query, variables) = match self.target {
                    Target::GraphqlOrder => (ORDER_QUERY, json!({"id": key})),
                    _ => (PRODUCT_QUERY, json!({"sku": key})),
                };
                self.client
                    .post(format!("{}/graphql", self.url))
                    .header("authorization", &self.bearer)
                    .json(&json!({"query": query, "variables": variables}))
                    .send()
                    .await?
            }
            Target::PlainOrder => {
                self.client
                    .get(format!("{}/orders/{key}", self.url))
                    .send()
                    .await?
            }
            Target::PlainProduct => {
                self.client
                    .get(format!("{}/products/{key}", self.url))
                    .send()
                    .await?
            }
        };
        if !response.status().is_success() {
            bail!("the server answered {}", response.status());
        }
        let body: Value = response.json().await?;
        if body.get("errors").is_some() {
            bail!("the query answered errors: {body}");
        }
        Ok(())
    }
}

/// Runs `target` with `connections` concurrent clients for `duration`:
/// (requests per second, every latency in microseconds).
async fn measure(
    load: impl Fn() -> Load,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<(f64, Vec<u64>)> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for connection in 0..connections {
        let load = load();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut index = connection * 7919;
            while Instant::now() < deadline {
                let sent = Instant::now();
                load.one(index).await?;
                latencies.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                index += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("a load task panicked")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = latencies.len() as f64 / elapsed;
    Ok((rate, latencies))
}

fn percentile_ms(sorted_micros: &[u64], percentile: f64) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let index = ((sorted_micros.len() - 1) as f64 * percentile).round() as usize;
    #[allow(clippy::cast_precision_loss)]
    let micros = sorted_micros[index.min(sorted_micros.len() - 1)] as f64;
    (micros / 1000.0 * 1000.0).round() / 1000.0
}

fn summary(rate: f64, latencies: &[u64]) -> Value {
    json!({
        "requests": latencies.len(),
        "qps": rate.round(),
        "p50_ms": percentile_ms(latencies, 0.50),
        "p99_ms": percentile_ms(latencies, 0.99),
    })
}

/// Runs the benchmark; the result is one JSON object (the lead prints it as the last line).
pub async fn run(options: BenchOptions) -> anyhow::Result<Value> {
    if options.connections == 0 {
        bail!("the benchmark needs at least one connection");
    }
    let fixture = fixture(options.records);
    let shutdown = Shutdown::new();
    let backend: Arc<dyn ReadModels> = Arc::new(fixture.read_models.clone());
    let guarded = GuardedReadModels::new(
        Arc::clone(&backend),
        GuardSettings {
            failure_threshold: 5,
            open_for: Duration::from_secs(5),
            call_timeout: Duration::from_secs(3),
        },
    );
    let auth = Authenticator::temporary(AuthSettings {
        admin_email: "admin@bench.local".to_owned(),
        admin_password: "bench-admin-password".to_owned(),
        jwt_secret: b"bench secret".to_vec(),
        token_ttl: Duration::from_secs(3600),
        hashing: PasswordHashing::Fast,
    })
    .context("failed to open the benchmark's credentials")?;
    let bearer = format!(
        "Bearer {}",
        auth.issue_token(Actor::Customer(fixture.customer))
            .map_err(|error| anyhow::anyhow!("cannot issue a token: {error}"))?
    );
    let gateway = Arc::new(Gateway {
        read_models: Arc::new(guarded),
        commands: Arc::new(MemoryCommands::new()),
        auth: Arc::new(auth),
        catalog_cache: Arc::new(CatalogCache::new(Duration::from_millis(1000), 10_000)),
        applied: Arc::new(AppliedVersions::new()),
        wait: WaitSettings {
            timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(50),
        },
        shutdown: shutdown.clone(),
    });
    let state = crate::state_for(
        gateway,
        QueryLimits::default(),
        RateLimiter::new(0, 1),
        64 * 1024,
    );
    let graphql = spawn(crate::router(state), &shutdown).await?;
    let plain_router = Router::new()
        .route("/orders/{id}", get(plain_order))
        .route("/products/{sku}", get(plain_product))
        .with_state(Arc::clone(&backend));
    let plain = spawn(plain_router, &shutdown).await?;

    let order_ids = Arc::new(fixture.order_ids);
    let skus = Arc::new(fixture.skus);
    let cases = [
        (
            "order",
            Target::GraphqlOrder,
            Target::PlainOrder,
            &order_ids,
        ),
        (
            "product",
            Target::GraphqlProduct,
            Target::PlainProduct,
            &skus,
        ),
    ];
    let mut results = serde_json::Map::new();
    let mut worst_ratio = f64::INFINITY;
    let rounds = options.rounds.max(1);
    let slice = options.duration / u32::try_from(rounds).unwrap_or(1);
    for (name, graphql_target, plain_target, keys) in cases {
        let sides = [
            ("plain", plain_target, plain),
            ("graphql", graphql_target, graphql),
        ];
        let loads = |target: Target, address: SocketAddr| {
            let bearer = bearer.clone();
            let keys = Arc::clone(keys);
            move || Load {
                client: reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap_or_default(),
                url: format!("http://{address}"),
                bearer: bearer.clone(),
                keys: Arc::clone(&keys),
                target,
            }
        };
        for (side, target, address) in sides {
            let make = loads(target, address);
            make()
                .one(0)
                .await
                .with_context(|| format!("{name} via {side} failed"))?;
            measure(make, options.connections, options.warmup).await?;
        }
        // The sides take turns, so a load spike on a shared machine hits both alike.
        let mut measured: [(f64, Vec<u64>); 2] = [(0.0, Vec::new()), (0.0, Vec::new())];
        for _ in 0..rounds {
            for (slot, (_, target, address)) in sides.into_iter().enumerate() {
                let (rate, latencies) =
                    measure(loads(target, address), options.connections, slice).await?;
                measured[slot].0 += rate / rounds as f64;
                measured[slot].1.extend(latencies);
            }
        }
        let mut report = serde_json::Map::new();
        for (slot, (side, _, _)) in sides.into_iter().enumerate() {
            let (rate, latencies) = &mut measured[slot];
            latencies.sort_unstable();
            tracing::info!(case = name, side, qps = rate.round(), "measured");
            report.insert(side.to_owned(), summary(*rate, latencies));
        }
        let ratio = if measured[0].0 > 0.0 {
            measured[1].0 / measured[0].0
        } else {
            0.0
        };
        worst_ratio = worst_ratio.min(ratio);
        report.insert("ratio".to_owned(), json!((ratio * 1000.0).round() / 1000.0));
        results.insert(name.to_owned(), Value::Object(report));
    }
    shutdown.trigger();
    Ok(json!({
        "bench": "graphql",
        "connections": options.connections,
        "duration_secs": options.duration.as_secs_f64(),
        "rounds": rounds,
        "records": options.records,
        "cases": results,
        "target_ratio": 0.5,
        "meets_target": worst_ratio >= 0.5,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_sorted_latencies() {
        let latencies: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&latencies, 0.5), 51.0);
        assert_eq!(percentile_ms(&latencies, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
    }
}
