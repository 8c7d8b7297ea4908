//! `orderUpdates(orderId)`: the order now, then once per status change, in
//! order, until it is delivered or cancelled.
//!
//! How: the gateway follows the orders projector by position. It asks
//! `GET /views/orders/<id>/wait?stream=order-<id>&min_version=<next>` as a
//! long poll (the projector answers with the document and the stream's
//! version when it applies the order's next event, or after a while) and
//! looks at the document only when the position moved. Every status
//! change is an entry of the order's `timeline`, so the subscription emits
//! one update per timeline entry it has not emitted yet, each the order as it was at that entry. Two changes
//! between two polls therefore still give two updates, in order; and a
//! subscription that starts between two changes starts from the document it
//! read, whose timeline already holds the first, then follows. The position is
//! read before the document, so the document is never older than the position
//! the subscription believes it has seen.
//!
//! A projector outage during the subscription is waited out (its circuit
//! breaker keeps the polling cheap); the stream ends when the server stops.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_graphql::{Context, Subscription, ID};
use futures::{stream, Stream, StreamExt};

use super::{arguments, gateway, request, types::Order, Gateway};
use crate::{
    auth::Identity,
    backend::{Actor, Projector, View},
    error::GatewayError,
    views::OrderDoc,
};

/// How long one look at the orders projector may wait for the order's next
/// event (the projector answers at once when it applies one).
const LONG_POLL: Duration = Duration::from_secs(10);

/// The subscription root.
#[derive(Debug, Default, Clone, Copy)]
pub struct SubscriptionRoot;

/// The order's document from the orders projector (no loader cache), with
/// its stream's version read just before it; with `min_version`, once the
/// view has applied that version of the order's stream or after `wait` (a
/// long poll answered with the document).
pub(super) async fn read_order_at(
    gateway: &Gateway,
    order_id: &str,
    min_version: Option<u64>,
    wait: Duration,
) -> Result<(Option<u64>, Option<OrderDoc>), GatewayError> {
    let answer = gateway
        .read_models
        .document_at(
            View::Orders,
            order_id,
            &format!("order-{order_id}"),
            min_version,
            wait,
        )
        .await?;
    let doc = answer
        .document
        .map(|document| {
            serde_json::from_value(document).map_err(|_| GatewayError::Unavailable {
                service: Projector::Orders.to_string(),
                message: "malformed order".to_owned(),
            })
        })
        .transpose()?;
    Ok((answer.version, doc))
}

fn may_read(identity: &Identity, order: &OrderDoc) -> Result<(), GatewayError> {
    match identity.require_actor()? {
        Actor::Admin => Ok(()),
        Actor::Customer(id)
            if uuid::Uuid::parse_str(&order.customer_id).is_ok_and(|owner| owner == id) =>
        {
            Ok(())
        }
        Actor::Customer(_) => Err(GatewayError::not_found(format!("order {}", order.order_id))),
    }
}

struct Follow {
    gateway: Arc<Gateway>,
    order_id: String,
    position: Option<u64>,
    emitted: usize,
    finished: bool,
}

impl Follow {
    /// Waits for the next status changes; `None` when the stream is over.
    async fn next_changes(mut self) -> Option<(Vec<Order>, Self)> {
        let mut pause = self.gateway.wait.poll_interval;
        loop {
            if self.finished || self.gateway.shutdown.is_triggered() {
                return None;
            }
            let asked = Instant::now();
            let gateway = Arc::clone(&self.gateway);
            let polled = tokio::select! {
                polled = self.poll() => polled,
                () = gateway.shutdown.wait() => return None,
            };
            pause = match polled {
                Ok(updates) if updates.is_empty() => self.gateway.wait.poll_interval,
                Ok(updates) => return Some((updates, self)),
                Err(error) => {
                    tracing::debug!(order_id = %self.order_id, %error, "order updates: projector unavailable; retrying");
                    (pause * 2).min(Duration::from_secs(1))
                }
            };
            // The long poll waited already unless it failed or the backend
            // cannot wait: then a pause before asking again.
            let rest = pause.saturating_sub(asked.elapsed());
            tokio::select! {
                () = tokio::time::sleep(rest) => {}
                () = self.gateway.shutdown.wait() => return None,
            }
        }
    }

    async fn poll(&mut self) -> Result<Vec<Order>, GatewayError> {
        let next = self.position.map_or(0, |version| version + 1);
        let (position, doc) =
            read_order_at(&self.gateway, &self.order_id, Some(next), LONG_POLL).await?;
        if position == self.position {
            return Ok(Vec::new());
        }
        let Some(doc) = doc else {
            return Ok(Vec::new());
        };
        let mut updates = Vec::new();
        for index in self.emitted..doc.timeline.len() {
            let update = Order::at_timeline_entry(&doc, index)?;
            self.finished |= update.current_status().is_final();
            updates.push(update);
        }
        self.position = position;
        self.emitted = self.emitted.max(doc.timeline.len());
        Ok(updates)
    }
}

#[Subscription]
impl SubscriptionRoot {
    /// The order now, then again on every status change, in order, until it
    /// is delivered or cancelled. A customer may follow their own orders, the
    /// admin any.
    async fn order_updates(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<impl Stream<Item = Order>, GatewayError> {
        let gateway = Arc::clone(gateway(ctx)?);
        let identity = &request(ctx)?.identity;
        identity.require_actor()?;
        let order_id = arguments::order_id("orderId", &order_id)?.to_string();
        let (position, doc) = read_order_at(&gateway, &order_id, None, Duration::ZERO).await?;
        let doc = doc.ok_or_else(|| GatewayError::not_found(format!("order {order_id}")))?;
        may_read(identity, &doc)?;
        let current = Order::from_doc(Arc::new(doc.clone()))?;
        let follow = Follow {
            gateway,
            order_id,
            position,
            emitted: doc.timeline.len(),
            finished: current.current_status().is_final(),
        };
        metrics::counter!("query_api_subscriptions_total").increment(1);
        let changes = stream::unfold(follow, Follow::next_changes).flat_map(stream::iter);
        Ok(stream::once(async move { current }).chain(changes))
    }
}
