//! The saga's per-stream ordering: an event delivered ahead of the ones
//! before it makes the saga fetch them from the store first, and a delivery
//! seen twice has one effect. Deliveries are injected by hand through the
//! in-process transport, so their order is the test's to choose.

use command_services::saga::fulfillment::Fulfillment;
use command_services::ServiceName;
use domain::saga::Phase;
use messaging::OutgoingMessage;
use serde_json::json;
use uuid::Uuid;

use crate::{eventually, with_system};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_delivered_before_its_order_is_applied_after_it_and_repeats_change_nothing()
{
    with_system(false, |mut system| async move {
        let (customer, order) = system.stocked_order("GAP", 500, 5, 1, "tok_visa").await;
        system
            .call(ServiceName::Orders, "cancel-order")
            .actor(&customer)
            .send(json!({"order_id": order}))
            .await
            .id();
        let transport = system.start_saga_on_memory().await;
        let events = system.events(&format!("order-{order}")).await;
        assert_eq!(events.len(), 2);
        let message =
            |index: usize| OutgoingMessage::for_event(&events[index], Uuid::nil()).unwrap();
        let mut publisher = transport.publisher().await.unwrap();
        // Only the cancellation (version 1), then everything again.
        publisher.publish(&message(1)).await.unwrap();
        let fulfillment = format!("fulfillment-{order}");
        eventually("the saga started and aborted the order", || async {
            let state = system.state::<Fulfillment>(&fulfillment).await;
            matches!(state.saga.phase, Phase::Aborted(_))
        })
        .await;
        publisher.publish(&message(0)).await.unwrap();
        publisher.publish(&message(1)).await.unwrap();
        // A marker after the repeats: once it is handled, so are they.
        let marker = system
            .place_order(&customer, &[("GAP", 1)], "tok_visa")
            .await
            .id();
        let marker_events = system.events(&format!("order-{marker}")).await;
        publisher
            .publish(&OutgoingMessage::for_event(&marker_events[0], Uuid::nil()).unwrap())
            .await
            .unwrap();
        eventually("the marker order is started", || async {
            system
                .state::<Fulfillment>(&format!("fulfillment-{marker}"))
                .await
                .saga
                .order
                .is_some()
        })
        .await;
        let recorded: Vec<String> = system
            .events(&fulfillment)
            .await
            .into_iter()
            .map(|event| event.event_type)
            .collect();
        assert_eq!(
            recorded.first().map(String::as_str),
            Some("FulfillmentStarted")
        );
        assert_eq!(
            recorded
                .iter()
                .filter(|t| *t == "FulfillmentStarted")
                .count(),
            1
        );
        assert_eq!(
            recorded
                .iter()
                .filter(|t| *t == "FulfillmentAborted")
                .count(),
            1
        );
        // The reservation the saga asked for was made once.
        let reserved = system
            .events("stock-GAP")
            .await
            .into_iter()
            .filter(|event| event.event_type == "StockReserved" && event.data.contains(&order))
            .count();
        assert_eq!(reserved, 1);
        system.cluster.stop_saga().await.unwrap();
        system
    })
    .await;
}
