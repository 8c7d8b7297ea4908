//! Running projectors: one per process (`shop projector NAME`), or all of
//! them in one process under one router (`shop dev`).

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{extract::State, routing::get, Json, Router};
use messaging::{AmqpConfig, AmqpTransport, Namespace, SharedTransport};
use serde_json::{json, Value};
use service_runtime::{
    ops::{ops_router, ReadyCheck},
    shutdown::Shutdown,
};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    layout::ViewDir,
    name::ProjectorName,
    runtime::{Projector, RuntimeSettings},
    source::{HttpSource, SharedSource},
};

/// Where a projector gets its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Broker {
    /// RabbitMQ at `--amqp`.
    Amqp,
    /// No broker of its own: in `shop dev` the in-process transport shared
    /// with the relay; in a process of its own, the projector follows the
    /// store by polling it instead.
    Memory,
}

/// Configuration of `shop projector NAME` (and of the projectors in `shop dev`).
#[derive(Clone, Debug, clap::Args)]
pub struct ProjectorConfig {
    /// Data directory; each read model lives in `<data>/projectors/<name>/`.
    #[arg(long, env = "SHOP_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Address of the read API (default: the projector's port on 127.0.0.1,
    /// 7101–7110; for all projectors in one process, 127.0.0.1:7100).
    #[arg(long, env = "SHOP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The event store's URL (history, catch-up and gap repair).
    #[arg(
        long = "store-url",
        env = "SHOP_STORE_URL",
        default_value = "http://127.0.0.1:2113"
    )]
    pub store_url: String,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "SHOP_AMQP",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp: String,
    /// Prefix of every RabbitMQ name.
    #[arg(long, env = "SHOP_NAMESPACE", default_value = "shop")]
    pub namespace: String,
    /// Where messages come from.
    #[arg(long, env = "SHOP_BROKER", value_enum, default_value_t = Broker::Amqp)]
    pub broker: Broker,
    /// Unacknowledged deliveries the broker may hand out at once.
    #[arg(long, env = "SHOP_PROJECTOR_PREFETCH", default_value_t = RuntimeSettings::default().prefetch)]
    pub prefetch: u16,
    /// The most deliveries applied in one sled batch (a quarter of the
    /// prefetch by default: while one batch is applied and one waits for
    /// its flush, the broker sends the next two).
    #[arg(long, env = "SHOP_PROJECTOR_BATCH", default_value_t = RuntimeSettings::default().batch)]
    pub batch: usize,
    /// Deliveries of a poison message before it is dead-lettered (at most the
    /// queue's delivery limit, 5).
    #[arg(long, env = "SHOP_PROJECTOR_MAX_ATTEMPTS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=5))]
    pub max_attempts: u32,
    /// How long a batch waits, after its first deliveries, for more to
    /// arrive before it is applied, in milliseconds (0: apply at once).
    #[arg(long, env = "SHOP_PROJECTOR_GATHER_MS", default_value_t = gather_ms_default())]
    pub gather_ms: u64,
    /// sled's cache per read model, in MiB.
    #[arg(long, env = "SHOP_PROJECTOR_CACHE_MB", default_value_t = cache_mb_default())]
    pub cache_mb: u64,
    /// The most `/positions` long polls waiting at once; the next is
    /// answered 503 `too_many_waits`.
    #[arg(long, env = "SHOP_MAX_WAITS", default_value_t = service_runtime::waits::WaitSlots::DEFAULT)]
    pub max_waits: usize,
}

fn gather_ms_default() -> u64 {
    u64::try_from(RuntimeSettings::default().gather.as_millis()).unwrap_or(u64::MAX)
}

fn cache_mb_default() -> u64 {
    RuntimeSettings::default().cache_bytes / (1024 * 1024)
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::from("./data"),
            listen: None,
            store_url: "http://127.0.0.1:2113".into(),
            amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            namespace: "shop".into(),
            broker: Broker::Amqp,
            prefetch: RuntimeSettings::default().prefetch,
            batch: RuntimeSettings::default().batch,
            max_attempts: 3,
            gather_ms: gather_ms_default(),
            cache_mb: cache_mb_default(),
            max_waits: service_runtime::waits::WaitSlots::DEFAULT,
        }
    }
}

impl ProjectorConfig {
    /// The runtime settings these flags give.
    pub fn settings(&self) -> RuntimeSettings {
        RuntimeSettings {
            prefetch: self.prefetch.max(1),
            batch: self.batch.max(1),
            max_attempts: self.max_attempts.max(1),
            gather: Duration::from_millis(self.gather_ms),
            cache_bytes: self.cache_mb.max(1) * 1024 * 1024,
            max_waits: self.max_waits,
            ..RuntimeSettings::default()
        }
    }

