//! The queries. Each takes an optional `consistencyToken` and first waits,
//! bounded, until the views it reads include that write.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_graphql::{
    connection::{Connection, Edge},
    Context, Object, ID,
};

use super::{
    arguments, await_token, gateway, loaders, nullable, request,
    subscription::read_order_at,
    types::{
        authorize_order, checked_count, checked_first, load_products, Customer, Inventory, Order,
        OrderStatus, Product, SalesStats,
    },
};
use crate::{
    backend::Projector,
    error::GatewayError,
    loaders::{OrderKey, ProductKey, StockKey},
    views::{OrderDoc, ProductDoc, SalesStatsDoc},
};

/// The query root.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueryRoot;

fn malformed(projector: Projector, what: &str) -> GatewayError {
    GatewayError::Unavailable {
        service: projector.to_string(),
        message: format!("malformed {what}"),
    }
}

/// `waitMs` when `waitFor` is given without it.
const DEFAULT_WAIT_MS: i32 = 5_000;

/// The order once its status is one of `statuses`, or as it is after `wait`.
///
/// Asks the orders projector for the document once it has applied the
/// order's stream at all (a long poll, answered at once when it has), with
/// the stream's version it read with it; while the status is not wanted,
/// asks again for the next version. Someone else's order is refused at the
/// first answer that holds it, before any further wait.
async fn wait_for_status(
    ctx: &Context<'_>,
    order_id: &str,
    statuses: &[OrderStatus],
    wait: Duration,
) -> Result<Option<Arc<OrderDoc>>, GatewayError> {
    let gateway = gateway(ctx)?;
    let deadline = Instant::now() + wait;
    // First the order as soon as the view has any of it (at once if it has;
    // right after a mutation it often has not, and asking without a wait
    // would only cost a round trip); then, each time, the order once the
    // view has applied the next event of its stream (one long poll that
    // answers with the document).
    let mut min_version: Option<u64> = Some(0);
    let mut pause = Duration::from_millis(2).min(gateway.wait.poll_interval);
    loop {
        let asked = Instant::now();
        let (version, doc) = read_order_at(
            gateway,
            order_id,
            min_version,
            deadline.saturating_duration_since(asked),
        )
        .await?;
        let doc = doc.map(Arc::new);
        if let Some(doc) = &doc {
            authorize_order(ctx, doc)?;
            if OrderStatus::parse(&doc.status).is_some_and(|status| statuses.contains(&status)) {
                return Ok(Some(Arc::clone(doc)));
            }
        }
        if Instant::now() >= deadline {
            return Ok(doc);
        }
        let news = min_version.is_none_or(|wanted| version.is_some_and(|v| v >= wanted));
        if !news {
            // Answered without news: the time is up, or the backend cannot
            // wait, which is then asked again after a pause.
            let rest = pause
                .saturating_sub(asked.elapsed())
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(rest).await;
            pause = (pause * 2).min(gateway.wait.poll_interval);
        }
        min_version = Some(version.map_or(0, |version| version + 1));
    }
}

#[Object]
impl QueryRoot {
    /// One product by SKU, with its stock levels.
    async fn product(
        &self,
        ctx: &Context<'_>,
        sku: String,
        consistency_token: Option<String>,
    ) -> Option<Product> {
        nullable(ctx, async move {
            let sku = arguments::sku("sku", &sku)?;
            await_token(ctx, consistency_token.as_deref(), &[Projector::Catalog]).await?;
            let product = loaders(ctx)?.load_one(ProductKey(sku.clone())).await?;
            product
                .map(Product)
                .map(Some)
                .ok_or_else(|| GatewayError::not_found(format!("product {sku}")))
        })
        .await
    }

