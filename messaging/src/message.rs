//! What is published and what is delivered.

use domain::envelope::RecordedEvent;
use uuid::Uuid;

use crate::headers::MessageHeaders;

/// A message to publish to the events exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Routing key, `<category>.<EventType>` for events.
    pub routing_key: String,
    /// The body; for events, `domain::codec::encode(&RecordedEvent)`.
    pub body: Vec<u8>,
    /// The headers.
    pub headers: MessageHeaders,
}

impl OutgoingMessage {
    /// The message the relay publishes for a recorded event.
    pub fn for_event(
        event: &RecordedEvent,
        store_id: Uuid,
    ) -> Result<Self, domain::codec::CodecError> {
        Ok(Self {
            routing_key: event.routing_key(),
            body: domain::codec::encode(event)?,
            headers: MessageHeaders::for_event(event, store_id),
        })
    }
}

/// Identifies a delivery for acknowledgement.
///
/// A tag belongs to one channel (AMQP) or one consumer (memory): after a
/// reconnect, tags handed out before it are stale, and acknowledging them is
/// a no-op (the broker redelivers those messages anyway).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeliveryTag {
    pub(crate) epoch: u64,
    pub(crate) tag: u64,
}

/// A message handed to a consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The routing key it was published with.
    pub routing_key: String,
    /// The body.
    pub body: Vec<u8>,
    /// The headers.
    pub headers: MessageHeaders,
    /// Whether the broker delivered it before (to this or another consumer).
    pub redelivered: bool,
    /// How many times it was handed out before and not acknowledged
    /// (`x-delivery-count`); 0 on the first delivery.
    pub delivery_count: u32,
    /// The tag to acknowledge it with.
    pub tag: DeliveryTag,
}

impl Delivery {
    /// The recorded event in the body.
    pub fn decode_event(&self) -> Result<RecordedEvent, domain::codec::CodecError> {
        domain::codec::decode(&self.body)
    }
}
