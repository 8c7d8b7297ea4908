//! What the store tests share: temporary stores, events, waiting on conditions.

use std::path::Path;
use std::time::Duration;

use domain::envelope::NewEvent;
use event_store::server::{self, EventStoreConfig, RunningServer};
use event_store::{Store, StoreOptions};
use service_runtime::shutdown::Shutdown;
use tempfile::TempDir;
use uuid::Uuid;

/// How long any wait in these tests may take before it counts as a failure.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// An event with a fresh id and `data`.
pub fn event(data: serde_json::Value) -> NewEvent {
    event_with_id(Uuid::new_v4(), data)
}

/// An event with the given id and `data`.
pub fn event_with_id(event_id: Uuid, data: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id,
        event_type: "Happened".into(),
        schema_version: 1,
        data: data.to_string(),
        metadata: r#"{"actor":"test"}"#.into(),
    }
}

/// A store in a fresh temporary directory (deleted when the `TempDir` is dropped).
pub async fn temp_store() -> (TempDir, Store) {
    temp_store_with(StoreOptions::default()).await
}

/// Like [`temp_store`], with options.
pub async fn temp_store_with(options: StoreOptions) -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(dir.path(), options)
        .await
        .expect("the store opens");
    (dir, store)
}

/// Shuts `store` down and opens the same directory again.
pub async fn reopen(store: Store, dir: &Path, options: StoreOptions) -> Store {
    store
        .shutdown()
        .await
        .expect("the store shuts down cleanly");
    drop(store);
    Store::open(dir, options).await.expect("the store reopens")
}

/// A real event store server on a loopback port, with a fresh data directory.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Fires the server's shutdown.
    pub shutdown: Shutdown,
    /// The running server (its store included).
    pub running: RunningServer,
    /// The data directory.
    pub dir: TempDir,
}

/// Starts a server on port 0 over a temporary directory.
pub async fn spawn_server() -> TestServer {
    let dir = tempfile::tempdir().expect("a temporary directory");
    spawn_server_in(dir, "127.0.0.1:0").await
}

/// Starts a server over `dir`, listening on `addr`.
pub async fn spawn_server_in(dir: TempDir, addr: &str) -> TestServer {
    spawn_configured_in(dir, addr, |_| {}).await
}

/// Starts a server over a fresh directory with `configure`'s changes.
pub async fn spawn_server_configured(configure: impl FnOnce(&mut EventStoreConfig)) -> TestServer {
    let dir = tempfile::tempdir().expect("a temporary directory");
    spawn_configured_in(dir, "127.0.0.1:0", configure).await
}

async fn spawn_configured_in(
    dir: TempDir,
    addr: &str,
    configure: impl FnOnce(&mut EventStoreConfig),
) -> TestServer {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("a port to listen on");
    let shutdown = Shutdown::new();
    let mut config = EventStoreConfig::for_data_dir(dir.path());
    configure(&mut config);
    let running = server::start(&config, listener, shutdown.clone())
        .await
        .expect("the server starts");
    TestServer {
        url: format!("http://{}", running.addr),
        shutdown,
        running,
        dir,
    }
}

impl TestServer {
    /// Stops the server and waits until it has drained and closed the store.
    pub async fn stop(self) -> TempDir {
        self.shutdown.trigger();
        self.running.wait().await.expect("the server stops cleanly");
        self.dir
    }
}

/// The store's segment files, in order.
pub fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("the log directory")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    paths.sort();
    paths
}
