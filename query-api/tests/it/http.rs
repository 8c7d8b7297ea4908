//! The HTTP routes: GraphiQL, `POST /graphql` with its body and rate
//! limits, the ops routes, and subscriptions over graphql-transport-ws on a
//! real socket.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use futures::{SinkExt, StreamExt};
use query_api::{
    backend::{Actor, View},
    limits::QueryLimits,
    rate_limit::RateLimiter,
    router, state_for,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use tower::ServiceExt;

use crate::fixture::{customer_id, order, TestGateway, CUSTOMER};

fn app(shop: &TestGateway, limiter: RateLimiter, max_body_bytes: usize) -> Router {
    router(state_for(
        Arc::clone(&shop.gateway),
        QueryLimits::default(),
        limiter,
        max_body_bytes,
    ))
}

fn unlimited(shop: &TestGateway) -> Router {
    app(shop, RateLimiter::new(0, 1), 64 * 1024)
}

fn post() -> axum::http::request::Builder {
    Request::post("/graphql").header(header::CONTENT_TYPE, "application/json")
}

async fn send(
    router: Router,
    request: Request<Body>,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body, headers)
}

fn graphql_body(query: &str) -> Body {
    Body::from(json!({"query": query}).to_string())
}

#[tokio::test]
async fn graphiql_is_served_at_the_root_with_examples() {
    let shop = TestGateway::new();
    let response = unlimited(&shop)
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(html.contains("graphiql"));
    assert!(html.contains("registerCustomer"));
}

#[tokio::test]
async fn post_graphql_answers_with_the_bearer_tokens_identity() {
    let shop = TestGateway::new();
    let token = shop
        .gateway
        .auth
        .issue_token(Actor::Customer(customer_id()))
        .unwrap();
    let request = post()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(graphql_body("{ me { id name } }"))
        .unwrap();
    let (status, body, _) = send(unlimited(&shop), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": {"me": {"id": CUSTOMER, "name": "Ann"}}})
    );
}

