//! Helpers of the command-side process tests: spawning `shop` subcommands,
//! waiting on conditions, a broker namespace of the test's own, and reading
//! aggregates back from the store.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::decider::Decider;
use event_store::client::StoreClient;
use messaging::{AmqpConfig, AmqpTransport, Backoff, Namespace, SharedTransport};

/// Where the test broker listens.
pub const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// How long a wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// Waits until `condition` holds, polling; fails the test after `deadline`.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback address with a port the OS had free a moment ago.
pub fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A `shop` child process, killed when dropped.
pub struct ShopProcess {
    child: Child,
}

impl ShopProcess {
    /// Spawns `shop args…` with `envs`, its output appended to `log`.
    pub fn spawn(args: &[&str], envs: &[(&str, String)], log: &Path) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shop"))
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .env(
                "RUST_LOG",
                std::env::var("SHOP_TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Self { child }
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "shop did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ShopProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A transport on the real broker with a namespace no other test uses.
pub async fn test_transport() -> SharedTransport {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let namespace = Namespace::parse(&format!("test-cmd-{}", &id[..12])).unwrap();
    let config = AmqpConfig::new(AMQP_URI, namespace)
        .with_connection_name("shop command-side test")
        .with_backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        });
    Arc::new(
        AmqpTransport::connect(config)
            .await
            .expect("RabbitMQ must run on 127.0.0.1:5672 for these tests"),
    )
}

/// The folded state of an aggregate's stream, and its records.
pub async fn read<A: Decider>(
    store: &StoreClient,
    stream: &str,
) -> (A::State, Vec<domain::envelope::RecordedEvent>) {
    let events = match store
        .read_stream(stream, 0, 10_000, event_store::Direction::Forward)
        .await
    {
        Ok(events) => events,
        Err(event_store::client::ClientError::StreamNotFound { .. }) => Vec::new(),
        Err(error) => panic!("cannot read {stream}: {error}"),
    };
    let state = events.iter().fold(A::State::default(), |state, record| {
        A::evolve(state, &command_services::wire::decode::<A>(record).unwrap())
    });
    (state, events)
}
