//! Spawns the real multi-process system: the event store, each command
//! service, the saga, each projector and the query API, each a process of
//! the `shop` executable, on free ports, with a fresh data directory and a
//! RabbitMQ namespace of its own; and tears it down again.
//!
//! Start order: the store; then the command services, the saga and the
//! projectors together; then the query API, each group `/ready` before the
//! next. Shutdown is the reverse: SIGTERM, a grace period, then SIGKILL;
//! then the namespace's queues and exchanges are deleted and the data
//! directory removed. Each process writes its output to
//! `<data>/logs/<component>.log`, whose tail is quoted when it fails.
//!
//! Always call [`Topology::shutdown`]; dropping a [`Topology`] only kills
//! the processes (nothing async can run in `drop`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use command_services::config::ServiceName;
use messaging::transport::Transport;
use messaging::{AmqpConfig, AmqpTransport, ConsumerName, Namespace};
use projectors::ProjectorName;
use tokio::process::{Child, Command};

use crate::actors::AdminCredentials;
use crate::runner::{DEFAULT_ADMIN_EMAIL, DEFAULT_ADMIN_PASSWORD};

/// The broker used when `SHOP_AMQP` is not set.
pub const DEFAULT_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Why the topology could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The data or log directory could not be prepared.
    #[error("cannot prepare {path}: {source}")]
    Files {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No free port could be found.
    #[error("cannot find free ports: {0}")]
    Ports(std::io::Error),
    /// A process could not be started.
    #[error("cannot start `{program} {args}`: {source}")]
    Start {
        /// The executable.
        program: PathBuf,
        /// Its arguments.
        args: String,
        /// The error.
        source: std::io::Error,
    },
    /// A component exited, or was not ready in time, while starting.
    #[error(transparent)]
    Component(Box<StartFailure>),
    /// The namespace is not a valid RabbitMQ prefix.
    #[error(transparent)]
    Namespace(#[from] messaging::NameError),
}

/// A component that did not start.
#[derive(Debug, thiserror::Error)]
#[error("{component} {reason}; the end of {}:\n{tail}", .log.display())]
pub struct StartFailure {
    /// The component.
    pub component: String,
    /// What happened (`exited with …`, `was not ready at … within …`).
    pub reason: String,
    /// Its log file.
    pub log: PathBuf,
    /// The end of its log.
    pub tail: String,
}

impl StartFailure {
    fn of(component: &Component, reason: String) -> TopologyError {
        TopologyError::Component(Box::new(StartFailure {
            component: component.kind.name(),
            reason,
            log: component.log.clone(),
            tail: tail(&component.log, 30),
        }))
    }
}

/// How to spawn the topology.
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    /// The `shop` executable (normally `std::env::current_exe()`).
    pub program: PathBuf,
    /// RabbitMQ.
    pub amqp: String,
    /// The RabbitMQ namespace; default a fresh `scenario-<random>`.
    pub namespace: Option<String>,
    /// Where every component keeps its files; default a fresh temp directory,
    /// removed at shutdown.
    pub data_dir: Option<PathBuf>,
    /// Keep the temp data directory (and its logs) after shutdown.
    pub keep_data: bool,
    /// The admin account the query API is given.
    pub admin: AdminCredentials,
    /// How long each start-up group may take to be ready.
    pub ready_timeout: Duration,
    /// How long each shutdown group may take after SIGTERM before SIGKILL.
    pub grace: Duration,
    /// More environment for every component (`RUST_LOG`, `SHOP_LOG_FORMAT`, …).
    pub env: Vec<(String, String)>,
    /// More environment for the query API only (it rate-limits by default;
    /// the topology turns that off with `SHOP_RATE_LIMIT=0` unless set here).
    pub query_api_env: Vec<(String, String)>,
}

impl TopologyConfig {
    /// A configuration spawning `program`, with the broker from `SHOP_AMQP`
    /// (or the local default) and everything else fresh.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            amqp: std::env::var("SHOP_AMQP").unwrap_or_else(|_| DEFAULT_AMQP.to_owned()),
            namespace: None,
            data_dir: None,
            keep_data: false,
            admin: AdminCredentials {
                email: DEFAULT_ADMIN_EMAIL.to_owned(),
                password: DEFAULT_ADMIN_PASSWORD.to_owned(),
            },
            ready_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(10),
            env: Vec::new(),
            query_api_env: Vec::new(),
        }
    }
}

