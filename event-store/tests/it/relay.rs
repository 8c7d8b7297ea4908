//! The relay against the real RabbitMQ (and once against the memory transport).

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    panic::AssertUnwindSafe,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use domain::envelope::{NewEvent, RecordedEvent};
use event_store::{
    relay::{checkpoint, Relay, RelayOptions},
    ExpectedVersion, Store, StoreOptions,
};
use futures::FutureExt;
use messaging::{
    AmqpConfig, AmqpTransport, Backoff, Consumer, ConsumerName, ConsumerSpec, Delivery,
    MemoryTransport, Namespace, QueueRole, SharedTransport, Transport,
};
use service_runtime::shutdown::Shutdown;
use tokio::{process::Command, task::JoinHandle};
use uuid::Uuid;

const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEADLINE: Duration = Duration::from_secs(60);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

async fn amqp(namespace: &Namespace, connection_name: &str) -> AmqpTransport {
    let config = AmqpConfig::new(AMQP_URI, namespace.clone())
        .with_connection_name(connection_name)
        .with_backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        });
    AmqpTransport::connect(config)
        .await
        .expect("RabbitMQ must run on 127.0.0.1:5672 for these tests")
}

fn fast_retries() -> RelayOptions {
    RelayOptions {
        retry: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        checkpoint_interval: Duration::from_millis(50),
        ..RelayOptions::default()
    }
}

fn event(i: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "OrderPlaced".into(),
        schema_version: 1,
        data: format!(r#"{{"n":{i}}}"#),
        metadata: "{}".into(),
    }
}

async fn append_one(store: &Store, stream: &str, event_type: &str) {
    let mut new = event(0);
    new.event_type = event_type.into();
    store
        .append(stream, ExpectedVersion::Any, vec![new])
        .await
        .unwrap();
}

/// The pids of the broker connections named `name`.
async fn connections_named(name: &str) -> Vec<String> {
    let output = Command::new("rabbitmqctl")
        .args(["--quiet", "list_connections", "pid", "client_properties"])
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl list_connections failed"
    );
    let quoted = format!("\"{name}\"");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&quoted))
        .filter_map(|line| line.split('\t').next().map(str::to_owned))
        .collect()
}

/// Closes, from the broker's side, the connections with these pids.
async fn close_connections(pids: &[String]) {
    for pid in pids {
        let status = Command::new("rabbitmqctl")
            .args([
                "--quiet",
                "close_connection",
                pid,
                "relay test: connection dropped",
            ])
            .status()
            .await
            .expect("rabbitmqctl runs");
        assert!(status.success(), "rabbitmqctl close_connection failed");
    }
}

async fn wait_for_checkpoint(checkpoint: &mut tokio::sync::watch::Receiver<u64>, at_least: u64) {
    let reached = tokio::time::timeout(DEADLINE, checkpoint.wait_for(|p| *p >= at_least))
        .await
        .map(|outcome| outcome.is_ok());
    assert!(
        matches!(reached, Ok(true)),
        "the relay checkpoint stayed at {} instead of reaching {at_least}",
        *checkpoint.borrow()
    );
}

/// Takes deliveries, acknowledging them, until `done`.
async fn consume_until(
    consumer: &mut Box<dyn Consumer>,
    mut done: impl FnMut(&[Delivery]) -> bool,
) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while !done(&seen) {
        let batch = tokio::time::timeout_at(
            deadline,
            consumer.next_batch(1000, Duration::from_millis(20)),
        )
        .await
        .unwrap_or_else(|_| panic!("only {} deliveries before the deadline", seen.len()))
        .unwrap();
        if let Some(last) = batch.last() {
            consumer.ack_up_to(last.tag).await.unwrap();
        }
        seen.extend(batch);
    }
    seen
}

fn start_relay(
    store: &Store,
    transport: SharedTransport,
    options: RelayOptions,
) -> (
    tokio::sync::watch::Receiver<u64>,
    Shutdown,
    JoinHandle<anyhow::Result<()>>,
) {
    let relay = Relay::new(store.clone(), transport, options).unwrap();
    let checkpoint = relay.watch_checkpoint();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    (checkpoint, shutdown, task)
}

