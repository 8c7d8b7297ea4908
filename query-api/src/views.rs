//! The projectors' documents as the gateway reads them
//! (`docs/internal-apis.md`). Unknown fields are ignored and optional ones
//! default, so a projector may add fields without breaking the gateway.

use serde::{Deserialize, Serialize};

/// One order (orders projector, view `orders`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderDoc {
    /// The order id.
    pub order_id: String,
    /// Who placed it.
    pub customer_id: String,
    /// `PLACED`, `CONFIRMED`, `SHIPPED`, `DELIVERED` or `CANCELLED`.
    pub status: String,
    /// `OUT_OF_STOCK`, `PAYMENT_DECLINED`, `CUSTOMER_REQUEST`, or none.
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    /// The lines.
    #[serde(default)]
    pub lines: Vec<OrderLineDoc>,
    /// Sum of the lines.
    #[serde(default)]
    pub subtotal_cents: i64,
    /// Shipping cost.
    #[serde(default)]
    pub shipping_cost_cents: i64,
    /// Subtotal plus shipping.
    #[serde(default)]
    pub total_cents: i64,
    /// Every status the order went through, oldest first.
    #[serde(default)]
    pub timeline: Vec<TimelineDoc>,
    /// When it was placed (RFC 3339).
    #[serde(default)]
    pub created_at: String,
}

/// One order line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineDoc {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: i64,
    /// Price of one at the time of ordering.
    #[serde(default)]
    pub unit_price_cents: i64,
}

/// One status change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineDoc {
    /// The status entered.
    pub status: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub at: String,
}

/// One customer's history (customers projector, view `customers`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomerDoc {
    /// The customer id.
    pub customer_id: String,
    /// E-mail.
    #[serde(default)]
    pub email: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// When they registered (RFC 3339).
    #[serde(default)]
    pub registered_at: String,
    /// Their orders, newest first.
    #[serde(default)]
    pub order_ids: Vec<String>,
    /// How many orders.
    #[serde(default)]
    pub orders_count: i64,
    /// How much they spent.
    #[serde(default)]
    pub spent_cents: i64,
}

/// One product (catalog projector, view `products`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductDoc {
    /// The SKU.
    pub sku: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Current price.
    #[serde(default)]
    pub price_cents: i64,
    /// Category.
    #[serde(default)]
    pub category: String,
    /// Whether it can no longer be ordered.
    #[serde(default)]
    pub discontinued: bool,
    /// Stock levels.
    #[serde(default)]
    pub stock: StockLevelDoc,
}

/// Stock levels inside a product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevelDoc {
    /// Units that can be reserved.
    #[serde(default)]
    pub available: i64,
    /// Units reserved by orders not yet shipped.
    #[serde(default)]
    pub reserved: i64,
}

/// Stock of one SKU (inventory projector, view `stock`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockDoc {
    /// The SKU.
    pub sku: String,
    /// Units that can be reserved.
    #[serde(default)]
    pub available: i64,
    /// Units reserved.
    #[serde(default)]
    pub reserved: i64,
    /// Units shipped.
    #[serde(default)]
    pub shipped: i64,
}

/// A customer's notifications (notifications projector).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsDoc {
    /// The customer.
    pub customer_id: String,
    /// The messages, oldest first.
    #[serde(default)]
    pub items: Vec<NotificationDoc>,
}

/// One notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationDoc {
    /// Its id.
    pub id: String,
    /// The order it is about.
    #[serde(default)]
    pub order_id: String,
    /// `order_confirmed`, `order_shipped`, `order_delivered`, `order_cancelled`.
    #[serde(default)]
    pub kind: String,
    /// The text.
    #[serde(default)]
    pub message: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub at: String,
}

/// A customer's cart (carts projector).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartDoc {
    /// The customer.
    pub customer_id: String,
    /// The lines.
    #[serde(default)]
    pub lines: Vec<CartLineDoc>,
}

/// One cart line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLineDoc {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: i64,
}

/// A customer's wishlist (wishlists projector).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WishlistDoc {
    /// The customer.
    pub customer_id: String,
    /// The products.
    #[serde(default)]
    pub skus: Vec<String>,
}

/// Sales statistics (sales projector, `GET /stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesStatsDoc {
    /// Confirmed orders.
    #[serde(default)]
    pub orders: i64,
    /// Their revenue.
    #[serde(default)]
    pub revenue_cents: i64,
    /// Best sellers.
    #[serde(default)]
    pub top_products: Vec<TopProductDoc>,
}

/// One best seller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopProductDoc {
    /// The product.
    pub sku: String,
    /// Units sold.
    #[serde(default)]
    pub quantity: i64,
    /// Revenue from it.
    #[serde(default)]
    pub revenue_cents: i64,
}
