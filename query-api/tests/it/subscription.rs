//! `orderUpdates` through `schema.execute_stream`: the current order, then
//! every status change in order, none missed.

use futures::StreamExt;
use query_api::{backend::View, Caller};
use serde_json::{json, Value};

use crate::fixture::{
    admin, anonymous, codes, customer, order, TestGateway, CUSTOMER, ORDER, OTHER_ORDER,
};

const FOLLOW: &str = r#"subscription Follow($id: ID!) {
    orderUpdates(orderId: $id) { id status cancellationReason timeline { status } }
}"#;

fn follow(
    shop: &TestGateway,
    identity: query_api::auth::Identity,
    id: &str,
) -> futures::stream::BoxStream<'static, Value> {
    let request = shop.request(Caller::new(identity), FOLLOW, json!({"id": id}));
    shop.schema
        .execute_stream(request)
        .map(|response| serde_json::to_value(&response).unwrap())
        .boxed()
}

fn status(update: &Value) -> String {
    assert!(update.get("errors").is_none(), "{update}");
    update["data"]["orderUpdates"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn order_updates_start_from_the_current_order_then_follow_every_change_in_order() {
    let shop = TestGateway::new();
    let id = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";
    let stream = format!("order-{id}");
    shop.views
        .apply(View::Orders, id, order(id, CUSTOMER, &["PLACED"]), &stream);
    let mut updates = follow(&shop, customer(), id);
    assert_eq!(status(&updates.next().await.unwrap()), "PLACED");
    // Two changes land between two polls of the gateway: both are delivered.
    shop.views.apply(
        View::Orders,
        id,
        order(id, CUSTOMER, &["PLACED", "CONFIRMED"]),
        &stream,
    );
    shop.views.apply(
        View::Orders,
        id,
        order(id, CUSTOMER, &["PLACED", "CONFIRMED", "SHIPPED"]),
        &stream,
    );
    let confirmed = updates.next().await.unwrap();
    assert_eq!(status(&confirmed), "CONFIRMED");
    assert_eq!(
        confirmed["data"]["orderUpdates"]["timeline"],
        json!([{"status": "PLACED"}, {"status": "CONFIRMED"}]),
        "each update is the order as it was at that change"
    );
    assert_eq!(status(&updates.next().await.unwrap()), "SHIPPED");
    shop.views.apply(
        View::Orders,
        id,
        order(
            id,
            CUSTOMER,
            &["PLACED", "CONFIRMED", "SHIPPED", "DELIVERED"],
        ),
        &stream,
    );
    assert_eq!(status(&updates.next().await.unwrap()), "DELIVERED");
    assert!(
        updates.next().await.is_none(),
        "a delivered order has nothing more to say"
    );
}

#[tokio::test]
async fn a_subscription_started_between_two_changes_misses_neither() {
    let shop = TestGateway::new();
    // ORDER is SHIPPED already: the first update shows it with its whole timeline.
    let mut updates = follow(&shop, customer(), ORDER);
    let first = updates.next().await.unwrap();
    assert_eq!(status(&first), "SHIPPED");
    assert_eq!(
        first["data"]["orderUpdates"]["timeline"],
        json!([{"status": "PLACED"}, {"status": "CONFIRMED"}, {"status": "SHIPPED"}])
    );
    shop.views.apply(
        View::Orders,
        ORDER,
        order(
            ORDER,
            CUSTOMER,
            &["PLACED", "CONFIRMED", "SHIPPED", "DELIVERED"],
        ),
        &format!("order-{ORDER}"),
    );
    assert_eq!(status(&updates.next().await.unwrap()), "DELIVERED");
    assert!(updates.next().await.is_none());
}

#[tokio::test]
async fn a_cancelled_order_carries_its_reason_and_ends_the_stream() {
    let shop = TestGateway::new();
    let id = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";
    let stream = format!("order-{id}");
    shop.views
        .apply(View::Orders, id, order(id, CUSTOMER, &["PLACED"]), &stream);
    let mut updates = follow(&shop, admin(), id);
    let first = updates.next().await.unwrap();
    assert_eq!(
        first["data"]["orderUpdates"]["cancellationReason"],
        Value::Null
    );
    let mut cancelled = order(id, CUSTOMER, &["PLACED", "CANCELLED"]);
    cancelled["cancellation_reason"] = json!("OUT_OF_STOCK");
    shop.views.apply(View::Orders, id, cancelled, &stream);
    let last = updates.next().await.unwrap();
    assert_eq!(status(&last), "CANCELLED");
    assert_eq!(
        last["data"]["orderUpdates"]["cancellationReason"],
        "OUT_OF_STOCK"
    );
    assert!(updates.next().await.is_none());
}

#[tokio::test]
async fn following_another_customers_order_is_not_found_and_needs_a_token() {
    let shop = TestGateway::new();
    let foreign = follow(&shop, customer(), OTHER_ORDER).next().await.unwrap();
    assert_eq!(codes(&foreign), ["NOT_FOUND"]);
    let anonymous = follow(&shop, anonymous(), ORDER).next().await.unwrap();
    assert_eq!(codes(&anonymous), ["UNAUTHENTICATED"]);
    let missing = follow(&shop, admin(), "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee")
        .next()
        .await
        .unwrap();
    assert_eq!(codes(&missing), ["NOT_FOUND"]);
}

#[tokio::test]
async fn subscriptions_end_when_the_server_stops() {
    let shop = TestGateway::new();
    let mut open = follow(&shop, admin(), OTHER_ORDER);
    assert_eq!(status(&open.next().await.unwrap()), "PLACED");
    shop.shutdown.trigger();
    assert!(open.next().await.is_none());
}