/// What a component is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComponentKind {
    /// `shop event-store`.
    EventStore,
    /// `shop command-service NAME`.
    CommandService(ServiceName),
    /// `shop saga`.
    Saga,
    /// `shop projector NAME`.
    Projector(ProjectorName),
    /// `shop query-api`.
    QueryApi,
}

impl ComponentKind {
    /// The component's name: `event-store`, `command-service-orders`,
    /// `saga`, `projector-orders`, `query-api`.
    pub fn name(self) -> String {
        match self {
            Self::EventStore => "event-store".to_owned(),
            Self::CommandService(service) => format!("command-service-{service}"),
            Self::Saga => "saga".to_owned(),
            Self::Projector(projector) => format!("projector-{projector}"),
            Self::QueryApi => "query-api".to_owned(),
        }
    }

    /// The `shop` arguments that start it.
    pub fn args(self) -> Vec<String> {
        match self {
            Self::EventStore => vec!["event-store".to_owned()],
            Self::CommandService(service) => {
                vec!["command-service".to_owned(), service.as_str().to_owned()]
            }
            Self::Saga => vec!["saga".to_owned()],
            Self::Projector(projector) => {
                vec!["projector".to_owned(), projector.as_str().to_owned()]
            }
            Self::QueryApi => vec!["query-api".to_owned()],
        }
    }

    /// Every component, in start order.
    pub fn all() -> Vec<ComponentKind> {
        let mut all = vec![Self::EventStore];
        all.extend(ServiceName::ALL.map(Self::CommandService));
        all.push(Self::Saga);
        all.extend(ProjectorName::ALL.map(Self::Projector));
        all.push(Self::QueryApi);
        all
    }

    fn group(self) -> usize {
        match self {
            Self::EventStore => 0,
            Self::CommandService(_) | Self::Saga | Self::Projector(_) => 1,
            Self::QueryApi => 2,
        }
    }
}

/// One running process of the topology.
#[derive(Debug)]
pub struct Component {
    /// What it is.
    pub kind: ComponentKind,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
    child: Child,
}

impl Component {
    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// How a component ended at shutdown.
#[derive(Clone, Debug)]
pub struct ComponentExit {
    /// The component's name.
    pub component: String,
    /// Its exit status, if it could be collected.
    pub status: Option<ExitStatus>,
    /// Whether it had to be killed after the grace period.
    pub killed: bool,
}

enum DataDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temp(dir) => dir.path(),
            DataDir::Given(path) => path,
        }
    }
}

/// The running system.
pub struct Topology {
    components: Vec<Component>,
    data: Option<DataDir>,
    keep_data: bool,
    namespace: String,
    amqp: String,
    admin: AdminCredentials,
    grace: Duration,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("namespace", &self.namespace)
            .field("data", &self.data_dir())
            .field("components", &self.components)
            .finish_non_exhaustive()
    }
}

fn env_name(component: &str) -> String {
    component.to_ascii_uppercase().replace('-', "_")
}

/// `count` distinct free ports on 127.0.0.1, found by binding port 0 (all
/// held at once so that none repeats).
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