    fn log(&self, what: &str) {
        tracing::info!(
            what,
            data = %self.data.display(),
            listen = ?self.listen,
            store_url = %self.store_url,
            amqp = %redact(&self.amqp),
            namespace = %self.namespace,
            broker = ?self.broker,
            prefetch = self.prefetch,
            batch = self.batch,
            max_attempts = self.max_attempts,
            gather_ms = self.gather_ms,
            cache_mb = self.cache_mb,
            "projector configuration"
        );
    }
}

/// `amqp://user:secret@host` → `amqp://user:***@host`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// What projectors need from the rest of the process.
#[derive(Clone, Debug)]
pub struct Dependencies {
    /// The event store.
    pub source: SharedSource,
    /// The broker; `None` follows the store by polling.
    pub transport: Option<SharedTransport>,
}

impl Dependencies {
    /// The store over HTTP at `--store-url` and, with `--broker amqp`, RabbitMQ.
    pub async fn from_config(config: &ProjectorConfig) -> anyhow::Result<Self> {
        let source: SharedSource = Arc::new(
            HttpSource::new(&config.store_url)
                .with_context(|| format!("invalid --store-url {}", config.store_url))?,
        );
        let transport: Option<SharedTransport> = match config.broker {
            Broker::Amqp => {
                let namespace = Namespace::parse(&config.namespace)
                    .with_context(|| format!("invalid --namespace {:?}", config.namespace))?;
                let transport = AmqpTransport::connect(
                    AmqpConfig::new(config.amqp.clone(), namespace)
                        .with_connection_name("shop-projector"),
                )
                .await
                .with_context(|| {
                    format!("cannot connect to RabbitMQ at {}", redact(&config.amqp))
                })?;
                Some(Arc::new(transport))
            }
            Broker::Memory => {
                tracing::warn!(
                    "no broker for this projector (--broker memory): following the event store by polling it"
                );
                None
            }
        };
        Ok(Self { source, transport })
    }
}

/// A projector started by [`start`] or [`start_all`].
pub struct Running {
    /// The address its read API listens on.
    pub addr: SocketAddr,
    /// The projectors it runs.
    pub projectors: Vec<Arc<Projector>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until it has stopped (after the shutdown signal fired).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the projector task panicked")?
    }
}

fn open_projector(
    name: ProjectorName,
    config: &ProjectorConfig,
    deps: &Dependencies,
) -> anyhow::Result<Arc<Projector>> {
    let dir = ViewDir::new(&config.data, name);
    Projector::open(
        name,
        dir,
        Arc::clone(&deps.source),
        deps.transport.clone(),
        config.settings(),
    )
    .with_context(|| {
        format!(
            "cannot open the {name} read model under {}",
            config.data.display()
        )
    })
}

fn spawn_consumer(
    projector: Arc<Projector>,
    transport: Option<SharedTransport>,
    shutdown: Shutdown,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let name = projector.name();
        let result = match transport {
            Some(transport) => projector.consume(transport, shutdown.clone()).await,
            None => projector.follow_store(shutdown.clone()).await,
        };
        if let Err(error) = &result {
            if !shutdown.is_triggered() {
                tracing::error!(projector = %name, error = %format!("{error:#}"), "projector stopped");
            }
        }
        result
    })
}

async fn serve_until(
    listener: TcpListener,
    app: Router,
    consumers: Vec<JoinHandle<anyhow::Result<()>>>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let served = service_runtime::serve(listener, app, shutdown.waiter()).await;
    let mut result = served;
    for consumer in consumers {
        match consumer.await {
            Ok(Ok(())) => {}
            // A consumer stopped by shutdown before it got going is not an error.
            Ok(Err(_)) if shutdown.is_triggered() => {}
            Ok(Err(error)) => result = result.and(Err(error)),
            Err(error) => result = result.and(Err(anyhow::anyhow!("a consumer panicked: {error}"))),
        }
    }
    result
}

/// Starts one projector on `listener` and returns at once.
pub async fn start(
    name: ProjectorName,
    config: &ProjectorConfig,
    deps: Dependencies,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<Running> {
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let projector = open_projector(name, config, &deps)?;
    tracing::info!(projector = %name, listen = %addr, "projector listening");
    let consumer = spawn_consumer(
        Arc::clone(&projector),
        deps.transport.clone(),
        shutdown.clone(),
    );
    let app = crate::api::router(Arc::clone(&projector));
    let task = tokio::spawn(serve_until(listener, app, vec![consumer], shutdown));
    Ok(Running {
        addr,
        projectors: vec![projector],
        task,
    })
}

/// Runs `shop projector NAME` until `shutdown`.
pub async fn run(
    name: ProjectorName,
    config: ProjectorConfig,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    config.log(name.as_str());
    let listen = config
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], name.default_port())));
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let deps = Dependencies::from_config(&config).await?;
    let transport = deps.transport.clone();
    let running = start(name, &config, deps, listener, shutdown).await?;
    let result = running.wait().await;
    if let Some(transport) = transport {
        transport.close().await;
    }
    result
}

