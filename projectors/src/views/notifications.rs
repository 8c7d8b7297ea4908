//! `notifications`: an outbox of messages to customers, one per order
//! confirmation, dispatch, delivery and cancellation. Sending them (mail,
//! push) is out of scope; customers read them here.
//!
//! Each message is a document of its own, written once, under the key
//! `<customer id>/<time, inverted><message id>`: a customer's messages are a
//! prefix scan away, newest first, and whatever order the streams of their
//! orders arrive in, the same keys hold the same messages. (One document per
//! customer, rewritten whole for every new message, made rebuilds slow.)

use chrono::{DateTime, Utc};
use domain::{
    catalogue::DomainEvent,
    envelope::RecordedEvent,
    order::{self, CancellationReason},
    values::Money,
};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, ViewDb, ViewError, ViewTx},
};

/// Every message, by `<customer id>/<inverted time><message id>`.
pub const ITEMS: Collection<Notification> = Collection::new("notification_items");

/// What a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The order was confirmed.
    OrderConfirmed,
    /// The order was handed to the carrier.
    OrderShipped,
    /// The order arrived.
    OrderDelivered,
    /// The order was cancelled.
    OrderCancelled,
}

/// One message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id: the id of the event that caused it.
    pub id: String,
    /// The order it is about.
    pub order_id: String,
    /// What it is about.
    pub kind: Kind,
    /// The text.
    pub message: String,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// A customer's messages, newest first (the served `notifications` document).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    /// The customer.
    pub customer_id: String,
    /// Their messages, newest first.
    pub items: Vec<Notification>,
}

/// What the projection remembers of an order between its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OrderNote {
    customer_id: String,
    total_cents: u64,
}

const ORDER_NOTES: Collection<OrderNote> = Collection::new("notification_orders");

/// The key of a message: newest first within a customer, then by id.
fn item_key(customer_id: &str, at: DateTime<Utc>, id: &str) -> String {
    let nanos = at.timestamp_nanos_opt().unwrap_or(i64::MAX);
    // Times before 1970 do not occur; clamp them to the oldest.
    let inverted = u64::MAX - u64::try_from(nanos).unwrap_or(0);
    format!("{customer_id}/{inverted:016x}{id}")
}

/// A customer's messages, newest first; `None` if they have none.
pub fn outbox(db: &ViewDb, customer_id: &str) -> Result<Option<Outbox>, ViewError> {
    let mut items = Vec::new();
    for item in db.scan_prefix(ITEMS, &format!("{customer_id}/")) {
        items.push(item?.1);
    }
    Ok((!items.is_empty()).then(|| Outbox {
        customer_id: customer_id.to_owned(),
        items,
    }))
}

fn short(order_id: &str) -> &str {
    order_id.get(..8).unwrap_or(order_id)
}

fn reason_text(reason: CancellationReason) -> &'static str {
    match reason {
        CancellationReason::OutOfStock => "an item is out of stock",
        CancellationReason::PaymentDeclined => "the payment was declined",
        CancellationReason::CustomerRequest => "you asked us to",
    }
}

/// The notifications projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Notifications;

impl Projection for Notifications {
    fn name(&self) -> ProjectorName {
        ProjectorName::Notifications
    }

    fn categories(&self) -> &'static [&'static str] {
        &[order::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["notifications"]
    }

    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let DomainEvent::Order(event) = event else {
            return Ok(());
        };
        let order_id = event.order_id().to_string();
        let (kind, at) = match event {
            order::Event::OrderPlaced {
                customer_id,
                total_cents,
                ..
            } => {
                let note = OrderNote {
                    customer_id: customer_id.to_string(),
                    total_cents: total_cents.cents(),
                };
                tx.put(ORDER_NOTES, &order_id, note)?;
                return Ok(());
            }
            order::Event::OrderConfirmed { at, .. } => (Kind::OrderConfirmed, *at),
            order::Event::OrderShipped { at, .. } => (Kind::OrderShipped, *at),
            order::Event::OrderDelivered { at, .. } => (Kind::OrderDelivered, *at),
            order::Event::OrderCancelled { at, .. } => (Kind::OrderCancelled, *at),
        };
        let Some(note) = tx.get(ORDER_NOTES, &order_id)?.cloned() else {
            return Ok(());
        };
        let number = short(&order_id);
        let message = match event {
            order::Event::OrderConfirmed { .. } => format!(
                "Your order {number} is confirmed: {} will be charged when it ships.",
                Money::from_cents(note.total_cents)
            ),
            order::Event::OrderShipped { .. } => format!("Your order {number} is on its way."),
            order::Event::OrderDelivered { .. } => format!("Your order {number} was delivered."),
            order::Event::OrderCancelled { reason, .. } => format!(
                "Your order {number} was cancelled because {}.",
                reason_text(*reason)
            ),
            order::Event::OrderPlaced { .. } => return Ok(()),
        };
        let id = recorded.event_id.to_string();
        let key = item_key(&note.customer_id, at, &id);
        let item = Notification {
            id,
            order_id: order_id.clone(),
            kind,
            message,
            at,
        };
        tx.put(ITEMS, &key, item)?;
        if matches!(kind, Kind::OrderDelivered | Kind::OrderCancelled) {
            tx.remove(ORDER_NOTES, &order_id)?;
        }
        Ok(())
    }

    fn document(
        &self,
        db: &ViewDb,
        view: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, ViewError> {
        if view != "notifications" {
            return Ok(None);
        }
        outbox(db, key)?
            .map(|outbox| {
                serde_json::to_value(outbox).map_err(|source| ViewError::Encode {
                    collection: "notifications",
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }
}
