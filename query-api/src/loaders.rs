//! The request's DataLoader over the projectors' views: every key a request
//! asks of one view while resolving a level of the query goes out in one
//! `POST /views/{view}/batch`, not one call per field.
//!
//! How keys are gathered: async-graphql resolves the fields of a level as
//! futures polled together by the request's task. The first load of a view
//! opens a batch and yields once to the task; in the same polling pass every
//! sibling field adds its keys to that batch (and waits on its answer); on the
//! next pass the first load takes the batch, sends it and shares the answer. async-graphql's own `DataLoader` gathers keys by sleeping
//! for a delay instead, on a spawned task: tokio's timer rounds that up to a
//! millisecond or two on every request, which halved the gateway's rate in
//! the benchmark; the yield costs nothing and gathers the same keys.
//!
//! Each key type names its view. Product reads go through the shared
//! [`CatalogCache`] first, honouring the request's [`Freshness`].

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::{
    backend::{ReadModels, View},
    catalog_cache::CatalogCache,
    error::GatewayError,
    views::{CartDoc, CustomerDoc, NotificationsDoc, OrderDoc, ProductDoc, StockDoc, WishlistDoc},
};

/// The earliest read a request may still use: raised each time the request
/// waits for a consistency token, to the instant the view included the write.
#[derive(Debug, Default)]
pub struct Freshness {
    not_before: Mutex<Option<Instant>>,
}

impl Freshness {
    /// Reads that started before `at` may predate a write this request must see.
    pub fn raise(&self, at: Instant) {
        let mut not_before = self.not_before.lock();
        if not_before.is_none_or(|current| current < at) {
            *not_before = Some(at);
        }
    }

    /// The current bound, if any.
    pub fn not_before(&self) -> Option<Instant> {
        *self.not_before.lock()
    }
}

/// A key of one view.
pub trait ViewKey: Clone + Eq + std::hash::Hash + Send + Sync + 'static {
    /// The view it names a document of.
    const VIEW: View;
    /// The document's type.
    type Doc: DeserializeOwned + Send + Sync + 'static;
    /// The key as the projector knows it.
    fn as_str(&self) -> &str;
    /// A key from the projector's form.
    fn from_string(key: String) -> Self;
}

macro_rules! view_key {
    ($(#[$doc:meta])* $name:ident, $view:expr, $document:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub String);

        impl ViewKey for $name {
            const VIEW: View = $view;
            type Doc = $document;
            fn as_str(&self) -> &str {
                &self.0
            }
            fn from_string(key: String) -> Self {
                Self(key)
            }
        }
    };
}

view_key!(
    /// An order id.
    OrderKey,
    View::Orders,
    OrderDoc
);
view_key!(
    /// A customer id, for the customers view.
    CustomerKey,
    View::Customers,
    CustomerDoc
);
view_key!(
    /// A SKU, for the catalog's products view.
    ProductKey,
    View::Products,
    ProductDoc
);
view_key!(
    /// A SKU, for the inventory's stock view.
    StockKey,
    View::Stock,
    StockDoc
);
view_key!(
    /// A customer id, for the notifications view.
    NotificationsKey,
    View::Notifications,
    NotificationsDoc
);
view_key!(
    /// A customer id, for the carts view.
    CartKey,
    View::Carts,
    CartDoc
);
view_key!(
    /// A customer id, for the wishlists view.
    WishlistKey,
    View::Wishlists,
    WishlistDoc
);

/// Documents by key, as one batch answered them (absent keys left out).
type BatchAnswer = Result<Arc<HashMap<String, serde_json::Value>>, GatewayError>;

/// The batch of one view being gathered.
struct Batch {
    generation: u64,
    keys: HashSet<String>,
    answer: watch::Receiver<Option<BatchAnswer>>,
}

struct Inner {
    read_models: Arc<dyn ReadModels>,
    catalog_cache: Arc<CatalogCache>,
    freshness: Arc<Freshness>,
    open: Mutex<HashMap<View, Batch>>,
    generations: AtomicU64,
}

/// Loads documents of every view for one request, batching per view.
#[derive(Clone)]
pub struct Loaders {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Loaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaders").finish_non_exhaustive()
    }
}

/// What a load does with the view's batch.
enum Role {
    /// It opened the batch: it gathers, sends and answers it.
    Leader {
        generation: u64,
        answer: watch::Sender<Option<BatchAnswer>>,
    },
    /// It added its keys to an open batch and waits for the answer.
    Follower(watch::Receiver<Option<BatchAnswer>>),
}

/// Closes the leader's batch if the leader is dropped before sending it, so
/// that its followers (who see the answer channel close) open a new one.
struct LeaderGuard<'a> {
    inner: &'a Inner,
    view: View,
    generation: u64,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        self.inner.close(self.view, self.generation);
    }
}

impl Loaders {
    /// Loaders for one request.
    pub fn new(
        read_models: Arc<dyn ReadModels>,
        catalog_cache: Arc<CatalogCache>,
        freshness: Arc<Freshness>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                read_models,
                catalog_cache,
                freshness,
                open: Mutex::new(HashMap::new()),
                generations: AtomicU64::new(0),
            }),
        }
    }

    /// The document of `key`, if the view has one.
    pub async fn load_one<K: ViewKey>(&self, key: K) -> Result<Option<Arc<K::Doc>>, GatewayError> {
        let mut found = self.load_many(std::iter::once(key.clone())).await?;
        Ok(found.remove(&key))
    }

    /// The documents of `keys` the view has.
    pub async fn load_many<K: ViewKey>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<HashMap<K, Arc<K::Doc>>, GatewayError> {
        let keys: Vec<K> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let answer = self
            .inner
            .load(
                K::VIEW,
                keys.iter().map(|key| key.as_str().to_owned()).collect(),
            )
            .await?;
        let mut found = HashMap::with_capacity(keys.len());
        for key in keys {
            if let Some(document) = answer.get(key.as_str()) {
                let parsed = parse::<K>(key.as_str(), document.clone())?;
                found.insert(key, Arc::new(parsed));
            }
        }
        Ok(found)
    }
}

