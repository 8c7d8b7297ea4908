//! A small fake of the query API, served over real HTTP on port 0, so the
//! runner can be tested without the whole system.
//!
//! It understands just enough GraphQL, by looking for operation names in the
//! document: `registerCustomer`, `login`, `me`, `restock`, `inventory`,
//! `placeOrder` (one unit of one SKU; confirmed while stock lasts, else
//! cancelled), `order` (unknown on the first read, as a lagging view would
//! be; then `PLACED`; then the final status) and `cancelOrder` (always refused).
//! The order's id and the SKU may also come as variables (`$id`; `$input`
//! with `lines`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub const ADMIN_EMAIL: &str = "boss@fake.test";
pub const ADMIN_PASSWORD: &str = "boss-password";

#[derive(Default)]
pub struct FakeState {
    passwords: HashMap<String, String>,
    stock: HashMap<String, i64>,
    /// Order id → (final status, reads so far).
    orders: HashMap<String, (&'static str, u32)>,
    pub registrations: u32,
    pub requests: u32,
}

pub struct FakeGateway {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

impl FakeGateway {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = Router::new()
            .route("/graphql", post(graphql))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    pub fn registrations(&self) -> u32 {
        self.state.lock().unwrap().registrations
    }
}

/// The string argument `name: "…"` in `query`.
fn arg(query: &str, name: &str) -> Option<String> {
    let start = query.find(&format!("{name}: \""))? + name.len() + 2;
    let rest = &query[start..];
    let end = rest[1..].find('"')? + 1;
    serde_json::from_str(&rest[..=end]).ok()
}

/// The integer argument `name: N` in `query`.
fn int_arg(query: &str, name: &str) -> Option<i64> {
    let start = query.find(&format!("{name}: "))? + name.len() + 2;
    let digits: String = query[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn error(code: &str, message: &str) -> Json<Value> {
    Json(json!({"data": null, "errors": [{"message": message, "extensions": {"code": code}}]}))
}

async fn graphql(
    State(state): State<Arc<Mutex<FakeState>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let query = body["query"].as_str().unwrap_or_default().to_owned();
    let caller = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer token-"))
        .map(str::to_owned);
    let mut state = state.lock().unwrap();
    state.requests += 1;
    if query.contains("registerCustomer") {
        let (Some(email), Some(password)) = (arg(&query, "email"), arg(&query, "password")) else {
            return error("INVALID_INPUT", "email and password are required");
        };
        state.registrations += 1;
        state.passwords.insert(email, password);
        let id = uuid::Uuid::new_v4().to_string();
        return Json(
            json!({"data": {"registerCustomer": {"id": id, "token": format!("customer-{id}@0")}}}),
        );
    }
    if query.contains("login(") {
        let email = arg(&query, "email").unwrap_or_default();
        let password = arg(&query, "password").unwrap_or_default();
        let known = (email == ADMIN_EMAIL && password == ADMIN_PASSWORD)
            || state.passwords.get(&email) == Some(&password);
        if !known {
            return error("UNAUTHENTICATED", "wrong e-mail or password");
        }
        return Json(json!({"data": {"login": format!("token-{email}")}}));
    }
    let Some(caller) = caller else {
        return error("UNAUTHENTICATED", "sign in first");
    };
    if query.contains("restock(") {
        if caller != ADMIN_EMAIL {
            return error("FORBIDDEN", "this needs the admin account");
        }
        let sku = arg(&query, "sku").unwrap_or_default();
        let quantity = int_arg(&query, "quantity").unwrap_or_default();
        *state.stock.entry(sku.clone()).or_default() += quantity;
        return Json(json!({"data": {"restock": {"id": sku, "token": "stock@1"}}}));
    }
    if query.contains("inventory(") {
        let sku = arg(&query, "sku").unwrap_or_default();
        let available = state.stock.get(&sku).copied().unwrap_or_default();
        return Json(json!({"data": {"inventory": {"available": available, "reserved": 0}}}));
    }
    if query.contains("placeOrder(") {
        let sku = arg(&query, "sku")
            .or_else(|| {
                body["variables"]["input"]["lines"][0]["sku"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let stock = state.stock.entry(sku).or_default();
        let status = if *stock > 0 {
            *stock -= 1;
            "CONFIRMED"
        } else {
            "CANCELLED"
        };
        let id = uuid::Uuid::new_v4().to_string();
        state.orders.insert(id.clone(), (status, 0));
        return Json(json!({"data": {"placeOrder": {"id": id, "token": format!("order-{id}@0")}}}));
    }
    if query.contains("cancelOrder(") {
        return error("CONFLICT", "the order has already shipped");
    }
    if query.contains("order(") {
        let id = arg(&query, "id")
            .or_else(|| body["variables"]["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let Some((status, reads)) = state.orders.get_mut(&id) else {
            return error("NOT_FOUND", "no such order");
        };
        *reads += 1;
        return match *reads {
            1 => error("NOT_FOUND", "no such order (yet)"),
            2 => Json(json!({"data": {"order": {"id": id, "status": "PLACED"}}})),
            _ => Json(json!({"data": {"order": {"id": id, "status": *status}}})),
        };
    }
    if query.contains("me") {
        return Json(json!({"data": {"me": {"email": caller}}}));
    }
    Json(json!({"data": null, "errors": [{"message": format!("the fake does not know {query}")}]}))
}
