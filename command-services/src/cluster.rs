//! The event store, the command services, and optionally the relay and the
//! saga, all in one process, each on its own loopback port: what the
//! benchmark and the integration tests run against, and a way to start the
//! command side for `shop dev`.
//!
//! Every part talks to the others over real HTTP (and RabbitMQ, when the
//! transport given is the AMQP one), exactly as separate processes would. A
//! part can be stopped and started again on the same port, to test outages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use event_store::server::{EventStoreConfig, RunningServer};
use messaging::SharedTransport;
use service_runtime::shutdown::Shutdown;
use tokio::task::JoinHandle;

use crate::config::{ServiceConfig, ServiceName};
use crate::event_log::{EventLog, StoreLog};
use crate::saga::SagaConfig;

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Where the store (and the services' snapshots) keep their files.
    pub data: PathBuf,
    /// Which command services.
    pub services: Vec<ServiceName>,
    /// Snapshot every this many events.
    pub snapshot_every: u64,
}

impl ClusterOptions {
    /// Every service, files under `data`.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            services: ServiceName::ALL.to_vec(),
            snapshot_every: 200,
        }
    }
}

struct Running {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.task.await.context("a task of the cluster panicked")?
    }
}

/// A running store with command services (and maybe the relay and saga).
pub struct Cluster {
    options: ClusterOptions,
    store_addr: SocketAddr,
    store: Option<(RunningServer, Shutdown)>,
    services: BTreeMap<ServiceName, Option<Running>>,
    addrs: BTreeMap<ServiceName, SocketAddr>,
    relay: Option<Running>,
    saga: Option<Running>,
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl Cluster {
    /// Starts the store and the services, each on a free loopback port.
    pub async fn start(options: ClusterOptions) -> anyhow::Result<Self> {
        let (store, store_addr) = Self::start_store(&options, "127.0.0.1:0".parse()?).await?;
        let mut cluster = Self {
            options,
            store_addr,
            store: Some(store),
            services: BTreeMap::new(),
            addrs: BTreeMap::new(),
            relay: None,
            saga: None,
        };
        // The orders service first: carts calls it at checkout.
        let mut order: Vec<ServiceName> = cluster.options.services.clone();
        order.sort_by_key(|name| *name != ServiceName::Orders);
        for name in order {
            let running = cluster.start_service(name, "127.0.0.1:0".parse()?).await?;
            cluster.addrs.insert(name, running.addr);
            cluster.services.insert(name, Some(running));
        }
        Ok(cluster)
    }

    async fn start_store(
        options: &ClusterOptions,
        listen: SocketAddr,
    ) -> anyhow::Result<((RunningServer, Shutdown), SocketAddr)> {
        let config = EventStoreConfig::for_data_dir(options.data.join("event-store"));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let shutdown = Shutdown::new();
        let server = event_store::server::start(&config, listener, shutdown.clone()).await?;
        let addr = server.addr;
        Ok(((server, shutdown), addr))
    }

    async fn start_service(
        &self,
        name: ServiceName,
        listen: SocketAddr,
    ) -> anyhow::Result<Running> {
        let config = ServiceConfig {
            listen: Some(listen),
            store_url: self.store_url(),
            data: Some(self.options.data.join("command-services")),
            snapshot_every: self.options.snapshot_every,
            orders_url: self
                .addrs
                .get(&ServiceName::Orders)
                .map_or_else(|| ServiceName::Orders.default_url(), |addr| url(*addr)),
            ..ServiceConfig::default()
        };
        let bound = crate::bind(name, &config).await?;
        let addr = bound.local_addr()?;
        let shutdown = Shutdown::new();
        let task = tokio::spawn(bound.serve(shutdown.clone()));
        Ok(Running {
            addr,
            shutdown,
            task,
        })
    }

    /// The store's base URL.
    pub fn store_url(&self) -> String {
        url(self.store_addr)
    }

    /// A port to the store over HTTP.
    pub fn store_log(&self) -> anyhow::Result<Arc<dyn EventLog>> {
        Ok(Arc::new(StoreLog::new(&self.store_url())?))
    }

    /// The base URL of a service (also while it is stopped).
    pub fn url(&self, name: ServiceName) -> anyhow::Result<String> {
        self.addrs
            .get(&name)
            .map(|addr| url(*addr))
            .with_context(|| format!("the cluster runs no {name} service"))
    }

    /// A saga configuration pointing at this cluster's services.
    pub fn saga_config(&self, namespace: &str) -> anyhow::Result<SagaConfig> {
        Ok(SagaConfig {
            listen: "127.0.0.1:0".parse()?,
            store_url: self.store_url(),
            namespace: namespace.to_owned(),
            orders_url: self.url(ServiceName::Orders)?,
            payments_url: self.url(ServiceName::Payments)?,
            inventory_url: self.url(ServiceName::Inventory)?,
            shipping_url: self.url(ServiceName::Shipping)?,
            ..SagaConfig::default()
        })
    }

    /// Starts relaying the store to `transport`. Declare the consumers'
    /// queues first: an event published before its queue is bound is not
    /// delivered to it (docs/adr/0005).
    pub fn start_relay(&mut self, transport: SharedTransport) -> anyhow::Result<()> {
        let (server, _) = self.store.as_ref().context("the store is stopped")?;
        let shutdown = Shutdown::new();
        let task = tokio::spawn(event_store::relay::run_relay(
            server.store.clone(),
            transport,
            shutdown.clone(),
        ));
        self.relay = Some(Running {
            addr: self.store_addr,
            shutdown,
            task,
        });
        Ok(())
    }

    /// Starts the saga in this process, consuming from `transport`.
    pub async fn start_saga(&mut self, transport: SharedTransport) -> anyhow::Result<()> {
        let config = self.saga_config(transport.namespace().as_str())?;
        // The queue exists before the relay publishes, so nothing is missed.
        transport
            .declare_consumer(&crate::saga::consumer_spec(config.prefetch)?)
            .await?;
        let shutdown = Shutdown::new();
        let log = self.store_log()?;
        let task = tokio::spawn(crate::saga::run_with(
            config,
            transport,
            log,
            shutdown.clone(),
        ));
        self.saga = Some(Running {
            addr: self.store_addr,
            shutdown,
            task,
        });
        Ok(())
    }

    /// Stops the in-process saga.
    pub async fn stop_saga(&mut self) -> anyhow::Result<()> {
        match self.saga.take() {
            Some(saga) => saga.stop().await,
            None => Ok(()),
        }
    }

    /// Stops one service (its port stays reserved for [`Cluster::start_again`]).
    pub async fn stop_service(&mut self, name: ServiceName) -> anyhow::Result<()> {
        match self.services.get_mut(&name).and_then(Option::take) {
            Some(running) => running.stop().await,
            None => Ok(()),
        }
    }

    /// Starts a stopped service again on its port.
    pub async fn start_again(&mut self, name: ServiceName) -> anyhow::Result<()> {
        let addr = *self
            .addrs
            .get(&name)
            .with_context(|| format!("the cluster runs no {name} service"))?;
        let running = self.start_service(name, addr).await?;
        self.services.insert(name, Some(running));
        Ok(())
    }

    /// Stops the store (and the relay, which reads it).
    pub async fn stop_store(&mut self) -> anyhow::Result<()> {
        if let Some(relay) = self.relay.take() {
            relay.stop().await?;
        }
        if let Some((server, shutdown)) = self.store.take() {
            shutdown.trigger();
            server.wait().await?;
        }
        Ok(())
    }

    /// Starts the stopped store again on its port, over the same files.
    pub async fn start_store_again(&mut self) -> anyhow::Result<()> {
        let (store, _) = Self::start_store(&self.options, self.store_addr).await?;
        self.store = Some(store);
        Ok(())
    }

    /// Stops everything: the saga, the services, the relay, then the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_saga().await?;
        let names: Vec<ServiceName> = self.services.keys().copied().collect();
        for name in names {
            self.stop_service(name).await?;
        }
        self.stop_store().await
    }
}
