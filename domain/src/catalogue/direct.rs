//! The direct path of [`super::decode_data`]: a payload at its type's current
//! schema version is deserialized straight from its JSON text into the typed
//! event, with no intermediate `serde_json::Value` tree. Anything else (an
//! old schema to upcast, a payload this path rejects) takes the `Value` path,
//! which also gives the canonical error. Both give the same event for every
//! payload this path accepts (tested below on every golden file).

use crate::{cart, customer, order, payment, product, saga, shipment, stock, wishlist};

use super::DomainEvent;
use serde::de::{
    value::StrDeserializer, Deserialize, DeserializeOwned, DeserializeSeed, Deserializer,
    EnumAccess, IntoDeserializer, VariantAccess, Visitor,
};

/// The event, if its schema version is current and the payload reads
/// directly; `None` sends it down the `Value` path.
pub(super) fn decode_current(
    category: &str,
    tag: &str,
    schema_version: u32,
    data: &str,
) -> Option<DomainEvent> {
    if super::schema_version(category, tag)? != schema_version {
        return None;
    }
    Some(match category {
        product::STREAM_CATEGORY => DomainEvent::Product(typed(tag, data)?),
        customer::STREAM_CATEGORY => DomainEvent::Customer(typed(tag, data)?),
        cart::STREAM_CATEGORY => DomainEvent::Cart(typed(tag, data)?),
        wishlist::STREAM_CATEGORY => DomainEvent::Wishlist(typed(tag, data)?),
        order::STREAM_CATEGORY => DomainEvent::Order(typed(tag, data)?),
        stock::STREAM_CATEGORY => DomainEvent::Stock(typed(tag, data)?),
        payment::STREAM_CATEGORY => DomainEvent::Payment(typed(tag, data)?),
        shipment::STREAM_CATEGORY => DomainEvent::Shipment(typed(tag, data)?),
        saga::STREAM_CATEGORY => DomainEvent::Fulfillment(typed(tag, data)?),
        _ => return None,
    })
}

/// `T` (an externally tagged enum) read as `{"<tag>": <data>}` would be.
fn typed<T: DeserializeOwned>(tag: &str, data: &str) -> Option<T> {
    T::deserialize(Tagged { tag, data }).ok()
}

/// An enum whose variant is `tag` and whose content is the JSON `data`.
struct Tagged<'a> {
    tag: &'a str,
    data: &'a str,
}

impl<'a> Deserializer<'a> for Tagged<'a> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'a>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("an event is read as an enum"))
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

impl<'a> EnumAccess<'a> for Tagged<'a> {
    type Error = serde_json::Error;
    type Variant = Payload<'a>;

    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let tag: StrDeserializer<'_, serde_json::Error> = self.tag.into_deserializer();
        let variant = seed.deserialize(tag)?;
        Ok((variant, Payload(self.data)))
    }
}

/// The content of the variant: JSON text that must hold exactly one value.
struct Payload<'a>(&'a str);

impl<'a> Payload<'a> {
    /// Reads the text with `read`, which must consume all of it.
    fn read<T>(
        self,
        read: impl FnOnce(
            &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
        ) -> Result<T, serde_json::Error>,
    ) -> Result<T, serde_json::Error> {
        let mut json = serde_json::Deserializer::from_str(self.0);
        let value = read(&mut json)?;
        json.end()?;
        Ok(value)
    }
}

impl<'a> VariantAccess<'a> for Payload<'a> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        // `{"Tag": null}`, as the catalogue's path reads a unit variant.
        self.read(|json| <()>::deserialize(json))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.read(|json| seed.deserialize(json))
    }

    fn tuple_variant<V: Visitor<'a>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.read(|json| json.deserialize_tuple(len, visitor))
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.read(|json| json.deserialize_struct("", fields, visitor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::decode_via_value;
    use crate::codec;
    use crate::envelope::RecordedEvent;

    /// Every golden file: one recorded event of every type and of every
    /// older schema version still read.
    fn golden() -> Vec<RecordedEvent> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let mut events: Vec<RecordedEvent> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| codec::decode(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap())
            .collect();
        events.sort_by(|a, b| a.event_type.cmp(&b.event_type));
        events
    }

    fn direct(event: &RecordedEvent) -> Option<DomainEvent> {
        decode_current(
            event.category(),
            &event.event_type,
            event.schema_version,
            &event.data,
        )
    }

    fn via_value(event: &RecordedEvent) -> Result<DomainEvent, String> {
        decode_via_value(
            event.category(),
            &event.event_type,
            event.schema_version,
            &event.data,
        )
        .map_err(|error| error.to_string())
    }

    #[test]
    fn every_current_event_reads_directly_as_through_a_value() {
        let events = golden();
        let mut current = 0;
        for event in &events {
            let is_current = super::super::schema_version(event.category(), &event.event_type)
                == Some(event.schema_version);
            if !is_current {
                assert_eq!(direct(event), None, "{}", event.event_type);
                continue;
            }
            current += 1;
            let read = direct(event);
            assert!(read.is_some(), "{} was not read directly", event.event_type);
            assert_eq!(read, via_value(event).ok(), "{}", event.event_type);
        }
        assert!(current > 40, "the golden files cover every type: {current}");
    }

    #[test]
    fn old_schemas_and_bad_payloads_take_the_value_path() {
        let events = golden();
        let added = events
            .iter()
            .find(|e| e.event_type == "ProductAdded" && e.schema_version == 2)
            .unwrap();
        // Version 1 had no category: upcast on the value path.
        let old = events
            .iter()
            .find(|e| e.event_type == "ProductAdded" && e.schema_version == 1)
            .unwrap();
        assert_eq!(direct(old), None);
        assert!(super::super::decode(old).is_ok());
        // Trailing text, a wrong type name, broken JSON: the value path's error.
        for (event_type, payload) in [
            (added.event_type.clone(), format!("{} {{}}", added.data)),
            ("OrderPlaced".to_owned(), added.data.clone()),
            (added.event_type.clone(), "{\"sku\":".to_owned()),
        ] {
            let mut bad = added.clone();
            bad.event_type = event_type;
            bad.data = payload;
            assert_eq!(direct(&bad), None);
            assert_eq!(
                super::super::decode(&bad).map_err(|error| error.to_string()),
                via_value(&bad)
            );
            assert!(via_value(&bad).is_err());
        }
    }
}
