//! Rules for stream, category and event type names.
//!
//! Names end up in sled keys, URLs and RabbitMQ routing keys, so they are kept
//! to a small, URL-safe alphabet. A stream name must carry a category: the part
//! before its first `-` (`order-42` is in category `order`).

/// The longest stream or category name accepted, in bytes (all accepted characters are ASCII).
pub const MAX_STREAM_NAME_LEN: usize = 200;

/// The longest event type name accepted.
pub const MAX_EVENT_TYPE_LEN: usize = 200;

/// Why a stream, category or event type name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("the name is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name contains a character outside the allowed alphabet.
    #[error("the name contains {character:?} at index {index}; allowed are {allowed}")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its index in characters.
        index: usize,
        /// A description of the allowed alphabet.
        allowed: &'static str,
    },
    /// A stream name without a `<category>-` prefix and an id after it.
    #[error("a stream name needs a category and an id, as in `order-42`")]
    MissingCategory,
}

const STREAM_ALPHABET: &str = "A-Z a-z 0-9 _ . : @ -";
const CATEGORY_ALPHABET: &str = "A-Z a-z 0-9 _ . : @";
const EVENT_TYPE_ALPHABET: &str = "A-Z a-z 0-9 _ -";

fn check(
    name: &str,
    max: usize,
    allowed: &'static str,
    is_allowed: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some((index, character)) = name.chars().enumerate().find(|(_, c)| !is_allowed(*c)) {
        return Err(NameError::InvalidCharacter {
            character,
            index,
            allowed,
        });
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            len: name.len(),
            max,
        });
    }
    Ok(())
}

fn is_category_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '@')
}

/// Checks a stream name: 1–200 characters of `[A-Za-z0-9_.:@-]`, with a
/// non-empty category before the first `-` and a non-empty id after it.
pub fn validate_stream_name(stream: &str) -> Result<(), NameError> {
    check(stream, MAX_STREAM_NAME_LEN, STREAM_ALPHABET, |c| {
        is_category_char(c) || c == '-'
    })?;
    match stream.split_once('-') {
        Some((category, id)) if !category.is_empty() && !id.is_empty() => Ok(()),
        _ => Err(NameError::MissingCategory),
    }
}

/// Checks a category name: 1–200 characters of `[A-Za-z0-9_.:@]`.
pub fn validate_category(category: &str) -> Result<(), NameError> {
    check(
        category,
        MAX_STREAM_NAME_LEN,
        CATEGORY_ALPHABET,
        is_category_char,
    )
}

/// Checks an event type name: 1–200 characters of `[A-Za-z0-9_-]` (no `.`,
/// because the type is one word of the routing key `<category>.<EventType>`).
pub fn validate_event_type(event_type: &str) -> Result<(), NameError> {
    check(event_type, MAX_EVENT_TYPE_LEN, EVENT_TYPE_ALPHABET, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_with_a_category_and_an_id_are_accepted() {
        for name in ["order-1", "cart-9f1c@x", "a-b-c", "stock-SKU_1.2:3"] {
            assert_eq!(validate_stream_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn stream_names_breaking_a_rule_are_refused_with_the_rule() {
        assert_eq!(validate_stream_name(""), Err(NameError::Empty));
        assert_eq!(
            validate_stream_name("order"),
            Err(NameError::MissingCategory)
        );
        assert_eq!(validate_stream_name("-1"), Err(NameError::MissingCategory));
        assert_eq!(
            validate_stream_name("order-"),
            Err(NameError::MissingCategory)
        );
        assert!(matches!(
            validate_stream_name("order 1"),
            Err(NameError::InvalidCharacter {
                character: ' ',
                index: 5,
                ..
            })
        ));
        assert!(matches!(
            validate_stream_name("ordér-1"),
            Err(NameError::InvalidCharacter {
                character: 'é', ..
            })
        ));
        let long = format!("order-{}", "x".repeat(200));
        assert!(matches!(
            validate_stream_name(&long),
            Err(NameError::TooLong { len: 206, max: 200 })
        ));
    }

    #[test]
    fn categories_cannot_contain_a_dash() {
        assert_eq!(validate_category("order"), Ok(()));
        assert!(matches!(
            validate_category("order-1"),
            Err(NameError::InvalidCharacter { character: '-', .. })
        ));
    }

    #[test]
    fn event_types_use_a_routing_key_safe_alphabet() {
        assert_eq!(validate_event_type("OrderPlaced"), Ok(()));
        assert!(validate_event_type("Order Placed").is_err());
        assert!(validate_event_type("Order#").is_err());
        assert!(validate_event_type("Order.Placed").is_err());
        assert_eq!(validate_event_type(""), Err(NameError::Empty));
    }
}
