//! A projector that is down or slow costs only its own fields: partial data
//! with `UNAVAILABLE` or `TIMEOUT`, and a circuit breaker that stops asking it.

use std::time::Duration;

use query_api::backend::{guard::BreakerState, Projector};

use crate::fixture::{codes, customer, data, eventually, Settings, TestGateway};

const PROFILE_AND_CART: &str = "{ me { id name cart { lines { sku quantity } } } }";

#[tokio::test]
async fn a_projector_that_is_down_gives_partial_data_with_unavailable() {
    let shop = TestGateway::new();
    shop.views.set_down(Projector::Customers, true);
    let response = shop.run(customer(), PROFILE_AND_CART).await;
    insta::assert_json_snapshot!(response);
    assert_eq!(codes(&response), ["UNAVAILABLE"]);
    assert_eq!(
        response["errors"][0]["path"],
        serde_json::json!(["me", "name"])
    );
    assert_eq!(response["data"]["me"]["cart"]["lines"][0]["sku"], "SKU-2");
}

#[tokio::test]
async fn a_slow_projector_times_out_and_the_rest_of_the_query_answers() {
    let shop = TestGateway::with(Settings {
        call_timeout: Duration::from_millis(50),
        ..Settings::default()
    });
    shop.views
        .set_delay(Projector::Carts, Duration::from_secs(5));
    let response = shop.run(customer(), PROFILE_AND_CART).await;
    assert_eq!(codes(&response), ["TIMEOUT"]);
    assert_eq!(response["errors"][0]["extensions"]["service"], "carts");
    assert_eq!(response["data"]["me"]["name"], "Ann");
    assert_eq!(response["data"]["me"]["cart"], serde_json::Value::Null);
}

#[tokio::test]
async fn after_repeated_failures_the_breaker_answers_without_calling_the_projector() {
    let shop = TestGateway::new();
    shop.views.set_down(Projector::Customers, true);
    for _ in 0..3 {
        let response = shop.run(customer(), PROFILE_AND_CART).await;
        assert_eq!(codes(&response), ["UNAVAILABLE"]);
    }
    let breaker = shop.guarded.breaker(Projector::Customers).unwrap();
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
    let calls = shop.views.calls(Projector::Customers);
    let refused = shop.run(customer(), PROFILE_AND_CART).await;
    assert_eq!(codes(&refused), ["UNAVAILABLE"]);
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("circuit open"),
        "{refused}"
    );
    assert_eq!(
        shop.views.calls(Projector::Customers),
        calls,
        "not called while open"
    );
    assert_eq!(
        refused["data"]["me"]["cart"]["lines"][0]["sku"], "SKU-2",
        "the other projectors still answer"
    );
    assert!(matches!(
        shop.guarded.breaker(Projector::Carts).unwrap().state(),
        BreakerState::Closed { failures: 0 }
    ));
}

#[tokio::test]
async fn once_the_projector_is_back_a_probe_closes_the_breaker() {
    let shop = TestGateway::with(Settings {
        breaker_open: Duration::from_millis(30),
        ..Settings::default()
    });
    shop.views.set_down(Projector::Customers, true);
    for _ in 0..3 {
        shop.run(customer(), PROFILE_AND_CART).await;
    }
    shop.views.set_down(Projector::Customers, false);
    let breaker = shop.guarded.breaker(Projector::Customers).unwrap();
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
    // Poll until the open period is over and a query's probe gets through.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = shop.run(customer(), PROFILE_AND_CART).await;
        if response.get("errors").is_none() {
            assert_eq!(data(&response)["me"]["name"], "Ann");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the breaker never closed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eventually("the breaker to close", || {
        matches!(breaker.state(), BreakerState::Closed { .. })
    })
    .await;
}

#[tokio::test]
async fn a_missing_document_is_an_answer_not_an_outage() {
    let shop = TestGateway::new();
    for _ in 0..5 {
        let response = shop
            .run(customer(), r#"{ product(sku: "NOPE") { sku } }"#)
            .await;
        assert_eq!(codes(&response), ["NOT_FOUND"]);
    }
    assert!(matches!(
        shop.guarded.breaker(Projector::Catalog).unwrap().state(),
        BreakerState::Closed { failures: 0 }
    ));
}
