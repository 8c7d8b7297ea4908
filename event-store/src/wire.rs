//! The bodies of the HTTP API, shared by [`crate::server`] and [`crate::client`].
//!
//! Two forms: JSON, as fixed in CONTRACT.md, for people and scripts; and a
//! compact binary form (`Content-Type` / `Accept: application/x-shop-bincode`)
//! for the services, whose bodies are encoded by `domain::codec`:
//! an append sends an [`AppendRequest`] and gets an
//! [`AppendResult`](crate::store::AppendResult); reads get a `Vec<RecordedEvent>`;
//! a multi-stream append (`POST /appends`) sends a [`MultiAppendRequest`] and
//! gets a [`MultiAppendResponse`], one [`AppendOutcome`] per stream.
//! Errors of a whole request are JSON in both forms.

use chrono::{DateTime, Utc};
use domain::envelope::{NewEvent, RecordedEvent};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::store::{AppendResult, ExpectedVersion};

/// The media type of the binary form.
pub const BINARY_CONTENT_TYPE: &str = "application/x-shop-bincode";

/// The body of a binary append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// What the stream's version must be.
    pub expected_version: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

/// One stream's part of a multi-stream append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAppend {
    /// The stream.
    pub stream: String,
    /// What the stream's version must be.
    pub expected_version: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

/// The body of a binary multi-stream append (`POST /appends`): appends to
/// several streams, each checked against its own expected version and
/// applied atomically on its own; appends to the same stream are applied in
/// the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiAppendRequest {
    /// The appends, answered in this order.
    pub appends: Vec<StreamAppend>,
}

/// Why one append of a multi-stream append was not done (nothing of it was
/// written): what `POST /streams/{stream}` would have answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendFailure {
    /// The HTTP status a single append would have had.
    pub status: u16,
    /// The error code, e.g. `wrong_expected_version`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
    /// For `wrong_expected_version`: the stream's version (`None`: no stream).
    pub current_version: Option<u64>,
}

/// The answer for one append of a multi-stream append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// Written (or a repeat of ids already written: the first answer).
    Appended(AppendResult),
    /// Refused or failed; nothing of this append was written.
    Failed(AppendFailure),
}

/// The binary answer of `POST /appends`: one outcome per append, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiAppendResponse {
    /// The outcomes, in the order of the request's appends.
    pub results: Vec<AppendOutcome>,
}

/// `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// The store's random id, fixed at creation.
    pub store_id: Uuid,
    /// The next global position (the number of events).
    pub head: u64,
}

/// The JSON append body, typed loosely so that each bad field gets its own error code.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonAppendRequest {
    #[serde(default)]
    pub(crate) expected_version: Option<serde_json::Value>,
    pub(crate) events: Vec<JsonNewEvent>,
}

/// The JSON multi-stream append body: each entry is a JSON append body with
/// its `stream`, parsed one by one so that an error names the entry.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonMultiAppendRequest {
    pub(crate) appends: Vec<Box<RawValue>>,
}

/// One entry of a JSON multi-stream append: a JSON append body with its `stream`.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonStreamAppendRequest {
    pub(crate) stream: String,
    #[serde(default)]
    pub(crate) expected_version: Option<serde_json::Value>,
    pub(crate) events: Vec<JsonNewEvent>,
}

/// One event of a JSON append.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonNewEvent {
    pub(crate) event_id: serde_json::Value,
    pub(crate) event_type: String,
    pub(crate) data: Box<RawValue>,
    #[serde(default)]
    pub(crate) metadata: Option<Box<RawValue>>,
    #[serde(default)]
    pub(crate) schema_version: Option<u32>,
}

/// Parses the JSON form of an expected version: `"any"`, `"no_stream"`,
/// `"stream_exists"` or a non-negative integer.
pub fn parse_expected_version(value: &serde_json::Value) -> Option<ExpectedVersion> {
    match value {
        serde_json::Value::String(text) => match text.as_str() {
            "any" => Some(ExpectedVersion::Any),
            "no_stream" => Some(ExpectedVersion::NoStream),
            "stream_exists" => Some(ExpectedVersion::StreamExists),
            _ => None,
        },
        serde_json::Value::Number(number) => number.as_u64().map(ExpectedVersion::Exact),
        _ => None,
    }
}

