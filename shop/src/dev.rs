//! `shop dev`: the whole system in one process.
//!
//! Every component runs exactly as it does on its own (same routers, same
//! consumer runtime, same relay), but in one process: the command services
//! and the saga use the event store in-process, projectors read its history
//! in-process, and all talk to each other over loopback HTTP on ports the OS
//! picks. Only the GraphQL gateway listens on a fixed address (`--listen`).
//! Each component's files live under `--data`, so a restart resumes where it
//! stopped and the offline tools (`shop replay --data`, `shop digest --data`)
//! work on the same folder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use command_services::config::{ServiceConfig, ServiceName};
use command_services::event_log::EventLog;
use command_services::saga::SagaConfig;
use event_store::server::EventStoreConfig;
use messaging::{AmqpConfig, AmqpTransport, MemoryTransport, Namespace, SharedTransport};
use projectors::source::{SharedSource, StoreSource};
use projectors::{Dependencies, ProjectorConfig, ProjectorName};
use query_api::config::QueryApiConfig;
use service_runtime::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Which broker `shop dev` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DevBroker {
    /// RabbitMQ when it answers, else the in-process transport.
    Auto,
    /// RabbitMQ, or fail.
    Amqp,
    /// The in-process transport (nothing leaves the process).
    Memory,
}

/// Flags of `shop dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Folder of every component's files.
    #[arg(long, env = "SHOP_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Address of the GraphQL gateway (GraphiQL at `/`).
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// RabbitMQ.
    #[arg(
        long,
        env = "SHOP_AMQP",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp: String,
    /// Which broker: `auto` tries RabbitMQ and falls back to `memory`.
    #[arg(long, env = "SHOP_BROKER", value_enum, default_value_t = DevBroker::Auto)]
    pub broker: DevBroker,
    /// Prefix of every RabbitMQ name.
    #[arg(long, env = "SHOP_NAMESPACE", default_value = "shop")]
    pub namespace: String,
    /// The admin account's e-mail (default: a development account, said at start).
    #[arg(long, env = "SHOP_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// The admin account's password (default: a development password, said at start).
    #[arg(long, env = "SHOP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Secret signing the gateway's tokens (default: one kept under `--data`).
    #[arg(long, env = "SHOP_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// Runs `shop dev` until SIGINT/SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let shutdown = service_runtime::shutdown::signal();
    let system = start(args, shutdown.clone()).await?;
    tracing::info!(
        graphiql = %format!("http://{}/", system.gateway),
        store = %system.store,
        "shop dev is ready; Ctrl-C stops it"
    );
    system.wait().await?;
    Ok(ExitCode::SUCCESS)
}

/// A running `shop dev`.
pub struct DevSystem {
    /// The GraphQL gateway's address.
    pub gateway: SocketAddr,
    /// The event store's address.
    pub store: SocketAddr,
    store_server: event_store::server::RunningServer,
    transport: SharedTransport,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    shutdown: Shutdown,
}

impl DevSystem {
    /// Waits until `shutdown` fired and every component has drained; then
    /// closes the store (synced) and the broker connection.
    pub async fn wait(self) -> anyhow::Result<()> {
        let mut result = Ok(());
        for (name, task) in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    // One component failing stops the others too.
                    self.shutdown.trigger();
                    tracing::error!(component = name, error = %format!("{error:#}"), "component failed");
                    result = Err(error.context(format!("{name} failed")));
                }
                Err(error) => {
                    self.shutdown.trigger();
                    result = Err(anyhow::anyhow!("{name} panicked: {error}"));
                }
            }
        }
        self.shutdown.trigger();
        let stored = self.store_server.wait().await;
        self.transport.close().await;
        tracing::info!("shop dev stopped");
        result.and(stored)
    }
}

async fn loopback() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on a loopback port")
}

async fn transport(args: &DevArgs) -> anyhow::Result<SharedTransport> {
    let namespace = Namespace::parse(&args.namespace)
        .with_context(|| format!("invalid --namespace {:?}", args.namespace))?;
    if args.broker == DevBroker::Memory {
        tracing::warn!("BROKER: in-process transport (--broker memory); nothing goes to RabbitMQ");
        return Ok(Arc::new(MemoryTransport::new(namespace)));
    }
    let mut config =
        AmqpConfig::new(args.amqp.clone(), namespace.clone()).with_connection_name("shop-dev");
    if args.broker == DevBroker::Auto {
        config.connect_timeout = Duration::from_secs(3);
    }
    match AmqpTransport::connect(config).await {
        Ok(transport) => {
            tracing::info!(namespace = %args.namespace, "BROKER: RabbitMQ");
            Ok(Arc::new(transport))
        }
        Err(error) if args.broker == DevBroker::Auto => {
            tracing::warn!(
                %error,
                "BROKER: RabbitMQ does not answer; USING THE IN-PROCESS TRANSPORT. \
                 Events stay in this process; start RabbitMQ and restart to use it"
            );
            Ok(Arc::new(MemoryTransport::new(namespace)))
        }
        Err(error) => Err(error).context("cannot connect to RabbitMQ (--broker amqp)"),
    }
}

