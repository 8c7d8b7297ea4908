//! `customers`: each customer with their order history.
//!
//! A customer document is touched by the customer's own stream and by the
//! streams of each of their orders, which the broker may interleave in any
//! way; the history is therefore kept sorted by (placed at, order id) and
//! the amount spent is a sum, so every interleaving gives the same document.

use chrono::{DateTime, Utc};
use domain::{
    catalogue::DomainEvent,
    customer,
    envelope::RecordedEvent,
    order::{self, Status},
    values::CustomerId,
};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, ViewTx},
};

/// The `customers` view, by customer id.
pub const CUSTOMERS: Collection<CustomerDoc> = Collection::new("customers");

/// One order in a customer's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerOrder {
    /// The order.
    pub order_id: String,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// Where it is.
    pub status: Status,
    /// What it costs.
    pub total_cents: u64,
}

/// A customer as served: docs/internal-apis.md's fields plus `orders`, the
/// history with each order's status and total.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDoc {
    /// The customer.
    pub customer_id: String,
    /// Their email address (null until their registration is seen).
    pub email: Option<String>,
    /// Their name (null until their registration is seen).
    pub name: Option<String>,
    /// When they registered.
    pub registered_at: Option<DateTime<Utc>>,
    /// Their orders, newest first.
    pub order_ids: Vec<String>,
    /// How many orders they placed.
    pub orders_count: u64,
    /// What their confirmed orders cost, less those cancelled after confirmation.
    pub spent_cents: u64,
    /// Their orders, newest first.
    pub orders: Vec<CustomerOrder>,
}

/// What the projection remembers of an order between its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OrderNote {
    customer_id: String,
    total_cents: u64,
    /// Whether its total is counted in `spent_cents`.
    counted: bool,
}

const ORDER_NOTES: Collection<OrderNote> = Collection::new("customer_orders");

/// The customers projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Customers;

fn customer_doc<'tx>(
    tx: &'tx mut ViewTx,
    customer_id: &str,
) -> Result<&'tx mut CustomerDoc, ProjectionError> {
    Ok(tx.upsert_with(CUSTOMERS, customer_id, || CustomerDoc {
        customer_id: customer_id.to_owned(),
        ..CustomerDoc::default()
    })?)
}

impl Customers {
    fn order_changed(
        tx: &mut ViewTx,
        order_id: &domain::values::OrderId,
        status: Status,
    ) -> Result<(), ProjectionError> {
        let order_key = order_id.to_string();
        let Some(note) = tx.get(ORDER_NOTES, &order_key)?.cloned() else {
            return Ok(());
        };
        let mut counted = note.counted;
        let doc = customer_doc(tx, &note.customer_id)?;
        match status {
            Status::Confirmed if !counted => {
                doc.spent_cents = doc.spent_cents.saturating_add(note.total_cents);
                counted = true;
            }
            Status::Cancelled if counted => {
                doc.spent_cents = doc.spent_cents.saturating_sub(note.total_cents);
                counted = false;
            }
            _ => {}
        }
        if let Some(entry) = doc.orders.iter_mut().find(|o| o.order_id == order_key) {
            entry.status = status;
        }
        if matches!(status, Status::Delivered | Status::Cancelled) {
            // Nothing changes an order after these: forget it.
            tx.remove(ORDER_NOTES, &order_key)?;
        } else if counted != note.counted {
            tx.put(ORDER_NOTES, &order_key, OrderNote { counted, ..note })?;
        }
        Ok(())
    }
}

impl Projection for Customers {
    fn name(&self) -> ProjectorName {
        ProjectorName::Customers
    }

    fn categories(&self) -> &'static [&'static str] {
        &[customer::STREAM_CATEGORY, order::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["customers"]
    }

    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        match event {
            DomainEvent::Customer(customer::Event::CustomerRegistered {
                customer_id,
                email,
                name,
            }) => {
                let doc = customer_doc(tx, &customer_id.to_string())?;
                doc.email = Some(email.to_string());
                doc.name = Some(name.to_string());
                doc.registered_at = Some(recorded.recorded_at);
            }
            DomainEvent::Order(order::Event::OrderPlaced {
                order_id,
                customer_id,
                total_cents,
                placed_at,
                ..
            }) => placed(tx, order_id, customer_id, total_cents.cents(), *placed_at)?,
            DomainEvent::Order(order::Event::OrderConfirmed { order_id, .. }) => {
                Self::order_changed(tx, order_id, Status::Confirmed)?;
            }
            DomainEvent::Order(order::Event::OrderShipped { order_id, .. }) => {
                Self::order_changed(tx, order_id, Status::Shipped)?;
            }
            DomainEvent::Order(order::Event::OrderDelivered { order_id, .. }) => {
                Self::order_changed(tx, order_id, Status::Delivered)?;
            }
            DomainEvent::Order(order::Event::OrderCancelled { order_id, .. }) => {
                Self::order_changed(tx, order_id, Status::Cancelled)?;
            }
            _ => {}
        }
        Ok(())
    }
}

fn placed(
    tx: &mut ViewTx,
    order_id: &domain::values::OrderId,
    customer_id: &CustomerId,
    total_cents: u64,
    placed_at: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    let order_key = order_id.to_string();
    let customer_key = customer_id.to_string();
    tx.put(
        ORDER_NOTES,
        &order_key,
        OrderNote {
            customer_id: customer_key.clone(),
            total_cents,
            counted: false,
        },
    )?;
    let doc = customer_doc(tx, &customer_key)?;
    if doc.orders.iter().any(|o| o.order_id == order_key) {
        return Ok(());
    }
    let entry = CustomerOrder {
        order_id: order_key,
        placed_at,
        status: Status::Placed,
        total_cents,
    };
    // Newest first; equal times by order id, descending.
    let at = doc
        .orders
        .partition_point(|o| (o.placed_at, &o.order_id) > (entry.placed_at, &entry.order_id));
    doc.order_ids.insert(at, entry.order_id.clone());
    doc.orders.insert(at, entry);
    doc.orders_count += 1;
    Ok(())
}
