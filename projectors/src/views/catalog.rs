//! `products`: the catalog with stock levels.
//!
//! Product facts come from `product-*` streams and stock counts from
//! `stock-*` streams, which arrive interleaved in any order; they are kept as
//! two documents per SKU and joined when served, so neither depends on the
//! other having arrived.

use domain::{catalogue::DomainEvent, envelope::RecordedEvent, product, stock};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, Home, ViewDb, ViewError, ViewTx},
    views::inventory::StockDoc,
};

/// Product facts by SKU.
pub const PRODUCTS: Collection<ProductDoc> = Collection::new("products");
/// Stock counts by SKU.
pub const STOCK_LEVELS: Collection<StockDoc> = Collection::new("catalog_stock");

/// A product's facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDoc {
    /// The SKU.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Unit price.
    pub price_cents: u64,
    /// Category (lowercase).
    pub category: String,
    /// Whether it can no longer be ordered.
    pub discontinued: bool,
}

/// The catalog projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Catalog;

/// The served form: the product's facts with `stock {available, reserved}`.
pub fn served(product: &ProductDoc, stock: Option<&StockDoc>) -> serde_json::Value {
    json!({
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price_cents": product.price_cents,
        "category": product.category,
        "discontinued": product.discontinued,
        "stock": {
            "available": stock.map_or(0, |s| s.available),
            "reserved": stock.map_or(0, |s| s.reserved),
        },
    })
}

/// One page of products in SKU order, optionally of one category.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProductPage {
    /// The products, served form.
    pub items: Vec<serde_json::Value>,
    /// Whether more follow.
    pub has_next: bool,
}

/// Lists up to `first` products after SKU `after`, of `category` if given.
pub fn list(
    db: &ViewDb,
    first: usize,
    after: Option<&str>,
    category: Option<&str>,
) -> Result<ProductPage, ViewError> {
    let category = category.map(str::to_lowercase);
    let mut items = Vec::new();
    let mut has_next = false;
    for item in db.scan(PRODUCTS, after) {
        let (_, product) = item?;
        if category.as_deref().is_some_and(|c| c != product.category) {
            continue;
        }
        if items.len() == first {
            has_next = true;
            break;
        }
        let stock = db.get(STOCK_LEVELS, &product.sku)?;
        items.push(served(&product, stock.as_ref()));
    }
    Ok(ProductPage { items, has_next })
}

impl Projection for Catalog {
    fn name(&self) -> ProjectorName {
        ProjectorName::Catalog
    }

    fn categories(&self) -> &'static [&'static str] {
        &[product::STREAM_CATEGORY, stock::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["products"]
    }

    fn layout(&self) -> u64 {
        // 2: documents hold their stream's position (see `homes`).
        2
    }

    fn homes(&self) -> Vec<Home> {
        vec![
            Home::new(product::STREAM_CATEGORY, PRODUCTS.name()),
            Home::new(stock::STREAM_CATEGORY, STOCK_LEVELS.name()),
        ]
    }

    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        _recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        match event {
            DomainEvent::Product(product::Event::ProductAdded {
                sku,
                name,
                description,
                price_cents,
                category,
            }) => {
                let doc = ProductDoc {
                    sku: sku.to_string(),
                    name: name.to_string(),
                    description: description.to_string(),
                    price_cents: price_cents.cents(),
                    category: category.to_string(),
                    discontinued: false,
                };
                tx.put(PRODUCTS, &doc.sku.clone(), doc)?;
            }
            DomainEvent::Product(product::Event::ProductPriceChanged {
                sku, price_cents, ..
            }) => {
                if let Some(doc) = tx.get_mut(PRODUCTS, sku.as_str())? {
                    doc.price_cents = price_cents.cents();
                }
            }
            DomainEvent::Product(product::Event::ProductDiscontinued { sku }) => {
                if let Some(doc) = tx.get_mut(PRODUCTS, sku.as_str())? {
                    doc.discontinued = true;
                }
            }
            DomainEvent::Stock(event) => {
                if matches!(event, stock::Event::StockReservationRejected { .. }) {
                    return Ok(());
                }
                let sku = event.sku().to_string();
                tx.upsert_with(STOCK_LEVELS, &sku.clone(), || StockDoc {
                    sku,
                    ..StockDoc::default()
                })?
                .apply(event);
            }
            _ => {}
        }
        Ok(())
    }

    fn document(
        &self,
        db: &ViewDb,
        view: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, ViewError> {
        if view != "products" {
            return Ok(None);
        }
        let Some(product) = db.get(PRODUCTS, key)? else {
            return Ok(None);
        };
        let stock = db.get(STOCK_LEVELS, key)?;
        Ok(Some(served(&product, stock.as_ref())))
    }
}
