//! The HTTP edge shared by every command service: request headers, body
//! fields parsed into domain values (400 with `field`), the answer, and the
//! mapping of errors to statuses.

use axum::extract::{rejection::JsonRejection, FromRequestParts};
use axum::http::{request::Parts, HeaderMap, StatusCode};
use axum::Json;
use domain::envelope::{EventMetadata, RecordedEvent};
use domain::values::{CustomerId, OrderId, ValueError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use service_runtime::api_error::ApiError;
use uuid::Uuid;

use crate::idempotency::IdempotencyKey;
use crate::repository::{CommandError, Outcome, RefusalKind};

/// Header names of internal calls (see `docs/internal-apis.md`).
pub mod headers {
    /// Same key ⇒ same result, one effect.
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
    /// Who asks: a customer id or `admin`.
    pub const ACTOR: &str = "x-actor";
    /// Carried into event metadata.
    pub const CORRELATION_ID: &str = "x-correlation-id";
    /// Carried into event metadata.
    pub const CAUSATION_ID: &str = "x-causation-id";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// RFC 7240; `return=representation` asks for the events in the answer.
    pub const PREFER: &str = "prefer";
    /// RFC 7240's answer to `Prefer`.
    pub const PREFERENCE_APPLIED: &str = "preference-applied";
}

/// The `Prefer` preference that asks for a command's events in its answer.
pub const RETURN_REPRESENTATION: &str = "return=representation";

/// Whether the request asks for the command's events in the answer
/// (`Prefer: return=representation`, RFC 7240).
pub fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(headers::PREFER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| {
            // A preference may carry parameters after `;` (RFC 7240).
            let name = preference.split(';').next().unwrap_or_default();
            name.split('=')
                .map(str::trim)
                .eq(RETURN_REPRESENTATION.split('='))
        })
}

/// Who issues a command, as the gateway (or the saga) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// No `X-Actor`: a trusted internal caller (the saga, operators' tools).
    System,
    /// `X-Actor: admin`.
    Admin,
    /// `X-Actor: <customer uuid>`.
    Customer(CustomerId),
}

impl Actor {
    /// The form stored in event metadata.
    pub fn label(&self) -> Option<String> {
        match self {
            Self::System => None,
            Self::Admin => Some("admin".to_owned()),
            Self::Customer(id) => Some(id.to_string()),
        }
    }

    /// Refuses customers: for catalog, stock and shipping commands.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Self::Customer(_) => Err(forbidden("this command needs the admin account")),
            Self::System | Self::Admin => Ok(()),
        }
    }

    /// Refuses customers and admins: for commands only the saga sends.
    pub fn require_system(&self) -> Result<(), ApiError> {
        match self {
            Self::System => Ok(()),
            Self::Customer(_) | Self::Admin => Err(forbidden(
                "this command is sent by the fulfillment saga only",
            )),
        }
    }

    /// Whether a customer acting on `customer`'s data is someone else.
    pub fn is_other_customer(&self, customer: CustomerId) -> bool {
        matches!(self, Self::Customer(me) if *me != customer)
    }
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The headers of a command request.
#[derive(Clone, Debug)]
pub struct CommandContext {
    /// `Idempotency-Key`.
    pub key: Option<IdempotencyKey>,
    /// `X-Actor`.
    pub actor: Actor,
    /// Correlation, causation and trace ids for the events.
    pub metadata: EventMetadata,
}

