//! The eight command services: one module per bounded context, each turning
//! `POST /commands/{name}` bodies into domain commands.
//!
//! Every service shares one [`Backend`]: a repository per aggregate type
//! (only the ones its commands touch are ever used), the store port and the
//! snapshot tree. The dispatch on the command name lives in each module's
//! `handle`; the list of commands with their fields, which also feeds
//! `/openapi.json`, lives in each module's `COMMANDS`.

pub mod carts;
pub mod catalog;
pub mod customers;
pub mod inventory;
pub mod orders;
pub mod payments;
pub mod shipping;
pub mod wishlists;

use std::sync::Arc;

use domain::decider::Decider;
use domain::values::{Price, Sku};
use service_runtime::api_error::ApiError;

use crate::aggregates::Aggregate;
use crate::api::{CommandContext, CommandReply, Input};
use crate::config::ServiceName;
use crate::event_log::EventLog;
use crate::openapi::CommandSpec;
use crate::repository::{CommandError, Refusal, Repository, RepositoryOptions, Request};
use crate::snapshots::SnapshotStore;

/// Everything a service's handlers use.
pub struct Backend {
    /// Which service this is.
    pub name: ServiceName,
    /// The event store.
    pub log: Arc<dyn EventLog>,
    /// Products (`product-<SKU>`).
    pub products: Arc<Repository<domain::product::Product>>,
    /// Customers (`customer-<uuid>`).
    pub customers: Arc<Repository<domain::customer::Customer>>,
    /// Carts (`cart-<customer>`).
    pub carts: Arc<Repository<domain::cart::Cart>>,
    /// Wishlists (`wishlist-<customer>`).
    pub wishlists: Arc<Repository<domain::wishlist::Wishlist>>,
    /// Orders (`order-<uuid>`).
    pub orders: Arc<Repository<domain::order::Order>>,
    /// Payments (`payment-<order>`).
    pub payments: Arc<Repository<domain::payment::Payment>>,
    /// Stock (`stock-<SKU>`).
    pub stock: Arc<Repository<domain::stock::Stock>>,
    /// Shipments (`shipment-<order>`).
    pub shipments: Arc<Repository<domain::shipment::Shipment>>,
    /// Calls the orders service (checkout).
    pub orders_client: carts::OrdersClient,
    /// Which customer each email belongs to (the customers service).
    pub emails: tokio::sync::Mutex<customers::EmailIndex>,
    snapshots: SnapshotStore,
}

impl Backend {
    /// A backend over `log`.
    pub fn new(
        name: ServiceName,
        log: Arc<dyn EventLog>,
        snapshots: SnapshotStore,
        options: RepositoryOptions,
        orders_url: &str,
    ) -> Self {
        fn repository<A: Aggregate>(
            log: &Arc<dyn EventLog>,
            snapshots: &SnapshotStore,
            options: RepositoryOptions,
        ) -> Arc<Repository<A>> {
            Arc::new(Repository::new(Arc::clone(log), snapshots.clone(), options))
        }
        Self {
            name,
            products: repository(&log, &snapshots, options),
            customers: repository(&log, &snapshots, options),
            carts: repository(&log, &snapshots, options),
            wishlists: repository(&log, &snapshots, options),
            orders: repository(&log, &snapshots, options),
            payments: repository(&log, &snapshots, options),
            stock: repository(&log, &snapshots, options),
            shipments: repository(&log, &snapshots, options),
            orders_client: carts::OrdersClient::new(orders_url),
            emails: tokio::sync::Mutex::new(customers::EmailIndex::default()),
            log,
            snapshots,
        }
    }

    /// Writes buffered snapshots (on shutdown).
    pub fn flush(&self) {
        self.snapshots.flush();
    }

    /// Runs a command through `repository` and answers with `id`.
    pub async fn run<A: Aggregate>(
        repository: &Arc<Repository<A>>,
        id: impl Into<String>,
        stream: String,
        request: Request<A>,
    ) -> Result<CommandReply, ApiError> {
        let outcome = repository.execute(stream, request).await?;
        Ok(CommandReply::new(id, outcome))
    }

    /// The facts of a product an order or a cart needs: its price and
    /// whether it is discontinued. An unknown SKU is a 404.
    pub async fn product_facts(&self, sku: &Sku) -> Result<(Price, bool), ApiError> {
        let loaded = self
            .products
            .load(&domain::product::stream_name(sku))
            .await?;
        match loaded.state.product {
            Some(product) => Ok((product.price, product.discontinued)),
            None => Err(CommandError::Refused(Refusal::not_found(
                "product_not_found",
                format!("no product with SKU {sku}"),
            ))
            .into()),
        }
    }
}

/// Handles `POST /commands/{command}` for the backend's service.
pub async fn handle(
    backend: &Backend,
    command: &str,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    match backend.name {
        ServiceName::Catalog => catalog::handle(backend, command, context, input).await,
        ServiceName::Customers => customers::handle(backend, command, context, input).await,
        ServiceName::Carts => carts::handle(backend, command, context, input).await,
        ServiceName::Wishlists => wishlists::handle(backend, command, context, input).await,
        ServiceName::Orders => orders::handle(backend, command, context, input).await,
        ServiceName::Payments => payments::handle(backend, command, context, input).await,
        ServiceName::Inventory => inventory::handle(backend, command, context, input).await,
        ServiceName::Shipping => shipping::handle(backend, command, context, input).await,
    }
}

/// The commands a service accepts.
pub fn commands(name: ServiceName) -> &'static [CommandSpec] {
    match name {
        ServiceName::Catalog => catalog::COMMANDS,
        ServiceName::Customers => customers::COMMANDS,
        ServiceName::Carts => carts::COMMANDS,
        ServiceName::Wishlists => wishlists::COMMANDS,
        ServiceName::Orders => orders::COMMANDS,
        ServiceName::Payments => payments::COMMANDS,
        ServiceName::Inventory => inventory::COMMANDS,
        ServiceName::Shipping => shipping::COMMANDS,
    }
}

/// The 404 for a command name the service does not know.
pub fn unknown_command(service: ServiceName, command: &str) -> ApiError {
    let known: Vec<&str> = commands(service).iter().map(|spec| spec.name).collect();
    ApiError::not_found(
        "unknown_command",
        format!(
            "the {service} service has no command {command:?}; it has {}",
            known.join(", ")
        ),
    )
}

/// A request deciding `command` with the context's key and metadata.
pub fn request<A: Aggregate>(command: A::Command, context: &CommandContext) -> Request<A> {
    Request::command(command, context.key.clone(), context.metadata.clone())
}

/// A request whose command is built from the current state (the payment
/// gateway's answer depends on the attempt number; ownership checks need the
/// owner).
pub fn request_with<A: Aggregate>(
    context: &CommandContext,
    build: impl FnMut(&A::State) -> Result<A::Command, Refusal> + Send + 'static,
) -> Request<A> {
    let mut build = build;
    Request {
        decide: Box::new(move |state| {
            let command = build(state)?;
            <A as Decider>::decide(state, command).map_err(|e| Refusal::from_domain(&e))
        }),
        key: context.key.clone(),
        metadata: context.metadata.clone(),
        observe: None,
    }
}

/// The time a saga command carries (`at`), or now.
pub fn at_or_now(input: &Input) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    match input.opt_text("at")? {
        None => Ok(chrono::Utc::now()),
        Some(raw) => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|at| at.with_timezone(&chrono::Utc))
            .map_err(|_| crate::api::invalid("at", "invalid_input", "at must be an RFC 3339 time")),
    }
}
