//! The object types of the schema, mapped from the projectors' documents at
//! the edge (the documents are never exposed as they are).

use std::{collections::HashMap, sync::Arc};

use async_graphql::{ComplexObject, Context, Enum, Object, SimpleObject, ID};
use uuid::Uuid;

use super::{loaders, nullable, request};
use crate::{
    backend::Projector,
    error::GatewayError,
    loaders::{CartKey, CustomerKey, NotificationsKey, OrderKey, ProductKey, WishlistKey},
    views::{
        CartLineDoc, CustomerDoc, NotificationDoc, OrderDoc, OrderLineDoc, ProductDoc, StockDoc,
        TimelineDoc, TopProductDoc,
    },
};

/// Where an order is in its lifecycle.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed, not yet confirmed.
    Placed,
    /// Stock reserved and payment authorised.
    Confirmed,
    /// Handed to the carrier.
    Shipped,
    /// Delivered to the customer.
    Delivered,
    /// Cancelled; see `cancellationReason`.
    Cancelled,
}

impl OrderStatus {
    /// Reads a projector's status name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.to_ascii_uppercase().as_str() {
            "PLACED" => Self::Placed,
            "CONFIRMED" => Self::Confirmed,
            "SHIPPED" => Self::Shipped,
            "DELIVERED" => Self::Delivered,
            "CANCELLED" => Self::Cancelled,
            _ => return None,
        })
    }

    /// Whether no change can follow.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Cancelled)
    }
}

/// Why an order was cancelled.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancellationReason {
    /// A line could not be reserved.
    OutOfStock,
    /// The payment was declined.
    PaymentDeclined,
    /// The customer (or the admin) cancelled it.
    CustomerRequest,
}

impl CancellationReason {
    /// Reads a projector's reason name.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.to_ascii_uppercase().as_str() {
            "OUT_OF_STOCK" => Self::OutOfStock,
            "PAYMENT_DECLINED" => Self::PaymentDeclined,
            "CUSTOMER_REQUEST" => Self::CustomerRequest,
            _ => return None,
        })
    }
}

fn malformed(projector: Projector, what: &str) -> GatewayError {
    GatewayError::Unavailable {
        service: projector.to_string(),
        message: format!("malformed {what}"),
    }
}

/// What every mutation answers: the id it acted on and the consistency token
/// to pass to queries to read this write.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct CommandResult {
    /// The aggregate's id (the order id for `checkout` and `placeOrder`).
    pub id: ID,
    /// `"<stream>@<version>"`; give it as `consistencyToken` to read your write.
    pub token: String,
}

/// A product of the catalog.
#[derive(Clone, Debug)]
pub struct Product(pub Arc<ProductDoc>);

#[Object]
impl Product {
    /// The stock-keeping unit, its id.
    async fn sku(&self) -> &str {
        &self.0.sku
    }

    /// Its name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Its description.
    async fn description(&self) -> &str {
        &self.0.description
    }

    /// Current price in cents.
    async fn price_cents(&self) -> i64 {
        self.0.price_cents
    }

    /// Its category.
    async fn category(&self) -> &str {
        &self.0.category
    }

    /// Whether it can no longer be ordered.
    async fn discontinued(&self) -> bool {
        self.0.discontinued
    }

    /// Its stock levels.
    async fn stock(&self) -> StockLevel {
        StockLevel {
            available: self.0.stock.available,
            reserved: self.0.stock.reserved,
        }
    }
}

/// Stock levels of a product.
#[derive(SimpleObject, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockLevel {
    /// Units that can still be ordered.
    pub available: i64,
    /// Units reserved by orders not yet shipped.
    pub reserved: i64,
}

/// Stock of one SKU, from the inventory view.
#[derive(Clone, Debug)]
pub struct Inventory(pub Arc<StockDoc>);

#[Object]
impl Inventory {
    /// The SKU.
    async fn sku(&self) -> &str {
        &self.0.sku
    }

    /// Units that can still be ordered.
    async fn available(&self) -> i64 {
        self.0.available
    }

