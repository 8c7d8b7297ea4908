//! The gateway's one typed configuration, read from flags and `SHOP_…`
//! environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::backend::{CommandService, Projector};

/// The development admin e-mail used when `SHOP_ADMIN_EMAIL` is not set.
pub const DEV_ADMIN_EMAIL: &str = "admin@shop.local";
/// The development admin password used when `SHOP_ADMIN_PASSWORD` is not set.
pub const DEV_ADMIN_PASSWORD: &str = "admin-dev-password";

/// How `shop query-api` runs. Every flag also reads a `SHOP_…` variable.
#[derive(Clone, Debug, clap::Args)]
pub struct QueryApiConfig {
    /// Address the GraphQL server listens on.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory of the gateway's own files (the credentials database).
    #[arg(long, env = "SHOP_DATA", default_value = "./data/query-api")]
    pub data: PathBuf,

    /// The admin account's e-mail (default: a development account, said at start).
    #[arg(long, env = "SHOP_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// The admin account's password (default: a development password, said at start).
    #[arg(long, env = "SHOP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Secret for signing bearer tokens (HS256). Without it a random secret
    /// is generated at start, so tokens do not survive a restart.
    #[arg(long, env = "SHOP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// How long a bearer token from `login` stays valid, in seconds.
    #[arg(long, env = "SHOP_TOKEN_TTL_SECS", default_value_t = 24 * 3600)]
    pub token_ttl_secs: u64,

    /// Time limit of one call to a command service or projector, in milliseconds.
    #[arg(long, env = "SHOP_CALL_TIMEOUT_MS", default_value_t = 3000)]
    pub call_timeout_ms: u64,

    /// How long a query given a `consistencyToken` waits for the view to catch up, in milliseconds.
    #[arg(long, env = "SHOP_CONSISTENCY_TIMEOUT_MS", default_value_t = 5000)]
    pub consistency_timeout_ms: u64,

    /// How often a waiting query or a subscription polls a projector's position, in milliseconds.
    #[arg(long, env = "SHOP_POLL_INTERVAL_MS", default_value_t = 50)]
    pub poll_interval_ms: u64,

    /// Consecutive failures after which a projector's circuit opens.
    #[arg(long, env = "SHOP_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// How long an open circuit refuses calls before one probe is let through, in milliseconds.
    #[arg(long, env = "SHOP_BREAKER_OPEN_MS", default_value_t = 5000)]
    pub breaker_open_ms: u64,

    /// How long a catalog read may be served from the gateway's cache, in milliseconds (0: no cache).
    #[arg(long, env = "SHOP_CATALOG_CACHE_MS", default_value_t = 1000)]
    pub catalog_cache_ms: u64,

    /// How many products the catalog cache holds.
    #[arg(long, env = "SHOP_CATALOG_CACHE_SIZE", default_value_t = 10_000)]
    pub catalog_cache_size: usize,

    /// Requests per second each client (bearer subject, else IP address) may make (0: no limit).
    #[arg(long, env = "SHOP_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit_per_second: u32,

    /// How many requests a client may make in a burst above the steady rate.
    #[arg(long, env = "SHOP_RATE_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "SHOP_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Deepest accepted query (nesting of selection sets).
    #[arg(long, env = "SHOP_MAX_DEPTH", default_value_t = 12)]
    pub max_depth: usize,

    /// Largest accepted query complexity (each field costs 1, lists multiply by `first`).
    #[arg(long, env = "SHOP_MAX_COMPLEXITY", default_value_t = 2000)]
    pub max_complexity: usize,

    /// Most aliases accepted in one query.
    #[arg(long, env = "SHOP_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,

    /// The command services' base URLs.
    #[command(flatten)]
    pub commands: CommandServiceUrls,

    /// The projectors' base URLs.
    #[command(flatten)]
    pub projectors: ProjectorUrls,
}

