//! Malformed, too deep, too complex and alias-heavy documents are refused
//! before anything runs, so they change nothing.

use query_api::{graphiql::EXAMPLES, limits::QueryLimits};
use serde_json::json;

use crate::fixture::{admin, codes, customer, Settings, TestGateway};

fn limited(limits: QueryLimits) -> TestGateway {
    TestGateway::with(Settings {
        limits,
        ..Settings::default()
    })
}

#[tokio::test]
async fn a_malformed_document_is_refused_with_invalid_input_and_changes_nothing() {
    let shop = TestGateway::new();
    let response = shop
        .run(customer(), r#"mutation { addToCart(sku: "SKU-1" { id } }"#)
        .await;
    assert_eq!(codes(&response), ["INVALID_INPUT"]);
    assert_eq!(response["data"], json!(null));
    assert!(shop.commands.sent().is_empty());
}

#[tokio::test]
async fn a_document_asking_for_unknown_fields_is_refused_and_changes_nothing() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            customer(),
            r#"mutation { addToCart(sku: "SKU-1") { id } wipeEverything { id } }"#,
        )
        .await;
    assert_eq!(codes(&response), ["INVALID_INPUT"]);
    assert!(shop.commands.sent().is_empty());
}

#[tokio::test]
async fn a_too_deep_query_is_refused_before_it_reads_anything() {
    let shop = limited(QueryLimits {
        max_depth: 4,
        ..QueryLimits::default()
    });
    let response = shop
        .run(
            customer(),
            "{ me { orders { lines { product { name } } } } }",
        )
        .await;
    assert_eq!(codes(&response), ["INVALID_INPUT"]);
    let message = response["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("nested 5 levels deep; the limit is 4"),
        "{message}"
    );
    assert_eq!(shop.views.batches(), [], "no view was read");
}

#[tokio::test]
async fn absurd_nesting_is_refused_by_depth_before_validation() {
    let shop = TestGateway::new();
    let deep = format!("{{ {}x{} }}", "a { ".repeat(40), " }".repeat(40));
    let response = shop.run(customer(), &deep).await;
    assert_eq!(codes(&response), ["INVALID_INPUT"]);
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("levels deep"),
        "{response}"
    );
}

#[tokio::test]
async fn a_too_complex_document_is_refused_and_changes_nothing() {
    let shop = limited(QueryLimits {
        max_complexity: 10,
        ..QueryLimits::default()
    });
    let document = r#"mutation {
        a: addToCart(sku: "SKU-1") { id token }
        b: addToCart(sku: "SKU-2") { id token }
        c: addToCart(sku: "SKU-3") { id token }
        d: addToCart(sku: "SKU-4") { id token }
    }"#;
    let response = shop.run(customer(), document).await;
    assert_eq!(codes(&response), ["INVALID_INPUT"]);
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{response}"
    );
    assert!(shop.commands.sent().is_empty());
}

#[tokio::test]
async fn list_fields_multiply_complexity_by_their_page_size() {
    let shop = limited(QueryLimits {
        max_complexity: 100,
        ..QueryLimits::default()
    });
    let small = shop
        .run(
            customer(),
            "{ products(first: 5) { edges { node { sku name } } } }",
        )
        .await;
    assert_eq!(codes(&small), Vec::<String>::new());
    let large = shop
        .run(
            customer(),
            "{ products(first: 100) { edges { node { sku name } } } }",
        )
        .await;
    assert_eq!(codes(&large), ["INVALID_INPUT"]);
}

#[tokio::test]
async fn too_many_aliases_are_refused_and_change_nothing() {
    let shop = TestGateway::new();
    let mutations: String = (0..31)
        .map(|n| format!(r#"m{n}: addToCart(sku: "SKU-1") {{ id }} "#))
        .collect();
    let response = shop
        .run(customer(), &format!("mutation {{ {mutations} }}"))
        .await;
    assert_eq!(codes(&response), ["INVALID_INPUT"]);
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("31 aliases; the limit is 30"),
        "{response}"
    );
    assert!(shop.commands.sent().is_empty());
}

const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}"#;

#[tokio::test]
async fn graphiql_introspection_passes_the_limits() {
    let shop = TestGateway::new();
    let response = shop.run(customer(), INTROSPECTION).await;
    assert_eq!(codes(&response), Vec::<String>::new(), "{response}");
    assert_eq!(
        response["data"]["__schema"]["subscriptionType"]["name"],
        "SubscriptionRoot"
    );
}

#[tokio::test]
async fn every_example_preloaded_in_graphiql_is_valid_against_the_schema() {
    for (title, document, _) in EXAMPLES {
        let parsed = async_graphql::parser::parse_query(document).unwrap();
        for (name, _) in parsed.operations.iter() {
            let shop = TestGateway::new();
            let mut request = async_graphql::Request::new(*document).variables(
                async_graphql::Variables::from_json(json!({
                    "sku": "SKU-1",
                    "orderId": crate::fixture::ORDER,
                })),
            );
            if let Some(name) = name {
                request = request.operation_name(name.as_str());
            }
            let request = shop
                .gateway
                .prepare(request, query_api::Caller::new(admin()));
            let response = if name.is_some_and(|name| name.as_str() == "FollowOrder") {
                use futures::StreamExt;
                shop.schema.execute_stream(request).next().await.unwrap()
            } else {
                shop.schema.execute(request).await
            };
            // Resolver errors (the admin has no cart, ...) carry a path;
            // a document invalid against the schema would fail without one.
            for error in &response.errors {
                assert!(
                    !error.path.is_empty(),
                    "example {title:?}, operation {name:?}: {}",
                    error.message
                );
            }
        }
    }
}

#[tokio::test]
async fn a_document_seen_before_still_has_its_variables_checked_and_changes_nothing_when_they_are_wrong(
) {
    let shop = TestGateway::new();
    let document =
        r#"mutation Add($quantity: Int!) { addToCart(sku: "SKU-1", quantity: $quantity) { id } }"#;
    for _ in 0..2 {
        let fine = shop
            .run_vars(customer(), document, json!({"quantity": 2}))
            .await;
        assert_eq!(codes(&fine), Vec::<String>::new(), "{fine}");
    }
    assert_eq!(shop.commands.sent().len(), 2);
    let wrong_type = shop
        .run_vars(customer(), document, json!({"quantity": "lots"}))
        .await;
    assert_eq!(codes(&wrong_type), ["INVALID_INPUT"], "{wrong_type}");
    let missing = shop.run_vars(customer(), document, json!({})).await;
    assert_eq!(codes(&missing), ["INVALID_INPUT"], "{missing}");
    assert_eq!(
        shop.commands.sent().len(),
        2,
        "no command for the bad requests"
    );
}