/// The JSON form of an expected version (see [`parse_expected_version`]).
pub fn expected_version_json(expected: ExpectedVersion) -> serde_json::Value {
    match expected {
        ExpectedVersion::Any => "any".into(),
        ExpectedVersion::NoStream => "no_stream".into(),
        ExpectedVersion::StreamExists => "stream_exists".into(),
        ExpectedVersion::Exact(version) => version.into(),
    }
}

/// A recorded event in the JSON form: `data` and `metadata` inline as JSON.
#[derive(Debug, Serialize)]
pub(crate) struct JsonEvent<'a> {
    stream: &'a str,
    version: u64,
    position: u64,
    event_id: Uuid,
    event_type: &'a str,
    schema_version: u32,
    recorded_at: DateTime<Utc>,
    data: Box<RawValue>,
    metadata: Box<RawValue>,
}

fn raw_json(text: &str) -> Box<RawValue> {
    // The store only accepts JSON text, so the fallback (a JSON string) is for
    // records written by hand or by an older version.
    RawValue::from_string(text.to_owned())
        .or_else(|_| serde_json::value::to_raw_value(text))
        .unwrap_or_default()
}

impl<'a> From<&'a RecordedEvent> for JsonEvent<'a> {
    fn from(event: &'a RecordedEvent) -> Self {
        Self {
            stream: &event.stream,
            version: event.version,
            position: event.position,
            event_id: event.event_id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            data: raw_json(&event.data),
            metadata: raw_json(&event.metadata),
        }
    }
}

/// `{"events": [...]}`.
#[derive(Debug, Serialize)]
pub(crate) struct JsonEvents<'a> {
    pub(crate) events: Vec<JsonEvent<'a>>,
}

/// The JSON form of an event as a client reads it back.
#[derive(Debug, Deserialize)]
pub(crate) struct JsonEventIn {
    pub(crate) stream: String,
    pub(crate) version: u64,
    pub(crate) position: u64,
    pub(crate) event_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) schema_version: u32,
    pub(crate) recorded_at: DateTime<Utc>,
    pub(crate) data: Box<RawValue>,
    pub(crate) metadata: Box<RawValue>,
}

impl From<JsonEventIn> for RecordedEvent {
    fn from(event: JsonEventIn) -> Self {
        Self {
            stream: event.stream,
            version: event.version,
            position: event.position,
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            data: event.data.get().to_owned(),
            metadata: event.metadata.get().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_versions_round_trip_through_their_json_form() {
        for expected in [
            ExpectedVersion::Any,
            ExpectedVersion::NoStream,
            ExpectedVersion::StreamExists,
            ExpectedVersion::Exact(0),
            ExpectedVersion::Exact(41),
        ] {
            assert_eq!(
                parse_expected_version(&expected_version_json(expected)),
                Some(expected)
            );
        }
        for bad in [
            serde_json::json!("sometimes"),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(null),
            serde_json::json!([1]),
        ] {
            assert_eq!(parse_expected_version(&bad), None, "{bad}");
        }
    }

    #[test]
    fn events_render_data_and_metadata_inline() {
        let event = RecordedEvent {
            stream: "order-1".into(),
            version: 2,
            position: 7,
            event_id: Uuid::from_u128(1),
            event_type: "OrderPlaced".into(),
            schema_version: 1,
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            data: r#"{"total":3}"#.into(),
            metadata: "{}".into(),
        };
        let json = serde_json::to_value(JsonEvent::from(&event)).unwrap();
        assert_eq!(json["data"]["total"], 3);
        assert_eq!(json["metadata"], serde_json::json!({}));
        assert_eq!(json["position"], 7);
        let back: JsonEventIn = serde_json::from_str(&json.to_string()).unwrap();
        assert_eq!(RecordedEvent::from(back), event);
    }
}
