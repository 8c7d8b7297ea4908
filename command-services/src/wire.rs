//! Turning an aggregate's events into store records and back, through the
//! domain's catalogue (which owns type names, schema versions and upcasters).

use domain::decider::Decider;
use domain::envelope::{NewEvent, RecordedEvent};
use uuid::Uuid;

/// Why an event could not be turned into a record or back.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The event could not be encoded.
    #[error("cannot encode a {event_type} event: {reason}")]
    Encode {
        /// Its type.
        event_type: String,
        /// Why.
        reason: String,
    },
    /// A stored event could not be decoded.
    #[error("cannot decode event {stream}@{version} ({event_type}): {reason}")]
    Decode {
        /// Its stream.
        stream: String,
        /// Its version.
        version: u64,
        /// Its type.
        event_type: String,
        /// Why.
        reason: String,
    },
    /// A stored event belongs to another aggregate than its stream says.
    #[error("event {stream}@{version} ({event_type}) does not belong to this aggregate")]
    Foreign {
        /// Its stream.
        stream: String,
        /// Its version.
        version: u64,
        /// Its type.
        event_type: String,
    },
}

/// A new record for one of `A`'s events.
pub fn encode<A: Decider>(
    event: A::Event,
    event_id: Uuid,
    metadata: &str,
) -> Result<NewEvent, WireError> {
    let domain_event = A::wrap(event);
    let (event_type, schema_version, data) =
        domain::catalogue::encode(&domain_event).map_err(|e| WireError::Encode {
            event_type: domain_event.event_type().to_owned(),
            reason: e.to_string(),
        })?;
    Ok(NewEvent {
        event_id,
        event_type: event_type.to_owned(),
        schema_version,
        data,
        metadata: metadata.to_owned(),
    })
}

/// One of `A`'s events from a record of its stream.
pub fn decode<A: Decider>(record: &RecordedEvent) -> Result<A::Event, WireError> {
    let domain_event = domain::catalogue::decode(record).map_err(|e| WireError::Decode {
        stream: record.stream.clone(),
        version: record.version,
        event_type: record.event_type.clone(),
        reason: e.to_string(),
    })?;
    A::unwrap(domain_event).ok_or_else(|| WireError::Foreign {
        stream: record.stream.clone(),
        version: record.version,
        event_type: record.event_type.clone(),
    })
}
