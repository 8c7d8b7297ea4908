//! The ports the gateway talks through: command services and projectors.
//!
//! The schema sees them only as `Arc<dyn CommandSender>` and
//! `Arc<dyn ReadModels>`; [`http`] implements both over the internal HTTP
//! APIs of `docs/internal-apis.md`, [`memory`] in memory (for `schema.execute`
//! tests and the benchmark), and [`guard`] wraps any `ReadModels` with
//! per-call timeouts and a circuit breaker per projector.

pub mod guard;
pub mod http;
pub mod memory;

use std::{collections::HashMap, fmt, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::GatewayError;

/// A command service the gateway forwards mutations to. (The payments
/// service takes commands from the saga only, so the gateway never calls it.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandService {
    /// Products.
    Catalog,
    /// Customer registration.
    Customers,
    /// Carts and checkout.
    Carts,
    /// Wishlists.
    Wishlists,
    /// Orders.
    Orders,
    /// Stock.
    Inventory,
    /// Shipments.
    Shipping,
}

impl CommandService {
    /// The service's name in logs, metrics and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Customers => "customers",
            Self::Carts => "carts",
            Self::Wishlists => "wishlists",
            Self::Orders => "orders",
            Self::Inventory => "inventory",
            Self::Shipping => "shipping",
        }
    }

    /// Its default port (the brief's port table).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Catalog => 7001,
            Self::Customers => 7002,
            Self::Carts => 7003,
            Self::Wishlists => 7004,
            Self::Orders => 7005,
            Self::Inventory => 7007,
            Self::Shipping => 7008,
        }
    }
}

impl fmt::Display for CommandService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A projector whose read API the gateway aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Projector {
    /// Orders with their status timeline.
    Orders,
    /// Customer history.
    Customers,
    /// Catalog with stock levels.
    Catalog,
    /// Stock per SKU.
    Inventory,
    /// Product search.
    Search,
    /// Bought-together counts.
    Recommendations,
    /// Notification outbox.
    Notifications,
    /// Sales statistics.
    Sales,
    /// Carts.
    Carts,
    /// Wishlists.
    Wishlists,
}

impl Projector {
    /// Every projector, in port order.
    pub const ALL: [Projector; 10] = [
        Self::Orders,
        Self::Customers,
        Self::Catalog,
        Self::Inventory,
        Self::Search,
        Self::Recommendations,
        Self::Notifications,
        Self::Sales,
        Self::Carts,
        Self::Wishlists,
    ];

    /// The projector's name in logs, metrics and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Customers => "customers",
            Self::Catalog => "catalog",
            Self::Inventory => "inventory",
            Self::Search => "search",
            Self::Recommendations => "recommendations",
            Self::Notifications => "notifications",
            Self::Sales => "sales",
            Self::Carts => "carts",
            Self::Wishlists => "wishlists",
        }
    }

    /// Its default port (the brief's port table).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Orders => 7101,
            Self::Customers => 7102,
            Self::Catalog => 7103,
            Self::Inventory => 7104,
            Self::Search => 7105,
            Self::Recommendations => 7106,
            Self::Notifications => 7107,
            Self::Sales => 7108,
            Self::Carts => 7109,
            Self::Wishlists => 7110,
        }
    }

    /// The stream categories whose events this projector applies. A
    /// consistency token for a stream of another category says nothing about
    /// this projector's views, so a query does not wait on it.
    pub fn consumes(self, category: &str) -> bool {
        let categories: &[&str] = match self {
            Self::Orders => &["order"],
            Self::Customers => &["customer", "order"],
            Self::Catalog => &["product", "stock"],
            Self::Inventory => &["stock"],
            Self::Search => &["product"],
            Self::Recommendations => &["order"],
            Self::Notifications => &["order"],
            Self::Sales => &["order"],
            Self::Carts => &["cart"],
            Self::Wishlists => &["wishlist"],
        };
        categories.contains(&category)
    }
}

impl fmt::Display for Projector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document view served by a projector under `/views/{view}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// `orders` by order id (orders projector).
    Orders,
    /// `customers` by customer id (customers projector).
    Customers,
    /// `products` by SKU (catalog projector).
    Products,
    /// `stock` by SKU (inventory projector).
    Stock,
    /// `notifications` by customer id (notifications projector).
    Notifications,
    /// `carts` by customer id (carts projector).
    Carts,
    /// `wishlists` by customer id (wishlists projector).
    Wishlists,
}

impl View {
    /// The view's name in the URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Customers => "customers",
            Self::Products => "products",
            Self::Stock => "stock",
            Self::Notifications => "notifications",
            Self::Carts => "carts",
            Self::Wishlists => "wishlists",
        }
    }

    /// The projector serving it.
    pub fn projector(self) -> Projector {
        match self {
            Self::Orders => Projector::Orders,
            Self::Customers => Projector::Customers,
            Self::Products => Projector::Catalog,
            Self::Stock => Projector::Inventory,
            Self::Notifications => Projector::Notifications,
            Self::Carts => Projector::Carts,
            Self::Wishlists => Projector::Wishlists,
        }
    }
}

/// Who asks, as the command services see it in `X-Actor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A customer, by id.
    Customer(Uuid),
    /// The admin account.
    Admin,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Customer(id) => write!(f, "{id}"),
            Self::Admin => f.write_str("admin"),
        }
    }
}

