//! The GraphQL gateway over HTTP and WebSocket against the real
//! multi-process system (event store, command services, saga, projectors,
//! query API, each a `shop` process) and RabbitMQ.

use std::time::{Duration, Instant};

use ::scenarios::topology::{ComponentKind, Topology, TopologyConfig};
use futures::{SinkExt, StreamExt};
use projectors::ProjectorName;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// A GraphQL client of the spawned query API.
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(topology: &Topology) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: topology.query_api_url().to_owned(),
        }
    }

    async fn call(&self, bearer: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.url))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.expect("the query API answers");
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.expect("a JSON answer")
    }

    /// The data of a response that must have no errors.
    async fn data(&self, bearer: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self.call(bearer, query, variables).await;
        assert!(response.get("errors").is_none(), "{query}: {response:#}");
        response["data"].clone()
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let data = self
            .data(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) }",
                json!({"e": email, "p": password}),
            )
            .await;
        data["login"].as_str().unwrap().to_owned()
    }

    async fn register_and_login(&self, email: &str) -> String {
        let password = "correct horse battery";
        self.data(
            None,
            "mutation($e: String!, $p: String!) { registerCustomer(input: {email: $e, name: \"E2E\", password: $p}) { id token } }",
            json!({"e": email, "p": password}),
        )
        .await;
        self.login(email, password).await
    }
}

fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// Spawns the system; answers it with the admin's e-mail and password.
async fn spawn() -> (Topology, String, String) {
    let config = TopologyConfig::new(env!("CARGO_BIN_EXE_shop"));
    let (email, password) = (config.admin.email.clone(), config.admin.password.clone());
    let topology = Topology::spawn(config)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    (topology, email, password)
}

/// Adds a product with stock through the admin account; answers its SKU once
/// the catalog shows the stock.
async fn stocked_product(api: &Api, admin_token: &str, quantity: i64) -> String {
    // The services keep SKUs upper-cased.
    let sku = unique("E2E-").to_uppercase();
    let added = api
        .data(
            Some(admin_token),
            "mutation($sku: String!) { addProduct(input: {sku: $sku, name: \"Enamel mug\", description: \"A mug\", priceCents: 1500, category: \"kitchen\"}) { id token } }",
            json!({"sku": sku}),
        )
        .await;
    let product_token = added["addProduct"]["token"].as_str().unwrap().to_owned();
    let restocked = api
        .data(
            Some(admin_token),
            "mutation($sku: String!, $q: Int!) { restock(sku: $sku, quantity: $q) { token } }",
            json!({"sku": sku, "q": quantity}),
        )
        .await;
    let stock_token = restocked["restock"]["token"].as_str().unwrap().to_owned();
    for token in [product_token, stock_token] {
        api.data(
            None,
            "query($sku: String!, $t: String) { product(sku: $sku, consistencyToken: $t) { sku } }",
            json!({"sku": sku, "t": token}),
        )
        .await;
    }
    sku
}

/// A graphql-transport-ws connection, initialised with a bearer token.
async fn subscribe(
    url: &str,
    bearer: &str,
    query: &str,
    variables: Value,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let ws_url = format!("{}/graphql/ws", url.replacen("http://", "ws://", 1));
    let mut request = ws_url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {bearer}")}});
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_message(&mut socket).await["type"], "connection_ack");
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    socket
}

async fn next_message<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("a message within a minute")
            .expect("the socket is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => {
                return json!({"type": "closed", "frame": format!("{frame:?}")})
            }
            _ => {}
        }
    }
}

