//! The GraphiQL page at `GET /`, with example operations preloaded as tabs
//! and a bearer-token box used for both HTTP requests and the subscription
//! WebSocket.
//!
//! async-graphql's own GraphiQL builder cannot preload operations, so the page
//! is ours; it loads GraphiQL 3 from unpkg.

/// The operations shown when the page opens, one tab each: (title, document, variables).
pub const EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "Catalog",
        r#"# Welcome to the shop's GraphQL API.
# Tabs hold example operations; log in (next tab), paste the token in the
# box above, then try the customer and admin tabs.
query Catalog($first: Int = 5) {
  products(first: $first) {
    edges { cursor node { sku name priceCents category stock { available reserved } } }
    pageInfo { hasNextPage endCursor }
  }
  searchProducts(query: "mug", first: 3) { sku name }
}"#,
        "{}",
    ),
    (
        "Register and log in",
        r#"mutation Register {
  registerCustomer(input: {email: "ann@example.com", name: "Ann", password: "correct horse"}) { id token }
}

mutation Login {
  login(email: "ann@example.com", password: "correct horse")
}"#,
        "{}",
    ),
    (
        "Shop (customer)",
        r#"mutation AddToCart($sku: String!) {
  addToCart(sku: $sku, quantity: 2) { id token }
}

mutation Checkout {
  checkout(input: {paymentToken: "tok_visa", shippingAddress: "1 Main St, Springfield"}) { id token }
}

query Me($token: String) {
  me(consistencyToken: $token) {
    id email name
    cart { lines { sku quantity product { name priceCents } } totalCents }
    wishlist { skus }
    orders(first: 5) { id status totalCents timeline { status at } }
    recommendations(first: 3) { sku name }
    notifications(first: 5) { kind message at }
  }
}"#,
        r#"{"sku": "SKU-1"}"#,
    ),
    (
        "Follow an order",
        r#"subscription FollowOrder($orderId: ID!) {
  orderUpdates(orderId: $orderId) {
    id status cancellationReason timeline { status at }
  }
}

query Order($orderId: ID!, $token: String) {
  order(id: $orderId, consistencyToken: $token) {
    id customerId status cancellationReason totalCents shippingCostCents createdAt
    lines { sku quantity unitPriceCents }
    timeline { status at }
  }
}"#,
        r#"{"orderId": "00000000-0000-0000-0000-000000000000"}"#,
    ),
    (
        "Admin",
        r#"mutation AddProduct {
  addProduct(input: {sku: "SKU-1", name: "Blue mug", description: "A mug, blue", priceCents: 1200, category: "kitchen"}) { id token }
}

mutation Restock {
  restock(sku: "SKU-1", quantity: 50) { id token }
}

mutation Dispatch($orderId: ID!) {
  dispatchShipment(orderId: $orderId) { id token }
}

mutation Deliver($orderId: ID!) {
  confirmDelivery(orderId: $orderId) { id token }
}

query Stats {
  salesStats(top: 5) { orders revenueCents topProducts { sku quantity revenueCents } }
  inventory(sku: "SKU-1") { available reserved shipped }
}"#,
        r#"{"orderId": "00000000-0000-0000-0000-000000000000"}"#,
    ),
];

/// The page, for a GraphQL endpoint and a WebSocket endpoint (paths on this host).
pub fn page(endpoint: &str, subscription_endpoint: &str) -> String {
    let tabs: Vec<serde_json::Value> = EXAMPLES
        .iter()
        .map(|(_, query, variables)| serde_json::json!({"query": query, "variables": variables}))
        .collect();
    // JSON is valid JavaScript; escaping `<` keeps a `</script>` inside a string harmless.
    let tabs = serde_json::to_string(&tabs)
        .unwrap_or_else(|_| "[]".to_owned())
        .replace('<', "\\u003c");
    let endpoint = serde_json::to_string(endpoint).unwrap_or_default();
    let subscription_endpoint = serde_json::to_string(subscription_endpoint).unwrap_or_default();
    TEMPLATE
        .replace("__TABS__", &tabs)
        .replace("__ENDPOINT__", &endpoint)
        .replace("__WS_ENDPOINT__", &subscription_endpoint)
}

const TEMPLATE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>shop · GraphiQL</title>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3/graphiql.min.css">
  <style>
    body { margin: 0; height: 100vh; display: flex; flex-direction: column; font-family: sans-serif; }
    #bar { padding: 6px 10px; display: flex; gap: 8px; align-items: center; font-size: 13px; border-bottom: 1px solid #ddd; }
    #bar input { flex: 1; font-family: monospace; }
    #graphiql { flex: 1; }
  </style>
</head>
<body>
  <div id="bar">
    <label for="token">Bearer token (from <code>login</code>):</label>
    <input id="token" placeholder="paste the token here; used for queries, mutations and subscriptions">
  </div>
  <div id="graphiql">Loading…</div>
  <script crossorigin src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3/graphiql.min.js"></script>
  <script>
    const tabs = __TABS__;
    const endpoint = new URL(__ENDPOINT__, window.location.href).toString();
    const wsUrl = new URL(__WS_ENDPOINT__, window.location.href);
    wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
    const tokenInput = document.getElementById('token');
    tokenInput.value = localStorage.getItem('shop.token') || '';
    const root = ReactDOM.createRoot(document.getElementById('graphiql'));
    function render() {
      const token = tokenInput.value.trim();
      const headers = token ? { Authorization: 'Bearer ' + token } : {};
      const fetcher = GraphiQL.createFetcher({
        url: endpoint,
        subscriptionUrl: wsUrl.toString(),
        headers: headers,
        wsConnectionParams: headers,
      });
      root.render(React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultQuery: tabs[0].query,
        defaultTabs: tabs,
        defaultEditorToolsVisibility: true,
      }));
    }
    tokenInput.addEventListener('change', () => {
      localStorage.setItem('shop.token', tokenInput.value.trim());
      render();
    });
    render();
  </script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_preloads_every_example_and_names_both_endpoints() {
        let html = page("/graphql", "/graphql/ws");
        assert!(html.contains(r#"new URL("/graphql", window.location.href)"#));
        assert!(html.contains(r#"new URL("/graphql/ws", window.location.href)"#));
        assert!(html.contains("defaultTabs: tabs"));
        for name in [
            "registerCustomer",
            "orderUpdates",
            "addProduct",
            "checkout",
            "salesStats",
        ] {
            assert!(html.contains(name), "{name} missing from the examples");
        }
        assert!(!html.contains("__TABS__"));
    }
}