impl Inner {
    /// Joins the open batch of `view` with `keys`, or opens one.
    fn join(&self, view: View, keys: &[String]) -> Role {
        let mut open = self.open.lock();
        if let Some(batch) = open.get_mut(&view) {
            batch.keys.extend(keys.iter().cloned());
            return Role::Follower(batch.answer.clone());
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(None);
        open.insert(
            view,
            Batch {
                generation,
                keys: keys.iter().cloned().collect(),
                answer: receiver,
            },
        );
        Role::Leader {
            generation,
            answer: sender,
        }
    }

    /// Takes the keys of batch `generation` of `view` out of the open batches.
    fn close(&self, view: View, generation: u64) -> Vec<String> {
        let mut open = self.open.lock();
        match open.get(&view) {
            Some(batch) if batch.generation == generation => open
                .remove(&view)
                .map(|batch| batch.keys.into_iter().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    async fn load(&self, view: View, keys: Vec<String>) -> BatchAnswer {
        loop {
            match self.join(view, &keys) {
                Role::Leader { generation, answer } => {
                    let guard = LeaderGuard {
                        inner: self,
                        view,
                        generation,
                    };
                    // Back to the request's task: the sibling fields of this
                    // level are polled now and join the batch.
                    tokio::task::yield_now().await;
                    let gathered = self.close(view, generation);
                    drop(guard);
                    let result = self.fetch(view, gathered).await.map(Arc::new);
                    answer.send_replace(Some(result.clone()));
                    return result;
                }
                Role::Follower(mut answer) => {
                    match answer.wait_for(Option::is_some).await {
                        Ok(result) => {
                            if let Some(result) = result.as_ref() {
                                return result.clone();
                            }
                        }
                        // The leader was dropped before answering: start again.
                        Err(_) => continue,
                    }
                }
            }
        }
    }

    async fn fetch(
        &self,
        view: View,
        keys: Vec<String>,
    ) -> Result<HashMap<String, serde_json::Value>, GatewayError> {
        let read_started = Instant::now();
        let cached = view == View::Products;
        let not_before = self.freshness.not_before();
        let mut found = HashMap::with_capacity(keys.len());
        let mut missing = Vec::with_capacity(keys.len());
        for key in keys {
            match cached
                .then(|| self.catalog_cache.get(&key, not_before))
                .flatten()
            {
                Some(document) => {
                    found.insert(key, document);
                }
                None => missing.push(key),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let documents = self.read_models.batch(view, &missing).await?;
        let wanted: HashSet<&String> = missing.iter().collect();
        for (key, document) in documents {
            let Some(document) = document else { continue };
            if !wanted.contains(&key) {
                continue;
            }
            if cached {
                self.catalog_cache.put(&key, document.clone(), read_started);
            }
            found.insert(key, document);
        }
        Ok(found)
    }
}

fn parse<K: ViewKey>(key: &str, document: serde_json::Value) -> Result<K::Doc, GatewayError> {
    serde_json::from_value(document).map_err(|error| {
        let projector = K::VIEW.projector();
        tracing::warn!(%projector, view = K::VIEW.as_str(), key, %error, "malformed document");
        GatewayError::Unavailable {
            service: projector.to_string(),
            message: format!("malformed {} document", K::VIEW.as_str()),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::backend::memory::MemoryReadModels;

    fn loaders(views: &MemoryReadModels) -> Loaders {
        Loaders::new(
            Arc::new(views.clone()),
            Arc::new(CatalogCache::new(Duration::ZERO, 0)),
            Arc::new(Freshness::default()),
        )
    }

    fn stock(views: &MemoryReadModels, sku: &str) {
        views.put(
            View::Stock,
            sku,
            json!({"sku": sku, "available": 1, "reserved": 0, "shipped": 0}),
        );
    }

    #[tokio::test]
    async fn loads_polled_together_go_out_in_one_batch() {
        let views = MemoryReadModels::new();
        stock(&views, "A");
        stock(&views, "B");
        let loaders = loaders(&views);
        let (a, b, missing) = futures::join!(
            loaders.load_one(StockKey("A".into())),
            loaders.load_one(StockKey("B".into())),
            loaders.load_one(StockKey("C".into())),
        );
        assert_eq!(a.unwrap().unwrap().sku, "A");
        assert_eq!(b.unwrap().unwrap().sku, "B");
        assert!(missing.unwrap().is_none());
        assert_eq!(
            views.batches(),
            [(
                View::Stock,
                vec!["A".to_owned(), "B".to_owned(), "C".to_owned()]
            )]
        );
    }

    #[tokio::test]
    async fn a_follower_whose_leader_is_dropped_loads_by_itself() {
        let views = MemoryReadModels::new();
        stock(&views, "A");
        stock(&views, "B");
        let loaders = loaders(&views);
        let mut leader = Box::pin(loaders.load_one(StockKey("A".into())));
        assert!(futures::poll!(&mut leader).is_pending());
        let mut follower = Box::pin(loaders.load_one(StockKey("B".into())));
        assert!(futures::poll!(&mut follower).is_pending());
        drop(leader);
        let found = follower.await.unwrap().unwrap();
        assert_eq!(found.sku, "B");
        assert_eq!(views.batches(), [(View::Stock, vec!["B".to_owned()])]);
    }
}