    /// Units reserved by orders not yet shipped.
    async fn reserved(&self) -> i64 {
        self.0.reserved
    }

    /// Units shipped.
    async fn shipped(&self) -> i64 {
        self.0.shipped
    }
}

/// Loads products by SKU in one batch, in the order given, skipping unknown ones.
pub(crate) async fn load_products(
    ctx: &Context<'_>,
    skus: impl IntoIterator<Item = String>,
) -> Result<Vec<Product>, GatewayError> {
    let skus: Vec<String> = skus.into_iter().collect();
    let mut found = loaders(ctx)?
        .load_many(skus.iter().cloned().map(ProductKey))
        .await?;
    Ok(skus
        .into_iter()
        .filter_map(|sku| found.remove(&ProductKey(sku)).map(Product))
        .collect())
}

/// An order with its lines and status timeline.
#[derive(Clone, Debug)]
pub struct Order {
    doc: Arc<OrderDoc>,
    status: OrderStatus,
}

impl Order {
    /// Reads an order document; `UNAVAILABLE` if its status is unknown.
    pub fn from_doc(doc: Arc<OrderDoc>) -> Result<Self, GatewayError> {
        let status = OrderStatus::parse(&doc.status)
            .ok_or_else(|| malformed(Projector::Orders, "order status"))?;
        Ok(Self { doc, status })
    }

    /// The order as it was when it entered the `index`-th status of its timeline.
    pub fn at_timeline_entry(doc: &OrderDoc, index: usize) -> Result<Self, GatewayError> {
        let entry = doc
            .timeline
            .get(index)
            .ok_or_else(|| malformed(Projector::Orders, "order timeline"))?;
        let status = OrderStatus::parse(&entry.status)
            .ok_or_else(|| malformed(Projector::Orders, "order status"))?;
        let mut snapshot = doc.clone();
        snapshot.status = entry.status.clone();
        snapshot.timeline.truncate(index + 1);
        if status != OrderStatus::Cancelled {
            snapshot.cancellation_reason = None;
        }
        Ok(Self {
            doc: Arc::new(snapshot),
            status,
        })
    }

    /// The document behind it.
    pub fn doc(&self) -> &OrderDoc {
        &self.doc
    }

    /// Its status.
    pub fn current_status(&self) -> OrderStatus {
        self.status
    }
}

#[Object]
impl Order {
    /// The order id.
    async fn id(&self) -> ID {
        ID(self.doc.order_id.clone())
    }

    /// Who placed it.
    async fn customer_id(&self) -> ID {
        ID(self.doc.customer_id.clone())
    }

    /// Where it is in its lifecycle.
    async fn status(&self) -> OrderStatus {
        self.status
    }

    /// Why it was cancelled, when it was.
    async fn cancellation_reason(&self, ctx: &Context<'_>) -> Option<CancellationReason> {
        nullable(ctx, async move {
            self.doc
                .cancellation_reason
                .as_deref()
                .map(|raw| {
                    CancellationReason::parse(raw)
                        .ok_or_else(|| malformed(Projector::Orders, "cancellation reason"))
                })
                .transpose()
        })
        .await
    }

    /// The lines ordered.
    async fn lines(&self) -> Vec<OrderLine> {
        self.doc.lines.iter().cloned().map(OrderLine).collect()
    }

    /// Sum of the lines, in cents.
    async fn subtotal_cents(&self) -> i64 {
        self.doc.subtotal_cents
    }

    /// Shipping cost, in cents.
    async fn shipping_cost_cents(&self) -> i64 {
        self.doc.shipping_cost_cents
    }

    /// What the customer pays, in cents.
    async fn total_cents(&self) -> i64 {
        self.doc.total_cents
    }

    /// Every status it went through, oldest first.
    async fn timeline(&self) -> Vec<TimelineEntry> {
        self.doc
            .timeline
            .iter()
            .cloned()
            .map(TimelineEntry)
            .collect()
    }

    /// When it was placed (RFC 3339).
    async fn created_at(&self) -> &str {
        &self.doc.created_at
    }
}