impl Topology {
    /// Starts every component and waits until each is ready. On failure,
    /// whatever started is stopped again before the error is returned.
    pub async fn spawn(config: TopologyConfig) -> Result<Topology, TopologyError> {
        let namespace = config.namespace.clone().unwrap_or_else(|| {
            format!(
                "scenario-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            )
        });
        Namespace::parse(&namespace)?;
        let data = match &config.data_dir {
            Some(path) => DataDir::Given(path.clone()),
            None => DataDir::Temp(
                tempfile::Builder::new()
                    .prefix("shop-topology-")
                    .tempdir()
                    .map_err(|source| TopologyError::Files {
                        path: std::env::temp_dir(),
                        source,
                    })?,
            ),
        };
        let root = data.path().to_owned();
        let logs = root.join("logs");
        std::fs::create_dir_all(&logs).map_err(|source| TopologyError::Files {
            path: logs.clone(),
            source,
        })?;

        let kinds = ComponentKind::all();
        let ports = free_ports(kinds.len()).map_err(TopologyError::Ports)?;
        let urls: BTreeMap<ComponentKind, String> = kinds
            .iter()
            .zip(&ports)
            .map(|(kind, port)| (*kind, format!("http://127.0.0.1:{port}")))
            .collect();

        let mut topology = Topology {
            components: Vec::new(),
            data: Some(data),
            keep_data: config.keep_data,
            namespace,
            amqp: config.amqp.clone(),
            admin: config.admin.clone(),
            grace: config.grace,
        };
        tracing::info!(namespace = %topology.namespace, data = %root.display(), "spawning the topology");
        for group in 0..3 {
            let members: Vec<ComponentKind> = kinds
                .iter()
                .copied()
                .filter(|k| k.group() == group)
                .collect();
            for kind in &members {
                let env = topology.component_env(*kind, &urls, &root, &config);
                match start(&config.program, *kind, &urls[kind], &env, &logs) {
                    Ok(component) => topology.components.push(component),
                    Err(error) => {
                        topology.stop().await;
                        return Err(error);
                    }
                }
            }
            let waited = futures::future::join_all(
                topology
                    .components
                    .iter_mut()
                    .filter(|c| c.kind.group() == group)
                    .map(|c| wait_ready(c, config.ready_timeout)),
            )
            .await;
            if let Some(error) = waited.into_iter().find_map(Result::err) {
                topology.stop().await;
                return Err(error);
            }
        }
        tracing::info!(query_api = %topology.query_api_url(), "the topology is ready");
        Ok(topology)
    }

    fn component_env(
        &self,
        kind: ComponentKind,
        urls: &BTreeMap<ComponentKind, String>,
        root: &Path,
        config: &TopologyConfig,
    ) -> Vec<(String, String)> {
        let listen = urls[&kind].trim_start_matches("http://").to_owned();
        let store = urls[&ComponentKind::EventStore].clone();
        let service_url = |s: ServiceName| urls[&ComponentKind::CommandService(s)].clone();
        let mut env = vec![("SHOP_LISTEN".to_owned(), listen)];
        let data = |dir: PathBuf| ("SHOP_DATA".to_owned(), dir.display().to_string());
        let broker = [
            ("SHOP_AMQP".to_owned(), self.amqp.clone()),
            ("SHOP_NAMESPACE".to_owned(), self.namespace.clone()),
        ];
        match kind {
            ComponentKind::EventStore => {
                env.push(data(root.join("event-store")));
                env.extend(broker);
            }
            ComponentKind::CommandService(service) => {
                env.push(data(root.join("command-services").join(service.as_str())));
                env.push(("SHOP_STORE_URL".to_owned(), store));
                env.push((
                    "SHOP_ORDERS_URL".to_owned(),
                    service_url(ServiceName::Orders),
                ));
            }
            ComponentKind::Saga => {
                env.push(("SHOP_STORE_URL".to_owned(), store));
                env.extend(broker);
                for service in [
                    ServiceName::Orders,
                    ServiceName::Payments,
                    ServiceName::Inventory,
                    ServiceName::Shipping,
                ] {
                    env.push((
                        format!("SHOP_{}_URL", env_name(service.as_str())),
                        service_url(service),
                    ));
                }
            }
            ComponentKind::Projector(_) => {
                // Each projector keeps its files in `<data>/projectors/<name>/`.
                env.push(data(root.to_owned()));
                env.push(("SHOP_STORE_URL".to_owned(), store));
                env.extend(broker);
            }
            ComponentKind::QueryApi => {
                env.push(data(root.join("query-api")));
                env.push(("SHOP_ADMIN_EMAIL".to_owned(), self.admin.email.clone()));
                env.push((
                    "SHOP_ADMIN_PASSWORD".to_owned(),
                    self.admin.password.clone(),
                ));
                env.push(("SHOP_RATE_LIMIT".to_owned(), "0".to_owned()));
                env.extend(backend_urls(urls));
                env.extend(config.query_api_env.iter().cloned());
            }
        }
        env.extend(config.env.iter().cloned());
        env
    }

    /// The query API's base URL: what scenarios target.
    pub fn query_api_url(&self) -> &str {
        self.url(ComponentKind::QueryApi).unwrap_or_default()
    }

    /// The event store's base URL.
    pub fn store_url(&self) -> &str {
        self.url(ComponentKind::EventStore).unwrap_or_default()
    }

    /// A component's base URL.
    pub fn url(&self, kind: ComponentKind) -> Option<&str> {
        self.components
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| c.url.as_str())
    }