/// Runs `body`, then deletes `consumers`' queues and the exchanges of
/// `namespace` even if the body failed, then re-raises any failure.
async fn cleaning_up(namespace: &Namespace, consumers: &[&str], body: impl Future<Output = ()>) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    let cleaner = amqp(namespace, &unique("relay test cleanup")).await;
    for consumer in consumers {
        cleaner
            .delete_consumer_topology(&ConsumerName::parse(consumer).unwrap())
            .await
            .unwrap();
    }
    cleaner.delete_namespace().await.unwrap();
    cleaner.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `scenario` against RabbitMQ in a namespace of its own (deleting
/// `consumers`' queues after), then against the in-process transport.
async fn on_both_transports<Fut: Future<Output = ()>>(
    consumers: &[&str],
    scenario: impl Fn(SharedTransport, Namespace) -> Fut,
) {
    let namespace = Namespace::parse(&unique("relay-test")).unwrap();
    cleaning_up(&namespace, consumers, async {
        let transport: SharedTransport = Arc::new(amqp(&namespace, &unique("relay test")).await);
        scenario(Arc::clone(&transport), namespace.clone()).await;
        transport.close().await;
    })
    .await;

    let namespace = Namespace::parse(&unique("relay-test")).unwrap();
    let memory: SharedTransport = Arc::new(MemoryTransport::new(namespace.clone()));
    scenario(memory, namespace).await;
}

fn stored_checkpoint(dir: &Path, namespace: &Namespace) -> u64 {
    checkpoint::read(&checkpoint::path(dir, namespace)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_a_bound_queue_in_order_per_stream_though_the_broker_drops_the_relay_midway(
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let namespace = Namespace::parse(&unique("relay-test")).unwrap();
    cleaning_up(&namespace, &["check"], async {
        let relay_connection = unique("relay test");
        let checker = amqp(&namespace, &unique("relay test checker")).await;
        let spec = ConsumerSpec::new(ConsumerName::parse("check").unwrap(), ["#"])
            .unwrap()
            .with_prefetch(2000);
        let mut consumer = checker.consumer(&spec).await.unwrap();
        let relay_transport = Arc::new(amqp(&namespace, &relay_connection).await);
        // Found now, so that dropping it later is one quick command.
        let relay_pids = connections_named(&relay_connection).await;
        assert_eq!(relay_pids.len(), 1, "the relay has one connection");
        let (mut checkpoint, shutdown, relay) =
            start_relay(&store, relay_transport.clone(), fast_retries());

        // Twenty writers over a hundred streams, until there are 10,000 events
        // and the connection has been dropped.
        const TARGET: u64 = 10_000;
        let dropped = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for writer in 0..20u64 {
            let store = store.clone();
            let dropped = Arc::clone(&dropped);
            writers.push(tokio::spawn(async move {
                let mut i = 0u64;
                while store.head() < TARGET || !dropped.load(Ordering::SeqCst) {
                    let stream = format!("order-{}", writer * 5 + i % 5);
                    store
                        .append(&stream, ExpectedVersion::Any, vec![event(i)])
                        .await
                        .unwrap();
                    i += 1;
                }
            }));
        }

        wait_for_checkpoint(&mut checkpoint, 3000).await;
        close_connections(&relay_pids).await;
        let lag_at_drop = store.head() - *checkpoint.borrow();
        dropped.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.await.unwrap();
        }
        let head = store.head();
        assert!(head >= TARGET);
        wait_for_checkpoint(&mut checkpoint, head).await;

        // Every event reached the queue at least once...
        let mut positions = BTreeSet::new();
        let deliveries = consume_until(&mut consumer, |seen| {
            positions.extend(seen.iter().filter_map(|d| d.headers.position));
            positions.len() as u64 >= head
        })
        .await;
        let positions: BTreeSet<u64> = deliveries
            .iter()
            .filter_map(|d| d.headers.position)
            .collect();
        assert_eq!(positions, (0..head).collect::<BTreeSet<u64>>());

        // ...as it is in the store, with the store's id...
        let stored: BTreeMap<u64, RecordedEvent> = store
            .read_all(0, head as usize)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.position, e))
            .collect();
        for delivery in &deliveries {
            let event: RecordedEvent = delivery.decode_event().unwrap();
            assert_eq!(&event, &stored[&event.position]);
            assert_eq!(delivery.routing_key, "order.OrderPlaced");
            assert_eq!(delivery.headers.store_id, Some(store.store_id()));
            assert_eq!(delivery.headers.event_id, Some(event.event_id));
            assert_eq!(
                delivery.headers.stream.as_deref(),
                Some(event.stream.as_str())
            );
            assert_eq!(delivery.headers.version, Some(event.version));
            assert_eq!(delivery.headers.position, Some(event.position));
        }
        // ...and in order per stream: a version never shows up before every
        // lower version of its stream has (repeats after a re-send are fine).
        let mut next_new: BTreeMap<String, u64> = BTreeMap::new();
        for delivery in &deliveries {
            let stream = delivery.headers.stream.clone().unwrap();
            let version = delivery.headers.version.unwrap();
            let expected = next_new.entry(stream.clone()).or_insert(0);
            assert!(
                version <= *expected,
                "{stream} version {version} arrived before version {expected}"
            );
            if version == *expected {
                *expected += 1;
            }
        }
        let redelivered = deliveries.len() as u64 - head;
        eprintln!(
            "{head} events, {lag_at_drop} not yet confirmed when the connection was dropped, \
             {redelivered} published twice"
        );

        // The relay reconnected on a new connection, and stops cleanly with its
        // checkpoint at the head.
        let after = connections_named(&relay_connection).await;
        assert_eq!(after.len(), 1);
        assert_ne!(after, relay_pids);
        shutdown.trigger();
        relay.await.unwrap().unwrap();
        assert_eq!(stored_checkpoint(dir.path(), &namespace), head);

        checker.close().await;
        relay_transport.close().await;
    })
    .await;
    store.shutdown().await.unwrap();
}

