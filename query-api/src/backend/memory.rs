//! The ports in memory: read models and command services the tests and the
//! benchmark can fill, inspect, slow down and switch off.
//!
//! These are fakes of the internal APIs, not of the services' rules: a
//! command is recorded and answered with a token, it changes no view. Tests
//! put the documents they expect the projectors to serve.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;
use uuid::Uuid;

use super::{
    CommandAccepted, CommandContext, CommandSender, CommandService, ProductPage, Projector,
    ReadModels, Recommendation, SearchHit, View,
};
use crate::error::GatewayError;

#[derive(Default)]
struct ReadState {
    views: HashMap<View, BTreeMap<String, Value>>,
    positions: HashMap<(Projector, String), u64>,
    recommendations: HashMap<String, Vec<Recommendation>>,
    sales: Option<Value>,
    down: HashSet<Projector>,
    delays: HashMap<Projector, Duration>,
    calls: HashMap<Projector, usize>,
    batches: Vec<(View, Vec<String>)>,
}

/// Projector views in memory.
#[derive(Clone, Default)]
pub struct MemoryReadModels {
    state: Arc<Mutex<ReadState>>,
}

impl MemoryReadModels {
    /// Empty views, every projector up.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts (or replaces) the document of `key` in `view`.
    pub fn put(&self, view: View, key: impl Into<String>, document: Value) {
        self.state
            .lock()
            .views
            .entry(view)
            .or_default()
            .insert(key.into(), document);
    }

    /// The document of `key` in `view`.
    pub fn get(&self, view: View, key: &str) -> Option<Value> {
        self.state
            .lock()
            .views
            .get(&view)
            .and_then(|documents| documents.get(key).cloned())
    }

    /// Says `projector` has applied `stream` up to `version`.
    pub fn set_position(&self, projector: Projector, stream: impl Into<String>, version: u64) {
        self.state
            .lock()
            .positions
            .insert((projector, stream.into()), version);
    }

    /// Puts a document and moves the projector's position of `stream` on by
    /// one (to 0 for a new stream) in one step, as a projector applies an event.
    pub fn apply(&self, view: View, key: impl Into<String>, document: Value, stream: &str) {
        let mut state = self.state.lock();
        state
            .views
            .entry(view)
            .or_default()
            .insert(key.into(), document);
        let key = (view.projector(), stream.to_owned());
        let next = state.positions.get(&key).map_or(0, |version| version + 1);
        state.positions.insert(key, next);
    }

    /// Sets what `GET /recommendations/{sku}` answers.
    pub fn set_recommendations(&self, sku: impl Into<String>, items: Vec<Recommendation>) {
        self.state.lock().recommendations.insert(sku.into(), items);
    }

    /// Sets what `GET /stats` answers.
    pub fn set_sales_stats(&self, stats: Value) {
        self.state.lock().sales = Some(stats);
    }

    /// Switches a projector off (`true`) or back on.
    pub fn set_down(&self, projector: Projector, down: bool) {
        let mut state = self.state.lock();
        if down {
            state.down.insert(projector);
        } else {
            state.down.remove(&projector);
        }
    }

    /// Makes every call to `projector` take at least `delay` (a slow projector).
    pub fn set_delay(&self, projector: Projector, delay: Duration) {
        self.state.lock().delays.insert(projector, delay);
    }

    /// How many calls reached `projector` (refused ones included).
    pub fn calls(&self, projector: Projector) -> usize {
        self.state
            .lock()
            .calls
            .get(&projector)
            .copied()
            .unwrap_or(0)
    }

    /// Every batch call so far, with its keys (sorted).
    pub fn batches(&self) -> Vec<(View, Vec<String>)> {
        self.state.lock().batches.clone()
    }

    async fn enter(&self, projector: Projector) -> Result<(), GatewayError> {
        let delay = {
            let mut state = self.state.lock();
            *state.calls.entry(projector).or_insert(0) += 1;
            if state.down.contains(&projector) {
                return Err(GatewayError::Unavailable {
                    service: projector.to_string(),
                    message: "cannot connect".to_owned(),
                });
            }
            state.delays.get(&projector).copied()
        };
        if let Some(delay) = delay {
            // Simulates a slow projector; the timeout under test is the caller's.
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }
}

#[async_trait]
impl ReadModels for MemoryReadModels {
    async fn batch(
        &self,
        view: View,
        keys: &[String],
    ) -> Result<HashMap<String, Option<Value>>, GatewayError> {
        self.enter(view.projector()).await?;
        let mut state = self.state.lock();
        let mut sorted = keys.to_vec();
        sorted.sort();
        state.batches.push((view, sorted));
        let documents = state.views.get(&view);
        Ok(keys
            .iter()
            .map(|key| {
                let document = documents.and_then(|documents| documents.get(key).cloned());
                (key.clone(), document)
            })
            .collect())
    }

    async fn position(
        &self,
        projector: Projector,
        stream: &str,
    ) -> Result<Option<u64>, GatewayError> {
        self.enter(projector).await?;
        Ok(self
            .state
            .lock()
            .positions
            .get(&(projector, stream.to_owned()))
            .copied())
    }

    async fn products(
        &self,
        first: usize,
        after: Option<&str>,
        category: Option<&str>,
    ) -> Result<ProductPage, GatewayError> {
        self.enter(Projector::Catalog).await?;
        let state = self.state.lock();
        let mut matching = state
            .views
            .get(&View::Products)
            .into_iter()
            .flat_map(|documents| documents.iter())
            .filter(|(sku, _)| after.is_none_or(|after| sku.as_str() > after))
            .filter(|(_, document)| {
                category.is_none_or(|category| document["category"] == category)
            })
            .map(|(_, document)| document.clone());
        let items: Vec<Value> = matching.by_ref().take(first).collect();
        Ok(ProductPage {
            items,
            has_next: matching.next().is_some(),
        })
    }

