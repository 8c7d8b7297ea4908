//! Every query of CONTRACT.md through `schema.execute`.

use query_api::backend::{Projector, View};
use serde_json::json;

use crate::fixture::{
    admin, anonymous, codes, customer, data, eventually, other_customer, product, TestGateway,
    CUSTOMER, ORDER, OTHER_ORDER,
};

#[tokio::test]
async fn product_answers_the_catalog_document_with_its_stock() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            anonymous(),
            r#"{ product(sku: "SKU-1") { sku name description priceCents category discontinued stock { available reserved } } }"#,
        )
        .await;
    insta::assert_json_snapshot!(response);
}

#[tokio::test]
async fn a_sku_is_read_in_the_form_the_services_keep_it() {
    let shop = TestGateway::new();
    let response = shop
        .run(anonymous(), r#"{ product(sku: " sku-1 ") { sku } }"#)
        .await;
    assert_eq!(data(&response)["product"]["sku"], "SKU-1");
}

#[tokio::test]
async fn an_unknown_product_is_not_found_and_an_empty_sku_is_invalid() {
    let shop = TestGateway::new();
    let missing = shop
        .run(anonymous(), r#"{ product(sku: "NOPE") { sku } }"#)
        .await;
    assert_eq!(codes(&missing), ["NOT_FOUND"]);
    assert_eq!(missing["data"]["product"], json!(null));
    let empty = shop
        .run(anonymous(), r#"{ product(sku: "") { sku } }"#)
        .await;
    assert_eq!(codes(&empty), ["INVALID_INPUT"]);
    assert_eq!(empty["errors"][0]["extensions"]["field"], "sku");
}

#[tokio::test]
async fn products_page_through_the_catalog_in_sku_order() {
    let shop = TestGateway::new();
    let query = r#"query Page($after: String) {
        products(first: 2, after: $after) {
            edges { cursor node { sku } }
            pageInfo { hasNextPage hasPreviousPage endCursor }
        }
    }"#;
    let first = shop.run_vars(anonymous(), query, json!({})).await;
    insta::assert_json_snapshot!("products_first_page", first);
    let cursor = data(&first)["products"]["pageInfo"]["endCursor"].clone();
    let second = shop
        .run_vars(anonymous(), query, json!({"after": cursor}))
        .await;
    let skus: Vec<_> = data(&second)["products"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["sku"].clone())
        .collect();
    assert_eq!(skus, [json!("SKU-3"), json!("SKU-4")]);
    assert_eq!(second["data"]["products"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        second["data"]["products"]["pageInfo"]["hasPreviousPage"],
        true
    );
}

#[tokio::test]
async fn products_filter_by_category_and_refuse_a_page_size_out_of_range() {
    let shop = TestGateway::new();
    let textiles = shop
        .run(
            anonymous(),
            r#"{ products(category: "textiles") { edges { node { sku category } } } }"#,
        )
        .await;
    assert_eq!(
        data(&textiles)["products"]["edges"],
        json!([{"node": {"sku": "SKU-3", "category": "textiles"}}])
    );
    let too_many = shop
        .run(
            anonymous(),
            r#"{ products(first: 101) { edges { cursor } } }"#,
        )
        .await;
    assert_eq!(codes(&too_many), ["INVALID_INPUT"]);
}

#[tokio::test]
async fn search_ranks_matching_products_and_loads_them_from_the_catalog() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            anonymous(),
            r#"{ searchProducts(query: "blue mug", first: 5) { sku name priceCents } }"#,
        )
        .await;
    let found = &data(&response)["searchProducts"];
    assert_eq!(
        found[0]["sku"], "SKU-1",
        "both words match the blue mug: {found}"
    );
    assert_eq!(found[1]["sku"], "SKU-2");
    assert_eq!(found.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_customer_reads_their_own_order_with_lines_products_and_timeline() {
    let shop = TestGateway::new();
    let response = shop
        .run_vars(
            customer(),
            r#"query Order($id: ID!) { order(id: $id) {
                id customerId status cancellationReason subtotalCents totalCents shippingCostCents createdAt
                lines { sku quantity unitPriceCents product { name } }
                timeline { status at }
            } }"#,
            json!({"id": ORDER}),
        )
        .await;
    insta::assert_json_snapshot!(response);
}

#[tokio::test]
async fn another_customers_order_is_not_found_but_the_admin_reads_any() {
    let shop = TestGateway::new();
    let query = r#"query Order($id: ID!) { order(id: $id) { id status } }"#;
    let foreign = shop
        .run_vars(customer(), query, json!({"id": OTHER_ORDER}))
        .await;
    assert_eq!(codes(&foreign), ["NOT_FOUND"]);
    assert_eq!(foreign["data"]["order"], json!(null));
    let missing = shop
        .run_vars(other_customer(), query, json!({"id": ORDER}))
        .await;
    assert_eq!(
        missing["errors"][0]["message"],
        foreign["errors"][0]["message"]
            .as_str()
            .unwrap()
            .replace(OTHER_ORDER, ORDER),
        "another's order reads exactly like a missing one"
    );
    let as_admin = shop
        .run_vars(admin(), query, json!({"id": OTHER_ORDER}))
        .await;
    assert_eq!(data(&as_admin)["order"]["status"], "PLACED");
}

#[tokio::test]
async fn reading_an_order_needs_a_token_and_a_uuid() {
    let shop = TestGateway::new();
    let anonymous_read = shop
        .run(
            anonymous(),
            &format!(r#"{{ order(id: "{ORDER}") {{ id }} }}"#),
        )
        .await;
    assert_eq!(codes(&anonymous_read), ["UNAUTHENTICATED"]);
    let invalid_token = shop
        .run(
            query_api::auth::Identity::Invalid("expired".into()),
            &format!(r#"{{ order(id: "{ORDER}") {{ id }} }}"#),
        )
        .await;
    assert_eq!(codes(&invalid_token), ["UNAUTHENTICATED"]);
    let not_a_uuid = shop.run(customer(), r#"{ order(id: "42") { id } }"#).await;
    assert_eq!(codes(&not_a_uuid), ["INVALID_INPUT"]);
}

const ME: &str = r#"{ me {
    id email name registeredAt ordersCount spentCents
    orders { id status totalCents lines { sku product { name } } }
    cart { itemCount totalCents lines { sku quantity product { name priceCents } } }
    wishlist { skus products { sku discontinued } }
    recommendations(first: 3) { sku }
    notifications(first: 1) { kind message orderId }
} }"#;

#[tokio::test]
async fn me_aggregates_profile_orders_cart_wishlist_recommendations_and_notifications() {
    let shop = TestGateway::new();
    let response = shop.run(customer(), ME).await;
    insta::assert_json_snapshot!(response);
}

#[tokio::test]
async fn me_reads_each_view_in_batches_not_one_call_per_field() {
    let shop = TestGateway::new();
    let response = shop.run(customer(), ME).await;
    data(&response);
    let batches = shop.views.batches();
    let count = |view: View| batches.iter().filter(|(v, _)| *v == view).count();
    assert_eq!(count(View::Customers), 1, "{batches:?}");
    assert_eq!(count(View::Carts), 1, "{batches:?}");
    assert_eq!(count(View::Wishlists), 1, "{batches:?}");
    assert_eq!(count(View::Orders), 1, "{batches:?}");
    assert_eq!(count(View::Notifications), 1, "{batches:?}");
    // Products are needed at several depths of the query (order lines, cart
    // lines, the wishlist, recommendations): one batch per depth at most, and
    // far fewer than the eight product fields asked for.
    assert!(count(View::Products) <= 3, "{batches:?}");
}

#[tokio::test]
async fn me_is_for_customers_only() {
    let shop = TestGateway::new();
    assert_eq!(
        codes(&shop.run(admin(), "{ me { id } }").await),
        ["FORBIDDEN"]
    );
    assert_eq!(
        codes(&shop.run(anonymous(), "{ me { id } }").await),
        ["UNAUTHENTICATED"]
    );
}

#[tokio::test]
async fn me_answers_an_empty_cart_and_wishlist_for_a_new_customer() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            other_customer(),
            "{ me { cart { itemCount lines { sku } } wishlist { skus } notifications { id } } }",
        )
        .await;
    assert_eq!(
        data(&response)["me"],
        json!({"cart": {"itemCount": 0, "lines": []}, "wishlist": {"skus": []}, "notifications": []})
    );
}