/// The relay's count of unroutable events of `category` in `rendered`, the
/// text `/metrics` shows.
fn unroutable_count(rendered: &str, category: &str) -> u64 {
    let series = format!("relay_unroutable_total{{category=\"{category}\"}} ");
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// Positions of `deliveries`, in the order they came.
fn positions(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries
        .iter()
        .filter_map(|d| d.headers.position)
        .collect()
}

async fn unroutable_events_are_skipped(transport: SharedTransport, namespace: Namespace) {
    let metrics = service_runtime::metrics::install();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let orders = ConsumerSpec::new(ConsumerName::parse("orders").unwrap(), ["order.*"]).unwrap();
    let mut orders_consumer = transport.consumer(&orders).await.unwrap();
    // Nothing is bound for the stock and shipment events.
    append_one(&store, "order-1", "OrderPlaced").await;
    append_one(&store, "stock-A", "StockReserved").await;
    append_one(&store, "shipment-1", "ShipmentCreated").await;
    append_one(&store, "order-1", "OrderConfirmed").await;
    append_one(&store, "stock-A", "StockReserved").await;
    append_one(&store, "order-2", "OrderPlaced").await;
    let stock_before = unroutable_count(&metrics.render(), "stock");
    let shipment_before = unroutable_count(&metrics.render(), "shipment");
    let (mut checkpoint, shutdown, relay) = start_relay(&store, transport.clone(), fast_retries());

    // The relay moves past them to the head...
    wait_for_checkpoint(&mut checkpoint, 6).await;
    // ...and the bound events arrive, in order.
    let got = consume_until(&mut orders_consumer, |seen| seen.len() >= 3).await;
    assert_eq!(positions(&got), [0, 3, 5]);
    assert_eq!(
        unroutable_count(&metrics.render(), "stock") - stock_before,
        2
    );
    assert_eq!(
        unroutable_count(&metrics.render(), "shipment") - shipment_before,
        1
    );

    // Events appended after a queue is bound for them reach it; what was
    // skipped before is not sent again (that consumer catches up from the
    // store when it starts).
    let stock = ConsumerSpec::new(ConsumerName::parse("stock").unwrap(), ["stock.*"]).unwrap();
    let mut stock_consumer = transport.consumer(&stock).await.unwrap();
    append_one(&store, "stock-A", "StockReleased").await;
    append_one(&store, "shipment-1", "ShipmentDispatched").await;
    append_one(&store, "order-2", "OrderConfirmed").await;
    wait_for_checkpoint(&mut checkpoint, 9).await;
    let got = consume_until(&mut stock_consumer, |seen| !seen.is_empty()).await;
    assert_eq!(positions(&got), [6]);
    assert_eq!(got[0].routing_key, "stock.StockReleased");
    let got = consume_until(&mut orders_consumer, |seen| !seen.is_empty()).await;
    assert_eq!(positions(&got), [8]);
    assert_eq!(
        unroutable_count(&metrics.render(), "shipment") - shipment_before,
        2
    );
    assert_eq!(
        unroutable_count(&metrics.render(), "stock") - stock_before,
        2
    );

    shutdown.trigger();
    relay.await.unwrap().unwrap();
    assert_eq!(stored_checkpoint(dir.path(), &namespace), 9);
    for (consumer, name) in [(&orders, "orders"), (&stock, "stock")] {
        assert_eq!(
            transport
                .ready_messages(&consumer.name, QueueRole::Main)
                .await
                .unwrap(),
            0,
            "nothing more waits in {name}"
        );
    }
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_relay_moves_past_events_no_queue_is_bound_for_and_later_bound_events_still_arrive_in_order(
) {
    on_both_transports(&["orders", "stock"], unroutable_events_are_skipped).await;
}

/// The relay's count of events of `category` it did not publish.
fn unpublished_count(rendered: &str, category: &str) -> u64 {
    let series = format!("relay_unpublished_total{{category=\"{category}\"}} ");
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

async fn unpublished_categories_stay_in_the_store(
    transport: SharedTransport,
    namespace: Namespace,
) {
    let metrics = service_runtime::metrics::install();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let all = ConsumerSpec::new(ConsumerName::parse("all").unwrap(), ["#"]).unwrap();
    let mut all_consumer = transport.consumer(&all).await.unwrap();
    // Unpublished events first, between published ones, several in a row,
    // and last; a small window and small reads put them at every edge.
    for (stream, event_type) in [
        ("fulfillment-1", "FulfillmentStarted"),
        ("order-1", "OrderPlaced"),
        ("fulfillment-1", "ReservationNoted"),
        ("fulfillment-1", "PaymentRequested"),
        ("order-1", "OrderConfirmed"),
        ("order-2", "OrderPlaced"),
        ("fulfillment-2", "FulfillmentStarted"),
        ("fulfillment-2", "ReservationNoted"),
    ] {
        append_one(&store, stream, event_type).await;
    }
    let before = unpublished_count(&metrics.render(), "fulfillment");
    let options = RelayOptions {
        window: 3,
        read_batch: 2,
        ..fast_retries()
    };
    assert_eq!(
        options.unpublished,
        domain::catalogue::UNPUBLISHED_CATEGORIES,
        "the default"
    );
    let (mut checkpoint, shutdown, relay) = start_relay(&store, transport.clone(), options);

    // The checkpoint reaches the head, past the unpublished tail too...
    wait_for_checkpoint(&mut checkpoint, 8).await;
    // ...and a queue bound for everything got only the published events.
    let got = consume_until(&mut all_consumer, |seen| seen.len() >= 3).await;
    assert_eq!(positions(&got), [1, 4, 5]);
    assert_eq!(
        unpublished_count(&metrics.render(), "fulfillment") - before,
        5
    );
    shutdown.trigger();
    relay.await.unwrap().unwrap();
    assert_eq!(stored_checkpoint(dir.path(), &namespace), 8);
    assert_eq!(
        transport
            .ready_messages(&all.name, QueueRole::Main)
            .await
            .unwrap(),
        0,
        "nothing else was published"
    );

    // With no category unpublished, the saga's events go out like any other.
    append_one(&store, "fulfillment-2", "PaymentRequested").await;
    append_one(&store, "order-2", "OrderConfirmed").await;
    let options = RelayOptions {
        unpublished: Vec::new(),
        ..fast_retries()
    };
    let (mut checkpoint, shutdown, relay) = start_relay(&store, transport.clone(), options);
    wait_for_checkpoint(&mut checkpoint, 10).await;
    let got = consume_until(&mut all_consumer, |seen| seen.len() >= 2).await;
    assert_eq!(positions(&got), [8, 9]);
    assert_eq!(got[0].routing_key, "fulfillment.PaymentRequested");
    shutdown.trigger();
    relay.await.unwrap().unwrap();
    assert_eq!(stored_checkpoint(dir.path(), &namespace), 10);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn events_of_unpublished_categories_are_not_published_and_the_checkpoint_moves_past_them() {
    on_both_transports(&["all"], unpublished_categories_stay_in_the_store).await;
}

async fn restart_resumes_from_the_checkpoint(transport: SharedTransport, namespace: Namespace) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let all = ConsumerSpec::new(ConsumerName::parse("all").unwrap(), ["#"]).unwrap();
    transport.declare_consumer(&all).await.unwrap();
    for i in 0..100 {
        append_one(&store, &format!("order-{}", i % 7), "OrderPlaced").await;
    }
    let (mut checkpoint, shutdown, relay) = start_relay(&store, transport.clone(), fast_retries());
    wait_for_checkpoint(&mut checkpoint, 100).await;
    shutdown.trigger();
    relay.await.unwrap().unwrap();
    assert_eq!(stored_checkpoint(dir.path(), &namespace), 100);

    for i in 0..50 {
        append_one(&store, &format!("stock-{}", i % 3), "StockReserved").await;
    }
    let (mut checkpoint, shutdown, relay) = start_relay(&store, transport.clone(), fast_retries());
    assert_eq!(*checkpoint.borrow(), 100, "resumes where it stopped");
    wait_for_checkpoint(&mut checkpoint, 150).await;
    shutdown.trigger();
    relay.await.unwrap().unwrap();
    assert_eq!(stored_checkpoint(dir.path(), &namespace), 150);

    let mut consumer = transport.consumer(&all).await.unwrap();
    let got = consume_until(&mut consumer, |seen| seen.len() >= 150).await;
    let positions: Vec<u64> = got.iter().filter_map(|d| d.headers.position).collect();
    assert_eq!(
        positions,
        (0..150).collect::<Vec<u64>>(),
        "each event once, in order"
    );
    assert_eq!(
        transport
            .ready_messages(&all.name, QueueRole::Main)
            .await
            .unwrap(),
        0
    );
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restarted_relay_resumes_from_its_checkpoint_without_publishing_confirmed_events_again() {
    on_both_transports(&["all"], restart_resumes_from_the_checkpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_file_follows_the_confirms_while_the_relay_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let namespace = Namespace::parse(&unique("relay-test")).unwrap();
    let transport: SharedTransport = Arc::new(MemoryTransport::new(namespace.clone()));
    let all = ConsumerSpec::new(ConsumerName::parse("all").unwrap(), ["#"]).unwrap();
    transport.declare_consumer(&all).await.unwrap();
    let (mut checkpoint, shutdown, relay) = start_relay(&store, transport.clone(), fast_retries());
    for round in 1..=3u64 {
        for i in 0..50 {
            append_one(&store, &format!("order-{}", i % 7), "OrderPlaced").await;
        }
        wait_for_checkpoint(&mut checkpoint, round * 50).await;
        // Polling the file with a deadline: it is written in the background.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while stored_checkpoint(dir.path(), &namespace) != round * 50 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the checkpoint file stayed at {}",
                stored_checkpoint(dir.path(), &namespace)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(
        !relay.is_finished(),
        "written while running, not on the way out"
    );
    shutdown.trigger();
    relay.await.unwrap().unwrap();
    assert_eq!(stored_checkpoint(dir.path(), &namespace), 150);
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_checkpoint_past_the_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let namespace = Namespace::parse("relay-test-past-head").unwrap();
    checkpoint::write(&checkpoint::path(dir.path(), &namespace), 5).unwrap();
    let transport: SharedTransport = Arc::new(MemoryTransport::new(namespace));
    let error = Relay::new(store.clone(), transport, RelayOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("past the store's head"),
        "{error}"
    );
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_relay_stops_on_shutdown_while_the_broker_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    append_one(&store, "order-1", "OrderPlaced").await;
    let shutdown = Shutdown::new();
    let mut relay = tokio::spawn(event_store::relay::run_amqp_relay(
        store.clone(),
        "amqp://guest:guest@127.0.0.1:1/%2f".to_owned(),
        Namespace::parse("relay-test-unreachable").unwrap(),
        RelayOptions::default(),
        shutdown.clone(),
    ));
    // It keeps trying rather than giving up...
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut relay)
            .await
            .is_err(),
        "the relay gave up on an unreachable broker"
    );
    // ...until it is told to stop.
    shutdown.trigger();
    tokio::time::timeout(DEADLINE, relay)
        .await
        .expect("the relay stops promptly")
        .unwrap()
        .unwrap();
    store.shutdown().await.unwrap();
}