    /// The catalog, in SKU order, a page at a time (Relay connection; the cursor is the SKU).
    #[graphql(complexity = "usize::try_from(first).unwrap_or(0).max(1) * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        category: Option<String>,
        consistency_token: Option<String>,
    ) -> Option<Connection<String, Product>> {
        nullable(ctx, async move {
            let first = checked_first(first, 100)?;
            await_token(ctx, consistency_token.as_deref(), &[Projector::Catalog]).await?;
            let page = gateway(ctx)?
                .read_models
                .products(first, after.as_deref(), category.as_deref())
                .await?;
            let mut connection = Connection::new(after.is_some(), page.has_next);
            for item in page.items {
                let doc: ProductDoc = serde_json::from_value(item)
                    .map_err(|_| malformed(Projector::Catalog, "product"))?;
                connection
                    .edges
                    .push(Edge::new(doc.sku.clone(), Product(doc.into())));
            }
            Ok(Some(connection))
        })
        .await
    }

    /// Products matching `query`, most relevant first.
    #[graphql(complexity = "usize::try_from(first).unwrap_or(0).max(1) * child_complexity")]
    async fn search_products(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = 10)] first: i32,
        consistency_token: Option<String>,
    ) -> Option<Vec<Product>> {
        nullable(ctx, async move {
            let first = checked_first(first, 100)?;
            if query.len() > 200 {
                return Err(GatewayError::invalid(
                    "query",
                    "a search has at most 200 characters",
                ));
            }
            await_token(
                ctx,
                consistency_token.as_deref(),
                &[Projector::Search, Projector::Catalog],
            )
            .await?;
            let hits = gateway(ctx)?.read_models.search(&query, first).await?;
            load_products(ctx, hits.into_iter().map(|hit| hit.sku))
                .await
                .map(Some)
        })
        .await
    }

    /// One order: the customer's own, or any for the admin.
    ///
    /// With `waitFor`, the answer waits (up to `waitMs`, default 5,000, at
    /// most 30,000) until the order's status is one of those, and is the
    /// order as it is then, whatever its status, once the time is up: one
    /// request instead of polling, answered as soon as the orders view
    /// applies the change.
    async fn order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consistency_token: Option<String>,
        wait_for: Option<Vec<OrderStatus>>,
        wait_ms: Option<i32>,
    ) -> Option<Order> {
        nullable(ctx, async move {
            request(ctx)?.identity.require_actor()?;
            let order_id = arguments::order_id("id", &id)?;
            let wait = arguments::wait_ms("waitMs", wait_ms.unwrap_or(DEFAULT_WAIT_MS))?;
            await_token(ctx, consistency_token.as_deref(), &[Projector::Orders]).await?;
            let doc = match wait_for.filter(|statuses| !statuses.is_empty()) {
                None => {
                    loaders(ctx)?
                        .load_one(OrderKey(order_id.to_string()))
                        .await?
                }
                Some(statuses) => {
                    wait_for_status(ctx, &order_id.to_string(), &statuses, wait).await?
                }
            }
            .ok_or_else(|| GatewayError::not_found(format!("order {order_id}")))?;
            authorize_order(ctx, &doc)?;
            Order::from_doc(doc).map(Some)
        })
        .await
    }

    /// The signed-in customer, with their orders, cart, wishlist,
    /// recommendations and notifications.
    async fn me(&self, ctx: &Context<'_>, consistency_token: Option<String>) -> Option<Customer> {
        nullable(ctx, async move {
            let id = request(ctx)?.identity.require_customer()?;
            await_token(
                ctx,
                consistency_token.as_deref(),
                &[
                    Projector::Customers,
                    Projector::Orders,
                    Projector::Carts,
                    Projector::Wishlists,
                    Projector::Notifications,
                    Projector::Recommendations,
                ],
            )
            .await?;
            Ok(Some(Customer { id }))
        })
        .await
    }

    /// Stock of one SKU.
    async fn inventory(
        &self,
        ctx: &Context<'_>,
        sku: String,
        consistency_token: Option<String>,
    ) -> Option<Inventory> {
        nullable(ctx, async move {
            let sku = arguments::sku("sku", &sku)?;
            await_token(ctx, consistency_token.as_deref(), &[Projector::Inventory]).await?;
            let stock = loaders(ctx)?.load_one(StockKey(sku.clone())).await?;
            stock
                .map(Inventory)
                .map(Some)
                .ok_or_else(|| GatewayError::not_found(format!("stock of {sku}")))
        })
        .await
    }

    /// Products often bought together with `sku`, most often first.
    #[graphql(complexity = "usize::try_from(first).unwrap_or(0).max(1) * child_complexity")]
    async fn recommendations(
        &self,
        ctx: &Context<'_>,
        sku: String,
        #[graphql(default = 5)] first: i32,
        consistency_token: Option<String>,
    ) -> Option<Vec<Product>> {
        nullable(ctx, async move {
            let sku = arguments::sku("sku", &sku)?;
            let first = checked_first(first, 50)?;
            await_token(
                ctx,
                consistency_token.as_deref(),
                &[Projector::Recommendations],
            )
            .await?;
            let items = gateway(ctx)?
                .read_models
                .recommendations(&sku, first)
                .await?;
            load_products(ctx, items.into_iter().map(|item| item.sku))
                .await
                .map(Some)
        })
        .await
    }

    /// Sales of confirmed orders (admin only).
    async fn sales_stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] top: i32,
        consistency_token: Option<String>,
    ) -> Option<SalesStats> {
        nullable(ctx, async move {
            request(ctx)?.identity.require_admin()?;
            let top = checked_count("top", top, 100)?;
            await_token(ctx, consistency_token.as_deref(), &[Projector::Sales]).await?;
            let raw = gateway(ctx)?.read_models.sales_stats(top).await?;
            let stats: SalesStatsDoc = serde_json::from_value(raw)
                .map_err(|_| malformed(Projector::Sales, "sales stats"))?;
            Ok(Some(SalesStats {
                orders: stats.orders,
                revenue_cents: stats.revenue_cents,
                top: stats.top_products,
            }))
        })
        .await
    }
}