impl CommandContext {
    /// Reads and checks the headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let text = |name: &'static str| -> Result<Option<&str>, ApiError> {
            headers
                .get(name)
                .map(|value| {
                    value.to_str().map_err(|_| {
                        ApiError::bad_request("invalid_header", format!("{name} must be ASCII"))
                            .with("field", name)
                    })
                })
                .transpose()
        };
        let uuid = |name: &'static str| -> Result<Option<Uuid>, ApiError> {
            text(name)?
                .map(|raw| {
                    Uuid::parse_str(raw.trim()).map_err(|_| {
                        ApiError::bad_request("invalid_header", format!("{name} must be a UUID"))
                            .with("field", name)
                    })
                })
                .transpose()
        };
        let key = text(headers::IDEMPOTENCY_KEY)?
            .map(|raw| {
                IdempotencyKey::parse(raw).map_err(|e| {
                    ApiError::bad_request("invalid_header", e.to_string())
                        .with("field", headers::IDEMPOTENCY_KEY)
                })
            })
            .transpose()?;
        let actor = match text(headers::ACTOR)?.map(str::trim) {
            None | Some("") => Actor::System,
            Some("admin") => Actor::Admin,
            Some(raw) => Actor::Customer(CustomerId::parse(raw).map_err(|_| {
                ApiError::bad_request(
                    "invalid_header",
                    "X-Actor must be `admin` or a customer id (UUID)",
                )
                .with("field", headers::ACTOR)
            })?),
        };
        let metadata = EventMetadata {
            correlation_id: uuid(headers::CORRELATION_ID)?,
            causation_id: uuid(headers::CAUSATION_ID)?,
            traceparent: text(headers::TRACEPARENT)?
                .filter(|raw| raw.len() <= 128)
                .map(str::to_owned),
            actor: actor.label(),
        };
        Ok(Self {
            key,
            actor,
            metadata,
        })
    }

    /// The key for a command this one causes (`purpose` names it), if keyed.
    pub fn derived_key(&self, purpose: &str) -> Option<IdempotencyKey> {
        self.key.as_ref().map(|key| key.derived(purpose))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CommandContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Self::from_headers(&parts.headers)
    }
}

/// The answer to an accepted command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandReply {
    /// The aggregate's id (the order id for orders, the SKU for products, …).
    pub id: String,
    /// The stream written.
    pub stream: String,
    /// The stream's version after the command; `null` if it has no events.
    pub version: Option<u64>,
    /// The global position of the command's last event (or the stream's last).
    pub position: Option<u64>,
    /// The consistency token `"<stream>@<version>"` (`@-1`: no events).
    pub token: String,
    /// The events the command appended, as stored; only when asked for with
    /// `Prefer: return=representation` (empty for a no-op or a retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<RecordedEvent>>,
}

impl CommandReply {
    /// The answer for an outcome.
    pub fn new(id: impl Into<String>, outcome: Outcome) -> Self {
        let token = match outcome.version {
            Some(version) => format!("{}@{version}", outcome.stream),
            None => format!("{}@-1", outcome.stream),
        };
        Self {
            id: id.into(),
            stream: outcome.stream,
            version: outcome.version,
            position: outcome.position,
            token,
            events: Some(outcome.events),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Refused(refusal) => {
                let status = match refusal.kind {
                    RefusalKind::NotFound => StatusCode::NOT_FOUND,
                    RefusalKind::Rule => StatusCode::CONFLICT,
                    RefusalKind::Forbidden => StatusCode::FORBIDDEN,
                };
                ApiError::new(status, refusal.code, refusal.message)
            }
            CommandError::Unavailable(reason) => {
                tracing::warn!(%reason, "event store unavailable");
                ApiError::unavailable(
                    "the event store is unavailable; retry with the same Idempotency-Key",
                )
            }
            CommandError::Contention { attempts } => ApiError::conflict(
                "concurrency_conflict",
                format!("the aggregate kept changing; gave up after {attempts} attempts"),
            ),
            CommandError::Internal(reason) => ApiError::internal(reason),
        }
    }
}

/// A command's JSON body, read field by field into domain values so that a
/// refusal names the field.
#[derive(Clone, Debug)]
pub struct Input {
    fields: Map<String, Value>,
}

/// A 400 naming `field`.
pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message).with("field", field)
}

/// A 400 for a value the domain refused.
pub fn invalid_value(error: ValueError) -> ApiError {
    invalid(error.field(), error.code(), error.to_string())
}

impl Input {
    /// The body, which must be a JSON object.
    pub fn from_json(body: Result<Json<Value>, JsonRejection>) -> Result<Self, ApiError> {
        match body? {
            Json(Value::Object(fields)) => Ok(Self { fields }),
            Json(_) => Err(ApiError::bad_request(
                "invalid_body",
                "the body must be a JSON object",
            )),
        }
    }

    /// An input from fields (for commands built in code).
    pub fn from_map(fields: Map<String, Value>) -> Self {
        Self { fields }
    }

