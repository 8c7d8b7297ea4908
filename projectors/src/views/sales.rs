//! Sales statistics over confirmed orders: how many, the revenue, and the
//! top products. An order cancelled after its confirmation is subtracted.

use domain::{catalogue::DomainEvent, envelope::RecordedEvent, order};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, Home, ViewDb, ViewError, ViewTx},
};

/// Totals, under the single key [`TOTALS_KEY`].
pub const TOTALS: Collection<Totals> = Collection::new("sales");
/// The key of the totals document.
pub const TOTALS_KEY: &str = "all";
/// Sales per SKU (only SKUs with sales).
pub const BY_SKU: Collection<SkuSales> = Collection::new("sales_by_sku");

/// The totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Confirmed orders.
    pub orders: u64,
    /// Their totals (shipping included).
    pub revenue_cents: u64,
}

/// Sales of one SKU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuSales {
    /// The SKU.
    pub sku: String,
    /// Units sold.
    pub quantity: u64,
    /// What they brought in.
    pub revenue_cents: u64,
}

/// `GET /stats` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Confirmed orders.
    pub orders: u64,
    /// Their totals.
    pub revenue_cents: u64,
    /// The best sellers by units, then revenue, then SKU.
    pub top_products: Vec<SkuSales>,
}

/// The statistics with the `top` best sellers.
pub fn stats(db: &ViewDb, top: usize) -> Result<Stats, ViewError> {
    let totals = db.get(TOTALS, TOTALS_KEY)?.unwrap_or_default();
    let mut products = Vec::new();
    for item in db.scan(BY_SKU, None) {
        products.push(item?.1);
    }
    products.sort_by(|a, b| {
        b.quantity
            .cmp(&a.quantity)
            .then_with(|| b.revenue_cents.cmp(&a.revenue_cents))
            .then_with(|| a.sku.cmp(&b.sku))
    });
    products.truncate(top);
    Ok(Stats {
        orders: totals.orders,
        revenue_cents: totals.revenue_cents,
        top_products: products,
    })
}

/// What the projection remembers of an open order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OrderNote {
    lines: Vec<(String, u64, u64)>,
    total_cents: u64,
    counted: bool,
}

const OPEN_ORDERS: Collection<OrderNote> = Collection::new("sales_orders");

/// The sales projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sales;

fn count(tx: &mut ViewTx, note: &OrderNote, add: bool) -> Result<(), ProjectionError> {
    let totals = tx.upsert(TOTALS, TOTALS_KEY)?;
    if add {
        totals.orders += 1;
        totals.revenue_cents = totals.revenue_cents.saturating_add(note.total_cents);
    } else {
        totals.orders = totals.orders.saturating_sub(1);
        totals.revenue_cents = totals.revenue_cents.saturating_sub(note.total_cents);
    }
    for (sku, quantity, revenue) in &note.lines {
        let sales = tx.upsert_with(BY_SKU, sku, || SkuSales {
            sku: sku.clone(),
            ..SkuSales::default()
        })?;
        if add {
            sales.quantity = sales.quantity.saturating_add(*quantity);
            sales.revenue_cents = sales.revenue_cents.saturating_add(*revenue);
        } else {
            sales.quantity = sales.quantity.saturating_sub(*quantity);
            sales.revenue_cents = sales.revenue_cents.saturating_sub(*revenue);
        }
        if sales.quantity == 0 {
            tx.remove(BY_SKU, sku)?;
        }
    }
    Ok(())
}

impl Projection for Sales {
    fn name(&self) -> ProjectorName {
        ProjectorName::Sales
    }

    fn categories(&self) -> &'static [&'static str] {
        &[order::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["sales", "sales_by_sku"]
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
            order::Event::OrderPlaced {
                lines, total_cents, ..
            } => {
                let note = OrderNote {
                    lines: lines
                        .iter()
                        .map(|line| {
                            (
                                line.sku.to_string(),
                                u64::from(line.quantity.get()),
                                line.line_total().cents(),
                            )
                        })
                        .collect(),
                    total_cents: total_cents.cents(),
                    counted: false,
                };
                tx.put(OPEN_ORDERS, &key, note)?;
            }
            order::Event::OrderConfirmed { .. } => {
                if let Some(note) = tx.get(OPEN_ORDERS, &key)?.cloned() {
                    if !note.counted {
                        count(tx, &note, true)?;
                        tx.put(
                            OPEN_ORDERS,
                            &key,
                            OrderNote {
                                counted: true,
                                ..note
                            },
                        )?;
                    }
                }
            }
            order::Event::OrderCancelled { .. } => {
                if let Some(note) = tx.get(OPEN_ORDERS, &key)?.cloned() {
                    if note.counted {
                        count(tx, &note, false)?;
                    }
                    tx.remove(OPEN_ORDERS, &key)?;
                }
            }
            order::Event::OrderDelivered { .. } => tx.remove(OPEN_ORDERS, &key)?,
            order::Event::OrderShipped { .. } => {}
        }
        Ok(())
    }
}
