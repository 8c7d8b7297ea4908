//! The interface every service talks to: a [`Transport`] hands out
//! [`Publisher`]s and [`Consumer`]s and declares the topology they need.
//!
//! Two implementations: [`crate::amqp::AmqpTransport`] (RabbitMQ) and
//! [`crate::memory::MemoryTransport`] (in-process, for `shop dev --broker memory`).

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use crate::{
    message::{Delivery, DeliveryTag, OutgoingMessage},
    namespace::{ConsumerName, NameError, Namespace},
};

/// A shared handle on a transport, as services hold it.
pub type SharedTransport = Arc<dyn Transport>;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A namespace or consumer name is not acceptable.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A routing-key pattern is not acceptable.
    #[error("invalid binding pattern {pattern:?}: {reason}")]
    InvalidBinding {
        /// The refused pattern.
        pattern: String,
        /// Why.
        reason: &'static str,
    },
    /// The AMQP URI does not parse.
    #[error("invalid AMQP URI: {reason}")]
    InvalidUri {
        /// What the parser said.
        reason: String,
    },
    /// The broker could not be reached.
    #[error("cannot connect to the broker at {endpoint}: {source}")]
    Connect {
        /// Host, port and virtual host (no credentials).
        endpoint: String,
        /// What the client library said.
        source: lapin::Error,
    },
    /// The broker did not complete a connection in time.
    #[error("cannot connect to the broker at {endpoint}: no answer within {after:?}")]
    ConnectTimeout {
        /// Host, port and virtual host (no credentials).
        endpoint: String,
        /// The time allowed.
        after: Duration,
    },
    /// The transport is not connected right now (it is reconnecting).
    #[error("not connected to the broker at {endpoint}")]
    NotConnected {
        /// Host, port and virtual host (no credentials).
        endpoint: String,
    },
    /// The broker refused an operation for a reason retrying will not fix,
    /// e.g. a queue already declared with other arguments.
    #[error("the broker refused {operation} of {object}: {message}")]
    Refused {
        /// The AMQP operation (`queue.declare`, …).
        operation: &'static str,
        /// The exchange or queue.
        object: String,
        /// The broker's reply text.
        message: String,
    },
    /// The connection or channel failed during an operation; retrying after
    /// a reconnect may succeed.
    #[error("{operation} failed: {source}")]
    Broker {
        /// The AMQP operation.
        operation: &'static str,
        /// What the client library said.
        source: lapin::Error,
    },
    /// The channel closed while messages sent on it were unconfirmed.
    #[error("the channel was lost with {unconfirmed} messages unconfirmed")]
    ChannelLost {
        /// How many messages were sent and not confirmed.
        unconfirmed: usize,
    },
    /// A consumer's queue does not exist (memory transport).
    #[error("no queue named {queue}")]
    NoSuchQueue {
        /// The queue.
        queue: String,
    },
    /// Dead-lettering a message failed: its copy was not confirmed into the
    /// dead-letter queue, so the original was left unacknowledged.
    #[error("cannot dead-letter a message from {queue}: {source}")]
    DeadLetter {
        /// The consumer's queue.
        queue: String,
        /// Why the copy was not confirmed.
        source: Box<PublishError>,
    },
    /// The transport was closed.
    #[error("the transport is closed")]
    Closed,
}

/// Why a message was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker refused the message (e.g. a full queue with
    /// `x-overflow=reject-publish`).
    #[error("the broker refused (nacked) a message with routing key {routing_key}")]
    Nacked {
        /// Its routing key.
        routing_key: String,
    },
    /// No queue is bound for the message's routing key and the operation
    /// needs one (copying a message to a dead-letter queue). A [`Publisher`]
    /// does not report this as an error: it settles such a message as
    /// [`Unroutable`].
    #[error("a message with routing key {routing_key} was returned: {reply_code} {reply_text}")]
    Returned {
        /// Its routing key.
        routing_key: String,
        /// The AMQP reply code (312 NO_ROUTE).
        reply_code: u16,
        /// The reply text.
        reply_text: String,
    },
    /// The message cannot be sent as it is (e.g. a routing key over 255 bytes).
    #[error("cannot send a message with routing key {routing_key:?}: {reason}")]
    Invalid {
        /// Its routing key.
        routing_key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The connection, the channel or the transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A message the broker confirmed without routing it anywhere: no queue is
/// bound for its routing key (it was returned with 312 NO_ROUTE). It is
/// settled: sending it again would change nothing until a queue is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unroutable {
    /// Its place among the messages the report counts as confirmed (0 is the oldest).
    pub index: usize,
    /// Its routing key.
    pub routing_key: String,
    /// The AMQP reply code (312 NO_ROUTE).
    pub reply_code: u16,
    /// The reply text.
    pub reply_text: String,
}