/// The default address of all projectors in one process.
pub const ALL_DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 7100);

/// Every projector's read API under `/{name}/…` (e.g. `/orders/views/orders/{id}`,
/// `/search/search?q=mug`), plus `/health`, `/ready`, `/metrics` and `/status`
/// (every projector's status) at the root.
pub fn combined_router(projectors: &[Arc<Projector>]) -> Router {
    let mut app = Router::new();
    for projector in projectors {
        app = app.nest(
            &format!("/{}", projector.name()),
            crate::api::router(Arc::clone(projector)),
        );
    }
    let all: Arc<Vec<Arc<Projector>>> = Arc::new(projectors.to_vec());
    let ready_all = Arc::clone(&all);
    let ready: ReadyCheck = Arc::new(move || {
        let all = Arc::clone(&ready_all);
        Box::pin(async move {
            let behind: Vec<String> = all
                .iter()
                .filter(|p| !p.is_caught_up())
                .map(|p| p.name().to_string())
                .collect();
            if behind.is_empty() {
                Ok(())
            } else {
                Err(format!("still catching up: {}", behind.join(", ")))
            }
        })
    });
    app.merge(
        Router::new()
            .route("/status", get(all_status))
            .with_state(all),
    )
    .merge(ops_router(ready))
}

async fn all_status(State(all): State<Arc<Vec<Arc<Projector>>>>) -> Json<Value> {
    let mut statuses = Vec::new();
    for projector in all.iter() {
        match projector.status().await {
            Ok(status) => statuses.push(serde_json::to_value(status).unwrap_or(Value::Null)),
            Err(error) => statuses.push(json!({
                "name": projector.name().as_str(),
                "error": error.to_string(),
            })),
        }
    }
    Json(json!({ "projectors": statuses }))
}

/// Starts every projector in this process, sharing `deps`, with one router
/// ([`combined_router`]) on `listener`; returns at once.
pub async fn start_all(
    config: &ProjectorConfig,
    deps: Dependencies,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<Running> {
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let mut projectors = Vec::new();
    let mut consumers = Vec::new();
    for name in ProjectorName::ALL {
        let projector = open_projector(name, config, &deps)?;
        consumers.push(spawn_consumer(
            Arc::clone(&projector),
            deps.transport.clone(),
            shutdown.clone(),
        ));
        projectors.push(projector);
    }
    tracing::info!(listen = %addr, "all projectors listening under /{{name}}/");
    let app = combined_router(&projectors);
    let task = tokio::spawn(serve_until(listener, app, consumers, shutdown));
    Ok(Running {
        addr,
        projectors,
        task,
    })
}

/// Runs every projector in one process (for `shop dev`) until `shutdown`,
/// on `--listen` (default 127.0.0.1:7100). With `deps` `None`, connects
/// as [`Dependencies::from_config`] does.
pub async fn run_all(
    config: ProjectorConfig,
    deps: Option<Dependencies>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    config.log("all");
    let listen = config
        .listen
        .unwrap_or_else(|| SocketAddr::from(ALL_DEFAULT_LISTEN));
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let deps = match deps {
        Some(deps) => deps,
        None => Dependencies::from_config(&config).await?,
    };
    start_all(&config, deps, listener, shutdown)
        .await?
        .wait()
        .await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: ProjectorConfig,
    }

    #[test]
    fn the_flags_defaults_are_the_runtimes_and_the_configs() {
        let flags = Cli::try_parse_from(["projector"]).unwrap().config;
        let defaults = RuntimeSettings::default();
        for config in [&flags, &ProjectorConfig::default()] {
            let settings = config.settings();
            assert_eq!(settings.prefetch, defaults.prefetch);
            assert_eq!(settings.batch, defaults.batch);
            assert!(settings.batch < usize::from(settings.prefetch));
            assert_eq!(settings.max_waits, defaults.max_waits);
            assert_eq!(settings.cache_bytes, defaults.cache_bytes);
            assert_eq!(settings.max_attempts, defaults.max_attempts);
            assert_eq!(settings.gather, defaults.gather);
        }
    }
}
