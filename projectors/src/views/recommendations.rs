//! Recommendations: how often two products were bought together, counted
//! over confirmed orders (an order cancelled after confirmation is taken
//! back out).

use std::collections::BTreeMap;

use domain::{catalogue::DomainEvent, envelope::RecordedEvent, order};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, Home, ViewDb, ViewError, ViewTx},
};

/// Bought-together counts by SKU.
pub const BOUGHT_TOGETHER: Collection<BoughtTogether> = Collection::new("bought_together");

/// The products bought with one SKU, and how many confirmed orders had both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoughtTogether {
    /// The SKU.
    pub sku: String,
    /// Other SKU → number of confirmed orders with both. No zero entries.
    pub counts: BTreeMap<String, u64>,
}

/// What the projection remembers of an open order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OrderSkus {
    skus: Vec<String>,
    counted: bool,
}

const OPEN_ORDERS: Collection<OrderSkus> = Collection::new("recommendation_orders");

/// One recommendation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// A product often bought with the one asked about.
    pub sku: String,
    /// In how many confirmed orders.
    pub count: u64,
}

/// The products most often bought with `sku`, most frequent first (then by SKU).
pub fn recommend(db: &ViewDb, sku: &str, first: usize) -> Result<Vec<Recommendation>, ViewError> {
    let Some(doc) = db.get(BOUGHT_TOGETHER, sku)? else {
        return Ok(Vec::new());
    };
    let mut items: Vec<Recommendation> = doc
        .counts
        .into_iter()
        .map(|(sku, count)| Recommendation { sku, count })
        .collect();
    items.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.sku.cmp(&b.sku)));
    items.truncate(first);
    Ok(items)
}

/// The recommendations projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recommendations;

fn count_pairs(tx: &mut ViewTx, skus: &[String], add: bool) -> Result<(), ProjectionError> {
    for sku in skus {
        let doc = tx.upsert_with(BOUGHT_TOGETHER, sku, || BoughtTogether {
            sku: sku.clone(),
            counts: BTreeMap::new(),
        })?;
        for other in skus.iter().filter(|other| *other != sku) {
            if add {
                *doc.counts.entry(other.clone()).or_insert(0) += 1;
            } else if let Some(count) = doc.counts.get_mut(other) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    doc.counts.remove(other);
                }
            }
        }
        if doc.counts.is_empty() {
            tx.remove(BOUGHT_TOGETHER, sku)?;
        }
    }
    Ok(())
}

impl Projection for Recommendations {
    fn name(&self) -> ProjectorName {
        ProjectorName::Recommendations
    }

    fn categories(&self) -> &'static [&'static str] {
        &[order::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["bought_together"]
    }

    fn layout(&self) -> u64 {
        // 2: documents hold their stream's position (see `homes`).
        2
    }

    fn homes(&self) -> Vec<Home> {
        vec![Home::new(order::STREAM_CATEGORY, OPEN_ORDERS.name())]
    }

    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        _recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let DomainEvent::Order(event) = event else {
            return Ok(());
        };
        let key = event.order_id().to_string();
        match event {
            order::Event::OrderPlaced { lines, .. } => {
                let mut skus: Vec<String> = lines.iter().map(|line| line.sku.to_string()).collect();
                skus.sort();
                skus.dedup();
                if skus.len() > 1 {
                    let note = OrderSkus {
                        skus,
                        counted: false,
                    };
                    tx.put(OPEN_ORDERS, &key, note)?;
                }
            }
            order::Event::OrderConfirmed { .. } => {
                if let Some(note) = tx.get_mut(OPEN_ORDERS, &key)? {
                    if !note.counted {
                        note.counted = true;
                        let skus = note.skus.clone();
                        count_pairs(tx, &skus, true)?;
                    }
                }
            }
            order::Event::OrderCancelled { .. } => {
                if let Some(note) = tx.get(OPEN_ORDERS, &key)?.cloned() {
                    if note.counted {
                        count_pairs(tx, &note.skus, false)?;
                    }
                    tx.remove(OPEN_ORDERS, &key)?;
                }
            }
            order::Event::OrderDelivered { .. } => {
                // A delivered order can no longer be cancelled.
                tx.remove(OPEN_ORDERS, &key)?;
            }
            order::Event::OrderShipped { .. } => {}
        }
        Ok(())
    }
}
