//! A gateway over in-memory projectors and command services, seeded with a
//! small shop: five products, two customers, an order each, a cart, a
//! wishlist, notifications, recommendations and sales stats.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_graphql::{Request, Variables};
use query_api::{
    auth::{AuthSettings, Authenticator, Identity, PasswordHashing},
    backend::{
        guard::{GuardSettings, GuardedReadModels},
        memory::{MemoryCommands, MemoryReadModels},
        Projector, Recommendation, View,
    },
    build_schema,
    catalog_cache::CatalogCache,
    consistency::{AppliedVersions, WaitSettings},
    limits::QueryLimits,
    Caller, Gateway, ShopSchema,
};
use serde_json::{json, Value};
use service_runtime::shutdown::Shutdown;
use uuid::Uuid;

pub const CUSTOMER: &str = "11111111-1111-4111-8111-111111111111";
pub const OTHER: &str = "22222222-2222-4222-8222-222222222222";
pub const ORDER: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
pub const OTHER_ORDER: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
pub const ADMIN_EMAIL: &str = "admin@shop.test";
pub const ADMIN_PASSWORD: &str = "admin-password";

/// How the test gateway is tuned.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub call_timeout: Duration,
    pub consistency_timeout: Duration,
    pub poll_interval: Duration,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    pub cache_ttl: Duration,
    pub limits: QueryLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_millis(500),
            consistency_timeout: Duration::from_millis(300),
            poll_interval: Duration::from_millis(5),
            breaker_failures: 3,
            breaker_open: Duration::from_secs(60),
            cache_ttl: Duration::from_secs(60),
            limits: QueryLimits::default(),
        }
    }
}

pub struct TestGateway {
    pub schema: ShopSchema,
    pub gateway: Arc<Gateway>,
    pub views: MemoryReadModels,
    pub commands: MemoryCommands,
    pub guarded: Arc<GuardedReadModels>,
    pub shutdown: Shutdown,
}

pub fn customer_id() -> Uuid {
    Uuid::parse_str(CUSTOMER).unwrap()
}

pub fn customer() -> Identity {
    Identity::Customer(customer_id())
}

pub fn other_customer() -> Identity {
    Identity::Customer(Uuid::parse_str(OTHER).unwrap())
}

pub fn admin() -> Identity {
    Identity::Admin
}

pub fn anonymous() -> Identity {
    Identity::Anonymous
}

pub fn auth_settings() -> AuthSettings {
    AuthSettings {
        admin_email: ADMIN_EMAIL.to_owned(),
        admin_password: ADMIN_PASSWORD.to_owned(),
        jwt_secret: b"test secret".to_vec(),
        token_ttl: Duration::from_secs(3600),
        hashing: PasswordHashing::Fast,
    }
}

pub fn product(sku: &str, name: &str, price: i64, category: &str, available: i64) -> Value {
    json!({
        "sku": sku, "name": name, "description": format!("{name}, described"),
        "price_cents": price, "category": category, "discontinued": false,
        "stock": {"available": available, "reserved": 1},
    })
}

pub fn order(id: &str, customer: &str, statuses: &[&str]) -> Value {
    let timeline: Vec<Value> = statuses
        .iter()
        .enumerate()
        .map(|(hour, status)| json!({"status": status, "at": format!("2024-05-01T1{hour}:00:00Z")}))
        .collect();
    json!({
        "order_id": id, "customer_id": customer,
        "status": statuses.last().copied().unwrap_or("PLACED"),
        "cancellation_reason": null,
        "lines": [
            {"sku": "SKU-1", "quantity": 2, "unit_price_cents": 1200},
            {"sku": "SKU-3", "quantity": 1, "unit_price_cents": 500},
        ],
        "subtotal_cents": 2900, "shipping_cost_cents": 499, "total_cents": 3399,
        "timeline": timeline,
        "created_at": "2024-05-01T10:00:00Z",
    })
}

