//! `shop projector` as a real process against an event store in this
//! process and the real RabbitMQ: killed with SIGKILL in the middle of a
//! 10,000-event load and restarted, it ends with the digest `shop replay`
//! gives; and `shop digest`/`shop replay` offline on a stopped system's data.

use std::{
    future::Future, panic::AssertUnwindSafe, path::Path, process::Command, sync::Arc,
    time::Duration,
};

use ::projectors::workload::{self, WorkloadOptions};
use event_store::server::{start, EventStoreConfig, RunningServer};
use futures::FutureExt;
use messaging::{
    AmqpConfig, AmqpTransport, Backoff, ConsumerName, ConsumerSpec, Namespace, SharedTransport,
};
use serde_json::Value;
use service_runtime::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::command_side::{eventually, free_address, ShopProcess, AMQP_URI, DEADLINE};

/// A transport on the real broker with a namespace no other test uses.
async fn test_transport() -> SharedTransport {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let namespace = Namespace::parse(&format!("test-projector-{}", &id[..12])).unwrap();
    let config = AmqpConfig::new(AMQP_URI, namespace)
        .with_connection_name("shop projector test")
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

/// The event store with its relay to the test namespace, in this process.
async fn store(data: &Path, transport: &SharedTransport, shutdown: &Shutdown) -> RunningServer {
    // A sink takes every event, so nothing the projector does not read is unroutable.
    let sink = ConsumerSpec::new(ConsumerName::parse("sink").unwrap(), ["#"]).unwrap();
    transport.declare_consumer(&sink).await.unwrap();
    let config = EventStoreConfig {
        amqp: Some(AMQP_URI.to_owned()),
        namespace: transport.namespace().to_string(),
        no_relay: false,
        ..EventStoreConfig::for_data_dir(data.join("event-store"))
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start(&config, listener, shutdown.clone()).await.unwrap()
}

fn spawn_projector(
    data: &Path,
    listen: &str,
    store_url: &str,
    transport: &SharedTransport,
) -> ShopProcess {
    ShopProcess::spawn(
        &["projector", "orders"],
        &[
            ("SHOP_DATA", data.display().to_string()),
            ("SHOP_LISTEN", listen.to_owned()),
            ("SHOP_STORE_URL", store_url.to_owned()),
            ("SHOP_AMQP", AMQP_URI.to_owned()),
            ("SHOP_NAMESPACE", transport.namespace().to_string()),
        ],
        &data.join("projector.log"),
    )
}

async fn status(http: &reqwest::Client, url: &str) -> Option<Value> {
    let response = http.get(format!("{url}/status")).send().await.ok()?;
    response.json().await.ok()
}

/// Runs `shop args…` to the end and returns its stdout.
fn shop(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "shop {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The digest in a `NAME DIGEST` line.
fn digest_of(name: &str, output: &str) -> String {
    let line = output
        .lines()
        .find(|line| line.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} line in {output:?}"));
    let digest = line.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(digest.len(), 64, "{line}");
    digest
}

/// Runs `body`, then deletes the namespace, then re-raises any panic.
async fn with_namespace<Fut: Future<Output = ()>>(body: impl FnOnce(SharedTransport) -> Fut) {
    let transport = test_transport().await;
    let outcome = AssertUnwindSafe(body(Arc::clone(&transport)))
        .catch_unwind()
        .await;
    transport
        .delete_namespace()
        .await
        .expect("cleanup deletes the namespace");
    transport.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_load_and_restarted_has_the_digest_of_a_replay() {
    let _one_system_at_a_time = crate::PROCESSES.lock().await;
    with_namespace(|transport| async move {
        let temp = tempfile::tempdir().unwrap();
        let data = temp.path();
        let shutdown = Shutdown::new();
        let server = store(data, &transport, &shutdown).await;
        let store_url = format!("http://{}", server.addr);
        let listen = free_address().to_string();
        let url = format!("http://{listen}");
        let http = reqwest::Client::new();

        let projector = spawn_projector(data, &listen, &store_url, &transport);
        eventually("the projector is ready", DEADLINE, || async {
            matches!(http.get(format!("{url}/ready")).send().await, Ok(r) if r.status().is_success())
        })
        .await;

        // 10,000 order events (the orders view reads every one of them).
        let history = workload::generate(WorkloadOptions { events: 60_000, ..WorkloadOptions::default() }).unwrap();
        let orders: Vec<_> = workload::new_events(&history, 99)
            .unwrap()
            .into_iter()
            .filter(|(stream, _)| stream.starts_with("order-"))
            .take(10_000)
            .collect();
        assert_eq!(orders.len(), 10_000);
        let total = orders.len() as u64;
        let load = {
            let store = server.store.clone();
            tokio::spawn(async move { workload::append_to_store(&store, orders, 8).await })
        };

        // Killed once it has applied some of the load.
        let applied = std::sync::atomic::AtomicU64::new(0);
        eventually("the projector applies part of the load", DEADLINE, || async {
            let now = status(&http, &url).await.and_then(|s| s["events_applied"].as_u64()).unwrap_or(0);
            applied.store(now, std::sync::atomic::Ordering::SeqCst);
            now >= 500
        })
        .await;
        let applied_at_kill = applied.load(std::sync::atomic::Ordering::SeqCst);
        projector.kill9();
        assert_eq!(load.await.unwrap().unwrap(), 10_000);
        assert!(applied_at_kill < total, "the kill came after the whole load was applied");

        // Restarted, it catches up with everything, each event applied once.
        let projector = spawn_projector(data, &listen, &store_url, &transport);
        eventually("the restarted projector has applied every event", DEADLINE, || async {
            match status(&http, &url).await {
                Some(s) => s["applied_position"].as_u64() == Some(total - 1) && s["lag_events"] == 0,
                None => false,
            }
        })
        .await;
        let status = status(&http, &url).await.unwrap();
        assert_eq!(status["events_applied"], total, "{status}");
        assert_eq!(status["dead_letters"], 0, "{status}");
        let live = digest_of("orders", &shop(&["digest", "orders", "--target", &url]));

        // A live replay rebuilds it beside and swaps it in: the same digest.
        let replayed = digest_of("orders", &shop(&["replay", "orders", "--quiet", "--target", &url]));
        assert_eq!(replayed, live);
        assert_eq!(digest_of("orders", &shop(&["digest", "orders", "--target", &url])), live);

        // Stopped, the offline commands agree too.
        let exit = projector.terminate().await;
        assert!(exit.success(), "{exit:?}");
        shutdown.trigger();
        server.wait().await.unwrap();
        let data_arg = data.display().to_string();
        assert_eq!(digest_of("orders", &shop(&["digest", "orders", "--data", &data_arg])), live);
        let offline = shop(&["replay", "--all", "--quiet", "--data", &data_arg]);
        assert_eq!(digest_of("orders", &offline), live);
        assert_eq!(offline.lines().count(), 10, "{offline}");
        assert_eq!(digest_of("carts", &offline), ::projectors::digest::empty());
    })
    .await;
}