    async fn search(&self, query: &str, first: usize) -> Result<Vec<SearchHit>, GatewayError> {
        self.enter(Projector::Search).await?;
        let terms: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let state = self.state.lock();
        let mut hits: Vec<SearchHit> = state
            .views
            .get(&View::Products)
            .into_iter()
            .flat_map(|documents| documents.iter())
            .filter_map(|(sku, document)| {
                let text = ["name", "description", "category"]
                    .iter()
                    .filter_map(|field| document[*field].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                let score = terms
                    .iter()
                    .filter(|term| text.split_whitespace().any(|word| word.starts_with(*term)))
                    .count();
                (score > 0).then(|| SearchHit {
                    sku: sku.clone(),
                    score: score as f64,
                })
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.sku.cmp(&b.sku)));
        hits.truncate(first);
        Ok(hits)
    }

    async fn recommendations(
        &self,
        sku: &str,
        first: usize,
    ) -> Result<Vec<Recommendation>, GatewayError> {
        self.enter(Projector::Recommendations).await?;
        let state = self.state.lock();
        let mut items = state.recommendations.get(sku).cloned().unwrap_or_default();
        items.truncate(first);
        Ok(items)
    }

    async fn sales_stats(&self, top: usize) -> Result<Value, GatewayError> {
        self.enter(Projector::Sales).await?;
        let state = self.state.lock();
        let mut stats = state.sales.clone().unwrap_or_else(
            || serde_json::json!({"orders": 0, "revenue_cents": 0, "top_products": []}),
        );
        if let Some(top_products) = stats["top_products"].as_array_mut() {
            top_products.truncate(top);
        }
        Ok(stats)
    }
}

/// One command the fake services received.
#[derive(Clone, Debug, PartialEq)]
pub struct SentCommand {
    /// To which service.
    pub service: CommandService,
    /// The command's name.
    pub command: String,
    /// Its JSON body.
    pub body: Value,
    /// Its headers.
    pub context: CommandContext,
}

#[derive(Default)]
struct CommandState {
    sent: Vec<SentCommand>,
    refusals: HashMap<String, GatewayError>,
    versions: HashMap<String, u64>,
    answers: HashMap<String, CommandAccepted>,
}

/// Command services in memory: they record what they are sent and answer
/// with a consistency token; the same idempotency key gets the same answer.
#[derive(Clone, Default)]
pub struct MemoryCommands {
    state: Arc<Mutex<CommandState>>,
}

impl MemoryCommands {
    /// Services that accept every command.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `command` fail with `error`.
    pub fn refuse(&self, command: &str, error: GatewayError) {
        self.state.lock().refusals.insert(command.to_owned(), error);
    }

    /// Every command received, in order.
    pub fn sent(&self) -> Vec<SentCommand> {
        self.state.lock().sent.clone()
    }
}

/// The aggregate a command addresses, as the real services name it.
fn aggregate_of(service: CommandService, body: &Value, key: &str) -> (String, String) {
    let field = |name: &str| body[name].as_str().map(str::to_owned);
    let derived = || Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes()).to_string();
    match service {
        CommandService::Catalog => {
            let sku = field("sku").unwrap_or_default();
            (sku.clone(), format!("product-{sku}"))
        }
        CommandService::Inventory => {
            let sku = field("sku").unwrap_or_default();
            (sku.clone(), format!("stock-{sku}"))
        }
        CommandService::Customers => {
            let id = field("customer_id").unwrap_or_else(derived);
            (id.clone(), format!("customer-{id}"))
        }
        CommandService::Carts if body.get("payment_token").is_some() => {
            let id = derived();
            (id.clone(), format!("order-{id}"))
        }
        CommandService::Carts => {
            let id = field("customer_id").unwrap_or_default();
            (id.clone(), format!("cart-{id}"))
        }
        CommandService::Wishlists => {
            let id = field("customer_id").unwrap_or_default();
            (id.clone(), format!("wishlist-{id}"))
        }
        CommandService::Orders => {
            let id = field("order_id").unwrap_or_else(derived);
            (id.clone(), format!("order-{id}"))
        }
        CommandService::Shipping => {
            let id = field("order_id").unwrap_or_default();
            (id.clone(), format!("shipment-{id}"))
        }
    }
}

#[async_trait]
impl CommandSender for MemoryCommands {
    async fn send(
        &self,
        service: CommandService,
        command: &str,
        body: Value,
        context: &CommandContext,
    ) -> Result<CommandAccepted, GatewayError> {
        let mut state = self.state.lock();
        state.sent.push(SentCommand {
            service,
            command: command.to_owned(),
            body: body.clone(),
            context: context.clone(),
        });
        if let Some(error) = state.refusals.get(command) {
            return Err(error.clone());
        }
        let answer_key = format!("{service}/{command}/{}", context.idempotency_key);
        if let Some(answer) = state.answers.get(&answer_key) {
            return Ok(answer.clone());
        }
        let (id, stream) = aggregate_of(service, &body, &context.idempotency_key);
        let version = {
            let next = state.versions.entry(stream.clone()).or_insert(0);
            let version = *next;
            *next += 1;
            version
        };
        let answer = CommandAccepted {
            id,
            token: format!("{stream}@{version}"),
            stream,
            version: Some(version),
            position: None,
        };
        state.answers.insert(answer_key, answer.clone());
        Ok(answer)
    }
}