/// Base URLs of the command services the gateway forwards mutations to.
#[derive(Clone, Debug, clap::Args)]
pub struct CommandServiceUrls {
    /// The catalog command service.
    #[arg(
        long,
        env = "SHOP_CATALOG_URL",
        default_value = "http://127.0.0.1:7001"
    )]
    pub catalog_url: String,
    /// The customers command service.
    #[arg(
        long,
        env = "SHOP_CUSTOMERS_URL",
        default_value = "http://127.0.0.1:7002"
    )]
    pub customers_url: String,
    /// The carts command service.
    #[arg(long, env = "SHOP_CARTS_URL", default_value = "http://127.0.0.1:7003")]
    pub carts_url: String,
    /// The wishlists command service.
    #[arg(
        long,
        env = "SHOP_WISHLISTS_URL",
        default_value = "http://127.0.0.1:7004"
    )]
    pub wishlists_url: String,
    /// The orders command service.
    #[arg(long, env = "SHOP_ORDERS_URL", default_value = "http://127.0.0.1:7005")]
    pub orders_url: String,
    /// The inventory command service.
    #[arg(
        long,
        env = "SHOP_INVENTORY_URL",
        default_value = "http://127.0.0.1:7007"
    )]
    pub inventory_url: String,
    /// The shipping command service.
    #[arg(
        long,
        env = "SHOP_SHIPPING_URL",
        default_value = "http://127.0.0.1:7008"
    )]
    pub shipping_url: String,
}

/// Base URLs of the projectors whose read APIs the gateway aggregates.
#[derive(Clone, Debug, clap::Args)]
pub struct ProjectorUrls {
    /// The orders projector.
    #[arg(
        long,
        env = "SHOP_ORDERS_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7101"
    )]
    pub orders_projector_url: String,
    /// The customers projector.
    #[arg(
        long,
        env = "SHOP_CUSTOMERS_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7102"
    )]
    pub customers_projector_url: String,
    /// The catalog projector.
    #[arg(
        long,
        env = "SHOP_CATALOG_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7103"
    )]
    pub catalog_projector_url: String,
    /// The inventory projector.
    #[arg(
        long,
        env = "SHOP_INVENTORY_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7104"
    )]
    pub inventory_projector_url: String,
    /// The search projector.
    #[arg(
        long,
        env = "SHOP_SEARCH_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7105"
    )]
    pub search_projector_url: String,
    /// The recommendations projector.
    #[arg(
        long,
        env = "SHOP_RECOMMENDATIONS_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7106"
    )]
    pub recommendations_projector_url: String,
    /// The notifications projector.
    #[arg(
        long,
        env = "SHOP_NOTIFICATIONS_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7107"
    )]
    pub notifications_projector_url: String,
    /// The sales projector.
    #[arg(
        long,
        env = "SHOP_SALES_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7108"
    )]
    pub sales_projector_url: String,
    /// The carts projector.
    #[arg(
        long,
        env = "SHOP_CARTS_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7109"
    )]
    pub carts_projector_url: String,
    /// The wishlists projector.
    #[arg(
        long,
        env = "SHOP_WISHLISTS_PROJECTOR_URL",
        default_value = "http://127.0.0.1:7110"
    )]
    pub wishlists_projector_url: String,
}

impl CommandServiceUrls {
    /// The base URL of one command service.
    pub fn url(&self, service: CommandService) -> &str {
        match service {
            CommandService::Catalog => &self.catalog_url,
            CommandService::Customers => &self.customers_url,
            CommandService::Carts => &self.carts_url,
            CommandService::Wishlists => &self.wishlists_url,
            CommandService::Orders => &self.orders_url,
            CommandService::Inventory => &self.inventory_url,
            CommandService::Shipping => &self.shipping_url,
        }
    }

    /// Points one command service at `url`.
    pub fn set(&mut self, service: CommandService, url: impl Into<String>) {
        let slot = match service {
            CommandService::Catalog => &mut self.catalog_url,
            CommandService::Customers => &mut self.customers_url,
            CommandService::Carts => &mut self.carts_url,
            CommandService::Wishlists => &mut self.wishlists_url,
            CommandService::Orders => &mut self.orders_url,
            CommandService::Inventory => &mut self.inventory_url,
            CommandService::Shipping => &mut self.shipping_url,
        };
        *slot = url.into();
    }
}

