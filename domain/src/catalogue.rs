//! The event catalogue: every event's stable type name, its current schema
//! version, the mapping to and from the store's envelope, and the upcasters
//! that read older schema versions.
//!
//! An event's `data` is the JSON of its variant's fields only; its
//! `event_type` is the variant's name. Decoding dispatches on the stream
//! category and the type name, upcasts older versions step by step, and then
//! deserializes (which validates every value type).
//!
//! Versions: every type is at version 1 except `ProductAdded`, at version 2
//! since it gained `category`; a v1 `ProductAdded` is read with the category
//! `uncategorized`.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::envelope::{EventMetadata, NewEvent, RecordedEvent};
use crate::values::Category;
use crate::{cart, customer, order, payment, product, saga, shipment, stock, wishlist};

mod direct;

/// Any event of the shop, by aggregate (or process).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainEvent {
    /// A product event (`product-<SKU>`).
    Product(product::Event),
    /// A customer event (`customer-<uuid>`).
    Customer(customer::Event),
    /// A cart event (`cart-<customer uuid>`).
    Cart(cart::Event),
    /// A wishlist event (`wishlist-<customer uuid>`).
    Wishlist(wishlist::Event),
    /// An order event (`order-<uuid>`).
    Order(order::Event),
    /// A stock event (`stock-<SKU>`).
    Stock(stock::Event),
    /// A payment event (`payment-<order uuid>`).
    Payment(payment::Event),
    /// A shipment event (`shipment-<order uuid>`).
    Shipment(shipment::Event),
    /// A fulfillment saga event (`fulfillment-<order uuid>`).
    Fulfillment(saga::Event),
}

/// One entry of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventTypeInfo {
    /// The stream category, e.g. `order`.
    pub category: &'static str,
    /// The stable type name, e.g. `OrderPlaced`.
    pub event_type: &'static str,
    /// The schema version written today.
    pub schema_version: u32,
}

impl EventTypeInfo {
    /// The routing key its events are published under: `<category>.<EventType>`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.category, self.event_type)
    }
}

/// Every stream category, in catalogue order.
pub const CATEGORIES: &[&str] = &[
    product::STREAM_CATEGORY,
    customer::STREAM_CATEGORY,
    cart::STREAM_CATEGORY,
    wishlist::STREAM_CATEGORY,
    order::STREAM_CATEGORY,
    stock::STREAM_CATEGORY,
    payment::STREAM_CATEGORY,
    shipment::STREAM_CATEGORY,
    saga::STREAM_CATEGORY,
];

/// Categories whose events no consumer takes from the bus, kept in the store
/// and not published (docs/adr/0012): the fulfillment saga's decisions, and
/// payments, which only the saga reacts to, from its commands' answers
/// (docs/adr/0014). A reader that wants them reads the store
/// (`GET /streams/payment-<order>`, `GET /all`).
pub const UNPUBLISHED_CATEGORIES: &[&str] = &[saga::STREAM_CATEGORY, payment::STREAM_CATEGORY];

/// The event types of a category, if it is one of ours.
pub fn types_of(category: &str) -> Option<&'static [&'static str]> {
    Some(match category {
        product::STREAM_CATEGORY => product::Event::TYPES,
        customer::STREAM_CATEGORY => customer::Event::TYPES,
        cart::STREAM_CATEGORY => cart::Event::TYPES,
        wishlist::STREAM_CATEGORY => wishlist::Event::TYPES,
        order::STREAM_CATEGORY => order::Event::TYPES,
        stock::STREAM_CATEGORY => stock::Event::TYPES,
        payment::STREAM_CATEGORY => payment::Event::TYPES,
        shipment::STREAM_CATEGORY => shipment::Event::TYPES,
        saga::STREAM_CATEGORY => saga::Event::TYPES,
        _ => return None,
    })
}

/// The schema version written today for an event type (1 unless it evolved).
fn current_version(event_type: &str) -> u32 {
    match event_type {
        "ProductAdded" => 2,
        _ => 1,
    }
}

/// The schema version written today for a category's event type, if known.
pub fn schema_version(category: &str, event_type: &str) -> Option<u32> {
    types_of(category)?
        .contains(&event_type)
        .then(|| current_version(event_type))
}

