//! `customers`: each customer with their order history.
//!
//! A customer is one small document under their id (who they are, how many
//! orders, what they spent) and each of their orders one more, under
//! `<customer id>/<order id>`; the served document puts them together, the
//! history newest first by (placed at, order id). A customer document is
//! touched by the customer's own stream and by the streams of each of their
//! orders, which the broker may interleave in any way: the amount spent is
//! a sum and the history is sorted when served, so every interleaving gives
//! the same documents.
//!
//! (One document per customer holding the whole history was rewritten
//! whole for every event of every order: with hundreds of orders a
//! customer, tens of KB written per event, and the projector's memory grew
//! with it.)

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
    projection::{assembled, Projection, ProjectionError},
    viewdb::{Collection, Home, ViewDb, ViewError, ViewTx},
};

/// The customers as stored, by customer id (without their history).
pub const CUSTOMERS: Collection<CustomerRecord> = Collection::new("customers");

/// Each customer's orders, by `<customer id>/<order id>`.
pub const HISTORY: Collection<CustomerOrder> = Collection::new("customer_history");

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

/// A customer as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    /// The customer.
    pub customer_id: String,
    /// Their email address (null until their registration is seen).
    pub email: Option<String>,
    /// Their name (null until their registration is seen).
    pub name: Option<String>,
    /// When they registered.
    pub registered_at: Option<DateTime<Utc>>,
    /// How many orders they placed.
    pub orders_count: u64,
    /// What their confirmed orders cost, less those cancelled after confirmation.
    pub spent_cents: u64,
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

/// The key of an order in its customer's history.
fn history_key(customer_id: &str, order_id: &str) -> String {
    format!("{customer_id}/{order_id}")
}

/// A customer with their history, newest first; `None` if the view has
/// never heard of them.
pub fn customer(db: &ViewDb, customer_id: &str) -> Result<Option<CustomerDoc>, ViewError> {
    let Some(record) = db.get(CUSTOMERS, customer_id)? else {
        return Ok(None);
    };
    let mut orders = db
        .scan_prefix(HISTORY, &format!("{customer_id}/"))
        .map(|item| item.map(|(_, order)| order))
        .collect::<Result<Vec<_>, _>>()?;
    // Newest first; equal times by order id, descending.
    orders.sort_by(|a, b| (&b.placed_at, &b.order_id).cmp(&(&a.placed_at, &a.order_id)));
    Ok(Some(CustomerDoc {
        customer_id: record.customer_id,
        email: record.email,
        name: record.name,
        registered_at: record.registered_at,
        order_ids: orders.iter().map(|o| o.order_id.clone()).collect(),
        orders_count: record.orders_count,
        spent_cents: record.spent_cents,
        orders,
    }))
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

fn customer_record<'tx>(
    tx: &'tx mut ViewTx,
    customer_id: &str,
) -> Result<&'tx mut CustomerRecord, ProjectionError> {
    Ok(tx.upsert_with(CUSTOMERS, customer_id, || CustomerRecord {
        customer_id: customer_id.to_owned(),
        ..CustomerRecord::default()
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
        match status {
            Status::Confirmed if !counted => {
                let record = customer_record(tx, &note.customer_id)?;
                record.spent_cents = record.spent_cents.saturating_add(note.total_cents);
                counted = true;
            }
            Status::Cancelled if counted => {
                let record = customer_record(tx, &note.customer_id)?;
                record.spent_cents = record.spent_cents.saturating_sub(note.total_cents);
                counted = false;
            }
            _ => {}
        }
        if let Some(entry) = tx.get_mut(HISTORY, &history_key(&note.customer_id, &order_key))? {
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

    fn layout(&self) -> u64 {
        // 2: the history as one document per order (1: inside the customer's).
        // 3: documents hold their stream's position (see `homes`).
        3
    }

    fn homes(&self) -> Vec<Home> {
        vec![
            Home::new(customer::STREAM_CATEGORY, CUSTOMERS.name()),
            Home::new(order::STREAM_CATEGORY, ORDER_NOTES.name()),
        ]
    }

    fn document(
        &self,
        db: &ViewDb,
        view: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, ViewError> {
        if view != "customers" {
            return Ok(None);
        }
        assembled("customers", key, customer(db, key)?)
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
                let record = customer_record(tx, &customer_id.to_string())?;
                record.email = Some(email.to_string());
                record.name = Some(name.to_string());
                record.registered_at = Some(recorded.recorded_at);
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
    let entry_key = history_key(&customer_key, &order_key);
    if tx.get(HISTORY, &entry_key)?.is_some() {
        return Ok(());
    }
    tx.put(
        HISTORY,
        &entry_key,
        CustomerOrder {
            order_id: order_key,
            placed_at,
            status: Status::Placed,
            total_cents,
        },
    )?;
    customer_record(tx, &customer_key)?.orders_count += 1;
    Ok(())
}