/// One line of an order.
#[derive(Clone, Debug)]
pub struct OrderLine(OrderLineDoc);

#[Object]
impl OrderLine {
    /// The product's SKU.
    async fn sku(&self) -> &str {
        &self.0.sku
    }

    /// How many.
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }

    /// Price of one when ordered, in cents.
    async fn unit_price_cents(&self) -> i64 {
        self.0.unit_price_cents
    }

    /// The product as the catalog has it now.
    async fn product(&self, ctx: &Context<'_>) -> Option<Product> {
        nullable(ctx, async move {
            Ok(loaders(ctx)?
                .load_one(ProductKey(self.0.sku.clone()))
                .await?
                .map(Product))
        })
        .await
    }
}

/// One status change of an order.
#[derive(Clone, Debug)]
pub struct TimelineEntry(TimelineDoc);

#[Object]
impl TimelineEntry {
    /// The status entered.
    async fn status(&self) -> Result<OrderStatus, GatewayError> {
        OrderStatus::parse(&self.0.status)
            .ok_or_else(|| malformed(Projector::Orders, "order status"))
    }

    /// When (RFC 3339).
    async fn at(&self) -> &str {
        &self.0.at
    }
}

/// The signed-in customer, with everything the views know about them.
#[derive(Clone, Copy, Debug)]
pub struct Customer {
    /// The customer id.
    pub id: Uuid,
}

impl Customer {
    async fn profile(&self, ctx: &Context<'_>) -> Result<Arc<CustomerDoc>, GatewayError> {
        loaders(ctx)?
            .load_one(CustomerKey(self.id.to_string()))
            .await?
            .ok_or_else(|| GatewayError::not_found(format!("customer {}", self.id)))
    }

    async fn cart_doc(&self, ctx: &Context<'_>) -> Result<Vec<CartLineDoc>, GatewayError> {
        Ok(loaders(ctx)?
            .load_one(CartKey(self.id.to_string()))
            .await?
            .map(|cart| cart.lines.clone())
            .unwrap_or_default())
    }

    async fn wishlist_skus(&self, ctx: &Context<'_>) -> Result<Vec<String>, GatewayError> {
        Ok(loaders(ctx)?
            .load_one(WishlistKey(self.id.to_string()))
            .await?
            .map(|wishlist| wishlist.skus.clone())
            .unwrap_or_default())
    }
}

/// Checks a page-size argument (`first`, `top`): 0 to `max`.
pub(crate) fn checked_count(field: &str, value: i32, max: i32) -> Result<usize, GatewayError> {
    if !(0..=max).contains(&value) {
        return Err(GatewayError::invalid(
            field,
            format!("{field} must be between 0 and {max}"),
        ));
    }
    Ok(usize::try_from(value).unwrap_or_default())
}

/// Checks a `first` argument.
pub(crate) fn checked_first(first: i32, max: i32) -> Result<usize, GatewayError> {
    checked_count("first", first, max)
}

#[Object]
impl Customer {
    /// The customer id.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// Their e-mail.
    async fn email(&self, ctx: &Context<'_>) -> Option<String> {
        nullable(ctx, async move {
            Ok(Some(self.profile(ctx).await?.email.clone()))
        })
        .await
    }

    /// Their name.
    async fn name(&self, ctx: &Context<'_>) -> Option<String> {
        nullable(ctx, async move {
            Ok(Some(self.profile(ctx).await?.name.clone()))
        })
        .await
    }

    /// When they registered (RFC 3339).
    async fn registered_at(&self, ctx: &Context<'_>) -> Option<String> {
        nullable(ctx, async move {
            Ok(Some(self.profile(ctx).await?.registered_at.clone()))
        })
        .await
    }

    /// How many orders they placed.
    async fn orders_count(&self, ctx: &Context<'_>) -> Option<i64> {
        nullable(ctx, async move {
            Ok(Some(self.profile(ctx).await?.orders_count))
        })
        .await
    }

    /// How much they spent, in cents.
    async fn spent_cents(&self, ctx: &Context<'_>) -> Option<i64> {
        nullable(ctx, async move {
            Ok(Some(self.profile(ctx).await?.spent_cents))
        })
        .await
    }