/// Every (category, event type, schema version), for routing-key bindings and docs.
pub fn event_types() -> Vec<EventTypeInfo> {
    CATEGORIES
        .iter()
        .flat_map(|category| {
            types_of(category)
                .unwrap_or_default()
                .iter()
                .map(|event_type| EventTypeInfo {
                    category,
                    event_type,
                    schema_version: current_version(event_type),
                })
        })
        .collect()
}

/// Why a recorded event could not be read as a domain event.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The stream's category is not one of ours.
    #[error("unknown stream category {category:?}")]
    UnknownCategory {
        /// The category.
        category: String,
    },
    /// The category has no event of this type.
    #[error("unknown event type {event_type:?} in category {category:?}")]
    UnknownEventType {
        /// The category.
        category: String,
        /// The type name.
        event_type: String,
    },
    /// The schema version is newer than this code knows, or 0.
    #[error("{event_type} schema version {version} is not supported (current: {current})")]
    UnsupportedSchemaVersion {
        /// The type name.
        event_type: String,
        /// The version found.
        version: u32,
        /// The version this code writes.
        current: u32,
    },
    /// The event could not be serialized (not expected: our events are plain data).
    #[error("cannot encode {event_type}: {source}")]
    Encode {
        /// The type name.
        event_type: String,
        /// What went wrong.
        source: serde_json::Error,
    },
    /// The event did not serialize as `{"Type": {fields}}` (not expected either).
    #[error("{event_type} did not serialize as a tagged object")]
    NotTagged {
        /// The type name.
        event_type: String,
    },
    /// The payload is not valid JSON, or not a valid event of its type.
    #[error("invalid {event_type} payload: {source}")]
    InvalidPayload {
        /// The type name.
        event_type: String,
        /// What was wrong.
        source: serde_json::Error,
    },
}

impl DomainEvent {
    /// The stream category the event belongs to.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Product(_) => product::STREAM_CATEGORY,
            Self::Customer(_) => customer::STREAM_CATEGORY,
            Self::Cart(_) => cart::STREAM_CATEGORY,
            Self::Wishlist(_) => wishlist::STREAM_CATEGORY,
            Self::Order(_) => order::STREAM_CATEGORY,
            Self::Stock(_) => stock::STREAM_CATEGORY,
            Self::Payment(_) => payment::STREAM_CATEGORY,
            Self::Shipment(_) => shipment::STREAM_CATEGORY,
            Self::Fulfillment(_) => saga::STREAM_CATEGORY,
        }
    }

    /// The stable type name, e.g. `OrderPlaced`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Product(event) => event.event_type(),
            Self::Customer(event) => event.event_type(),
            Self::Cart(event) => event.event_type(),
            Self::Wishlist(event) => event.event_type(),
            Self::Order(event) => event.event_type(),
            Self::Stock(event) => event.event_type(),
            Self::Payment(event) => event.event_type(),
            Self::Shipment(event) => event.event_type(),
            Self::Fulfillment(event) => event.event_type(),
        }
    }

    /// The schema version written today for this event's type.
    pub fn schema_version(&self) -> u32 {
        current_version(self.event_type())
    }

    /// The stream the event belongs to, `<category>-<id>`, from the ids it carries.
    pub fn stream(&self) -> String {
        match self {
            Self::Product(event) => product::stream_name(event.sku()),
            Self::Customer(event) => customer::stream_name(&event.customer_id()),
            Self::Cart(event) => cart::stream_name(&event.customer_id()),
            Self::Wishlist(event) => wishlist::stream_name(&event.customer_id()),
            Self::Order(event) => order::stream_name(&event.order_id()),
            Self::Stock(event) => stock::stream_name(event.sku()),
            Self::Payment(event) => payment::stream_name(&event.order_id()),
            Self::Shipment(event) => shipment::stream_name(&event.order_id()),
            Self::Fulfillment(event) => saga::stream_name(&event.order_id()),
        }
    }

    /// The payload: the JSON of the variant's fields only.
    pub fn data(&self) -> Result<Value, CatalogueError> {
        let tagged = match self {
            Self::Product(event) => serde_json::to_value(event),
            Self::Customer(event) => serde_json::to_value(event),
            Self::Cart(event) => serde_json::to_value(event),
            Self::Wishlist(event) => serde_json::to_value(event),
            Self::Order(event) => serde_json::to_value(event),
            Self::Stock(event) => serde_json::to_value(event),
            Self::Payment(event) => serde_json::to_value(event),
            Self::Shipment(event) => serde_json::to_value(event),
            Self::Fulfillment(event) => serde_json::to_value(event),
        }
        .map_err(|source| CatalogueError::Encode {
            event_type: self.event_type().to_owned(),
            source,
        })?;
        // Events are externally tagged, `{"OrderPlaced": {fields}}`, and
        // every variant has fields.
        match tagged {
            Value::Object(mut map) if map.len() == 1 => map
                .remove(self.event_type())
                .map(canonical)
                .ok_or_else(|| CatalogueError::NotTagged {
                    event_type: self.event_type().to_owned(),
                }),
            _ => Err(CatalogueError::NotTagged {
                event_type: self.event_type().to_owned(),
            }),
        }
    }

    /// The event as the store takes it: type name, current schema version,
    /// JSON payload and metadata.
    ///
    /// Our events are plain data (strings, numbers, lists, structs), so
    /// serializing them cannot fail; should it ever, the payload is `null`,
    /// which every reader refuses loudly. [`Self::try_to_new_event`] reports
    /// the error instead.
    pub fn to_new_event(&self, event_id: Uuid, metadata: &EventMetadata) -> NewEvent {
        self.try_to_new_event(event_id, metadata)
            .unwrap_or_else(|_| NewEvent {
                event_id,
                event_type: self.event_type().to_owned(),
                schema_version: self.schema_version(),
                data: Value::Null.to_string(),
                metadata: metadata.to_json(),
            })
    }

    /// Like [`Self::to_new_event`], reporting a serialization error.
    pub fn try_to_new_event(
        &self,
        event_id: Uuid,
        metadata: &EventMetadata,
    ) -> Result<NewEvent, CatalogueError> {
        let (event_type, schema_version, data) = encode(self)?;
        Ok(NewEvent {
            event_id,
            event_type: event_type.to_owned(),
            schema_version,
            data,
            metadata: metadata.to_json(),
        })
    }

    /// Reads a recorded event, upcasting older schema versions.
    pub fn from_recorded(recorded: &RecordedEvent) -> Result<Self, CatalogueError> {
        decode(recorded)
    }
}