    /// The running components, in start order (for per-process CPU and RSS).
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The RabbitMQ namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The data directory.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data.as_ref().map(DataDir::path)
    }

    /// Environment for a `shop` client command against this system (digest,
    /// replay): the store, every command service and projector URL
    /// (`SHOP_<NAME>_URL`, `SHOP_<NAME>_PROJECTOR_URL`, `SHOP_QUERY_API_URL`),
    /// the data directory, the broker, the namespace and the admin account.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let urls: BTreeMap<ComponentKind, String> = self
            .components
            .iter()
            .map(|c| (c.kind, c.url.clone()))
            .collect();
        let mut env = vec![
            ("SHOP_STORE_URL".to_owned(), self.store_url().to_owned()),
            // Offline tools pointed at this system find its files (and, while it
            // runs, are refused by the databases' locks rather than reading stale copies).
            (
                "SHOP_DATA".to_owned(),
                self.data_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            ("SHOP_AMQP".to_owned(), self.amqp.clone()),
            ("SHOP_NAMESPACE".to_owned(), self.namespace.clone()),
            ("SHOP_ADMIN_EMAIL".to_owned(), self.admin.email.clone()),
            (
                "SHOP_ADMIN_PASSWORD".to_owned(),
                self.admin.password.clone(),
            ),
        ];
        env.extend(backend_urls(&urls));
        env
    }

    /// The last `lines` lines of a component's log.
    pub fn log_tail(&self, kind: ComponentKind, lines: usize) -> Option<String> {
        let component = self.components.iter().find(|c| c.kind == kind)?;
        Some(tail(&component.log, lines))
    }

    /// Stops every component (query API first, store last: SIGTERM, then
    /// SIGKILL after the grace period), deletes the RabbitMQ namespace and
    /// removes the temp data directory. Returns how each process ended.
    pub async fn shutdown(mut self) -> Vec<ComponentExit> {
        self.stop().await
    }

    async fn stop(&mut self) -> Vec<ComponentExit> {
        let mut exits = Vec::new();
        for group in (0..3).rev() {
            let grace = self.grace;
            let stopping = self
                .components
                .iter_mut()
                .filter(|c| c.kind.group() == group)
                .map(|c| stop_component(c, grace));
            exits.extend(futures::future::join_all(stopping).await);
        }
        for exit in exits.iter().filter(|e| e.killed) {
            tracing::warn!(component = %exit.component, "did not stop within the grace period; killed");
        }
        self.components.clear();
        if let Err(error) = self.delete_namespace().await {
            tracing::warn!(namespace = %self.namespace, %error, "cannot delete the RabbitMQ namespace");
        }
        if let Some(data) = self.data.take() {
            match data {
                DataDir::Temp(dir) if self.keep_data => {
                    let kept = dir.keep();
                    tracing::info!(data = %kept.display(), "kept the topology's data directory");
                }
                DataDir::Temp(dir) => {
                    if let Err(error) = dir.close() {
                        tracing::warn!(%error, "cannot remove the topology's data directory");
                    }
                }
                DataDir::Given(_) => {}
            }
        }
        exits
    }

    /// Deletes the queues (`<ns>.projector.<name>`, `<ns>.saga`, their dead
    /// letter queues) and exchanges the components declared.
    async fn delete_namespace(&self) -> Result<(), messaging::TransportError> {
        let namespace = Namespace::parse(&self.namespace).map_err(|e| {
            messaging::TransportError::InvalidUri {
                reason: e.to_string(),
            }
        })?;
        let transport =
            AmqpTransport::connect(AmqpConfig::new(self.amqp.clone(), namespace)).await?;
        let mut consumers = vec!["saga".to_owned()];
        consumers.extend(ProjectorName::ALL.map(|p| format!("projector.{p}")));
        let mut outcome = Ok(());
        for consumer in consumers {
            if let Ok(name) = ConsumerName::parse(&consumer) {
                if let Err(error) = transport.delete_consumer_topology(&name).await {
                    outcome = Err(error);
                }
            }
        }
        if let Err(error) = transport.delete_namespace().await {
            outcome = Err(error);
        }
        transport.close().await;
        outcome
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for component in &mut self.components {
            // Best effort: `shutdown` is the clean way; this only keeps a
            // panicking test from leaving processes behind.
            let _ = component.child.start_kill();
        }
    }
}

fn backend_urls(urls: &BTreeMap<ComponentKind, String>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for (kind, url) in urls {
        match kind {
            ComponentKind::CommandService(service) => {
                env.push((
                    format!("SHOP_{}_URL", env_name(service.as_str())),
                    url.clone(),
                ));
            }
            ComponentKind::Projector(projector) => env.push((
                format!("SHOP_{}_PROJECTOR_URL", env_name(projector.as_str())),
                url.clone(),
            )),
            ComponentKind::QueryApi => env.push(("SHOP_QUERY_API_URL".to_owned(), url.clone())),
            ComponentKind::EventStore | ComponentKind::Saga => {}
        }
    }
    env
}