    /// Their orders, newest first.
    #[graphql(complexity = "usize::try_from(first).unwrap_or(0).max(1) * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Option<Vec<Order>> {
        nullable(ctx, async move {
            let first = checked_first(first, 100)?;
            let ids: Vec<String> = self
                .profile(ctx)
                .await?
                .order_ids
                .iter()
                .take(first)
                .cloned()
                .collect();
            let mut found = loaders(ctx)?
                .load_many(ids.iter().cloned().map(OrderKey))
                .await?;
            ids.into_iter()
                .filter_map(|id| found.remove(&OrderKey(id)))
                // The customers view may list an order the orders view has not applied yet.
                .map(Order::from_doc)
                .collect::<Result<_, _>>()
                .map(Some)
        })
        .await
    }

    /// Their cart.
    async fn cart(&self, ctx: &Context<'_>) -> Option<Cart> {
        nullable(ctx, async move {
            Ok(Some(Cart {
                lines: self.cart_doc(ctx).await?,
            }))
        })
        .await
    }

    /// Their wishlist.
    async fn wishlist(&self, ctx: &Context<'_>) -> Option<Wishlist> {
        nullable(ctx, async move {
            Ok(Some(Wishlist {
                skus: self.wishlist_skus(ctx).await?,
            }))
        })
        .await
    }

    /// Products often bought together with what is in their cart and wishlist.
    #[graphql(complexity = "usize::try_from(first).unwrap_or(0).max(1) * child_complexity")]
    async fn recommendations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] first: i32,
    ) -> Option<Vec<Product>> {
        nullable(ctx, async move {
            let first = checked_first(first, 50)?;
            let (cart, wishlist) = futures::try_join!(self.cart_doc(ctx), self.wishlist_skus(ctx))?;
            let mut seeds: Vec<String> = cart.into_iter().map(|line| line.sku).collect();
            for sku in wishlist {
                if !seeds.contains(&sku) {
                    seeds.push(sku);
                }
            }
            seeds.truncate(5);
            let gateway = super::gateway(ctx)?;
            let lists = futures::future::try_join_all(
                seeds
                    .iter()
                    .map(|sku| gateway.read_models.recommendations(sku, first.max(1) * 2)),
            )
            .await?;
            let mut counts: HashMap<String, u64> = HashMap::new();
            for recommendation in lists.into_iter().flatten() {
                if !seeds.contains(&recommendation.sku) {
                    *counts.entry(recommendation.sku).or_default() += recommendation.count;
                }
            }
            let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            ranked.truncate(first);
            load_products(ctx, ranked.into_iter().map(|(sku, _)| sku))
                .await
                .map(Some)
        })
        .await
    }

    /// Messages sent to them, newest first.
    #[graphql(complexity = "usize::try_from(first).unwrap_or(0).max(1) * child_complexity")]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Option<Vec<Notification>> {
        nullable(ctx, async move {
            let first = checked_first(first, 100)?;
            let doc = loaders(ctx)?
                .load_one(NotificationsKey(self.id.to_string()))
                .await?;
            Ok(Some(
                doc.map(|doc| {
                    doc.items
                        .iter()
                        .rev()
                        .take(first)
                        .cloned()
                        .map(Notification)
                        .collect()
                })
                .unwrap_or_default(),
            ))
        })
        .await
    }
}

/// A shopping cart.
#[derive(Clone, Debug)]
pub struct Cart {
    lines: Vec<CartLineDoc>,
}

#[Object]
impl Cart {
    /// What is in it.
    async fn lines(&self) -> Vec<CartLine> {
        self.lines.iter().cloned().map(CartLine).collect()
    }

    /// How many units in all.
    async fn item_count(&self) -> i64 {
        self.lines.iter().map(|line| line.quantity).sum()
    }

