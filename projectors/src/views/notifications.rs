//! `notifications`: an outbox of messages to customers, one per order
//! confirmation, dispatch, delivery and cancellation. Sending them (mail,
//! push) is out of scope; customers read them here.
//!
//! The messages about one order are one document, under the key
//! `<customer id>/<order id>`: at most four messages, appended in the order
//! of the order's own stream (which every delivery keeps), so whatever order
//! the streams of different orders arrive in, the same keys hold the same
//! documents. A customer's outbox is a prefix scan away; it is served
//! newest first across their orders.
//!
//! (One document per customer, rewritten whole for every new message, made
//! rebuilds slow; one document per message made three or four sled entries
//! per order, which is what a rebuild's time goes into.)

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
    projection::{assembled, Projection, ProjectionError},
    viewdb::{Collection, Home, ViewDb, ViewError, ViewTx},
};

/// The messages about each order, by `<customer id>/<order id>`.
pub const MESSAGES: Collection<OrderMessages> = Collection::new("notification_messages");

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

/// The messages about one order, oldest first (a stored document).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderMessages {
    /// The messages, in the order of the order's events.
    pub items: Vec<Notification>,
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

/// The key of the messages about an order.
fn messages_key(customer_id: &str, order_id: &str) -> String {
    format!("{customer_id}/{order_id}")
}

/// A customer's messages, newest first (ties by message id); `None` if
/// they have none.
pub fn outbox(db: &ViewDb, customer_id: &str) -> Result<Option<Outbox>, ViewError> {
    let mut items = Vec::new();
    for messages in db.scan_prefix(MESSAGES, &format!("{customer_id}/")) {
        items.extend(messages?.1.items);
    }
    items.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
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

    /// 2: one document per order (`notification_messages`); 1 had one per
    /// message (`notification_items`).
    fn layout(&self) -> u64 {
        // 2: one document per order's messages (1: one per message).
        // 3: documents hold their stream's position (see `homes`).
        3
    }

    fn homes(&self) -> Vec<Home> {
        vec![Home::new(order::STREAM_CATEGORY, ORDER_NOTES.name())]
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
        let key = messages_key(&note.customer_id, &order_id);
        let messages = tx.upsert::<OrderMessages>(MESSAGES, &key)?;
        // Each event of the order's stream is applied once, in order; a
        // message already here (by its event's id) is not added again.
        if !messages.items.iter().any(|item| item.id == id) {
            messages.items.push(Notification {
                id,
                order_id: order_id.clone(),
                kind,
                message,
                at,
            });
        }
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
        assembled("notifications", key, outbox(db, key)?)
    }
}
