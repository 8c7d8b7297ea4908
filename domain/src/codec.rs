//! The one place that knows the binary encoding.
//!
//! Records in the log, the store's binary HTTP form and AMQP message bodies are
//! all encoded here, with `bincode` 2 through serde. Swapping the encoding means
//! changing this module (and re-blessing the golden files), nothing else.

use serde::{de::DeserializeOwned, Serialize};

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The bytes decoded, but bytes were left over.
    #[error("cannot decode: {trailing} trailing bytes")]
    Trailing {
        /// How many bytes were left over.
        trailing: usize,
    },
}

fn config() -> impl bincode::config::Config {
    // Fixed-width little-endian integers: stable, and cheap to encode.
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ 64 * 1024 * 1024 }>()
}

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Encodes a value, appending to `buf`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    let bytes = encode(value)?;
    buf.extend_from_slice(&bytes);
    Ok(())
}

/// Decodes a value that must fill `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::Trailing {
            trailing: bytes.len() - read,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::RecordedEvent;
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    #[test]
    fn a_recorded_event_round_trips() {
        let event = RecordedEvent {
            stream: "order-1".into(),
            version: 3,
            position: 99,
            event_id: Uuid::from_u128(7),
            event_type: "OrderPlaced".into(),
            schema_version: 2,
            recorded_at: DateTime::<Utc>::from_timestamp(1_700_000_000, 5).unwrap_or_default(),
            data: r#"{"a":1}"#.into(),
            metadata: "{}".into(),
        };
        let bytes = encode(&event).expect("encodes");
        let back: RecordedEvent = decode(&bytes).expect("decodes");
        assert_eq!(back, event);
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors_not_panics() {
        assert!(decode::<RecordedEvent>(&[1, 2, 3]).is_err());
        let mut bytes = encode(&5u64).expect("encodes");
        bytes.push(0);
        assert!(matches!(
            decode::<u64>(&bytes),
            Err(CodecError::Trailing { trailing: 1 })
        ));
    }
}
