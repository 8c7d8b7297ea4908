//! The consumer runtime against the real RabbitMQ on 127.0.0.1:5672 (and
//! the in-process transport), each test in its own namespace, deleted
//! afterwards.

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use domain::envelope::RecordedEvent;
use futures::FutureExt;
use messaging::{
    AmqpConfig, AmqpTransport, Backoff, Delivery, MemoryTransport, MessageHeaders, Namespace,
    OutgoingMessage, QueueRole, SharedTransport,
};
use projectors::{
    runtime::{Projector, RuntimeSettings},
    source::MemorySource,
    workload, ProjectorName,
};
use service_runtime::shutdown::Shutdown;
use uuid::Uuid;

use crate::support::*;

const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const DEADLINE: Duration = Duration::from_secs(30);

fn unique_namespace() -> Namespace {
    let id = Uuid::new_v4().simple().to_string();
    Namespace::parse(&format!("test-proj-{}", &id[..12])).unwrap()
}

async fn amqp() -> SharedTransport {
    let config = AmqpConfig::new(AMQP_URI, unique_namespace())
        .with_connection_name("projectors test")
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

/// Runs `body` on the transport, then deletes its namespace, then re-raises any panic.
async fn with_cleanup<Fut: Future<Output = ()>>(
    transport: SharedTransport,
    body: impl FnOnce(SharedTransport) -> Fut,
) {
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

fn settings() -> RuntimeSettings {
    RuntimeSettings {
        max_attempts: 2,
        linger: Duration::from_millis(1),
        // No idle sweep during a test: a sweep reads the whole store, which
        // holds events the tests publish to nobody on purpose (the poison
        // test checks that a foreign copy of one changes nothing).
        idle_sweep: Duration::from_secs(3600),
        ..RuntimeSettings::default()
    }
}

fn message_for(event: &RecordedEvent, store: Uuid) -> OutgoingMessage {
    OutgoingMessage::for_event(event, store).unwrap()
}

/// Waits (bounded) until the projector applied `version` of `stream`.
async fn applied(projector: &Projector, stream: &str, version: u64) {
    let got = projector
        .position(stream, Some(version), DEADLINE)
        .await
        .unwrap();
    assert_eq!(
        got,
        Some(version),
        "{stream} never reached version {version}"
    );
}

/// Waits (bounded) until the consumer has read the store once: what a test
/// adds to the store afterwards reaches the projector only the way the test
/// sends it, not through that first catch-up.
async fn first_catch_up_done(projector: &Projector) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !projector.is_caught_up() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projector never caught up with the store"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads dead letters until `count` arrived (bounded).
async fn dead_letters(
    transport: &SharedTransport,
    projector: &Projector,
    count: usize,
) -> Vec<Delivery> {
    let spec = projector.consumer_spec().unwrap();
    let mut consumer = transport.dead_letter_consumer(&spec).await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while got.len() < count {
        let batch = tokio::time::timeout_at(
            deadline,
            consumer.next_batch(count, Duration::from_millis(10)),
        )
        .await
        .expect("dead letters arrive in time")
        .unwrap();
        for delivery in batch {
            consumer.ack(delivery.tag).await.unwrap();
            got.push(delivery);
        }
    }
    got
}

/// A projector consuming: it, what stops it, and its consume task.
type Consuming = (
    Arc<Projector>,
    Shutdown,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// A projector over an in-memory view consuming its queue, declared
/// first so that nothing published after this returns is unroutable.
async fn consuming(
    name: ProjectorName,
    source: Arc<MemorySource>,
    transport: &SharedTransport,
    settings: RuntimeSettings,
) -> Consuming {
    let projector =
        Projector::temporary(name, source, Some(Arc::clone(transport)), settings).unwrap();
    transport
        .declare_consumer(&projector.consumer_spec().unwrap())
        .await
        .unwrap();
    let shutdown = Shutdown::new();
    let consumer =
        tokio::spawn(Arc::clone(&projector).consume(Arc::clone(transport), shutdown.clone()));
    (projector, shutdown, consumer)
}

/// An orders projector consuming, past its first catch-up, and the three
/// events of one order (placed, confirmed, shipped) for a test to send it.
async fn one_order_to_project(
    source: Arc<MemorySource>,
    transport: &SharedTransport,
    settings: RuntimeSettings,
) -> (Consuming, Vec<RecordedEvent>) {
    let consuming = consuming(ProjectorName::Orders, source, transport, settings).await;
    first_catch_up_done(&consuming.0).await;
    let events = workload::record(&[
        placed(1, 1, &[("MUG", 1, 1000)], 0),
        confirmed(1, 1),
        shipped(1, 2),
    ])
    .unwrap();
    (consuming, events)
}

async fn poison_scenario(transport: SharedTransport) {
    let store_id = Uuid::from_u128(77);
    let source = Arc::new(MemorySource::new(store_id));
    let (projector, shutdown, consumer) = consuming(
        ProjectorName::Orders,
        source.clone(),
        &transport,
        settings(),
    )
    .await;
    first_catch_up_done(&projector).await;
    let mut publisher = transport.publisher().await.unwrap();

    let history = workload::record(&[
        placed(1, 1, &[("MUG", 1, 1000)], 0),
        confirmed(1, 1),
        placed(2, 1, &[("TEA", 1, 500)], 2),
        shipped(1, 3),
    ])
    .unwrap();
    let stream = history[0].stream.clone();

    // 1. A body that is not an event, then a good event.
    let garbage = OutgoingMessage {
        routing_key: "order.OrderPlaced".into(),
        body: b"\x00not an event".to_vec(),
        headers: MessageHeaders::default(),
    };
    publisher.publish(&garbage).await.unwrap();
    source.push(history[0].clone());
    publisher
        .publish(&message_for(&history[0], store_id))
        .await
        .unwrap();
    applied(&projector, &stream, 0).await;

    // 2. A stored event whose payload does not decode, then its stream's next event.
    let mut bad = history[1].clone();
    bad.data = r#"{"order_id": 5}"#.into();
    source.push(bad.clone());
    source.push(history[2].clone());
    source.push(history[3].clone());
    publisher
        .publish(&message_for(&bad, store_id))
        .await
        .unwrap();
    publisher
        .publish(&message_for(&history[3], store_id))
        .await
        .unwrap();
    applied(&projector, &stream, 2).await;

    // 3. A message from another store.
    let mut foreign = message_for(&history[2], Uuid::from_u128(666));
    foreign.headers.store_id = Some(Uuid::from_u128(666));
    publisher.publish(&foreign).await.unwrap();

    // `/status` reports them (the broker's count, asked again after each
    // dead letter of this process and at most once a second otherwise).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let reported = projector.status().await.unwrap().dead_letters;
        if reported == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status reports {reported} dead letters"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let letters = dead_letters(&transport, &projector, 3).await;
    let reasons: Vec<String> = letters
        .iter()
        .map(|d| {
            d.headers
                .dead_letter_reason()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("undecodable message body")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("invalid OrderConfirmed payload")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("event store 00000000-0000-0000-0000-00000000029a")),
        "{reasons:?}"
    );
    let garbage_letter = letters.iter().find(|d| d.body == garbage.body).unwrap();
    assert_eq!(
        garbage_letter
            .headers
            .extra
            .get("x-original-routing-key")
            .map(String::as_str),
        Some("order.OrderPlaced")
    );

    // The view went on: the shipment after the poison is there, the foreign
    // message changed nothing.
    let doc = projector
        .projection()
        .document(&projector.db(), "orders", &order_id(1).to_string())
        .unwrap()
        .unwrap();
    assert_eq!(doc["status"], "SHIPPED");
    assert_eq!(projector.db().position(&history[2].stream).unwrap(), None);
    let status = projector.status().await.unwrap();
    assert_eq!(status.skipped, 1);

    shutdown.trigger();
    consumer.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_retried_then_dead_lettered_with_their_reason_and_the_next_is_applied()
{
    with_cleanup(amqp().await, poison_scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_land_in_the_dead_letter_queue_of_the_memory_transport_too() {
    with_cleanup(
        Arc::new(MemoryTransport::new(unique_namespace())),
        poison_scenario,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_trickling_in_within_the_gather_window_are_applied_in_one_batch() {
    with_cleanup(amqp().await, |transport| async move {
        let store_id = Uuid::from_u128(79);
        let source = Arc::new(MemorySource::new(store_id));
        let settings = RuntimeSettings {
            gather: Duration::from_secs(2),
            ..settings()
        };
        let ((projector, shutdown, consumer), events) =
            one_order_to_project(source.clone(), &transport, settings).await;
        let commits = projector.commits();
        let before = *commits.borrow();
        // One at a time, each confirmed by the broker before the next.
        let mut publisher = transport.publisher().await.unwrap();
        for event in &events {
            source.push(event.clone());
            let report = publisher
                .publish_batch(&[message_for(event, store_id)])
                .await;
            assert!(report.error.is_none(), "{:?}", report.error);
        }
        let last = events.last().unwrap();
        applied(&projector, &last.stream, last.version).await;
        assert_eq!(
            *commits.borrow() - before,
            1,
            "the three deliveries were applied in one sled batch"
        );
        assert_eq!(projector.db().meta().unwrap().events_applied, 3);
        shutdown.trigger();
        consumer.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_prefetch_window_ends_the_gather_wait_at_once() {
    with_cleanup(amqp().await, |transport| async move {
        let store_id = Uuid::from_u128(80);
        let source = Arc::new(MemorySource::new(store_id));
        // The broker hands out one delivery at a time and sends the next
        // only once it is acknowledged, which takes applying it: waiting for
        // a second one to fill the batch would wait out the whole gather
        // window, longer than `applied` waits.
        let settings = RuntimeSettings {
            prefetch: 1,
            batch: 2,
            gather: DEADLINE * 2,
            ..settings()
        };
        let ((projector, shutdown, consumer), events) =
            one_order_to_project(source.clone(), &transport, settings).await;
        for event in &events {
            source.push(event.clone());
        }
        let messages: Vec<OutgoingMessage> = events
            .iter()
            .map(|event| message_for(event, store_id))
            .collect();
        let mut publisher = transport.publisher().await.unwrap();
        let report = publisher.publish_batch(&messages).await;
        assert!(report.error.is_none(), "{:?}", report.error);
        let last = events.last().unwrap();
        applied(&projector, &last.stream, last.version).await;
        assert_eq!(projector.db().meta().unwrap().events_applied, 3);
        shutdown.trigger();
        consumer.await.unwrap().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_projector_sees_all_history_then_follows_its_queue_applying_each_event_once() {
    with_cleanup(amqp().await, |transport| async move {
        let store_id = Uuid::from_u128(78);
        let history = workload::record(
            &workload::generate(workload::WorkloadOptions {
                events: 1500,
                ..Default::default()
            })
            .unwrap(),
        )
        .unwrap();
        let (old, new) = history.split_at(1000);
        let source = Arc::new(MemorySource::new(store_id));
        for event in old {
            source.push(event.clone());
        }
        let (projector, shutdown, consumer) = consuming(
            ProjectorName::Customers,
            source.clone(),
            &transport,
            settings(),
        )
        .await;
        // Published while it catches up: some of these it reads from the
        // store too, and the queue's copies are duplicates.
        let mut publisher = transport.publisher().await.unwrap();
        let messages: Vec<OutgoingMessage> = new
            .iter()
            .filter(|e| projector.projection().wants(e.category()))
            .map(|e| message_for(e, store_id))
            .collect();
        for event in new {
            source.push(event.clone());
        }
        // Each message twice: at-least-once delivery.
        let report = publisher.publish_batch(&messages).await;
        assert!(report.error.is_none(), "{:?}", report.error);
        let report = publisher.publish_batch(&messages).await;
        assert!(report.error.is_none(), "{:?}", report.error);

        let last = history
            .iter()
            .rev()
            .find(|e| e.category() == "order" || e.category() == "customer")
            .unwrap();
        applied(&projector, &last.stream, last.version).await;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while transport
            .ready_messages(&projector.consumer_name().unwrap(), QueueRole::Main)
            .await
            .unwrap()
            > 0
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the queue never drained"
            );
            let mut commits = projector.commits();
            let _ = tokio::time::timeout(Duration::from_millis(100), commits.changed()).await;
        }

        // The same view as a replay of the whole history.
        let (expected, _) = {
            let db = Arc::new(projectors::viewdb::ViewDb::temporary().unwrap());
            fold_into(ProjectorName::Customers, &db, &history);
            (projectors::digest::digest(&db).unwrap(), ())
        };
        assert_eq!(projector.digest().await.unwrap(), expected);
        let wanted = history
            .iter()
            .filter(|e| e.category() == "order" || e.category() == "customer")
            .count() as u64;
        assert_eq!(projector.db().meta().unwrap().events_applied, wanted);
        shutdown.trigger();
        consumer.await.unwrap().unwrap();
    })
    .await;
}