/// The headers every command carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandContext {
    /// Who asks.
    pub actor: Actor,
    /// Same key, same result, one effect.
    pub idempotency_key: String,
    /// The GraphQL request's correlation id.
    pub correlation_id: Uuid,
    /// What caused this command (the GraphQL request).
    pub causation_id: Uuid,
}

/// A command service's answer to an accepted command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAccepted {
    /// The aggregate's id (the order id for checkout and place-order).
    pub id: String,
    /// The stream written.
    #[serde(default)]
    pub stream: String,
    /// The stream's version after the command.
    #[serde(default)]
    pub version: Option<u64>,
    /// The global position of the last event written.
    #[serde(default)]
    pub position: Option<u64>,
    /// The consistency token `"<stream>@<version>"`.
    pub token: String,
}

/// Sends commands to the command services (`POST /commands/{name}`).
#[async_trait]
pub trait CommandSender: Send + Sync + 'static {
    /// Sends `command` with its JSON `body` to `service`.
    async fn send(
        &self,
        service: CommandService,
        command: &str,
        body: serde_json::Value,
        context: &CommandContext,
    ) -> Result<CommandAccepted, GatewayError>;
}

/// One page of the catalog, in SKU order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductPage {
    /// The products.
    pub items: Vec<serde_json::Value>,
    /// Whether more follow.
    pub has_next: bool,
}

/// One search hit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The product.
    pub sku: String,
    /// Its relevance; higher first.
    pub score: f64,
}

/// One bought-together count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The product bought together.
    pub sku: String,
    /// How many confirmed orders had both.
    pub count: u64,
}

/// A document with the version of its stream read just before it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct VersionedDocument {
    /// The stream's last applied version (none if nothing of it is applied).
    pub version: Option<u64>,
    /// The document, if there is one.
    pub document: Option<serde_json::Value>,
}

/// Reads the projectors' views.
#[async_trait]
pub trait ReadModels: Send + Sync + 'static {
    /// `POST /views/{view}/batch`: the documents of `keys`; missing ones are absent or null.
    async fn batch(
        &self,
        view: View,
        keys: &[String],
    ) -> Result<HashMap<String, Option<serde_json::Value>>, GatewayError>;

    /// `GET /positions?stream=`: the last version of `stream` the projector applied.
    async fn position(
        &self,
        projector: Projector,
        stream: &str,
    ) -> Result<Option<u64>, GatewayError>;

    /// `GET /positions?stream=&min_version=&timeout_ms=`: the same, but the
    /// projector answers as soon as it has applied `min_version` of `stream`,
    /// or after `wait` (a long poll: one request per wait, and no polling
    /// interval added to the latency). A backend that cannot wait answers at
    /// once, like [`position`](Self::position); callers loop either way.
    async fn wait_for_position(
        &self,
        projector: Projector,
        stream: &str,
        min_version: u64,
        wait: Duration,
    ) -> Result<Option<u64>, GatewayError> {
        let _ = (min_version, wait);
        self.position(projector, stream).await
    }

    /// `GET /views/{view}/{key}/wait?stream=&min_version=&timeout_ms=`: the
    /// document of `key` once the projector has applied `min_version` of
    /// `stream` (at once without it), or after `wait`, with the stream's
    /// version as read just before the document: waiting next for a version
    /// above it misses no change. One request where a position wait and a
    /// read would be two; a backend without it answers from those two.
    async fn document_at(
        &self,
        view: View,
        key: &str,
        stream: &str,
        min_version: Option<u64>,
        wait: Duration,
    ) -> Result<VersionedDocument, GatewayError> {
        let projector = view.projector();
        let version = match min_version {
            Some(min_version) => {
                self.wait_for_position(projector, stream, min_version, wait)
                    .await?
            }
            None => self.position(projector, stream).await?,
        };
        let document = self
            .batch(view, &[key.to_owned()])
            .await?
            .remove(key)
            .flatten();
        Ok(VersionedDocument { version, document })
    }

    /// `GET /products?first&after&category` on the catalog projector.
    async fn products(
        &self,
        first: usize,
        after: Option<&str>,
        category: Option<&str>,
    ) -> Result<ProductPage, GatewayError>;

    /// `GET /search?q&first` on the search projector.
    async fn search(&self, query: &str, first: usize) -> Result<Vec<SearchHit>, GatewayError>;

    /// `GET /recommendations/{sku}?first` on the recommendations projector.
    async fn recommendations(
        &self,
        sku: &str,
        first: usize,
    ) -> Result<Vec<Recommendation>, GatewayError>;

    /// `GET /stats?top` on the sales projector.
    async fn sales_stats(&self, top: usize) -> Result<serde_json::Value, GatewayError>;
}
