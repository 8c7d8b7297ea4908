//! Every mutation of CONTRACT.md through `schema.execute`: what reaches the
//! command services, who may call it, and how refusals come back.

use query_api::{
    auth::Identity,
    backend::{Actor, CommandService},
    Caller, GatewayError,
};
use serde_json::{json, Value};

use crate::fixture::{
    admin, anonymous, codes, customer, customer_id, data, TestGateway, ADMIN_EMAIL, ADMIN_PASSWORD,
    ORDER,
};

const REGISTER: &str = r#"mutation Register($email: String!, $password: String!) {
    registerCustomer(input: {email: $email, name: "Ann", password: $password}) { id token }
}"#;

const LOGIN: &str = r#"mutation Login($email: String!, $password: String!) {
    login(email: $email, password: $password)
}"#;

fn credentials(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

#[tokio::test]
async fn registering_keeps_the_password_at_the_gateway_and_sends_the_customer_to_its_service() {
    let shop = TestGateway::new();
    let registered = shop
        .run_vars(
            anonymous(),
            REGISTER,
            credentials("Ann@Example.com", "correct horse"),
        )
        .await;
    let result = &data(&registered)["registerCustomer"];
    let id = result["id"].as_str().unwrap().to_owned();
    assert_eq!(result["token"], format!("customer-{id}@0"));
    let sent = shop.commands.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].service, CommandService::Customers);
    assert_eq!(sent[0].command, "register-customer");
    assert_eq!(
        sent[0].body,
        json!({"customer_id": id, "email": "ann@example.com", "name": "Ann"})
    );
    assert!(
        !sent[0].body.to_string().contains("correct horse"),
        "the password never leaves the gateway"
    );
    let login = shop
        .run_vars(
            anonymous(),
            LOGIN,
            credentials("ann@example.com", "correct horse"),
        )
        .await;
    let token = data(&login)["login"].as_str().unwrap().to_owned();
    assert_eq!(
        shop.gateway.auth.verify_token(&token),
        Identity::Customer(id.parse().unwrap())
    );
}

#[tokio::test]
async fn registering_an_email_twice_is_a_conflict() {
    let shop = TestGateway::new();
    let first = shop
        .run_vars(
            anonymous(),
            REGISTER,
            credentials("bo@example.com", "password one"),
        )
        .await;
    data(&first);
    let second = shop
        .run_vars(
            anonymous(),
            REGISTER,
            credentials("BO@example.com", "password two"),
        )
        .await;
    assert_eq!(codes(&second), ["CONFLICT"]);
    assert_eq!(second["errors"][0]["extensions"]["reason"], "email_taken");
    assert_eq!(
        shop.commands.sent().len(),
        1,
        "the second registration changed nothing"
    );
    let admin_email = shop
        .run_vars(
            anonymous(),
            REGISTER,
            credentials(ADMIN_EMAIL, "password three"),
        )
        .await;
    assert_eq!(codes(&admin_email), ["CONFLICT"]);
}

#[tokio::test]
async fn a_registration_retried_with_the_same_idempotency_key_answers_the_first_result() {
    let shop = TestGateway::new();
    let caller = Caller {
        idempotency_key: Some("signup-1".to_owned()),
        ..Caller::new(anonymous())
    };
    let variables = credentials("cy@example.com", "password one");
    let first = shop
        .run_as(caller.clone(), REGISTER, variables.clone())
        .await;
    let again = shop.run_as(caller, REGISTER, variables).await;
    assert_eq!(data(&first), data(&again));
    assert_eq!(shop.commands.sent().len(), 1);
}

#[tokio::test]
async fn a_failed_registration_releases_the_email() {
    let shop = TestGateway::new();
    shop.commands.refuse(
        "register-customer",
        GatewayError::Unavailable {
            service: "customers".into(),
            message: "cannot connect".into(),
        },
    );
    let failed = shop
        .run_vars(
            anonymous(),
            REGISTER,
            credentials("di@example.com", "password one"),
        )
        .await;
    assert_eq!(codes(&failed), ["UNAVAILABLE"]);
    let login = shop
        .run_vars(
            anonymous(),
            LOGIN,
            credentials("di@example.com", "password one"),
        )
        .await;
    assert_eq!(codes(&login), ["UNAUTHENTICATED"], "no account was made");
    // The e-mail is free again.
    assert!(matches!(
        shop.gateway
            .auth
            .reserve("di@example.com", "h".into(), None),
        Ok(query_api::auth::Reservation::Reserved { .. })
    ));
}