/// The same JSON with every object's keys in sorted order, so that the text
/// of a payload does not depend on whether some crate in the build enabled
/// serde_json's `preserve_order` (golden files compare bytes).
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, canonical(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// The parts of the store's envelope for an event: its type name, its
/// current schema version and its payload as JSON text.
pub fn encode(event: &DomainEvent) -> Result<(&'static str, u32, String), CatalogueError> {
    Ok((
        event.event_type(),
        event.schema_version(),
        event.data()?.to_string(),
    ))
}

/// Reads a recorded event: dispatches on its stream's category and its type,
/// upcasting older schema versions.
pub fn decode(recorded: &RecordedEvent) -> Result<DomainEvent, CatalogueError> {
    decode_data(
        recorded.category(),
        &recorded.event_type,
        recorded.schema_version,
        &recorded.data,
    )
}

/// Reads an event from its parts (for forms of the envelope other than
/// [`RecordedEvent`], such as the store's JSON API).
///
/// A payload at its type's current schema version is read straight into the
/// typed event; others (and any error) go through a JSON `Value`, upcast.
pub fn decode_data(
    category: &str,
    event_type: &str,
    schema_version: u32,
    data: &str,
) -> Result<DomainEvent, CatalogueError> {
    if let Some(event) = direct::decode_current(category, event_type, schema_version, data) {
        return Ok(event);
    }
    decode_via_value(category, event_type, schema_version, data)
}

/// [`decode_data`] through a `serde_json::Value`: upcasts older schemas and
/// gives the canonical errors.
fn decode_via_value(
    category: &str,
    event_type: &str,
    schema_version: u32,
    data: &str,
) -> Result<DomainEvent, CatalogueError> {
    let types = types_of(category).ok_or_else(|| CatalogueError::UnknownCategory {
        category: category.to_owned(),
    })?;
    if !types.contains(&event_type) {
        return Err(CatalogueError::UnknownEventType {
            category: category.to_owned(),
            event_type: event_type.to_owned(),
        });
    }
    let invalid = |source| CatalogueError::InvalidPayload {
        event_type: event_type.to_owned(),
        source,
    };
    let value: Value = serde_json::from_str(data).map_err(invalid)?;
    let value = upcast(event_type, schema_version, value)?;
    let mut tagged = Map::new();
    tagged.insert(event_type.to_owned(), value);
    let tagged = Value::Object(tagged);
    Ok(match category {
        product::STREAM_CATEGORY => DomainEvent::Product(from_json(tagged).map_err(invalid)?),
        customer::STREAM_CATEGORY => DomainEvent::Customer(from_json(tagged).map_err(invalid)?),
        cart::STREAM_CATEGORY => DomainEvent::Cart(from_json(tagged).map_err(invalid)?),
        wishlist::STREAM_CATEGORY => DomainEvent::Wishlist(from_json(tagged).map_err(invalid)?),
        order::STREAM_CATEGORY => DomainEvent::Order(from_json(tagged).map_err(invalid)?),
        stock::STREAM_CATEGORY => DomainEvent::Stock(from_json(tagged).map_err(invalid)?),
        payment::STREAM_CATEGORY => DomainEvent::Payment(from_json(tagged).map_err(invalid)?),
        shipment::STREAM_CATEGORY => DomainEvent::Shipment(from_json(tagged).map_err(invalid)?),
        saga::STREAM_CATEGORY => DomainEvent::Fulfillment(from_json(tagged).map_err(invalid)?),
        _ => {
            return Err(CatalogueError::UnknownCategory {
                category: category.to_owned(),
            })
        }
    })
}

fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(value)
}