#[tokio::test]
async fn inventory_answers_stock_levels_of_a_sku() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            anonymous(),
            r#"{ inventory(sku: "SKU-1") { sku available reserved shipped } }"#,
        )
        .await;
    assert_eq!(
        data(&response)["inventory"],
        json!({"sku": "SKU-1", "available": 10, "reserved": 2, "shipped": 5})
    );
    let missing = shop
        .run(anonymous(), r#"{ inventory(sku: "SKU-9") { available } }"#)
        .await;
    assert_eq!(codes(&missing), ["NOT_FOUND"]);
}

#[tokio::test]
async fn recommendations_list_products_bought_together_most_often_first() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            anonymous(),
            r#"{ recommendations(sku: "SKU-1", first: 2) { sku name } }"#,
        )
        .await;
    assert_eq!(
        data(&response)["recommendations"],
        json!([{"sku": "SKU-3", "name": "Tea towel"}, {"sku": "SKU-2", "name": "Red mug"}])
    );
}

#[tokio::test]
async fn sales_stats_are_for_the_admin() {
    let shop = TestGateway::new();
    let query = "{ salesStats(top: 1) { orders revenueCents topProducts { sku quantity revenueCents product { name } } } }";
    let response = shop.run(admin(), query).await;
    assert_eq!(
        data(&response)["salesStats"],
        json!({"orders": 1, "revenueCents": 3399, "topProducts": [
            {"sku": "SKU-1", "quantity": 2, "revenueCents": 2400, "product": {"name": "Blue mug"}}
        ]})
    );
    assert_eq!(codes(&shop.run(customer(), query).await), ["FORBIDDEN"]);
    assert_eq!(
        codes(&shop.run(anonymous(), query).await),
        ["UNAUTHENTICATED"]
    );
}