/// The query API's configuration as `shop query-api` would read it from the
/// environment alone (no flags).
fn gateway_settings_from_env() -> QueryApiConfig {
    #[derive(clap::Parser)]
    struct FromEnv {
        #[command(flatten)]
        config: QueryApiConfig,
    }
    match <FromEnv as clap::Parser>::try_parse_from(["shop-dev"]) {
        Ok(parsed) => parsed.config,
        Err(error) => {
            tracing::warn!(%error, "ignoring the query API's environment settings");
            QueryApiConfig::default()
        }
    }
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Starts every component; returns once all listen.
pub async fn start(args: DevArgs, shutdown: Shutdown) -> anyhow::Result<DevSystem> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create {}", args.data.display()))?;
    let transport = transport(&args).await?;
    let mut tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)> = Vec::new();

    // The event store, with its relay to whichever transport we have.
    let store_config = EventStoreConfig {
        namespace: args.namespace.clone(),
        ..EventStoreConfig::for_data_dir(args.data.join("event-store"))
    };
    let store_server =
        event_store::server::start(&store_config, loopback().await?, shutdown.clone()).await?;
    let store = store_server.store.clone();
    let store_url = url(store_server.addr);
    let relay = event_store::relay::Relay::new(
        store.clone(),
        Arc::clone(&transport),
        event_store::relay::RelayOptions::default(),
    )?;
    tasks.push(("relay", tokio::spawn(relay.run(shutdown.clone()))));

    // Command services, over the store in this process.
    let log: Arc<dyn EventLog> = Arc::new(store.clone());
    let mut service_urls = std::collections::BTreeMap::new();
    let mut order: Vec<ServiceName> = ServiceName::ALL.to_vec();
    // Orders first: carts calls it at checkout.
    order.sort_by_key(|name| *name != ServiceName::Orders);
    for name in order {
        let config = ServiceConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            store_url: store_url.clone(),
            data: Some(args.data.join("command-services")),
            orders_url: service_urls
                .get(&ServiceName::Orders)
                .cloned()
                .unwrap_or_else(|| ServiceName::Orders.default_url()),
            ..ServiceConfig::default()
        };
        let bound = command_services::bind_with(name, &config, Arc::clone(&log)).await?;
        service_urls.insert(name, url(bound.local_addr()?));
        tasks.push((
            "command service",
            tokio::spawn(bound.serve(shutdown.clone())),
        ));
    }
    let service = |name: ServiceName| service_urls.get(&name).cloned().unwrap_or_default();

    // The saga.
    let saga_config = SagaConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        store_url: store_url.clone(),
        amqp: args.amqp.clone(),
        namespace: args.namespace.clone(),
        orders_url: service(ServiceName::Orders),
        payments_url: service(ServiceName::Payments),
        inventory_url: service(ServiceName::Inventory),
        shipping_url: service(ServiceName::Shipping),
        ..SagaConfig::default()
    };
    tasks.push((
        "saga",
        tokio::spawn(command_services::saga::run_with(
            saga_config,
            Arc::clone(&transport),
            Arc::clone(&log),
            shutdown.clone(),
        )),
    ));

    // Every projector, one router under /{name}/.
    let projector_config = ProjectorConfig {
        data: args.data.clone(),
        store_url: store_url.clone(),
        amqp: args.amqp.clone(),
        namespace: args.namespace.clone(),
        ..ProjectorConfig::default()
    };
    let source: SharedSource = Arc::new(StoreSource::new(store.clone()));
    let deps = Dependencies {
        source,
        transport: Some(Arc::clone(&transport)),
    };
    let projectors = projectors::service::start_all(
        &projector_config,
        deps,
        loopback().await?,
        shutdown.clone(),
    )
    .await?;
    let projectors_base = url(projectors.addr);
    let projector = |name: ProjectorName| format!("{projectors_base}/{}", name.as_str());
    tasks.push(("projectors", tokio::spawn(projectors.wait())));

    // The GraphQL gateway.
    // The gateway's own settings (limits, timeouts, `SHOP_RATE_LIMIT`…) come
    // from the environment as for `shop query-api`; addresses are ours.
    let mut gateway_config = QueryApiConfig {
        listen: args.listen,
        data: args.data.join("query-api"),
        admin_email: args.admin_email.clone(),
        admin_password: args.admin_password.clone(),
        jwt_secret: args.jwt_secret.clone(),
        ..gateway_settings_from_env()
    };
    let commands = &mut gateway_config.commands;
    commands.catalog_url = service(ServiceName::Catalog);
    commands.customers_url = service(ServiceName::Customers);
    commands.carts_url = service(ServiceName::Carts);
    commands.wishlists_url = service(ServiceName::Wishlists);
    commands.orders_url = service(ServiceName::Orders);
    commands.inventory_url = service(ServiceName::Inventory);
    commands.shipping_url = service(ServiceName::Shipping);
    let views = &mut gateway_config.projectors;
    views.orders_projector_url = projector(ProjectorName::Orders);
    views.customers_projector_url = projector(ProjectorName::Customers);
    views.catalog_projector_url = projector(ProjectorName::Catalog);
    views.inventory_projector_url = projector(ProjectorName::Inventory);
    views.search_projector_url = projector(ProjectorName::Search);
    views.recommendations_projector_url = projector(ProjectorName::Recommendations);
    views.notifications_projector_url = projector(ProjectorName::Notifications);
    views.sales_projector_url = projector(ProjectorName::Sales);
    views.carts_projector_url = projector(ProjectorName::Carts);
    views.wishlists_projector_url = projector(ProjectorName::Wishlists);
    let gateway_listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let gateway = gateway_listener
        .local_addr()
        .context("cannot read the gateway's address")?;
    tasks.push((
        "query API",
        tokio::spawn(query_api::serve(
            gateway_listener,
            gateway_config,
            shutdown.clone(),
        )),
    ));

    Ok(DevSystem {
        gateway,
        store: store_server.addr,
        store_server,
        transport,
        tasks,
        shutdown,
    })
}
