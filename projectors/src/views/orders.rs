//! `orders`: every order with its lines, totals and status timeline.

use chrono::{DateTime, Utc};
use domain::{
    catalogue::DomainEvent,
    envelope::RecordedEvent,
    order::{self, Status},
};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, Home, ViewTx},
};

/// The `orders` view, by order id.
pub const ORDERS: Collection<OrderDoc> = Collection::new("orders");

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDoc {
    /// The product.
    pub sku: String,
    /// Units.
    pub quantity: u32,
    /// Unit price paid.
    pub unit_price_cents: u64,
}

/// One status change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The status entered.
    pub status: Status,
    /// When.
    pub at: DateTime<Utc>,
}

/// An order as served (docs/internal-apis.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDoc {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Where it is.
    pub status: Status,
    /// Why it was cancelled, if it was.
    pub cancellation_reason: Option<order::CancellationReason>,
    /// What was ordered.
    pub lines: Vec<LineDoc>,
    /// Sum of the lines.
    pub subtotal_cents: u64,
    /// Shipping.
    pub shipping_cost_cents: u64,
    /// Subtotal plus shipping.
    pub total_cents: u64,
    /// Every status entered, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

/// The orders projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Orders;

impl Orders {
    fn transition(
        tx: &mut ViewTx,
        order_id: &domain::values::OrderId,
        status: Status,
        at: DateTime<Utc>,
        reason: Option<order::CancellationReason>,
    ) -> Result<(), ProjectionError> {
        // An order whose placement was skipped as poison has no document; its
        // later events have nothing to change.
        if let Some(doc) = tx.get_mut(ORDERS, &order_id.to_string())? {
            doc.status = status;
            if reason.is_some() {
                doc.cancellation_reason = reason;
            }
            doc.timeline.push(TimelineEntry { status, at });
        }
        Ok(())
    }
}

impl Projection for Orders {
    fn name(&self) -> ProjectorName {
        ProjectorName::Orders
    }

    fn categories(&self) -> &'static [&'static str] {
        &[order::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["orders"]
    }

    fn layout(&self) -> u64 {
        // 2: an order's document holds its stream's position.
        2
    }

    fn homes(&self) -> Vec<Home> {
        vec![Home::new(order::STREAM_CATEGORY, ORDERS.name())]
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
        match event {
            order::Event::OrderPlaced {
                order_id,
                customer_id,
                lines,
                subtotal_cents,
                shipping_cost_cents,
                total_cents,
                placed_at,
                ..
            } => {
                let doc = OrderDoc {
                    order_id: order_id.to_string(),
                    customer_id: customer_id.to_string(),
                    status: Status::Placed,
                    cancellation_reason: None,
                    lines: lines
                        .iter()
                        .map(|line| LineDoc {
                            sku: line.sku.to_string(),
                            quantity: line.quantity.get(),
                            unit_price_cents: line.unit_price_cents.cents(),
                        })
                        .collect(),
                    subtotal_cents: subtotal_cents.cents(),
                    shipping_cost_cents: shipping_cost_cents.cents(),
                    total_cents: total_cents.cents(),
                    timeline: vec![TimelineEntry {
                        status: Status::Placed,
                        at: *placed_at,
                    }],
                    created_at: *placed_at,
                };
                tx.put(ORDERS, &doc.order_id.clone(), doc)?;
            }
            order::Event::OrderConfirmed { order_id, at } => {
                Self::transition(tx, order_id, Status::Confirmed, *at, None)?;
            }
            order::Event::OrderShipped { order_id, at } => {
                Self::transition(tx, order_id, Status::Shipped, *at, None)?;
            }
            order::Event::OrderDelivered { order_id, at } => {
                Self::transition(tx, order_id, Status::Delivered, *at, None)?;
            }
            order::Event::OrderCancelled {
                order_id,
                reason,
                at,
            } => {
                Self::transition(tx, order_id, Status::Cancelled, *at, Some(*reason))?;
            }
        }
        Ok(())
    }
}
