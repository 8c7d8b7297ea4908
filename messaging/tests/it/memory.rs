//! What only the memory transport needs checking for: it is its own broker.

use std::time::Duration;

use messaging::{MemoryTransport, Namespace, QueueRole, Transport};

use crate::{consume_until, message, spec};

#[tokio::test]
async fn memory_queues_of_different_namespaces_do_not_see_each_other() {
    let one = MemoryTransport::new(Namespace::parse("one").unwrap());
    let orders = spec("orders", &["#"]);
    one.declare_consumer(&orders).await.unwrap();
    let mut publisher = one.publisher().await.unwrap();
    publisher
        .publish(&message("order.OrderPlaced", "order-1", 0))
        .await
        .unwrap();
    assert_eq!(
        one.ready_messages(&orders.name, QueueRole::Main)
            .await
            .unwrap(),
        1
    );
    let two = MemoryTransport::new(Namespace::parse("two").unwrap());
    two.declare_consumer(&orders).await.unwrap();
    assert_eq!(
        two.ready_messages(&orders.name, QueueRole::Main)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_memory_consumer_waiting_for_messages_wakes_when_one_is_published() {
    let transport = MemoryTransport::new(Namespace::parse("wake").unwrap());
    let orders = spec("orders", &["order.*"]);
    let mut consumer = transport.consumer(&orders).await.unwrap();
    let publisher_side = transport.clone();
    let waiting =
        tokio::spawn(async move { consume_until(&mut consumer, |seen| !seen.is_empty()).await });
    let mut publisher = publisher_side.publisher().await.unwrap();
    publisher
        .publish(&message("order.OrderPlaced", "order-1", 0))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn a_deleted_memory_queue_ends_its_consumer_with_an_error() {
    let transport = MemoryTransport::new(Namespace::parse("gone").unwrap());
    let orders = spec("orders", &["order.*"]);
    let mut consumer = transport.consumer(&orders).await.unwrap();
    let deleter = transport.clone();
    let name = orders.name.clone();
    let waiting = tokio::spawn(async move { consumer.next_batch(1, Duration::ZERO).await });
    deleter.delete_consumer_topology(&name).await.unwrap();
    // The consumer may have started waiting before or after the delete.
    let outcome = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.is_err());
}
