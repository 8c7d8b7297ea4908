//! `carts`: each customer's cart.

use domain::{cart, catalogue::DomainEvent, envelope::RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, Home, ViewTx},
};

/// The `carts` view, by customer id.
pub const CARTS: Collection<CartDoc> = Collection::new("carts");

/// One line of a cart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLineDoc {
    /// The product.
    pub sku: String,
    /// Units.
    pub quantity: u32,
    /// The unit price when last added.
    pub unit_price_cents: u64,
}

/// A cart as served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartDoc {
    /// Whose cart.
    pub customer_id: String,
    /// Its lines, in the order they were first added.
    pub lines: Vec<CartLineDoc>,
}

/// The carts projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Carts;

impl Projection for Carts {
    fn name(&self) -> ProjectorName {
        ProjectorName::Carts
    }

    fn categories(&self) -> &'static [&'static str] {
        &[cart::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["carts"]
    }

    fn layout(&self) -> u64 {
        // 2: documents hold their stream's position (see `homes`).
        2
    }

    fn homes(&self) -> Vec<Home> {
        vec![Home::new(cart::STREAM_CATEGORY, CARTS.name())]
    }

    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        _recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let DomainEvent::Cart(event) = event else {
            return Ok(());
        };
        let customer_id = event.customer_id().to_string();
        let doc = tx.upsert_with(CARTS, &customer_id.clone(), || CartDoc {
            customer_id,
            lines: Vec::new(),
        })?;
        match event {
            cart::Event::CartItemAdded {
                sku,
                quantity,
                unit_price_cents,
                ..
            } => match doc.lines.iter_mut().find(|line| line.sku == sku.as_str()) {
                Some(line) => {
                    line.quantity = line.quantity.saturating_add(quantity.get());
                    line.unit_price_cents = unit_price_cents.cents();
                }
                None => doc.lines.push(CartLineDoc {
                    sku: sku.to_string(),
                    quantity: quantity.get(),
                    unit_price_cents: unit_price_cents.cents(),
                }),
            },
            cart::Event::CartItemRemoved { sku, .. } => {
                doc.lines.retain(|line| line.sku != sku.as_str());
            }
            cart::Event::CartCheckedOut { .. } => doc.lines.clear(),
        }
        Ok(())
    }
}