/// Environment variables a component inherits are dropped when they
/// configure the shop (`SHOP_…`), so the caller's settings cannot leak in;
/// logging settings are kept.
fn inherited_shop_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key.starts_with("SHOP_") && key != "SHOP_LOG_FORMAT")
        .collect()
}

fn start(
    program: &Path,
    kind: ComponentKind,
    url: &str,
    env: &[(String, String)],
    logs: &Path,
) -> Result<Component, TopologyError> {
    let name = kind.name();
    let log = logs.join(format!("{name}.log"));
    let files = |path: &Path| -> Result<(File, File), TopologyError> {
        let file = File::create(path).map_err(|source| TopologyError::Files {
            path: path.to_owned(),
            source,
        })?;
        let copy = file.try_clone().map_err(|source| TopologyError::Files {
            path: path.to_owned(),
            source,
        })?;
        Ok((file, copy))
    };
    let (stdout, stderr) = files(&log)?;
    let args = kind.args();
    let mut command = Command::new(program);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    for key in inherited_shop_vars() {
        command.env_remove(key);
    }
    // The logs go to files: no colour codes in them.
    command.env("NO_COLOR", "1");
    command.envs(env.iter().cloned());
    let child = command.spawn().map_err(|source| TopologyError::Start {
        program: program.to_owned(),
        args: args.join(" "),
        source,
    })?;
    tracing::debug!(component = %name, %url, pid = child.id(), "started");
    Ok(Component {
        kind,
        url: url.to_owned(),
        log,
        child,
    })
}

async fn wait_ready(component: &mut Component, timeout: Duration) -> Result<(), TopologyError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| TopologyError::Ports(std::io::Error::other(e)))?;
    let started = Instant::now();
    let ready = format!("{}/ready", component.url);
    let mut last: String;
    loop {
        if let Ok(Some(status)) = component.child.try_wait() {
            return Err(StartFailure::of(
                component,
                format!("exited while starting ({status})"),
            ));
        }
        match http.get(&ready).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => {
                let status = response.status();
                last = format!("{status} {}", response.text().await.unwrap_or_default());
            }
            Err(error) => last = error.to_string(),
        }
        if started.elapsed() >= timeout {
            return Err(StartFailure::of(
                component,
                format!(
                    "was not ready at {ready} within {:?} (last: {last})",
                    started.elapsed()
                ),
            ));
        }
        // Polling readiness with a deadline.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop_component(component: &mut Component, grace: Duration) -> ComponentExit {
    let name = component.kind.name();
    if let Ok(Some(status)) = component.child.try_wait() {
        return ComponentExit {
            component: name,
            status: Some(status),
            killed: false,
        };
    }
    if let Some(pid) = component
        .child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    match tokio::time::timeout(grace, component.child.wait()).await {
        Ok(status) => ComponentExit {
            component: name,
            status: status.ok(),
            killed: false,
        },
        Err(_) => {
            let _ = component.child.start_kill();
            let status = component.child.wait().await.ok();
            ComponentExit {
                component: name,
                status,
                killed: true,
            }
        }
    }
}

/// The last `lines` lines of a file (empty if it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_has_its_own_name_and_a_real_subcommand() {
        let all = ComponentKind::all();
        assert_eq!(all.len(), 1 + 8 + 1 + 10 + 1);
        let names: std::collections::BTreeSet<String> = all.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), all.len());
        assert_eq!(
            ComponentKind::Projector(ProjectorName::Recommendations).args(),
            vec!["projector", "recommendations"]
        );
        assert_eq!(all.first(), Some(&ComponentKind::EventStore));
        assert_eq!(all.last(), Some(&ComponentKind::QueryApi));
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(21).unwrap();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), 21);
    }

    #[test]
    fn the_query_api_is_pointed_at_every_backend() {
        let kinds = ComponentKind::all();
        let urls: BTreeMap<ComponentKind, String> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, format!("http://127.0.0.1:{}", 9000 + i)))
            .collect();
        let env: BTreeMap<String, String> = backend_urls(&urls).into_iter().collect();
        assert_eq!(
            env["SHOP_ORDERS_URL"],
            urls[&ComponentKind::CommandService(ServiceName::Orders)]
        );
        assert_eq!(
            env["SHOP_RECOMMENDATIONS_PROJECTOR_URL"],
            urls[&ComponentKind::Projector(ProjectorName::Recommendations)]
        );
        assert_eq!(env.len(), 8 + 10 + 1);
    }
}