#[tokio::test]
async fn registration_input_is_checked_before_anything_is_sent() {
    let shop = TestGateway::new();
    let bad_email = shop
        .run_vars(
            anonymous(),
            REGISTER,
            credentials("not-an-email", "password one"),
        )
        .await;
    assert_eq!(codes(&bad_email), ["INVALID_INPUT"]);
    assert_eq!(bad_email["errors"][0]["extensions"]["field"], "email");
    let short_password = shop
        .run_vars(
            anonymous(),
            REGISTER,
            credentials("ed@example.com", "short"),
        )
        .await;
    assert_eq!(codes(&short_password), ["INVALID_INPUT"]);
    assert_eq!(
        short_password["errors"][0]["extensions"]["field"],
        "password"
    );
    assert!(shop.commands.sent().is_empty());
}

#[tokio::test]
async fn login_answers_a_token_for_the_right_password_only() {
    let shop = TestGateway::new();
    let admin_login = shop
        .run_vars(anonymous(), LOGIN, credentials(ADMIN_EMAIL, ADMIN_PASSWORD))
        .await;
    let token = data(&admin_login)["login"].as_str().unwrap();
    assert_eq!(shop.gateway.auth.verify_token(token), Identity::Admin);
    let wrong = shop
        .run_vars(anonymous(), LOGIN, credentials(ADMIN_EMAIL, "guess"))
        .await;
    assert_eq!(codes(&wrong), ["UNAUTHENTICATED"]);
    let unknown = shop
        .run_vars(
            anonymous(),
            LOGIN,
            credentials("nobody@example.com", "guess"),
        )
        .await;
    assert_eq!(codes(&unknown), ["UNAUTHENTICATED"]);
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
}