/// Delivers `ORDER` in the orders view once the view has answered `reads`
/// more calls than now.
fn deliver_after_reads(shop: &TestGateway, reads: usize) -> tokio::task::JoinHandle<()> {
    let views = shop.views.clone();
    let calls_before = views.calls(Projector::Orders);
    tokio::spawn(async move {
        eventually("the query to read the orders view", || {
            views.calls(Projector::Orders) >= calls_before + reads
        })
        .await;
        let delivered = crate::fixture::order(
            ORDER,
            CUSTOMER,
            &["PLACED", "CONFIRMED", "SHIPPED", "DELIVERED"],
        );
        views.apply(View::Orders, ORDER, delivered, &format!("order-{ORDER}"));
    })
}

#[tokio::test]
async fn a_query_with_a_consistency_token_waits_until_the_view_has_applied_the_write() {
    let shop = TestGateway::new();
    let stream = format!("order-{ORDER}");
    let query =
        format!(r#"{{ order(id: "{ORDER}", consistencyToken: "{stream}@3") {{ status }} }}"#);
    // The projector applies the delivery only once the query is waiting for it.
    let projector = deliver_after_reads(&shop, 1);
    let response = shop.run(customer(), &query).await;
    projector.await.unwrap();
    assert_eq!(data(&response)["order"]["status"], "DELIVERED");
}

#[tokio::test]
async fn an_order_query_waiting_for_a_status_answers_once_the_view_has_it() {
    let shop = TestGateway::new();
    let query =
        format!(r#"{{ order(id: "{ORDER}", waitFor: [DELIVERED], waitMs: 10000) {{ status }} }}"#);
    // The view moves on only once the query has read the order and is waiting.
    let projector = deliver_after_reads(&shop, 2);
    let response = shop.run(customer(), &query).await;
    projector.await.unwrap();
    assert_eq!(data(&response)["order"]["status"], "DELIVERED");
}

#[tokio::test]
async fn an_order_query_whose_wait_is_up_answers_the_order_as_it_is() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            customer(),
            &format!(
                r#"{{ order(id: "{ORDER}", waitFor: [DELIVERED], waitMs: 30) {{ status }} }}"#
            ),
        )
        .await;
    assert_eq!(data(&response)["order"]["status"], "SHIPPED");
}