#[tokio::test]
async fn the_idempotency_key_and_correlation_headers_reach_the_command() {
    let shop = TestGateway::new();
    let token = shop
        .gateway
        .auth
        .issue_token(Actor::Customer(customer_id()))
        .unwrap();
    let correlation = "3f6d1f8e-8f7c-4a44-9d62-3a8f0e6b1c2d";
    let request = post()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header("Idempotency-Key", "cart-op-1")
        .header("X-Correlation-Id", correlation)
        .body(graphql_body(
            r#"mutation { addToCart(sku: "SKU-1") { id token } }"#,
        ))
        .unwrap();
    let (status, _, _) = send(unlimited(&shop), request).await;
    assert_eq!(status, StatusCode::OK);
    let sent = shop.commands.sent();
    assert_eq!(sent[0].context.idempotency_key, "cart-op-1:addToCart");
    assert_eq!(sent[0].context.correlation_id.to_string(), correlation);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_changes_nothing() {
    let shop = TestGateway::new();
    let padding = "x".repeat(2048);
    let query = format!(r#"mutation {{ addToCart(sku: "SKU-1") {{ id }} }} # {padding}"#);
    let request = post().body(graphql_body(&query)).unwrap();
    let (status, body, _) = send(app(&shop, RateLimiter::new(0, 1), 1024), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");
    assert!(shop.commands.sent().is_empty());
}

#[tokio::test]
async fn a_malformed_body_is_refused_with_invalid_input() {
    let shop = TestGateway::new();
    let request = post().body(Body::from("{\"query\": ")).unwrap();
    let (status, body, _) = send(unlimited(&shop), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");
    let not_json = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(graphql_body("{ __typename }"))
        .unwrap();
    let (status, _, _) = send(unlimited(&shop), not_json).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn an_unusable_idempotency_key_is_refused() {
    let shop = TestGateway::new();
    let request = post()
        .header("Idempotency-Key", "k".repeat(300))
        .body(graphql_body("{ __typename }"))
        .unwrap();
    let (status, body, _) = send(unlimited(&shop), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_INPUT");
}

#[tokio::test]
async fn a_client_over_its_rate_is_refused_with_429_and_others_are_not() {
    let shop = TestGateway::new();
    let router = app(&shop, RateLimiter::new(1, 2), 64 * 1024);
    let anonymous = || post().body(graphql_body("{ __typename }")).unwrap();
    for _ in 0..2 {
        let (status, _, _) = send(router.clone(), anonymous()).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body, headers) = send(router.clone(), anonymous()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(headers.contains_key(header::RETRY_AFTER));
    let token = shop
        .gateway
        .auth
        .issue_token(Actor::Customer(customer_id()))
        .unwrap();
    let signed_in = post()
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(graphql_body("{ __typename }"))
        .unwrap();
    let (status, _, _) = send(router, signed_in).await;
    assert_eq!(status, StatusCode::OK, "another client has its own budget");
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let shop = TestGateway::new();
    for path in ["/health", "/ready", "/metrics"] {
        let response = unlimited(&shop)
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

async fn spawn(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    address
}

async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => {
                return json!({"type": "closed", "frame": format!("{frame:?}")})
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn subscriptions_stream_order_changes_over_graphql_transport_ws() {
    let shop = TestGateway::new();
    let id = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";
    let stream = format!("order-{id}");
    shop.views
        .apply(View::Orders, id, order(id, CUSTOMER, &["PLACED"]), &stream);
    let address = spawn(unlimited(&shop)).await;
    let mut request = format!("ws://{address}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let token = shop
        .gateway
        .auth
        .issue_token(Actor::Customer(customer_id()))
        .unwrap();
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription($id: ID!) { orderUpdates(orderId: $id) { status } }",
        "variables": {"id": id},
    }});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "next");
    assert_eq!(first["payload"]["data"]["orderUpdates"]["status"], "PLACED");
    let mut statuses = vec!["PLACED"];
    for status in ["CONFIRMED", "SHIPPED", "DELIVERED"] {
        statuses.push(status);
        shop.views
            .apply(View::Orders, id, order(id, CUSTOMER, &statuses), &stream);
        let update = next_json(&mut socket).await;
        assert_eq!(
            update["payload"]["data"]["orderUpdates"]["status"], status,
            "{update}"
        );
    }
    assert_eq!(
        next_json(&mut socket).await,
        json!({"id": "1", "type": "complete"})
    );
}

#[tokio::test]
async fn a_websocket_with_an_invalid_token_is_closed() {
    let shop = TestGateway::new();
    let address = spawn(unlimited(&shop)).await;
    let mut request = format!("ws://{address}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"token": "forged"}});
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "closed");
}

async fn open_subscription(
    address: SocketAddr,
    bearer: &str,
    query: &str,
    variables: Value,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{address}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"token": bearer}});
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    let subscribe = json!({"id": "7", "type": "subscribe", "payload": {"query": query, "variables": variables}});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    socket
}

#[tokio::test]
async fn following_another_customers_order_over_the_websocket_is_not_found() {
    let shop = TestGateway::new();
    let address = spawn(unlimited(&shop)).await;
    let token = shop
        .gateway
        .auth
        .issue_token(Actor::Customer(customer_id()))
        .unwrap();
    let mut socket = open_subscription(
        address,
        &token,
        "subscription($id: ID!) { orderUpdates(orderId: $id) { status } }",
        json!({"id": crate::fixture::OTHER_ORDER}),
    )
    .await;
    let refused = next_json(&mut socket).await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"],
        "NOT_FOUND"
    );
    assert_eq!(next_json(&mut socket).await["type"], "complete");
}

#[tokio::test]
async fn the_limits_hold_over_the_websocket_too() {
    let shop = TestGateway::new();
    let address = spawn(unlimited(&shop)).await;
    let token = shop
        .gateway
        .auth
        .issue_token(Actor::Customer(customer_id()))
        .unwrap();
    let aliases: String = (0..31).map(|n| format!("s{n}: status ")).collect();
    let query = format!("subscription($id: ID!) {{ orderUpdates(orderId: $id) {{ {aliases} }} }}");
    let mut socket = open_subscription(
        address,
        &token,
        &query,
        json!({"id": crate::fixture::ORDER}),
    )
    .await;
    let refused = next_json(&mut socket).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "INVALID_INPUT",
        "{refused}"
    );
    assert!(shop.views.batches().is_empty(), "nothing was read");
}
