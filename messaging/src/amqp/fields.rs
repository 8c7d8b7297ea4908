//! Mapping [`MessageHeaders`] to and from AMQP header tables.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use uuid::Uuid;

use crate::headers::{names, MessageHeaders};

/// Internal header: the publisher's sequence number of a message, so that a
/// returned message can be matched to the message that was sent.
pub(crate) const PUBLISH_SEQ: &str = "x-publish-seq";

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

fn number(value: u64) -> AMQPValue {
    match i64::try_from(value) {
        Ok(v) => AMQPValue::LongLongInt(v),
        Err(_) => long(&value.to_string()),
    }
}

fn put(table: &mut FieldTable, name: &str, value: AMQPValue) {
    // Names longer than an AMQP short string cannot be sent; they only come
    // from free-form extras, which are best effort.
    match ShortString::try_new(name) {
        Ok(key) => {
            table.insert(key, value);
        }
        Err(_) => tracing::warn!(header = name, "header name too long; dropped"),
    }
}

/// The header table for a message; `seq` is the publisher's sequence number.
pub(crate) fn to_table(headers: &MessageHeaders, seq: Option<u64>) -> FieldTable {
    let mut table = FieldTable::default();
    if let Some(v) = headers.event_id {
        put(&mut table, names::EVENT_ID, long(&v.to_string()));
    }
    if let Some(v) = &headers.stream {
        put(&mut table, names::STREAM, long(v));
    }
    if let Some(v) = headers.version {
        put(&mut table, names::VERSION, number(v));
    }
    if let Some(v) = headers.position {
        put(&mut table, names::POSITION, number(v));
    }
    if let Some(v) = &headers.event_type {
        put(&mut table, names::EVENT_TYPE, long(v));
    }
    if let Some(v) = headers.schema_version {
        put(&mut table, names::SCHEMA_VERSION, number(u64::from(v)));
    }
    if let Some(v) = headers.correlation_id {
        put(&mut table, names::CORRELATION_ID, long(&v.to_string()));
    }
    if let Some(v) = headers.causation_id {
        put(&mut table, names::CAUSATION_ID, long(&v.to_string()));
    }
    if let Some(v) = headers.store_id {
        put(&mut table, names::STORE_ID, long(&v.to_string()));
    }
    if let Some(v) = &headers.traceparent {
        put(&mut table, names::TRACEPARENT, long(v));
    }
    for (name, value) in &headers.extra {
        put(&mut table, name, long(value));
    }
    if let Some(seq) = seq {
        put(&mut table, PUBLISH_SEQ, number(seq));
    }
    table
}

/// A header value as text, for strings and numbers.
fn as_text(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        other => as_u64(other)?.to_string(),
    })
}

fn as_u64(value: &AMQPValue) -> Option<u64> {
    match value {
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => as_text(value)?.parse().ok(),
        _ => None,
    }
}

fn as_uuid(value: &AMQPValue) -> Option<Uuid> {
    as_text(value)?.parse().ok()
}

/// The reason and first original routing key of the most recent entry of
/// an `x-death` header.
fn death(value: &AMQPValue) -> Option<(String, Option<String>)> {
    let AMQPValue::FieldArray(deaths) = value else {
        return None;
    };
    let AMQPValue::FieldTable(latest) = deaths.as_slice().first()? else {
        return None;
    };
    let reason = latest.inner().get("reason").and_then(as_text)?;
    let routing_key = match latest.inner().get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(as_text),
        _ => None,
    };
    Some((reason, routing_key))
}

/// What a received header table says.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) headers: MessageHeaders,
    pub(crate) delivery_count: u32,
    pub(crate) publish_seq: Option<u64>,
}

/// Reads a received header table; unknown or malformed values of the typed
/// headers are kept as text in `extra` rather than dropped.
pub(crate) fn from_table(table: Option<&FieldTable>) -> Parsed {
    let mut parsed = Parsed::default();
    let Some(table) = table else {
        return parsed;
    };
    let h = &mut parsed.headers;
    for (name, value) in table.inner() {
        let name = name.as_str();
        let typed = match name {
            names::EVENT_ID => as_uuid(value).map(|v| h.event_id = Some(v)),
            names::STREAM => as_text(value).map(|v| h.stream = Some(v)),
            names::VERSION => as_u64(value).map(|v| h.version = Some(v)),
            names::POSITION => as_u64(value).map(|v| h.position = Some(v)),
            names::EVENT_TYPE => as_text(value).map(|v| h.event_type = Some(v)),
            names::SCHEMA_VERSION => as_u64(value)
                .and_then(|v| u32::try_from(v).ok())
                .map(|v| h.schema_version = Some(v)),
            names::CORRELATION_ID => as_uuid(value).map(|v| h.correlation_id = Some(v)),
            names::CAUSATION_ID => as_uuid(value).map(|v| h.causation_id = Some(v)),
            names::STORE_ID => as_uuid(value).map(|v| h.store_id = Some(v)),
            names::TRACEPARENT => as_text(value).map(|v| h.traceparent = Some(v)),
            names::DELIVERY_COUNT => as_u64(value).map(|v| {
                parsed.delivery_count = u32::try_from(v).unwrap_or(u32::MAX);
            }),
            PUBLISH_SEQ => as_u64(value).map(|v| parsed.publish_seq = Some(v)),
            "x-death" => death(value).map(|(reason, routing_key)| {
                h.extra.insert(names::DEATH_REASON.to_owned(), reason);
                if let Some(key) = routing_key {
                    h.extra
                        .entry(names::ORIGINAL_ROUTING_KEY.to_owned())
                        .or_insert(key);
                }
            }),
            _ => None,
        };
        if typed.is_none() {
            if let Some(text) = as_text(value) {
                h.extra.insert(name.to_owned(), text);
            }
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldArray;

    #[test]
    fn headers_survive_a_round_trip_through_a_table() {
        let headers = MessageHeaders {
            event_id: Some(Uuid::from_u128(1)),
            stream: Some("order-1".into()),
            version: Some(3),
            position: Some(u64::MAX),
            event_type: Some("OrderPlaced".into()),
            schema_version: Some(2),
            correlation_id: Some(Uuid::from_u128(2)),
            causation_id: Some(Uuid::from_u128(3)),
            store_id: Some(Uuid::from_u128(4)),
            traceparent: Some("00-1-2-01".into()),
            extra: [("x-shop-error".to_owned(), "bad".to_owned())].into(),
        };
        let parsed = from_table(Some(&to_table(&headers, Some(77))));
        assert_eq!(parsed.headers, headers);
        assert_eq!(parsed.publish_seq, Some(77));
        assert_eq!(parsed.delivery_count, 0);
    }

    #[test]
    fn the_brokers_death_reason_and_delivery_count_are_read() {
        let mut death = FieldTable::default();
        death.insert("reason".into(), long("delivery_limit"));
        death.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![long("order.OrderPlaced")])),
        );
        let mut table = FieldTable::default();
        table.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        );
        table.insert("x-delivery-count".into(), AMQPValue::LongLongInt(4));
        table.insert("version".into(), long("not a number"));
        let parsed = from_table(Some(&table));
        assert_eq!(parsed.delivery_count, 4);
        assert_eq!(parsed.headers.dead_letter_reason(), Some("delivery_limit"));
        assert_eq!(
            parsed
                .headers
                .extra
                .get(names::ORIGINAL_ROUTING_KEY)
                .map(String::as_str),
            Some("order.OrderPlaced")
        );
        assert_eq!(parsed.headers.version, None);
        assert_eq!(
            parsed.headers.extra.get("version").map(String::as_str),
            Some("not a number")
        );
    }
}