/// How many messages the broker confirmed, which of them it could not
/// route, and why the rest were not confirmed.
#[derive(Debug, Default)]
#[must_use]
pub struct PublishReport {
    /// How many messages, oldest first, the broker confirmed, the
    /// [`unroutable`](Self::unroutable) ones included: the caller is done
    /// with them.
    pub confirmed: usize,
    /// The confirmed messages no queue was bound for, oldest first.
    pub unroutable: Vec<Unroutable>,
    /// Why the messages after the confirmed ones were not confirmed, if they
    /// were not (a nack, a lost connection): they may or may not have reached
    /// the broker and must be sent again.
    pub error: Option<PublishError>,
}

impl PublishReport {
    /// Adds `later`, a report on the messages after these, to this one.
    fn extend(&mut self, later: PublishReport) {
        let offset = self.confirmed;
        self.unroutable
            .extend(later.unroutable.into_iter().map(|unroutable| Unroutable {
                index: unroutable.index + offset,
                ..unroutable
            }));
        self.confirmed += later.confirmed;
        self.error = later.error;
    }
}

/// Whether a published message reached a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// The broker routed it to at least one queue and confirmed it.
    Routed,
    /// The broker confirmed it, but no queue is bound for its routing key.
    Unroutable(Unroutable),
}

/// Publishes persistent messages to the events exchange with publisher
/// confirms and `mandatory` set, pipelined.
///
/// Use it as a window: [`send`](Self::send) several messages, then call
/// [`confirmed`](Self::confirmed) to learn how many of the oldest ones are
/// confirmed, in order. A message no queue is bound for is confirmed too,
/// and listed as [`Unroutable`]. After any error (a nack, a lost
/// connection) every message not reported confirmed is forgotten by the
/// publisher (which reconnects on the next `send` if needed) and must be
/// sent again: delivery is at least once.
#[async_trait]
pub trait Publisher: Send {
    /// Sends one message without waiting for its confirm. An error forgets
    /// every message in flight.
    async fn send(&mut self, message: &OutgoingMessage) -> Result<(), PublishError>;

    /// Sends `messages` in order without waiting for their confirms, as
    /// [`Publisher::send`] one after the other would; a transport may hand
    /// them to the broker together rather than waiting for each to be
    /// written before the next. An error forgets every message in flight,
    /// including those of this call sent before it.
    async fn send_all(&mut self, messages: &[OutgoingMessage]) -> Result<(), PublishError> {
        for message in messages {
            self.send(message).await?;
        }
        Ok(())
    }

    /// Waits until the oldest in-flight message is settled, then reports how
    /// many of the oldest in-flight messages are confirmed (at least one
    /// unless there is an error), in the order they were sent, and which of
    /// them were unroutable. With nothing in flight it reports 0 at once.
    ///
    /// An error means the message after the confirmed ones was nacked or the
    /// connection was lost: it and every later in-flight message are forgotten.
    async fn confirmed(&mut self) -> PublishReport;

    /// How many sent messages are not yet reported confirmed.
    fn in_flight(&self) -> usize;

    /// Publishes `messages` in order, pipelined, and waits for their confirms.
    /// Call it with nothing else in flight.
    async fn publish_batch(&mut self, messages: &[OutgoingMessage]) -> PublishReport {
        let mut report = PublishReport::default();
        if let Err(error) = self.send_all(messages).await {
            report.error = Some(error);
            return report;
        }
        while self.in_flight() > 0 {
            report.extend(self.confirmed().await);
            if report.error.is_some() {
                break;
            }
        }
        report
    }

    /// Publishes one message and waits for its confirm.
    async fn publish(&mut self, message: &OutgoingMessage) -> Result<Published, PublishError> {
        let report = self.publish_batch(std::slice::from_ref(message)).await;
        match (report.error, report.unroutable.into_iter().next()) {
            (Some(error), _) => Err(error),
            (None, Some(unroutable)) => Ok(Published::Unroutable(unroutable)),
            (None, None) => Ok(Published::Routed),
        }
    }
}

/// Receives messages from one consumer's queue with manual acknowledgement.
///
/// Acknowledge after your durable commit. Connection loss is handled inside:
/// the consumer reconnects with backoff and resumes; deliveries handed out
/// before are redelivered by the broker, and acknowledging their stale tags
/// does nothing.
#[async_trait]
pub trait Consumer: Send {
    /// The queue it consumes from.
    fn queue(&self) -> &str;

    /// Waits for at least one delivery, then adds those already there,
    /// returning at most `max` (at least 1). It never waits for more: a lone
    /// delivery is handed out at once. `linger` only bounds how long a batch
    /// keeps taking deliveries that go on arriving back to back.
    ///
    /// Giving up on a call (a `select!`, a timeout) loses nothing: what it
    /// had received is handed out by the next call.
    async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery>, TransportError>;