    fn value(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).filter(|value| !value.is_null())
    }

    /// A required string.
    pub fn text(&self, field: &str) -> Result<&str, ApiError> {
        match self.value(field) {
            None => Err(invalid(
                field,
                "missing_field",
                format!("{field} is required"),
            )),
            Some(Value::String(text)) => Ok(text),
            Some(_) => Err(invalid(
                field,
                "invalid_type",
                format!("{field} must be a string"),
            )),
        }
    }

    /// An optional string.
    pub fn opt_text(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(_) => self.text(field).map(Some),
        }
    }

    /// A required integer.
    pub fn integer(&self, field: &str) -> Result<i64, ApiError> {
        match self.value(field) {
            None => Err(invalid(
                field,
                "missing_field",
                format!("{field} is required"),
            )),
            Some(value) => value.as_i64().ok_or_else(|| {
                invalid(field, "invalid_type", format!("{field} must be an integer"))
            }),
        }
    }

    /// A required value parsed by `parse`; a refusal names the body's field.
    pub fn parse<T>(
        &self,
        field: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<T, ApiError> {
        parse(self.text(field)?).map_err(|error| invalid(field, error.code(), error.to_string()))
    }

    /// A required order id.
    pub fn order_id(&self) -> Result<OrderId, ApiError> {
        self.parse("order_id", OrderId::parse)
    }

    /// A required customer id.
    pub fn customer_id(&self) -> Result<CustomerId, ApiError> {
        self.parse("customer_id", CustomerId::parse)
    }

    /// A required array of objects.
    pub fn objects(&self, field: &str) -> Result<Vec<Input>, ApiError> {
        match self.value(field) {
            None => Err(invalid(
                field,
                "missing_field",
                format!("{field} is required"),
            )),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::Object(fields) => Ok(Input {
                        fields: fields.clone(),
                    }),
                    _ => Err(invalid(
                        &format!("{field}[{index}]"),
                        "invalid_type",
                        format!("{field}[{index}] must be an object"),
                    )),
                })
                .collect(),
            Some(_) => Err(invalid(
                field,
                "invalid_type",
                format!("{field} must be an array"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_events_are_asked_for_with_prefer_return_representation_among_other_preferences() {
        let asks = |values: &[&str]| {
            let mut headers = axum::http::HeaderMap::new();
            for value in values {
                headers.append("prefer", value.parse().unwrap());
            }
            super::wants_events(&headers)
        };
        assert!(asks(&["return=representation"]));
        assert!(asks(&["respond-async, return = representation; x=1"]));
        assert!(asks(&["wait=5", "return=representation"]));
        assert!(!asks(&[]));
        assert!(!asks(&["return=minimal"]));
        assert!(!asks(&["return=representation-ish"]));
    }

    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn headers_give_actor_key_and_metadata() {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", HeaderValue::from_static("k-1"));
        headers.insert("x-actor", HeaderValue::from_static("admin"));
        let correlation = Uuid::from_u128(9);
        headers.insert(
            "x-correlation-id",
            HeaderValue::from_str(&correlation.to_string()).unwrap(),
        );
        let context = CommandContext::from_headers(&headers).unwrap();
        assert_eq!(context.actor, Actor::Admin);
        assert_eq!(context.key.unwrap().as_str(), "k-1");
        assert_eq!(context.metadata.correlation_id, Some(correlation));
        assert_eq!(context.metadata.actor.as_deref(), Some("admin"));
    }

    #[test]
    fn a_bad_actor_or_correlation_id_is_a_400_naming_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert("x-actor", HeaderValue::from_static("mallory"));
        let error = CommandContext::from_headers(&headers).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.extra["field"], "x-actor");
        let mut headers = HeaderMap::new();
        headers.insert("x-correlation-id", HeaderValue::from_static("nope"));
        assert!(CommandContext::from_headers(&headers).is_err());
    }

    #[test]
    fn input_fields_are_required_typed_and_named_in_errors() {
        let input = Input::from_map(
            serde_json::json!({"sku": "ab", "quantity": "3", "n": null})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(input.text("sku").unwrap(), "ab");
        let missing = input.text("name").unwrap_err();
        assert_eq!(
            (missing.code.as_str(), &missing.extra["field"]),
            ("missing_field", &Value::from("name"))
        );
        let wrong = input.integer("quantity").unwrap_err();
        assert_eq!(wrong.code, "invalid_type");
        assert!(input.opt_text("n").unwrap().is_none());
        let bad_sku = input
            .parse("sku", |_| domain::values::Sku::parse("a b"))
            .unwrap_err();
        assert_eq!(bad_sku.extra["field"], "sku");
    }
}
