//! The command services alone (no saga): validation, idempotency, rule
//! codes, ownership, the OpenAPI document and the operational routes.

use command_services::ServiceName;
use domain::stock::Stock;
use serde_json::json;
use uuid::Uuid;

use crate::with_system;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_twice_restocks_once_and_answers_the_same() {
    with_system(false, |system| async move {
        let first = system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .key("restock-1")
            .send(json!({"sku": "KEY-1", "quantity": 7}))
            .await;
        let second = system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .key("restock-1")
            .send(json!({"sku": "KEY-1", "quantity": 7}))
            .await;
        assert_eq!(first.status, 200, "{first:?}");
        assert_eq!(first.body, second.body);
        assert_eq!(first.body["token"], "stock-KEY-1@0");
        let stock = system.state::<Stock>("stock-KEY-1").await;
        assert_eq!(stock.available, 7);
        assert_eq!(system.events("stock-KEY-1").await.len(), 1);
        // Another key is another command.
        system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .key("restock-2")
            .send(json!({"sku": "KEY-1", "quantity": 7}))
            .await
            .id();
        assert_eq!(system.state::<Stock>("stock-KEY-1").await.available, 14);
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_place_order_sent_twice_at_once_creates_one_order() {
    with_system(false, |system| async move {
        system.add_product("TWICE", 100).await;
        let customer = system.register().await;
        let body = json!({
            "customer_id": customer, "lines": [{"sku": "TWICE", "quantity": 1}],
            "payment_token": "tok_visa", "shipping_address": "here"
        });
        let (first, second) = tokio::join!(
            system
                .call(ServiceName::Orders, "place-order")
                .key("place-1")
                .send(body.clone()),
            system
                .call(ServiceName::Orders, "place-order")
                .key("place-1")
                .send(body.clone()),
        );
        assert_eq!(first.status, 200, "{first:?}");
        assert_eq!(first.body, second.body);
        let order = first.id();
        assert_eq!(system.events(&format!("order-{order}")).await.len(), 1);
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_the_field_and_changes_nothing() {
    with_system(false, |system| async move {
        system.add_product("GOOD", 100).await;
        let customer = system.register().await;
        let cases = [
            (ServiceName::Catalog, "add-product", json!({"sku": "a b", "name": "x", "description": "", "price_cents": 1, "category": "c"}), "sku"),
            (ServiceName::Catalog, "add-product", json!({"sku": "NEW", "name": "x", "description": "", "price_cents": 0, "category": "c"}), "price_cents"),
            (ServiceName::Catalog, "change-price", json!({"sku": "GOOD", "price_cents": "ten"}), "price_cents"),
            (ServiceName::Inventory, "restock", json!({"sku": "GOOD", "quantity": 0}), "quantity"),
            (ServiceName::Inventory, "restock", json!({"sku": "GOOD"}), "quantity"),
            (ServiceName::Customers, "register-customer", json!({"email": "not-an-email", "name": "Ada"}), "email"),
            (ServiceName::Orders, "place-order", json!({"customer_id": customer, "lines": [], "payment_token": "tok_visa", "shipping_address": "x"}), "lines"),
            (ServiceName::Orders, "place-order", json!({"customer_id": customer, "lines": [{"sku": "GOOD", "quantity": -1}], "payment_token": "tok_visa", "shipping_address": "x"}), "lines[0].quantity"),
            (ServiceName::Orders, "place-order", json!({"customer_id": "nope", "lines": [{"sku": "GOOD", "quantity": 1}], "payment_token": "tok_visa", "shipping_address": "x"}), "customer_id"),
            (ServiceName::Orders, "cancel-order", json!({"order_id": Uuid::new_v4().to_string(), "reason": "BORED"}), "reason"),
            (ServiceName::Carts, "add-to-cart", json!({"customer_id": customer, "sku": "GOOD", "quantity": 1_000_001}), "quantity"),
        ];
        for (service, command, body, field) in cases {
            let answer = system
                .call(service, command)
                .actor("admin")
                .send(body.clone())
                .await;
            assert_eq!(answer.status, 400, "{command} {body}: {answer:?}");
            assert_eq!(answer.body["field"], field, "{command} {body}: {answer:?}");
            assert!(!answer.body["message"].as_str().unwrap_or_default().is_empty());
        }
        let malformed = system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .send_raw("{not json".into())
            .await;
        assert_eq!((malformed.status, malformed.code()), (400, "malformed_json"));
        let not_an_object = system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .send(json!([1, 2]))
            .await;
        assert_eq!(not_an_object.status, 400);
        // Nothing was written by any of them.
        assert!(system.events("product-NEW").await.is_empty());
        assert!(system.events("stock-GOOD").await.is_empty());
        assert_eq!(system.events("product-GOOD").await.len(), 1);
        assert!(system.events(&format!("cart-{customer}")).await.is_empty());
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_rules_answer_409_with_their_code_and_unknown_aggregates_404() {
    with_system(false, |system| async move {
        system.add_product("RULE", 100).await;
        let again = system
            .call(ServiceName::Catalog, "add-product")
            .actor("admin")
            .send(json!({"sku": "rule", "name": "x", "description": "", "price_cents": 5, "category": "c"}))
            .await;
        assert_eq!((again.status, again.code()), (409, "product_exists"));
        let discontinue = system
            .call(ServiceName::Catalog, "discontinue-product")
            .actor("admin")
            .send(json!({"sku": "RULE"}))
            .await;
        assert_eq!(discontinue.status, 200);
        let customer = system.register().await;
        let order = system.place_order(&customer, &[("RULE", 1)], "tok_visa").await;
        assert_eq!((order.status, order.code()), (409, "product_discontinued"));
        let unknown = system.place_order(&customer, &[("NOPE", 1)], "tok_visa").await;
        assert_eq!((unknown.status, unknown.code()), (404, "product_not_found"));
        let missing = system
            .call(ServiceName::Orders, "cancel-order")
            .actor("admin")
            .send(json!({"order_id": Uuid::new_v4().to_string()}))
            .await;
        assert_eq!((missing.status, missing.code()), (404, "order_not_found"));
        let commit = system
            .call(ServiceName::Inventory, "commit-reservation")
            .send(json!({"sku": "RULE", "order_id": Uuid::new_v4().to_string()}))
            .await;
        assert_eq!((commit.status, commit.code()), (409, "no_reservation"));
        let command = system
            .call(ServiceName::Inventory, "teleport")
            .send(json!({}))
            .await;
        assert_eq!((command.status, command.code()), (404, "unknown_command"));
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_may_cancel_only_their_own_order_and_may_not_act_as_admin_or_saga() {
    with_system(false, |system| async move {
        system.add_product("OWN", 100).await;
        let owner = system.register().await;
        let other = system.register().await;
        let order = system.place_order(&owner, &[("OWN", 1)], "tok_visa").await.id();
        let stranger = system
            .call(ServiceName::Orders, "cancel-order")
            .actor(&other)
            .send(json!({"order_id": order}))
            .await;
        assert_eq!((stranger.status, stranger.code()), (404, "order_not_found"));
        assert_eq!(
            system.order_status(&order).await,
            Some(domain::order::Status::Placed)
        );
        let restock = system
            .call(ServiceName::Inventory, "restock")
            .actor(&owner)
            .send(json!({"sku": "OWN", "quantity": 1}))
            .await;
        assert_eq!((restock.status, restock.code()), (403, "forbidden"));
        let confirm = system
            .call(ServiceName::Orders, "confirm-order")
            .actor(&owner)
            .send(json!({"order_id": order}))
            .await;
        assert_eq!(confirm.status, 403);
        let for_someone_else = system
            .call(ServiceName::Orders, "place-order")
            .actor(&other)
            .send(json!({"customer_id": owner, "lines": [{"sku": "OWN", "quantity": 1}], "payment_token": "tok_visa", "shipping_address": "x"}))
            .await;
        assert_eq!(for_someone_else.status, 403);
        let cart = system
            .call(ServiceName::Carts, "add-to-cart")
            .actor(&other)
            .send(json!({"customer_id": owner, "sku": "OWN", "quantity": 1}))
            .await;
        assert_eq!((cart.status, cart.code()), (404, "cart_not_found"));
        let own = system
            .call(ServiceName::Orders, "cancel-order")
            .actor(&owner)
            .send(json!({"order_id": order}))
            .await;
        assert_eq!(own.status, 200, "{own:?}");
        assert_eq!(
            system.order_status(&order).await,
            Some(domain::order::Status::Cancelled)
        );
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_documents_and_routes_each_of_its_commands() {
    with_system(false, |system| async move {
        for service in ServiceName::ALL {
            let base = system.cluster.url(service).unwrap();
            let document: serde_json::Value = system
                .http
                .get(format!("{base}/openapi.json"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(document["openapi"], "3.1.0");
            let paths = document["paths"].as_object().unwrap();
            assert!(!paths.is_empty());
            for (path, item) in paths {
                let command = path.trim_start_matches("/commands/");
                assert!(item["post"]["requestBody"].is_object(), "{path}");
                // Routed: an empty body is refused for a field, not as unknown.
                let answer = system.call(service, command).send(json!({})).await;
                assert_ne!(answer.code(), "unknown_command", "{service} {command}");
                assert!(
                    matches!(answer.status, 400 | 403),
                    "{service} {command}: {answer:?}"
                );
            }
            for route in ["/health", "/ready", "/metrics"] {
                let status = system
                    .http
                    .get(format!("{base}{route}"))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 200, "{service} {route}");
            }
        }
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_measures_both_workloads_and_finds_every_restock_stored() {
    let report = command_services::bench::run(command_services::bench::BenchOptions {
        seconds: 0.3,
        clients: vec![1, 8],
        data: None,
    })
    .await
    .unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        assert!(case["commands"].as_u64().unwrap() > 0, "{case}");
        assert_eq!(case["errors"], 0, "{case}");
        assert_eq!(case["conflicts_seen_by_clients"], 0, "{case}");
    }
    assert!(report["hot_aggregate_events_stored"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_belongs_to_one_customer_only() {
    with_system(false, |system| async move {
        let first = Uuid::new_v4().to_string();
        let register = |id: String, email: &'static str| {
            let system = &system;
            async move {
                system
                    .call(ServiceName::Customers, "register-customer")
                    .send(json!({"customer_id": id, "email": email, "name": "Ada"}))
                    .await
            }
        };
        assert_eq!(register(first.clone(), "ada@example.com").await.status, 200);
        let again = register(first.clone(), "ADA@example.com").await;
        assert_eq!((again.status, again.code()), (409, "already_registered"));
        let other = register(Uuid::new_v4().to_string(), "Ada@Example.com").await;
        assert_eq!((other.status, other.code()), (409, "email_taken"));
        assert_eq!(
            register(Uuid::new_v4().to_string(), "grace@example.com")
                .await
                .status,
            200
        );
        system
    })
    .await;
}