    /// Acknowledges every delivery up to and including `tag` (`multiple`).
    async fn ack_up_to(&mut self, tag: DeliveryTag) -> Result<(), TransportError>;

    /// Acknowledges one delivery.
    async fn ack(&mut self, tag: DeliveryTag) -> Result<(), TransportError>;

    /// Hands a delivery back for another attempt; this counts against the
    /// queue's delivery limit, past which the broker dead-letters it.
    async fn retry(&mut self, tag: DeliveryTag) -> Result<(), TransportError>;

    /// Moves a poison message to the consumer's dead-letter queue with
    /// `reason` in its `x-shop-error` header, then acknowledges it.
    async fn dead_letter(
        &mut self,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), TransportError>;
}

/// What a consumer's queue is bound to and how it is consumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// The consumer's name; its queue is `<ns>.<name>`.
    pub name: ConsumerName,
    /// Routing-key patterns (`order.*`, `#`) the queue is bound to.
    pub bindings: Vec<String>,
    /// How many unacknowledged deliveries the broker may hand out at once.
    pub prefetch: u16,
    /// How many times a message may be handed back (retried, or left
    /// unacknowledged by a consumer that went away) before it is dead-lettered.
    pub delivery_limit: u32,
}

impl ConsumerSpec {
    /// Default prefetch.
    pub const DEFAULT_PREFETCH: u16 = 1000;
    /// Default delivery limit.
    pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

    /// A spec with default prefetch and delivery limit; checks the patterns.
    pub fn new(
        name: ConsumerName,
        bindings: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, TransportError> {
        let bindings: Vec<String> = bindings.into_iter().map(Into::into).collect();
        for pattern in &bindings {
            check_pattern(pattern)?;
        }
        Ok(Self {
            name,
            bindings,
            prefetch: Self::DEFAULT_PREFETCH,
            delivery_limit: Self::DEFAULT_DELIVERY_LIMIT,
        })
    }

    /// Sets the prefetch (at least 1).
    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// Sets the delivery limit.
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = limit;
        self
    }
}

fn check_pattern(pattern: &str) -> Result<(), TransportError> {
    let refuse = |reason| TransportError::InvalidBinding {
        pattern: pattern.to_owned(),
        reason,
    };
    if pattern.is_empty() || pattern.len() > 255 {
        return Err(refuse("must be 1 to 255 bytes"));
    }
    if pattern.split('.').any(str::is_empty) {
        return Err(refuse("has an empty word"));
    }
    Ok(())
}

/// Which of a consumer's two queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRole {
    /// `<ns>.<consumer>`.
    Main,
    /// `<ns>.<consumer>.dlq`.
    DeadLetter,
}

/// A message broker, real or in-process.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// `amqp` or `memory`, for logs.
    fn kind(&self) -> &'static str;

    /// The prefix of every name this transport declares.
    fn namespace(&self) -> &Namespace;

    /// Whether the broker is reachable now, for `/ready`; never waits for a
    /// reconnection.
    async fn ready(&self) -> Result<(), TransportError>;

    /// Declares the events exchange and the dead-letter exchange (idempotent).
    async fn declare_exchanges(&self) -> Result<(), TransportError>;

    /// Declares a consumer's queue, its dead-letter queue and its bindings
    /// (idempotent; also declares the exchanges).
    async fn declare_consumer(&self, spec: &ConsumerSpec) -> Result<(), TransportError>;

    /// A publisher to the events exchange (declares the exchanges).
    async fn publisher(&self) -> Result<Box<dyn Publisher>, TransportError>;

    /// Declares the consumer's topology and starts consuming its queue.
    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, TransportError>;

    /// Consumes the consumer's dead-letter queue (to inspect or replay it).
    async fn dead_letter_consumer(
        &self,
        spec: &ConsumerSpec,
    ) -> Result<Box<dyn Consumer>, TransportError>;

    /// How many messages are ready (not handed out) in one of a consumer's queues.
    async fn ready_messages(
        &self,
        consumer: &ConsumerName,
        role: QueueRole,
    ) -> Result<u64, TransportError>;

    /// Deletes a consumer's queue and dead-letter queue, messages included.
    async fn delete_consumer_topology(&self, consumer: &ConsumerName)
        -> Result<(), TransportError>;

    /// Deletes every queue declared through this transport and both
    /// exchanges: cleanup for tests.
    async fn delete_namespace(&self) -> Result<(), TransportError>;

    /// Closes connections; later operations fail with [`TransportError::Closed`].
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_patterns_with_empty_words_are_refused() {
        let name = ConsumerName::parse("c").unwrap();
        assert!(ConsumerSpec::new(name.clone(), ["order.*", "#"]).is_ok());
        assert!(matches!(
            ConsumerSpec::new(name.clone(), ["order..x"]),
            Err(TransportError::InvalidBinding { .. })
        ));
        assert!(ConsumerSpec::new(name, [""]).is_err());
    }
}