impl Default for CommandServiceUrls {
    fn default() -> Self {
        let url = |service: CommandService| format!("http://127.0.0.1:{}", service.default_port());
        Self {
            catalog_url: url(CommandService::Catalog),
            customers_url: url(CommandService::Customers),
            carts_url: url(CommandService::Carts),
            wishlists_url: url(CommandService::Wishlists),
            orders_url: url(CommandService::Orders),
            inventory_url: url(CommandService::Inventory),
            shipping_url: url(CommandService::Shipping),
        }
    }
}

impl ProjectorUrls {
    /// The base URL of one projector.
    pub fn url(&self, projector: Projector) -> &str {
        match projector {
            Projector::Orders => &self.orders_projector_url,
            Projector::Customers => &self.customers_projector_url,
            Projector::Catalog => &self.catalog_projector_url,
            Projector::Inventory => &self.inventory_projector_url,
            Projector::Search => &self.search_projector_url,
            Projector::Recommendations => &self.recommendations_projector_url,
            Projector::Notifications => &self.notifications_projector_url,
            Projector::Sales => &self.sales_projector_url,
            Projector::Carts => &self.carts_projector_url,
            Projector::Wishlists => &self.wishlists_projector_url,
        }
    }

    /// Points one projector at `url`.
    pub fn set(&mut self, projector: Projector, url: impl Into<String>) {
        let slot = match projector {
            Projector::Orders => &mut self.orders_projector_url,
            Projector::Customers => &mut self.customers_projector_url,
            Projector::Catalog => &mut self.catalog_projector_url,
            Projector::Inventory => &mut self.inventory_projector_url,
            Projector::Search => &mut self.search_projector_url,
            Projector::Recommendations => &mut self.recommendations_projector_url,
            Projector::Notifications => &mut self.notifications_projector_url,
            Projector::Sales => &mut self.sales_projector_url,
            Projector::Carts => &mut self.carts_projector_url,
            Projector::Wishlists => &mut self.wishlists_projector_url,
        };
        *slot = url.into();
    }
}

impl Default for ProjectorUrls {
    fn default() -> Self {
        let url = |projector: Projector| format!("http://127.0.0.1:{}", projector.default_port());
        Self {
            orders_projector_url: url(Projector::Orders),
            customers_projector_url: url(Projector::Customers),
            catalog_projector_url: url(Projector::Catalog),
            inventory_projector_url: url(Projector::Inventory),
            search_projector_url: url(Projector::Search),
            recommendations_projector_url: url(Projector::Recommendations),
            notifications_projector_url: url(Projector::Notifications),
            sales_projector_url: url(Projector::Sales),
            carts_projector_url: url(Projector::Carts),
            wishlists_projector_url: url(Projector::Wishlists),
        }
    }
}

impl Default for QueryApiConfig {
    /// The same defaults as the command line, without reading the environment.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./data/query-api"),
            admin_email: None,
            admin_password: None,
            jwt_secret: None,
            token_ttl_secs: 24 * 3600,
            call_timeout_ms: 3000,
            consistency_timeout_ms: 5000,
            poll_interval_ms: 50,
            breaker_failures: 5,
            breaker_open_ms: 5000,
            catalog_cache_ms: 1000,
            catalog_cache_size: 10_000,
            rate_limit_per_second: 100,
            rate_limit_burst: 200,
            max_body_bytes: 64 * 1024,
            max_depth: 12,
            max_complexity: 2000,
            max_aliases: 30,
            commands: CommandServiceUrls::default(),
            projectors: ProjectorUrls::default(),
        }
    }
}

impl QueryApiConfig {
    /// Time limit of one backend call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms.max(1))
    }

    /// Bound of a consistency-token wait.
    pub fn consistency_timeout(&self) -> Duration {
        Duration::from_millis(self.consistency_timeout_ms)
    }

    /// Position polling interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }

    /// The limits the schema enforces on every request.
    pub fn limits(&self) -> crate::limits::QueryLimits {
        crate::limits::QueryLimits {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_aliases: self.max_aliases,
        }
    }
}