const FOLLOW: &str =
    "subscription($id: ID!) { orderUpdates(orderId: $id) { id status timeline { status } } }";

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_registers_fills_a_cart_checks_out_and_follows_the_order_to_delivered() {
    let _one_system_at_a_time = crate::PROCESSES.lock().await;
    let (topology, admin_email, admin_password) = spawn().await;
    let api = Api::new(&topology);
    let admin_token = api.login(&admin_email, &admin_password).await;
    let sku = stocked_product(&api, &admin_token, 10).await;

    let ann = api
        .register_and_login(&format!("{}@example.com", unique("ann-")))
        .await;
    let added = api
        .data(
            Some(&ann),
            "mutation($sku: String!) { addToCart(sku: $sku, quantity: 2) { token } }",
            json!({"sku": sku}),
        )
        .await;
    let cart = api
        .data(
            Some(&ann),
            "query($t: String) { me(consistencyToken: $t) { cart { lines { sku quantity } } } }",
            json!({"t": added["addToCart"]["token"]}),
        )
        .await;
    assert_eq!(
        cart["me"]["cart"]["lines"],
        json!([{"sku": sku, "quantity": 2}])
    );
    let checkout = api
        .data(
            Some(&ann),
            "mutation { checkout(input: {paymentToken: \"tok_visa\", shippingAddress: \"1 Main St, Springfield\"}) { id token } }",
            json!({}),
        )
        .await;
    let order_id = checkout["checkout"]["id"].as_str().unwrap().to_owned();
    let placed = api
        .data(
            Some(&ann),
            "query($id: ID!, $t: String) { order(id: $id, consistencyToken: $t) { id customerId lines { sku quantity unitPriceCents } } }",
            json!({"id": order_id, "t": checkout["checkout"]["token"]}),
        )
        .await;
    assert_eq!(
        placed["order"]["lines"],
        json!([{"sku": sku, "quantity": 2, "unitPriceCents": 1500}])
    );

    // One request that the query API holds until the saga has confirmed it.
    let confirmed = api
        .data(
            Some(&ann),
            "query($id: ID!) { order(id: $id, waitFor: [CONFIRMED, CANCELLED], waitMs: 20000) { status } }",
            json!({"id": order_id}),
        )
        .await;
    assert_eq!(confirmed["order"]["status"], "CONFIRMED", "{confirmed}");

    // Follow the order; the admin moves it on when it is confirmed, then shipped.
    let mut socket = subscribe(
        topology.query_api_url(),
        &ann,
        FOLLOW,
        json!({"id": order_id}),
    )
    .await;
    let first = next_message(&mut socket).await;
    assert_eq!(first["type"], "next", "{first}");
    let mut seen: Vec<String> = first["payload"]["data"]["orderUpdates"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["status"].as_str().unwrap().to_owned())
        .collect();
    loop {
        match seen.last().map(String::as_str) {
            Some("CONFIRMED") => {
                api.data(
                    Some(&admin_token),
                    "mutation($id: ID!) { dispatchShipment(orderId: $id) { token } }",
                    json!({"id": order_id}),
                )
                .await;
            }
            Some("SHIPPED") => {
                api.data(
                    Some(&admin_token),
                    "mutation($id: ID!) { confirmDelivery(orderId: $id) { token } }",
                    json!({"id": order_id}),
                )
                .await;
            }
            Some("DELIVERED") => break,
            other => assert_eq!(other, Some("PLACED"), "unexpected status; seen {seen:?}"),
        }
        let update = next_message(&mut socket).await;
        assert_eq!(update["type"], "next", "{update}; seen {seen:?}");
        let order = &update["payload"]["data"]["orderUpdates"];
        assert_eq!(
            order["timeline"].as_array().unwrap().len(),
            seen.len() + 1,
            "one update per status change: {order}"
        );
        seen.push(order["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["PLACED", "CONFIRMED", "SHIPPED", "DELIVERED"]);
    assert_eq!(
        next_message(&mut socket).await,
        json!({"id": "1", "type": "complete"})
    );

    // Another customer sees none of it.
    let bo = api
        .register_and_login(&format!("{}@example.com", unique("bo-")))
        .await;
    let foreign = api
        .call(
            Some(&bo),
            "query($id: ID!) { order(id: $id) { id status } }",
            json!({"id": order_id}),
        )
        .await;
    assert_eq!(codes(&foreign), ["NOT_FOUND"], "{foreign}");
    let cancel = api
        .call(
            Some(&bo),
            "mutation($id: ID!) { cancelOrder(orderId: $id) { id } }",
            json!({"id": order_id}),
        )
        .await;
    assert_eq!(codes(&cancel), ["NOT_FOUND"], "{cancel}");
    let bo_cart = api
        .data(Some(&bo), "{ me { cart { lines { sku } } } }", json!({}))
        .await;
    assert_eq!(bo_cart["me"]["cart"]["lines"], json!([]));
    let mut spy = subscribe(
        topology.query_api_url(),
        &bo,
        FOLLOW,
        json!({"id": order_id}),
    )
    .await;
    let refused = next_message(&mut spy).await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );
    let delivered = api
        .data(
            Some(&ann),
            "query($id: ID!) { order(id: $id) { status } }",
            json!({"id": order_id}),
        )
        .await;
    assert_eq!(delivered["order"]["status"], "DELIVERED");

    topology.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_projector_gives_partial_data_and_refused_queries_change_nothing() {
    let _one_system_at_a_time = crate::PROCESSES.lock().await;
    let (topology, admin_email, admin_password) = spawn().await;
    let api = Api::new(&topology);
    let admin_token = api.login(&admin_email, &admin_password).await;
    let sku = stocked_product(&api, &admin_token, 5).await;
    let cy = api
        .register_and_login(&format!("{}@example.com", unique("cy-")))
        .await;
    api.data(
        Some(&cy),
        "mutation($sku: String!) { addToCart(sku: $sku, quantity: 1) { token } }",
        json!({"sku": sku}),
    )
    .await;

    // Refused documents: malformed, too deep, too complex, too many aliases.
    let aliases: String = (0..31)
        .map(|n| format!("a{n}: addToCart(sku: \"{sku}\") {{ id }} "))
        .collect();
    let complex: String = (0..30)
        .map(|n| format!("p{n}: products(first: 100) {{ edges {{ node {{ sku name }} }} }} "))
        .collect();
    let refused = [
        format!("mutation {{ addToCart(sku: \"{sku}\" {{ id }} }}"),
        format!("{{ {}x{} }}", "a { ".repeat(20), " }".repeat(20)),
        format!("query Big {{ {complex} }}"),
        format!("mutation {{ {aliases} }}"),
    ];
    for document in &refused {
        let response = api.call(Some(&cy), document, json!({})).await;
        assert_eq!(
            codes(&response),
            ["INVALID_INPUT"],
            "{document}: {response}"
        );
    }
    // A later write to the same cart is applied after anything sent before it.
    let other_sku = stocked_product(&api, &admin_token, 5).await;
    let later = api
        .data(
            Some(&cy),
            "mutation($sku: String!) { addToCart(sku: $sku, quantity: 1) { token } }",
            json!({"sku": other_sku}),
        )
        .await;
    let cart = api
        .data(
            Some(&cy),
            "query($t: String) { me(consistencyToken: $t) { name cart { lines { sku quantity } } } }",
            json!({"t": later["addToCart"]["token"]}),
        )
        .await;
    let mut lines = cart["me"]["cart"]["lines"].as_array().unwrap().clone();
    lines.sort_by_key(|line| line["sku"].as_str().unwrap().to_owned());
    let mut expected = vec![
        json!({"sku": sku, "quantity": 1}),
        json!({"sku": other_sku, "quantity": 1}),
    ];
    expected.sort_by_key(|line| line["sku"].as_str().unwrap().to_owned());
    assert_eq!(lines, expected, "the refused mutations added nothing");
    assert_eq!(cart["me"]["name"], "E2E");

    // Stop the customers projector: its fields answer UNAVAILABLE, the rest answers.
    let customers = topology
        .components()
        .iter()
        .find(|c| c.kind == ComponentKind::Projector(ProjectorName::Customers))
        .unwrap();
    let pid = customers.pid().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let health = format!("{}/health", customers.url);
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&health).await.is_ok() {
        assert!(Instant::now() < deadline, "the projector did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let partial = api
        .call(
            Some(&cy),
            "{ me { id name cart { lines { sku } } } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&partial), ["UNAVAILABLE"], "{partial}");
    assert_eq!(partial["errors"][0]["path"], json!(["me", "name"]));
    assert_eq!(partial["data"]["me"]["name"], Value::Null);
    assert_eq!(
        partial["data"]["me"]["cart"]["lines"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{partial}"
    );

    topology.shutdown().await;
}