/// (mutation document, service, command, body) for every customer mutation.
fn customer_mutations() -> Vec<(String, CommandService, &'static str, Value)> {
    let me = customer_id().to_string();
    vec![
        (
            r#"mutation { addToCart(sku: "SKU-1", quantity: 2) { id token } }"#.into(),
            CommandService::Carts,
            "add-to-cart",
            json!({"customer_id": me, "sku": "SKU-1", "quantity": 2}),
        ),
        (
            r#"mutation { removeFromCart(sku: "SKU-1") { id token } }"#.into(),
            CommandService::Carts,
            "remove-from-cart",
            json!({"customer_id": me, "sku": "SKU-1"}),
        ),
        (
            r#"mutation { addToWishlist(sku: "SKU-2") { id token } }"#.into(),
            CommandService::Wishlists,
            "add-to-wishlist",
            json!({"customer_id": me, "sku": "SKU-2"}),
        ),
        (
            r#"mutation { removeFromWishlist(sku: "SKU-2") { id token } }"#.into(),
            CommandService::Wishlists,
            "remove-from-wishlist",
            json!({"customer_id": me, "sku": "SKU-2"}),
        ),
        (
            r#"mutation { checkout(input: {paymentToken: "tok_visa", shippingAddress: "1 Main St"}) { id token } }"#.into(),
            CommandService::Carts,
            "checkout",
            json!({"customer_id": me, "payment_token": "tok_visa", "shipping_address": "1 Main St"}),
        ),
        (
            r#"mutation { placeOrder(input: {lines: [{sku: "SKU-1", quantity: 1}, {sku: "SKU-3", quantity: 4}], paymentToken: "tok_visa", shippingAddress: "1 Main St"}) { id token } }"#.into(),
            CommandService::Orders,
            "place-order",
            json!({"customer_id": me, "lines": [{"sku": "SKU-1", "quantity": 1}, {"sku": "SKU-3", "quantity": 4}], "payment_token": "tok_visa", "shipping_address": "1 Main St"}),
        ),
        (
            format!(r#"mutation {{ cancelOrder(orderId: "{ORDER}") {{ id token }} }}"#),
            CommandService::Orders,
            "cancel-order",
            json!({"order_id": ORDER}),
        ),
    ]
}

/// (mutation document, service, command, body) for every admin mutation.
fn admin_mutations() -> Vec<(String, CommandService, &'static str, Value)> {
    vec![
        (
            r#"mutation { addProduct(input: {sku: "SKU-9", name: "Green mug", description: "Green", priceCents: 900, category: "kitchen"}) { id token } }"#.into(),
            CommandService::Catalog,
            "add-product",
            json!({"sku": "SKU-9", "name": "Green mug", "description": "Green", "price_cents": 900, "category": "kitchen"}),
        ),
        (
            r#"mutation { changePrice(sku: "SKU-1", priceCents: 1100) { id token } }"#.into(),
            CommandService::Catalog,
            "change-price",
            json!({"sku": "SKU-1", "price_cents": 1100}),
        ),
        (
            r#"mutation { discontinueProduct(sku: "SKU-1") { id token } }"#.into(),
            CommandService::Catalog,
            "discontinue-product",
            json!({"sku": "SKU-1"}),
        ),
        (
            r#"mutation { restock(sku: "SKU-1", quantity: 25) { id token } }"#.into(),
            CommandService::Inventory,
            "restock",
            json!({"sku": "SKU-1", "quantity": 25}),
        ),
        (
            format!(r#"mutation {{ dispatchShipment(orderId: "{ORDER}") {{ id token }} }}"#),
            CommandService::Shipping,
            "dispatch-shipment",
            json!({"order_id": ORDER}),
        ),
        (
            format!(r#"mutation {{ confirmDelivery(orderId: "{ORDER}") {{ id token }} }}"#),
            CommandService::Shipping,
            "confirm-delivery",
            json!({"order_id": ORDER}),
        ),
    ]
}

#[tokio::test]
async fn every_customer_mutation_reaches_its_service_as_the_customer() {
    let shop = TestGateway::new();
    for (index, (document, service, command, body)) in customer_mutations().into_iter().enumerate()
    {
        let response = shop.run(customer(), &document).await;
        let result = data(&response)
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone();
        let sent = shop.commands.sent();
        let last = &sent[index];
        assert_eq!((last.service, last.command.as_str()), (service, command));
        assert_eq!(last.body, body, "{command}");
        assert_eq!(last.context.actor, Actor::Customer(customer_id()));
        assert!(result["id"].is_string(), "{command}: {result}");
        let token = result["token"].as_str().unwrap();
        assert!(token.contains('@'), "{command}: {token}");
        if command == "checkout" {
            let order = result["id"].as_str().unwrap();
            assert_eq!(
                token,
                format!("order-{order}@0"),
                "reads of the new order wait for it"
            );
        }
    }
}

#[tokio::test]
async fn every_admin_mutation_reaches_its_service_as_the_admin() {
    let shop = TestGateway::new();
    for (index, (document, service, command, body)) in admin_mutations().into_iter().enumerate() {
        let response = shop.run(admin(), &document).await;
        data(&response);
        let sent = shop.commands.sent();
        let last = &sent[index];
        assert_eq!((last.service, last.command.as_str()), (service, command));
        assert_eq!(last.body, body, "{command}");
        assert_eq!(last.context.actor, Actor::Admin);
    }
}

#[tokio::test]
async fn the_admin_may_cancel_any_order() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            admin(),
            &format!(r#"mutation {{ cancelOrder(orderId: "{ORDER}") {{ id }} }}"#),
        )
        .await;
    assert_eq!(data(&response)["cancelOrder"]["id"], ORDER);
    assert_eq!(shop.commands.sent()[0].context.actor, Actor::Admin);
}

#[tokio::test]
async fn admin_mutations_are_forbidden_to_customers_and_need_a_token() {
    let shop = TestGateway::new();
    for (document, _, command, _) in admin_mutations() {
        assert_eq!(
            codes(&shop.run(customer(), &document).await),
            ["FORBIDDEN"],
            "{command}"
        );
        assert_eq!(
            codes(&shop.run(anonymous(), &document).await),
            ["UNAUTHENTICATED"],
            "{command}"
        );
    }
    assert!(shop.commands.sent().is_empty());
}

#[tokio::test]
async fn customer_mutations_are_forbidden_to_the_admin_and_need_a_token() {
    let shop = TestGateway::new();
    for (document, _, command, _) in customer_mutations() {
        if command == "cancel-order" {
            continue;
        }
        assert_eq!(
            codes(&shop.run(admin(), &document).await),
            ["FORBIDDEN"],
            "{command}"
        );
        assert_eq!(
            codes(&shop.run(anonymous(), &document).await),
            ["UNAUTHENTICATED"],
            "{command}"
        );
    }
    assert!(shop.commands.sent().is_empty());
}

#[tokio::test]
async fn a_client_idempotency_key_is_passed_on_per_mutation_field() {
    let shop = TestGateway::new();
    let caller = Caller {
        idempotency_key: Some("k-1".to_owned()),
        correlation_id: Some(uuid::Uuid::from_u128(7)),
        ..Caller::new(customer())
    };
    let document = r#"mutation { first: addToCart(sku: "SKU-1") { id } second: addToCart(sku: "SKU-2") { id } }"#;
    let response = shop.run_as(caller.clone(), document, json!({})).await;
    data(&response);
    let keys: Vec<_> = shop
        .commands
        .sent()
        .iter()
        .map(|sent| sent.context.idempotency_key.clone())
        .collect();
    assert_eq!(keys, ["k-1:first", "k-1:second"]);
    let sent = shop.commands.sent();
    assert!(sent
        .iter()
        .all(|sent| sent.context.correlation_id == uuid::Uuid::from_u128(7)));
    assert_eq!(sent[0].context.causation_id, sent[1].context.causation_id);
    let retried = shop.run_as(caller, document, json!({})).await;
    assert_eq!(
        data(&retried),
        data(&response),
        "a retry gets the first answers"
    );
}

#[tokio::test]
async fn without_an_idempotency_key_every_mutation_gets_a_fresh_one() {
    let shop = TestGateway::new();
    let document = r#"mutation { addToCart(sku: "SKU-1") { id } }"#;
    shop.run(customer(), document).await;
    shop.run(customer(), document).await;
    let sent = shop.commands.sent();
    assert_ne!(
        sent[0].context.idempotency_key,
        sent[1].context.idempotency_key
    );
    assert_ne!(
        sent[0].context.correlation_id,
        sent[1].context.correlation_id
    );
}

#[tokio::test]
async fn refusals_of_the_command_services_come_back_with_their_codes() {
    let cases = [
        (
            GatewayError::Conflict {
                reason: "out_of_stock".into(),
                message: "not enough SKU-1".into(),
            },
            "CONFLICT",
        ),
        (GatewayError::not_found("order"), "NOT_FOUND"),
        (GatewayError::invalid("sku", "unknown sku"), "INVALID_INPUT"),
        (
            GatewayError::Unavailable {
                service: "orders".into(),
                message: "cannot connect".into(),
            },
            "UNAVAILABLE",
        ),
        (
            GatewayError::call_timeout("orders", std::time::Duration::from_secs(3)),
            "TIMEOUT",
        ),
    ];
    for (error, code) in cases {
        let shop = TestGateway::new();
        shop.commands.refuse("place-order", error);
        let response = shop
            .run(
                customer(),
                r#"mutation { placeOrder(input: {lines: [{sku: "SKU-1", quantity: 1}], paymentToken: "tok_visa", shippingAddress: "1 Main St"}) { id } }"#,
            )
            .await;
        assert_eq!(codes(&response), [code]);
        assert_eq!(response["data"], json!(null));
    }
    let shop = TestGateway::new();
    shop.commands.refuse(
        "place-order",
        GatewayError::Conflict {
            reason: "out_of_stock".into(),
            message: "not enough SKU-1".into(),
        },
    );
    let response = shop
        .run(
            customer(),
            r#"mutation { placeOrder(input: {lines: [{sku: "SKU-1", quantity: 1}], paymentToken: "tok_visa", shippingAddress: "1 Main St"}) { id } }"#,
        )
        .await;
    insta::assert_json_snapshot!(response);
}

#[tokio::test]
async fn invalid_mutation_input_is_refused_before_any_command_is_sent() {
    let shop = TestGateway::new();
    let cases = [
        (
            customer(),
            r#"mutation { addToCart(sku: "SKU-1", quantity: 0) { id } }"#,
            "quantity",
        ),
        (
            customer(),
            r#"mutation { addToCart(sku: "", quantity: 1) { id } }"#,
            "sku",
        ),
        (
            customer(),
            r#"mutation { placeOrder(input: {lines: [], paymentToken: "tok_visa", shippingAddress: "x"}) { id } }"#,
            "lines",
        ),
        (
            customer(),
            r#"mutation { checkout(input: {paymentToken: "", shippingAddress: "x"}) { id } }"#,
            "paymentToken",
        ),
        (
            customer(),
            r#"mutation { cancelOrder(orderId: "7") { id } }"#,
            "orderId",
        ),
        (
            admin(),
            r#"mutation { changePrice(sku: "SKU-1", priceCents: -1) { id } }"#,
            "priceCents",
        ),
        (
            admin(),
            r#"mutation { restock(sku: "SKU-1", quantity: -5) { id } }"#,
            "quantity",
        ),
    ];
    for (identity, document, field) in cases {
        let response = shop.run(identity, document).await;
        assert_eq!(codes(&response), ["INVALID_INPUT"], "{document}");
        assert_eq!(
            response["errors"][0]["extensions"]["field"], field,
            "{document}"
        );
    }
    assert!(shop.commands.sent().is_empty());
}

#[tokio::test]
async fn a_catalog_mutation_drops_the_sku_from_the_catalog_cache() {
    let shop = TestGateway::new();
    let read = r#"{ product(sku: "SKU-1") { priceCents } }"#;
    data(&shop.run(anonymous(), read).await);
    assert_eq!(shop.gateway.catalog_cache.len(), 1);
    let response = shop
        .run(
            admin(),
            r#"mutation { changePrice(sku: "SKU-1", priceCents: 1100) { id } }"#,
        )
        .await;
    data(&response);
    assert!(shop.gateway.catalog_cache.is_empty());
}

#[tokio::test]
async fn an_invalid_bearer_token_is_unauthenticated_with_its_reason() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            Identity::Invalid("the bearer token is invalid or expired".into()),
            r#"mutation { addToCart(sku: "SKU-1") { id } }"#,
        )
        .await;
    assert_eq!(codes(&response), ["UNAUTHENTICATED"]);
    assert_eq!(
        response["errors"][0]["message"],
        "the bearer token is invalid or expired"
    );
}
