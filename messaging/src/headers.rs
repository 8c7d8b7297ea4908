//! Typed message headers, the ones DESIGN.md lists, plus free-form extras.
//!
//! The AMQP transport maps these to and from an AMQP header table under the
//! names in [`names`]; the memory transport carries them as they are.

use std::collections::BTreeMap;

use domain::envelope::RecordedEvent;
use uuid::Uuid;

/// The header names used on the wire.
pub mod names {
    /// The event's unique id.
    pub const EVENT_ID: &str = "event-id";
    /// The stream the event belongs to.
    pub const STREAM: &str = "stream";
    /// The event's version within its stream.
    pub const VERSION: &str = "version";
    /// The event's global position in the store's log.
    pub const POSITION: &str = "position";
    /// The event's stable type name.
    pub const EVENT_TYPE: &str = "event-type";
    /// The schema version of the event's payload.
    pub const SCHEMA_VERSION: &str = "schema-version";
    /// Id of the request or process the event is part of.
    pub const CORRELATION_ID: &str = "correlation-id";
    /// Id of what caused the event.
    pub const CAUSATION_ID: &str = "causation-id";
    /// Id of the event store that recorded the event.
    pub const STORE_ID: &str = "store-id";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// Why a consumer dead-lettered a message (set by `Consumer::dead_letter`).
    pub const ERROR: &str = "x-shop-error";
    /// The routing key a dead-lettered message had before it was dead-lettered.
    pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
    /// Why the broker dead-lettered a message (from its `x-death` header:
    /// `rejected`, `delivery_limit`, `expired`, `maxlen`).
    pub const DEATH_REASON: &str = "x-death-reason";
    /// How many times the broker has handed the message out before (quorum queues).
    pub const DELIVERY_COUNT: &str = "x-delivery-count";
}

/// The headers a message carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageHeaders {
    /// The event's unique id.
    pub event_id: Option<Uuid>,
    /// The stream the event belongs to.
    pub stream: Option<String>,
    /// The event's version within its stream.
    pub version: Option<u64>,
    /// The event's global position in the store's log.
    pub position: Option<u64>,
    /// The event's stable type name.
    pub event_type: Option<String>,
    /// The schema version of the payload.
    pub schema_version: Option<u32>,
    /// Id of the request or process the event is part of.
    pub correlation_id: Option<Uuid>,
    /// Id of what caused the event.
    pub causation_id: Option<Uuid>,
    /// Id of the event store that recorded the event.
    pub store_id: Option<Uuid>,
    /// W3C trace context.
    pub traceparent: Option<String>,
    /// Any other header, as text.
    pub extra: BTreeMap<String, String>,
}

impl MessageHeaders {
    /// The headers of a recorded event as the relay publishes it.
    pub fn for_event(event: &RecordedEvent, store_id: Uuid) -> Self {
        let metadata = event.parsed_metadata();
        Self {
            event_id: Some(event.event_id),
            stream: Some(event.stream.clone()),
            version: Some(event.version),
            position: Some(event.position),
            event_type: Some(event.event_type.clone()),
            schema_version: Some(event.schema_version),
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            store_id: Some(store_id),
            traceparent: metadata.traceparent,
            extra: BTreeMap::new(),
        }
    }

    /// Adds a free-form header.
    pub fn with_extra(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    /// Why the message was dead-lettered: the consumer's reason if it gave
    /// one, else the broker's (`delivery_limit`, `rejected`, …).
    pub fn dead_letter_reason(&self) -> Option<&str> {
        self.extra
            .get(names::ERROR)
            .or_else(|| self.extra.get(names::DEATH_REASON))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use domain::envelope::EventMetadata;

    #[test]
    fn headers_for_an_event_carry_its_identity_and_metadata() {
        let correlation = Uuid::from_u128(1);
        let store = Uuid::from_u128(9);
        let event = RecordedEvent {
            stream: "order-7".into(),
            version: 2,
            position: 41,
            event_id: Uuid::from_u128(3),
            event_type: "OrderPlaced".into(),
            schema_version: 1,
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            data: "{}".into(),
            metadata: EventMetadata {
                correlation_id: Some(correlation),
                traceparent: Some("00-abc-def-01".into()),
                ..EventMetadata::default()
            }
            .to_json(),
        };
        let headers = MessageHeaders::for_event(&event, store);
        assert_eq!(headers.stream.as_deref(), Some("order-7"));
        assert_eq!(headers.version, Some(2));
        assert_eq!(headers.position, Some(41));
        assert_eq!(headers.event_type.as_deref(), Some("OrderPlaced"));
        assert_eq!(headers.correlation_id, Some(correlation));
        assert_eq!(headers.causation_id, None);
        assert_eq!(headers.store_id, Some(store));
        assert_eq!(headers.traceparent.as_deref(), Some("00-abc-def-01"));
    }

    #[test]
    fn the_consumers_reason_wins_over_the_brokers() {
        let headers = MessageHeaders::default().with_extra(names::DEATH_REASON, "rejected");
        assert_eq!(headers.dead_letter_reason(), Some("rejected"));
        let headers = headers.with_extra(names::ERROR, "cannot decode");
        assert_eq!(headers.dead_letter_reason(), Some("cannot decode"));
    }
}
