//! Integration tests of the command services and the saga: the real event
//! store served over HTTP on a loopback port with its files in a temp dir,
//! the services on their own ports, and the real RabbitMQ on 127.0.0.1:5672
//! with a namespace of each test's own, deleted at the end.

mod commands;
mod contention;
mod lifecycle;
mod outage;
mod repository;
mod saga_answers;
mod saga_ordering;
mod store_log;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use command_services::cluster::{Cluster, ClusterOptions};
use command_services::ServiceName;
use domain::decider::Decider;
use event_store::client::StoreClient;
use futures::FutureExt;
use messaging::{
    AmqpConfig, AmqpTransport, Backoff, ConsumerName, ConsumerSpec, Namespace, SharedTransport,
};
use serde_json::{json, Value};
use uuid::Uuid;

/// Where the test broker listens.
pub const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// How long any single wait may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A namespace no other test uses.
pub fn unique_namespace() -> Namespace {
    let id = Uuid::new_v4().simple().to_string();
    Namespace::parse(&format!("test-cs-{}", &id[..12])).unwrap()
}

/// Waits until `condition` holds, polling; fails the test after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
    /// The `Preference-Applied` header, if any.
    pub preference_applied: Option<String>,
}

impl Answer {
    /// The `error` code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    /// The `id` of an accepted command.
    pub fn id(&self) -> String {
        assert_eq!(self.status, 200, "expected success, got {self:?}");
        self.body["id"].as_str().unwrap().to_owned()
    }
}

/// The store, the eight services, and with `saga` the relay and the saga.
pub struct TestSystem {
    pub cluster: Cluster,
    pub transport: Option<SharedTransport>,
    pub http: reqwest::Client,
    pub store: StoreClient,
    _dir: tempfile::TempDir,
}

/// One command call being built.
pub struct Call<'a> {
    system: &'a TestSystem,
    service: ServiceName,
    command: &'a str,
    key: Option<String>,
    actor: Option<String>,
    prefer: Option<String>,
}

impl Call<'_> {
    /// Sends `Prefer: preference`.
    pub fn prefer(mut self, preference: &str) -> Self {
        self.prefer = Some(preference.to_owned());
        self
    }

    /// Sends `Idempotency-Key: key`.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// Sends `X-Actor: actor`.
    pub fn actor(mut self, actor: &str) -> Self {
        self.actor = Some(actor.to_owned());
        self
    }

    /// Posts `body`.
    pub async fn send(self, body: Value) -> Answer {
        self.send_raw(body.to_string()).await
    }

    /// Posts a raw body as JSON.
    pub async fn send_raw(self, body: String) -> Answer {
        let url = format!(
            "{}/commands/{}",
            self.system.cluster.url(self.service).unwrap(),
            self.command
        );
        let mut request = self
            .system
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = &self.key {
            request = request.header("idempotency-key", key);
        }
        if let Some(actor) = &self.actor {
            request = request.header("x-actor", actor);
        }
        if let Some(preference) = &self.prefer {
            request = request.header("prefer", preference);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let preference_applied = response
            .headers()
            .get("preference-applied")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            preference_applied,
        }
    }
}

impl TestSystem {
    async fn start(saga: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = Cluster::start(ClusterOptions::new(dir.path()))
            .await
            .unwrap();
        let transport = if saga {
            let config = AmqpConfig::new(AMQP_URI, unique_namespace())
                .with_connection_name("command-services test")
                .with_backoff(Backoff {
                    initial: Duration::from_millis(50),
                    max: Duration::from_millis(500),
                });
            let transport: SharedTransport = Arc::new(
                AmqpTransport::connect(config)
                    .await
                    .expect("RabbitMQ must run on 127.0.0.1:5672 for these tests"),
            );
            // Every event must be routable, or the relay holds back: a sink
            // queue takes the categories the saga does not consume.
            let sink = ConsumerSpec::new(ConsumerName::parse("sink").unwrap(), ["#"]).unwrap();
            transport.declare_consumer(&sink).await.unwrap();
            cluster.start_saga(Arc::clone(&transport)).await.unwrap();
            cluster.start_relay(Arc::clone(&transport)).unwrap();
            Some(transport)
        } else {
            None
        };
        let store = StoreClient::new(&cluster.store_url()).unwrap();
        Self {
            cluster,
            transport,
            http: reqwest::Client::new(),
            store,
            _dir: dir,
        }
    }

    /// A command call to `service`.
    pub fn call<'a>(&'a self, service: ServiceName, command: &'a str) -> Call<'a> {
        Call {
            system: self,
            service,
            command,
            key: None,
            actor: None,
            prefer: None,
        }
    }

    /// The events of `stream` (none if it does not exist).
    pub async fn events(&self, stream: &str) -> Vec<domain::envelope::RecordedEvent> {
        match self
            .store
            .read_stream(stream, 0, 10_000, event_store::Direction::Forward)
            .await
        {
            Ok(events) => events,
            Err(event_store::client::ClientError::StreamNotFound { .. }) => Vec::new(),
            Err(error) => panic!("cannot read {stream}: {error}"),
        }
    }