    /// What it costs at today's prices, in cents (lines whose product is unknown count nothing).
    async fn total_cents(&self, ctx: &Context<'_>) -> Option<i64> {
        nullable(ctx, async move {
            let products =
                load_products(ctx, self.lines.iter().map(|line| line.sku.clone())).await?;
            let prices: HashMap<&str, i64> = products
                .iter()
                .map(|product| (product.0.sku.as_str(), product.0.price_cents))
                .collect();
            Ok(Some(
                self.lines
                    .iter()
                    .map(|line| prices.get(line.sku.as_str()).copied().unwrap_or(0) * line.quantity)
                    .sum(),
            ))
        })
        .await
    }
}

/// One cart line.
#[derive(Clone, Debug)]
pub struct CartLine(CartLineDoc);

#[Object]
impl CartLine {
    /// The product's SKU.
    async fn sku(&self) -> &str {
        &self.0.sku
    }

    /// How many.
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }

    /// The product.
    async fn product(&self, ctx: &Context<'_>) -> Option<Product> {
        nullable(ctx, async move {
            Ok(loaders(ctx)?
                .load_one(ProductKey(self.0.sku.clone()))
                .await?
                .map(Product))
        })
        .await
    }
}

/// A wishlist.
#[derive(Clone, Debug)]
pub struct Wishlist {
    skus: Vec<String>,
}

#[Object]
impl Wishlist {
    /// The SKUs on it.
    async fn skus(&self) -> &[String] {
        &self.skus
    }

    /// The products on it (unknown SKUs left out).
    async fn products(&self, ctx: &Context<'_>) -> Option<Vec<Product>> {
        nullable(ctx, async move {
            load_products(ctx, self.skus.iter().cloned())
                .await
                .map(Some)
        })
        .await
    }
}

/// A message sent to a customer.
#[derive(Clone, Debug)]
pub struct Notification(NotificationDoc);

#[Object]
impl Notification {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    /// The order it is about.
    async fn order_id(&self) -> ID {
        ID(self.0.order_id.clone())
    }

    /// `order_confirmed`, `order_shipped`, `order_delivered` or `order_cancelled`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }

    /// The text.
    async fn message(&self) -> &str {
        &self.0.message
    }

    /// When (RFC 3339).
    async fn at(&self) -> &str {
        &self.0.at
    }
}

/// Sales of confirmed orders.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct SalesStats {
    /// Confirmed orders (those cancelled after confirmation subtracted).
    pub orders: i64,
    /// Their revenue, in cents.
    pub revenue_cents: i64,
    /// Best sellers, resolved by `topProducts`.
    #[graphql(skip)]
    pub top: Vec<TopProductDoc>,
}

#[ComplexObject]
impl SalesStats {
    /// Best sellers by units sold.
    async fn top_products(&self) -> Vec<TopProduct> {
        self.top.iter().cloned().map(TopProduct).collect()
    }
}

/// A best seller.
#[derive(Clone, Debug)]
pub struct TopProduct(TopProductDoc);

#[Object]
impl TopProduct {
    /// The product's SKU.
    async fn sku(&self) -> &str {
        &self.0.sku
    }

    /// Units sold.
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }

    /// Revenue from it, in cents.
    async fn revenue_cents(&self) -> i64 {
        self.0.revenue_cents
    }

    /// The product.
    async fn product(&self, ctx: &Context<'_>) -> Option<Product> {
        nullable(ctx, async move {
            Ok(loaders(ctx)?
                .load_one(ProductKey(self.0.sku.clone()))
                .await?
                .map(Product))
        })
        .await
    }
}

/// Checks that the caller may read `order`: the admin any, a customer only
/// their own; another's order is `NOT_FOUND`, as if it did not exist.
pub(crate) fn authorize_order(ctx: &Context<'_>, order: &OrderDoc) -> Result<(), GatewayError> {
    let identity = &request(ctx)?.identity;
    match identity.require_actor()? {
        crate::backend::Actor::Admin => Ok(()),
        crate::backend::Actor::Customer(id)
            if Uuid::parse_str(&order.customer_id).is_ok_and(|owner| owner == id) =>
        {
            Ok(())
        }
        crate::backend::Actor::Customer(_) => {
            Err(GatewayError::not_found(format!("order {}", order.order_id)))
        }
    }
}