/// Brings a payload from `version` up to the current schema version of its type.
pub fn upcast(event_type: &str, version: u32, mut data: Value) -> Result<Value, CatalogueError> {
    let current = current_version(event_type);
    if version == 0 || version > current {
        return Err(CatalogueError::UnsupportedSchemaVersion {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    for from in version..current {
        data = upcast_step(event_type, from, data);
    }
    Ok(data)
}

/// One step: from version `from` to `from + 1`.
fn upcast_step(event_type: &str, from: u32, mut data: Value) -> Value {
    if let ("ProductAdded", 1, Value::Object(fields)) = (event_type, from, &mut data) {
        // v2 added the product's category; products added before had none.
        fields
            .entry("category")
            .or_insert_with(|| Value::String(Category::UNCATEGORIZED.to_owned()));
    }
    data
}

/// The namespace of event ids derived from idempotency keys (UUID v5).
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x4d3d_fb2f_2777_4834_8ad8_1435_2847_1f4f);

/// The id of the `index`-th event written for an idempotency key: the same
/// key and index always give the same id, so a retried command appends
/// events the store already has, and the store writes nothing.
pub fn derive_event_id(key: &str, index: usize) -> Uuid {
    Uuid::new_v5(&EVENT_ID_NAMESPACE, format!("{key}#{index}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_name_is_unique_across_categories() {
        let all = event_types();
        let mut names: Vec<_> = all.iter().map(|info| info.event_type).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn product_added_is_at_version_2_and_the_rest_at_version_1() {
        for info in event_types() {
            let expected = if info.event_type == "ProductAdded" {
                2
            } else {
                1
            };
            assert_eq!(info.schema_version, expected, "{}", info.event_type);
        }
        assert_eq!(schema_version("product", "ProductAdded"), Some(2));
        assert_eq!(schema_version("order", "ProductAdded"), None);
    }

    #[test]
    fn derived_event_ids_are_stable_and_differ_by_key_and_index() {
        let a = derive_event_id("key-1", 0);
        assert_eq!(a, derive_event_id("key-1", 0));
        assert_ne!(a, derive_event_id("key-1", 1));
        assert_ne!(a, derive_event_id("key-2", 0));
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn unknown_categories_types_and_versions_are_errors() {
        assert!(matches!(
            decode_data("nope", "X", 1, "{}"),
            Err(CatalogueError::UnknownCategory { .. })
        ));
        assert!(matches!(
            decode_data("order", "ProductAdded", 1, "{}"),
            Err(CatalogueError::UnknownEventType { .. })
        ));
        assert!(matches!(
            decode_data("order", "OrderShipped", 2, "{}"),
            Err(CatalogueError::UnsupportedSchemaVersion { version: 2, .. })
        ));
        assert!(matches!(
            decode_data("order", "OrderShipped", 0, "{}"),
            Err(CatalogueError::UnsupportedSchemaVersion { version: 0, .. })
        ));
        assert!(matches!(
            decode_data("order", "OrderShipped", 1, "not json"),
            Err(CatalogueError::InvalidPayload { .. })
        ));
        assert!(matches!(
            decode_data("order", "OrderShipped", 1, r#"{"order_id": "x", "at": 1}"#),
            Err(CatalogueError::InvalidPayload { .. })
        ));
    }
}