    /// The folded state of an aggregate's stream.
    pub async fn state<A: Decider>(&self, stream: &str) -> A::State {
        let events = self.events(stream).await;
        events.iter().fold(A::State::default(), |state, record| {
            A::evolve(state, &command_services::wire::decode::<A>(record).unwrap())
        })
    }

    /// The order's status, once placed.
    pub async fn order_status(&self, order_id: &str) -> Option<domain::order::Status> {
        self.state::<domain::order::Order>(&format!("order-{order_id}"))
            .await
            .status()
    }

    /// Waits until the order has `status`.
    pub async fn wait_for_status(&self, order_id: &str, status: domain::order::Status) {
        eventually(&format!("order {order_id} is {status:?}"), || async {
            self.order_status(order_id).await == Some(status)
        })
        .await;
    }

    /// Waits until the order's saga has nothing left to do or undo.
    pub async fn wait_until_settled(&self, order_id: &str) {
        eventually(
            &format!("the saga of order {order_id} is settled"),
            || async {
                let state = self
                    .state::<command_services::saga::fulfillment::Fulfillment>(&format!(
                        "fulfillment-{order_id}"
                    ))
                    .await;
                state.saga.is_settled()
            },
        )
        .await;
    }

    /// Adds a product as the admin.
    pub async fn add_product(&self, sku: &str, price_cents: i64) {
        let answer = self
            .call(ServiceName::Catalog, "add-product")
            .actor("admin")
            .send(json!({
                "sku": sku, "name": format!("Product {sku}"), "description": "",
                "price_cents": price_cents, "category": "test"
            }))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }

    /// Restocks as the admin.
    pub async fn restock(&self, sku: &str, quantity: i64) {
        let answer = self
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .send(json!({"sku": sku, "quantity": quantity}))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }

    /// Registers a customer and returns their id.
    pub async fn register(&self) -> String {
        let id = Uuid::new_v4();
        self.call(ServiceName::Customers, "register-customer")
            .send(json!({"customer_id": id.to_string(), "email": format!("{id}@example.com"), "name": "Ada"}))
            .await
            .id()
    }

    /// A product `sku` at `price_cents` with `units` in stock, a new
    /// customer, and their order of `quantity` of it paid with `token`:
    /// (customer id, order id).
    pub async fn stocked_order(
        &self,
        sku: &str,
        price_cents: i64,
        units: i64,
        quantity: i64,
        token: &str,
    ) -> (String, String) {
        self.add_product(sku, price_cents).await;
        self.restock(sku, units).await;
        let customer = self.register().await;
        let order = self
            .place_order(&customer, &[(sku, quantity)], token)
            .await
            .id();
        (customer, order)
    }

    /// Starts the saga over an in-process transport of its own, with no
    /// relay: the test publishes what the broker would bring, and when.
    pub async fn start_saga_on_memory(&mut self) -> SharedTransport {
        let transport: SharedTransport =
            Arc::new(messaging::MemoryTransport::new(unique_namespace()));
        self.cluster
            .start_saga(Arc::clone(&transport))
            .await
            .unwrap();
        transport
    }

    /// Runs a shipping command (`dispatch-shipment`, `confirm-delivery`) for
    /// `order` as the admin; returns the answer.
    pub async fn admin_ships(&self, command: &str, order: &str) -> Answer {
        self.call(ServiceName::Shipping, command)
            .actor("admin")
            .send(json!({"order_id": order}))
            .await
    }

    /// Places an order as its customer; returns the answer.
    pub async fn place_order(&self, customer: &str, lines: &[(&str, i64)], token: &str) -> Answer {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}))
            .collect();
        self.call(ServiceName::Orders, "place-order")
            .actor(customer)
            .send(json!({
                "customer_id": customer, "lines": lines,
                "payment_token": token, "shipping_address": "1 Test Street"
            }))
            .await
    }

    async fn stop(self) {
        self.cluster.shutdown().await.unwrap();
    }
}

/// Runs `body` against a fresh system and cleans the broker namespace up
/// afterwards, even when the body fails.
pub async fn with_system<F, Fut>(saga: bool, body: F)
where
    F: FnOnce(TestSystem) -> Fut,
    Fut: Future<Output = TestSystem>,
{
    let system = TestSystem::start(saga).await;
    let transport = system.transport.clone();
    let outcome = AssertUnwindSafe(body(system)).catch_unwind().await;
    let panic = match outcome {
        Ok(system) => {
            system.stop().await;
            None
        }
        Err(panic) => Some(panic),
    };
    if let Some(transport) = transport {
        transport.delete_namespace().await.unwrap();
        transport.close().await;
    }
    if let Some(panic) = panic {
        std::panic::resume_unwind(panic);
    }
}
