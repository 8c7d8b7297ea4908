//! Integration tests of the messaging layer: against the real RabbitMQ on
//! 127.0.0.1:5672, and the same behaviour against the memory transport.
//! Every test has its own namespace and deletes what it declared.

mod behaviour;
mod broker;
mod memory;

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use messaging::{
    AmqpConfig, AmqpTransport, Backoff, ConsumerName, ConsumerSpec, Delivery, MemoryTransport,
    MessageHeaders, Namespace, OutgoingMessage, SharedTransport,
};

/// Where the test broker listens.
pub const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// How long any single wait in a test may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A namespace no other test uses.
pub fn unique_namespace() -> Namespace {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Namespace::parse(&format!("test-{}", &id[..12])).unwrap()
}

/// A connection name no other test uses, to find the connection on the broker.
pub fn unique_connection_name(what: &str) -> String {
    format!("{what} {}", uuid::Uuid::new_v4().simple())
}

/// A transport on the real broker with fast reconnects.
pub async fn amqp_transport(namespace: Namespace, connection_name: &str) -> AmqpTransport {
    let config = AmqpConfig::new(AMQP_URI, namespace)
        .with_connection_name(connection_name)
        .with_backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        });
    AmqpTransport::connect(config)
        .await
        .expect("RabbitMQ must run on 127.0.0.1:5672 for these tests")
}

/// Runs `body` with a fresh transport of each kind and cleans the namespace
/// up afterwards, even when the body fails.
pub async fn on_both<F, Fut>(body: F)
where
    F: Fn(SharedTransport) -> Fut,
    Fut: Future<Output = ()>,
{
    let amqp = amqp_transport(
        unique_namespace(),
        &unique_connection_name("messaging test"),
    )
    .await;
    with_cleanup(Arc::new(amqp), &body).await;
    with_cleanup(Arc::new(MemoryTransport::new(unique_namespace())), &body).await;
}

/// Runs `body`, then deletes the transport's namespace, then re-raises any panic.
pub async fn with_cleanup<F, Fut>(transport: SharedTransport, body: &F)
where
    F: Fn(SharedTransport) -> Fut,
    Fut: Future<Output = ()>,
{
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

/// A consumer spec with the given bindings.
pub fn spec(name: &str, bindings: &[&str]) -> ConsumerSpec {
    ConsumerSpec::new(ConsumerName::parse(name).unwrap(), bindings.iter().copied()).unwrap()
}

/// A message whose body is `body` and whose stream/version identify it.
pub fn message(routing_key: &str, stream: &str, version: u64) -> OutgoingMessage {
    OutgoingMessage {
        routing_key: routing_key.to_owned(),
        body: format!("{stream}@{version}").into_bytes(),
        headers: MessageHeaders {
            stream: Some(stream.to_owned()),
            version: Some(version),
            ..MessageHeaders::default()
        },
    }
}

/// The body of a delivery as text.
pub fn body(delivery: &Delivery) -> String {
    String::from_utf8_lossy(&delivery.body).into_owned()
}

/// Takes deliveries from `consumer` (acknowledging each batch) until `done`
/// says so; fails after [`DEADLINE`].
pub async fn consume_until(
    consumer: &mut Box<dyn messaging::Consumer>,
    mut done: impl FnMut(&[Delivery]) -> bool,
) -> Vec<Delivery> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done(&seen) {
        let batch = tokio::time::timeout_at(
            deadline,
            consumer.next_batch(256, Duration::from_millis(20)),
        )
        .await
        .expect("deliveries arrive before the deadline")
        .expect("next_batch works");
        if let Some(last) = batch.last() {
            consumer.ack_up_to(last.tag).await.unwrap();
        }
        seen.extend(batch);
    }
    seen
}

/// Polls `check` until it returns true; fails after [`DEADLINE`].
pub async fn eventually<Fut>(what: &str, mut check: impl FnMut() -> Fut)
where
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(5);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        // Polling interval, not synchronisation: the condition is re-checked.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