fn seed(views: &MemoryReadModels) {
    views.put(
        View::Products,
        "SKU-1",
        product("SKU-1", "Blue mug", 1200, "kitchen", 10),
    );
    views.put(
        View::Products,
        "SKU-2",
        product("SKU-2", "Red mug", 1300, "kitchen", 4),
    );
    views.put(
        View::Products,
        "SKU-3",
        product("SKU-3", "Tea towel", 500, "textiles", 20),
    );
    let mut kettle = product("SKU-4", "Old kettle", 2500, "kitchen", 0);
    kettle["discontinued"] = json!(true);
    views.put(View::Products, "SKU-4", kettle);
    views.put(
        View::Products,
        "SKU-5",
        product("SKU-5", "Coaster", 300, "kitchen", 50),
    );
    views.put(
        View::Stock,
        "SKU-1",
        json!({"sku": "SKU-1", "available": 10, "reserved": 2, "shipped": 5}),
    );
    views.put(
        View::Orders,
        ORDER,
        order(ORDER, CUSTOMER, &["PLACED", "CONFIRMED", "SHIPPED"]),
    );
    views.set_position(Projector::Orders, format!("order-{ORDER}"), 2);
    views.put(
        View::Orders,
        OTHER_ORDER,
        order(OTHER_ORDER, OTHER, &["PLACED"]),
    );
    views.set_position(Projector::Orders, format!("order-{OTHER_ORDER}"), 0);
    views.put(
        View::Customers,
        CUSTOMER,
        json!({
            "customer_id": CUSTOMER, "email": "ann@example.com", "name": "Ann",
            "registered_at": "2024-04-01T09:00:00Z", "order_ids": [ORDER],
            "orders_count": 1, "spent_cents": 3399,
        }),
    );
    views.put(
        View::Carts,
        CUSTOMER,
        json!({"customer_id": CUSTOMER, "lines": [{"sku": "SKU-2", "quantity": 1}, {"sku": "SKU-3", "quantity": 2}]}),
    );
    views.put(
        View::Wishlists,
        CUSTOMER,
        json!({"customer_id": CUSTOMER, "skus": ["SKU-4", "SKU-1"]}),
    );
    views.put(
        View::Notifications,
        CUSTOMER,
        json!({"customer_id": CUSTOMER, "items": [
            {"id": "n1", "order_id": ORDER, "kind": "order_confirmed", "message": "Your order is confirmed", "at": "2024-05-01T11:00:00Z"},
            {"id": "n2", "order_id": ORDER, "kind": "order_shipped", "message": "Your order is on its way", "at": "2024-05-01T12:00:00Z"},
        ]}),
    );
    let recommend = |sku: &str, count: u64| Recommendation {
        sku: sku.to_owned(),
        count,
    };
    views.set_recommendations("SKU-1", vec![recommend("SKU-3", 5), recommend("SKU-2", 1)]);
    views.set_recommendations(
        "SKU-2",
        vec![
            recommend("SKU-1", 3),
            recommend("SKU-5", 2),
            recommend("SKU-3", 1),
        ],
    );
    views.set_recommendations("SKU-3", vec![recommend("SKU-1", 2)]);
    views.set_sales_stats(json!({
        "orders": 1, "revenue_cents": 3399,
        "top_products": [
            {"sku": "SKU-1", "quantity": 2, "revenue_cents": 2400},
            {"sku": "SKU-3", "quantity": 1, "revenue_cents": 500},
        ],
    }));
}

impl TestGateway {
    pub fn new() -> Self {
        Self::with(Settings::default())
    }

    pub fn with(settings: Settings) -> Self {
        let views = MemoryReadModels::new();
        seed(&views);
        let commands = MemoryCommands::new();
        let guarded = Arc::new(GuardedReadModels::new(
            Arc::new(views.clone()),
            GuardSettings {
                failure_threshold: settings.breaker_failures,
                open_for: settings.breaker_open,
                call_timeout: settings.call_timeout,
            },
        ));
        let shutdown = Shutdown::new();
        let gateway = Arc::new(Gateway {
            read_models: guarded.clone(),
            commands: Arc::new(commands.clone()),
            auth: Arc::new(Authenticator::temporary(auth_settings()).unwrap()),
            catalog_cache: Arc::new(CatalogCache::new(settings.cache_ttl, 100)),
            applied: Arc::new(AppliedVersions::new()),
            wait: WaitSettings {
                timeout: settings.consistency_timeout,
                poll_interval: settings.poll_interval,
            },
            shutdown: shutdown.clone(),
        });
        let schema = build_schema(Arc::clone(&gateway), settings.limits);
        Self {
            schema,
            gateway,
            views,
            commands,
            guarded,
            shutdown,
        }
    }

    pub fn request(&self, caller: Caller, query: &str, variables: Value) -> Request {
        let request = Request::new(query).variables(Variables::from_json(variables));
        self.gateway.prepare(request, caller)
    }

    pub async fn run_as(&self, caller: Caller, query: &str, variables: Value) -> Value {
        let response = self
            .schema
            .execute(self.request(caller, query, variables))
            .await;
        serde_json::to_value(&response).unwrap()
    }

    pub async fn run(&self, identity: Identity, query: &str) -> Value {
        self.run_as(Caller::new(identity), query, json!({})).await
    }

    pub async fn run_vars(&self, identity: Identity, query: &str, variables: Value) -> Value {
        self.run_as(Caller::new(identity), query, variables).await
    }
}

/// The `extensions.code` of every error of a response, in order.
pub fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    error["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that a response has no errors, and returns its data.
pub fn data(response: &Value) -> &Value {
    assert!(
        response.get("errors").is_none(),
        "unexpected errors: {response:#}"
    );
    &response["data"]
}

/// Waits for `condition`, checking every few milliseconds, failing after five seconds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
