//! The envelope every stored event travels in.
//!
//! The store is generic: it knows streams, versions, positions and opaque JSON
//! payloads. `data` and `metadata` are JSON text so that the HTTP API can hand
//! them out verbatim and the binary form (see [`crate::codec`]) can carry them
//! without knowing their shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event as the caller hands it to the store, before it has a place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Unique id of the event; re-appending the same id is a no-op.
    pub event_id: Uuid,
    /// Stable type name from the catalogue, e.g. `OrderPlaced`.
    pub event_type: String,
    /// Schema version of `data`.
    pub schema_version: u32,
    /// The payload, as JSON text.
    pub data: String,
    /// Metadata (correlation and causation ids, …), as JSON text.
    pub metadata: String,
}

impl NewEvent {
    /// The event as the store records it: at `version` of `stream`, at
    /// global `position`, at `recorded_at`.
    pub fn into_recorded(
        self,
        stream: String,
        version: u64,
        position: u64,
        recorded_at: DateTime<Utc>,
    ) -> RecordedEvent {
        RecordedEvent {
            stream,
            version,
            position,
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            recorded_at,
            data: self.data,
            metadata: self.metadata,
        }
    }
}

/// An event as the store recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The stream it belongs to, `<category>-<id>`.
    pub stream: String,
    /// Its version within the stream, from 0.
    pub version: u64,
    /// Its position in the global log, dense and from 0.
    pub position: u64,
    /// Unique id of the event.
    pub event_id: Uuid,
    /// Stable type name from the catalogue.
    pub event_type: String,
    /// Schema version of `data`.
    pub schema_version: u32,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The payload, as JSON text.
    pub data: String,
    /// Metadata, as JSON text.
    pub metadata: String,
}

impl RecordedEvent {
    /// The stream's category: what comes before the first `-` (`order-42` → `order`).
    pub fn category(&self) -> &str {
        stream_category(&self.stream)
    }

    /// The metadata parsed; unknown or malformed metadata gives the default.
    pub fn parsed_metadata(&self) -> EventMetadata {
        serde_json::from_str(&self.metadata).unwrap_or_default()
    }

    /// The routing key the relay publishes it under: `<category>.<EventType>`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.category(), self.event_type)
    }
}

/// The category of a stream name: what comes before the first `-`.
pub fn stream_category(stream: &str) -> &str {
    stream
        .split_once('-')
        .map_or(stream, |(category, _)| category)
}

/// The metadata every event written by our services carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Id of the request or process this event is part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// Id of the command or event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// W3C trace context of the request that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Who issued the command (a customer id, or `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl EventMetadata {
    /// The metadata as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_is_the_part_before_the_first_dash() {
        assert_eq!(stream_category("order-1b2c-33"), "order");
        assert_eq!(stream_category("plain"), "plain");
    }

    #[test]
    fn metadata_round_trips_through_json_and_tolerates_garbage() {
        let meta = EventMetadata {
            correlation_id: Some(Uuid::nil()),
            ..EventMetadata::default()
        };
        let event = RecordedEvent {
            stream: "order-1".into(),
            version: 0,
            position: 0,
            event_id: Uuid::nil(),
            event_type: "OrderPlaced".into(),
            schema_version: 1,
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            data: "{}".into(),
            metadata: meta.to_json(),
        };
        assert_eq!(event.parsed_metadata(), meta);
        assert_eq!(event.routing_key(), "order.OrderPlaced");
        let garbage = RecordedEvent {
            metadata: "not json".into(),
            ..event
        };
        assert_eq!(garbage.parsed_metadata(), EventMetadata::default());
    }
}
