//! Which service to run and how: one typed configuration read from flags and
//! the environment.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

/// One of the command services, each owning one bounded context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum ServiceName {
    /// Products: add, change price, discontinue.
    Catalog,
    /// Customer registration.
    Customers,
    /// Shopping carts and checkout.
    Carts,
    /// Wishlists.
    Wishlists,
    /// Orders: placing, cancelling, and the saga's status changes.
    Orders,
    /// Payments through the simulated card gateway.
    Payments,
    /// Stock per SKU: restock, reservations.
    Inventory,
    /// Shipments: creation, dispatch, delivery.
    Shipping,
}

impl ServiceName {
    /// Every service, in port order.
    pub const ALL: [ServiceName; 8] = [
        Self::Catalog,
        Self::Customers,
        Self::Carts,
        Self::Wishlists,
        Self::Orders,
        Self::Payments,
        Self::Inventory,
        Self::Shipping,
    ];

    /// The name used on the command line, in logs and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Customers => "customers",
            Self::Carts => "carts",
            Self::Wishlists => "wishlists",
            Self::Orders => "orders",
            Self::Payments => "payments",
            Self::Inventory => "inventory",
            Self::Shipping => "shipping",
        }
    }

    /// The port it listens on by default (see the brief's port table).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Catalog => 7001,
            Self::Customers => 7002,
            Self::Carts => 7003,
            Self::Wishlists => 7004,
            Self::Orders => 7005,
            Self::Payments => 7006,
            Self::Inventory => 7007,
            Self::Shipping => 7008,
        }
    }

    /// `http://127.0.0.1:<default port>`.
    pub fn default_url(self) -> String {
        format!("http://127.0.0.1:{}", self.default_port())
    }

    /// The default listen address, `127.0.0.1:<default port>`.
    pub fn default_listen(self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.default_port()))
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service name that is not one of [`ServiceName::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown command service {name:?}; expected one of catalog, customers, carts, wishlists, orders, payments, inventory, shipping")]
pub struct UnknownService {
    /// What was given.
    pub name: String,
}

impl FromStr for ServiceName {
    type Err = UnknownService;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|service| service.as_str() == name)
            .ok_or_else(|| UnknownService {
                name: name.to_owned(),
            })
    }
}

/// How a command service runs. Every flag also reads a `SHOP_…` variable.
#[derive(Clone, Debug, clap::Args)]
pub struct ServiceConfig {
    /// Address to listen on; defaults to 127.0.0.1 and the service's own port
    /// (catalog 7001 … shipping 7008).
    #[arg(long, env = "SHOP_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// The event store's base URL.
    #[arg(long, env = "SHOP_STORE_URL", default_value = "http://127.0.0.1:2113")]
    pub store_url: String,

    /// Directory for local files (aggregate snapshots). Without it, snapshots
    /// are kept in memory only.
    #[arg(long, env = "SHOP_DATA")]
    pub data: Option<PathBuf>,

    /// Take a snapshot of an aggregate every this many events (0: never).
    #[arg(long, env = "SHOP_SNAPSHOT_EVERY", default_value_t = 200)]
    pub snapshot_every: u64,

    /// How many times a command is decided again after a concurrency conflict
    /// before the client gets a 409 `concurrency_conflict`.
    #[arg(long, env = "SHOP_CONFLICT_RETRIES", default_value_t = 20)]
    pub conflict_retries: u32,

    /// How many aggregates each service keeps in memory. Per-order
    /// aggregates take a few KB each; one evicted is loaded again from the
    /// store (one read) if a command for it comes later.
    #[arg(long, env = "SHOP_AGGREGATE_CACHE", default_value_t = 2_000)]
    pub aggregate_cache: usize,

    /// The orders service, which the carts service calls at checkout.
    #[arg(long, env = "SHOP_ORDERS_URL", default_value = "http://127.0.0.1:7005")]
    pub orders_url: String,

    /// How many append requests to the store may be in flight at a time;
    /// appends that arrive meanwhile go together in the next one.
    #[arg(long, env = "SHOP_STORE_APPEND_REQUESTS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub store_append_requests: u16,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            listen: None,
            store_url: "http://127.0.0.1:2113".to_owned(),
            data: None,
            snapshot_every: 200,
            conflict_retries: 20,
            aggregate_cache: 2_000,
            orders_url: ServiceName::Orders.default_url(),
            store_append_requests: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_name_parses_back_and_has_its_own_port() {
        let mut ports = std::collections::BTreeSet::new();
        for service in ServiceName::ALL {
            assert_eq!(service.as_str().parse::<ServiceName>(), Ok(service));
            assert!(ports.insert(service.default_port()));
        }
        assert_eq!(ServiceName::Orders.default_url(), "http://127.0.0.1:7005");
        assert!("billing".parse::<ServiceName>().is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        config: ServiceConfig,
    }

    #[test]
    fn the_flags_defaults_are_the_configs_and_append_requests_are_bounded() {
        use clap::Parser as _;
        let parsed = Cli::try_parse_from(["service"]).unwrap().config;
        let default = ServiceConfig::default();
        assert_eq!(parsed.store_append_requests, default.store_append_requests);
        assert_eq!(
            usize::from(default.store_append_requests),
            crate::event_log::StoreLog::DEFAULT_APPEND_REQUESTS
        );
        assert_eq!(parsed.aggregate_cache, default.aggregate_cache);
        let four = Cli::try_parse_from(["service", "--store-append-requests", "4"]).unwrap();
        assert_eq!(four.config.store_append_requests, 4);
        for refused in ["0", "65", "many"] {
            assert!(
                Cli::try_parse_from(["service", "--store-append-requests", refused]).is_err(),
                "{refused}"
            );
        }
    }
}