#[tokio::test]
async fn waiting_for_another_customers_order_is_not_found_at_once() {
    let shop = TestGateway::new();
    let started = std::time::Instant::now();
    let response = shop
        .run(
            other_customer(),
            &format!(
                r#"{{ order(id: "{ORDER}", waitFor: [DELIVERED], waitMs: 30000) {{ status }} }}"#
            ),
        )
        .await;
    assert_eq!(codes(&response), ["NOT_FOUND"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "refused before any wait"
    );
}

#[tokio::test]
async fn a_wait_out_of_bounds_is_invalid_input() {
    let shop = TestGateway::new();
    for wait in [-1, 30_001] {
        let response = shop
            .run(
                customer(),
                &format!(r#"{{ order(id: "{ORDER}", waitFor: [DELIVERED], waitMs: {wait}) {{ status }} }}"#),
            )
            .await;
        assert_eq!(codes(&response), ["INVALID_INPUT"], "{wait}");
        assert_eq!(response["errors"][0]["extensions"]["field"], "waitMs");
    }
}

#[tokio::test]
async fn a_consistency_token_the_view_never_reaches_answers_timeout() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            customer(),
            &format!(
                r#"{{ order(id: "{ORDER}", consistencyToken: "order-{ORDER}@9") {{ status }} }}"#
            ),
        )
        .await;
    assert_eq!(codes(&response), ["TIMEOUT"]);
    assert_eq!(response["errors"][0]["extensions"]["service"], "orders");
}

#[tokio::test]
async fn a_malformed_consistency_token_is_invalid_input() {
    let shop = TestGateway::new();
    let response = shop
        .run(
            anonymous(),
            r#"{ product(sku: "SKU-1", consistencyToken: "yesterday") { sku } }"#,
        )
        .await;
    assert_eq!(codes(&response), ["INVALID_INPUT"]);
    assert_eq!(
        response["errors"][0]["extensions"]["field"],
        "consistencyToken"
    );
}

#[tokio::test]
async fn a_token_of_a_stream_the_view_does_not_apply_does_not_wait() {
    let shop = TestGateway::new();
    // The catalog never applies cart events, so there is nothing to wait for.
    let response = shop
        .run(
            anonymous(),
            &format!(
                r#"{{ product(sku: "SKU-1", consistencyToken: "cart-{CUSTOMER}@7") {{ sku }} }}"#
            ),
        )
        .await;
    assert_eq!(data(&response)["product"]["sku"], "SKU-1");
    assert_eq!(
        shop.views.calls(Projector::Catalog),
        1,
        "no position was asked"
    );
}

#[tokio::test]
async fn the_catalog_cache_never_serves_a_product_older_than_the_consistency_token() {
    let shop = TestGateway::new();
    let price = "{ product(sku: \"SKU-2\") { priceCents } }";
    assert_eq!(
        data(&shop.run(anonymous(), price).await)["product"]["priceCents"],
        1300
    );
    // The projector applies a price change the gateway did not see go by.
    shop.views.apply(
        View::Products,
        "SKU-2",
        product("SKU-2", "Red mug", 1500, "kitchen", 4),
        "product-SKU-2",
    );
    let cached = shop.run(anonymous(), price).await;
    assert_eq!(
        data(&cached)["product"]["priceCents"],
        1300,
        "without a token a recent cached read is fine"
    );
    let batches_before = shop.views.batches().len();
    let fresh = shop
        .run(
            anonymous(),
            r#"{ product(sku: "SKU-2", consistencyToken: "product-SKU-2@0") { priceCents } }"#,
        )
        .await;
    assert_eq!(data(&fresh)["product"]["priceCents"], 1500);
    assert_eq!(
        shop.views.batches().len(),
        batches_before + 1,
        "read from the projector"
    );
    let calls_before = shop.views.calls(Projector::Catalog);
    let again = shop
        .run(
            anonymous(),
            r#"{ product(sku: "SKU-2", consistencyToken: "product-SKU-2@0") { priceCents } }"#,
        )
        .await;
    assert_eq!(data(&again)["product"]["priceCents"], 1500);
    assert_eq!(
        shop.views.calls(Projector::Catalog),
        calls_before,
        "the same token again is answered from what the gateway has seen and cached"
    );
}
