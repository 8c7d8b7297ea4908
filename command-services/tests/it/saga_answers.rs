//! A command's answer can carry its events as stored, and the saga takes
//! what its commands caused from there, not from the broker
//! (docs/adr/0014). Deliveries are injected by hand through the in-process
//! transport, so the test decides what the broker brings, and when.

use std::collections::BTreeMap;

use command_services::saga::fulfillment::Fulfillment;
use command_services::ServiceName;
use domain::envelope::RecordedEvent;
use domain::order::Status;
use messaging::OutgoingMessage;
use serde_json::json;
use uuid::Uuid;

use crate::{eventually, with_system, TestSystem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_asked_for_its_events_answers_with_them_exactly_as_stored() {
    with_system(false, |system| async move {
        system.add_product("ANS", 500).await;
        let restock = || {
            system
                .call(ServiceName::Inventory, "restock")
                .actor("admin")
                .key("restock-ans-1")
        };
        let answer = restock()
            .prefer("return=representation")
            .send(json!({"sku": "ANS", "quantity": 5}))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(
            answer.preference_applied.as_deref(),
            Some("return=representation")
        );
        let events: Vec<RecordedEvent> =
            serde_json::from_value(answer.body["events"].clone()).unwrap();
        assert_eq!(events, system.events("stock-ANS").await);
        assert_eq!(events.len(), 1);
        assert_eq!(answer.body["version"], json!(events[0].version));

        // A retry is the first answer, events included, and appends nothing.
        let again = restock()
            .prefer("return=representation")
            .send(json!({"sku": "ANS", "quantity": 5}))
            .await;
        assert_eq!(again.status, 200, "{again:?}");
        assert_eq!(again.body, answer.body);
        assert_eq!(system.events("stock-ANS").await.len(), 1);

        // Not asked for: the answer is as before.
        let plain = system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .send(json!({"sku": "ANS", "quantity": 1}))
            .await;
        assert_eq!(plain.status, 200, "{plain:?}");
        assert!(plain.body.get("events").is_none(), "{plain:?}");
        assert_eq!(plain.preference_applied, None);

        // A refusal is a refusal, asked or not.
        let refused = system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .prefer("return=representation")
            .send(json!({"sku": "ANS", "quantity": 0}))
            .await;
        assert_eq!(refused.status, 400, "{refused:?}");
        assert!(refused.body.get("events").is_none(), "{refused:?}");
        assert_eq!(system.events("stock-ANS").await.len(), 2);
        system
    })
    .await;
}

/// How many times each event type was recorded in `stream`.
async fn type_counts(system: &TestSystem, stream: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in system.events(stream).await {
        *counts.entry(event.event_type).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_confirms_an_order_from_its_commands_answers_alone_and_a_repeated_delivery_changes_nothing(
) {
    with_system(false, |mut system| async move {
        let (_, order) = system.stocked_order("FAST", 700, 5, 1, "tok_visa").await;
        let transport = system.start_saga_on_memory().await;
        let mut publisher = transport.publisher().await.unwrap();
        let publish =
            |event: &RecordedEvent| OutgoingMessage::for_event(event, Uuid::nil()).unwrap();

        // Only `OrderPlaced` is delivered: every later step comes from the
        // answers of the saga's own commands.
        let placed = system.events(&format!("order-{order}")).await;
        assert_eq!(placed.len(), 1);
        publisher.publish(&publish(&placed[0])).await.unwrap();
        system.wait_for_status(&order, Status::Confirmed).await;
        let fulfillment = format!("fulfillment-{order}");
        eventually("the saga noted the shipment", || async {
            type_counts(&system, &fulfillment)
                .await
                .contains_key("ShipmentCreationNoted")
        })
        .await;
        let decided = system.events(&fulfillment).await;

        // Now everything is published, late: the saga's queue is bound only
        // for `OrderPlaced` among them, which it gets a second time; then the
        // admin's dispatch, in the same order's chain.
        let mut late: Vec<RecordedEvent> = Vec::new();
        for stream in [
            format!("order-{order}"),
            format!("payment-{order}"),
            format!("shipment-{order}"),
        ] {
            late.extend(system.events(&stream).await);
        }
        late.extend(
            system
                .events("stock-FAST")
                .await
                .into_iter()
                .filter(|event| event.data.contains(&order)),
        );
        late.sort_by_key(|event| event.position);
        assert!(late.len() >= 5, "{late:?}");
        for event in &late {
            let published = publisher.publish(&publish(event)).await.unwrap();
            let bound = domain::saga::OUTSIDE_TRIGGERS
                .iter()
                .any(|(category, event_type)| {
                    event.category() == *category && event.event_type == *event_type
                });
            assert_eq!(
                matches!(published, messaging::Published::Routed),
                bound,
                "{} {:?}",
                event.event_type,
                published
            );
        }
        let dispatched = system.admin_ships("dispatch-shipment", &order).await;
        assert_eq!(dispatched.status, 200, "{dispatched:?}");
        let shipment = system.events(&format!("shipment-{order}")).await;
        publisher
            .publish(&publish(shipment.last().unwrap()))
            .await
            .unwrap();
        system.wait_for_status(&order, Status::Shipped).await;

        // Every decision once, the late deliveries added none.
        let recorded = system.events(&fulfillment).await;
        assert_eq!(recorded[..decided.len()], decided[..]);
        let counts = type_counts(&system, &fulfillment).await;
        assert!(
            counts.values().all(|count| *count == 1),
            "a decision was recorded twice: {counts:?}"
        );
        let stock = type_counts(&system, "stock-FAST").await;
        assert_eq!(stock.get("StockReserved"), Some(&1), "{stock:?}");
        let payment = type_counts(&system, &format!("payment-{order}")).await;
        assert_eq!(payment.get("PaymentAuthorized"), Some(&1), "{payment:?}");
        assert_eq!(payment.get("PaymentCaptured"), Some(&1), "{payment:?}");
        let state = system.state::<Fulfillment>(&fulfillment).await;
        assert!(state.saga.order.is_some());
        system.cluster.stop_saga().await.unwrap();
        system
    })
    .await;
}
