//! `stock`: units available, reserved and shipped per SKU.

use domain::{catalogue::DomainEvent, envelope::RecordedEvent, stock};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, Home, ViewTx},
};

/// The `stock` view, by SKU.
pub const STOCK: Collection<StockDoc> = Collection::new("stock");

/// Stock of one SKU as served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockDoc {
    /// The SKU.
    pub sku: String,
    /// Units that can be reserved.
    pub available: u64,
    /// Units held for orders.
    pub reserved: u64,
    /// Units that left the warehouse.
    pub shipped: u64,
}

impl StockDoc {
    /// Folds one stock event in. Counts saturate rather than wrap: the
    /// aggregate never lets them go negative, and a view must not panic.
    pub fn apply(&mut self, event: &stock::Event) {
        match event {
            stock::Event::StockRestocked { quantity, .. } => {
                self.available = self.available.saturating_add(u64::from(quantity.get()));
            }
            stock::Event::StockReserved { quantity, .. } => {
                let quantity = u64::from(quantity.get());
                self.available = self.available.saturating_sub(quantity);
                self.reserved = self.reserved.saturating_add(quantity);
            }
            stock::Event::StockReleased { quantity, .. } => {
                let quantity = u64::from(quantity.get());
                self.reserved = self.reserved.saturating_sub(quantity);
                self.available = self.available.saturating_add(quantity);
            }
            stock::Event::ReservationCommitted { quantity, .. } => {
                let quantity = u64::from(quantity.get());
                self.reserved = self.reserved.saturating_sub(quantity);
                self.shipped = self.shipped.saturating_add(quantity);
            }
            stock::Event::StockReservationRejected { .. } => {}
        }
    }
}

/// The inventory projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inventory;

impl Projection for Inventory {
    fn name(&self) -> ProjectorName {
        ProjectorName::Inventory
    }

    fn categories(&self) -> &'static [&'static str] {
        &[stock::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["stock"]
    }

    fn layout(&self) -> u64 {
        // 2: documents hold their stream's position (see `homes`).
        2
    }

    fn homes(&self) -> Vec<Home> {
        vec![Home::new(stock::STREAM_CATEGORY, STOCK.name())]
    }

    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        _recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let DomainEvent::Stock(event) = event else {
            return Ok(());
        };
        let sku = event.sku().to_string();
        if matches!(event, stock::Event::StockReservationRejected { .. })
            && tx.get(STOCK, &sku)?.is_none()
        {
            // A refusal changes no count; do not create a document for it.
            return Ok(());
        }
        tx.upsert_with(STOCK, &sku.clone(), || StockDoc {
            sku,
            ..StockDoc::default()
        })?
        .apply(event);
        Ok(())
    }
}
