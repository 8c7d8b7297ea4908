//! Value types, parsed at the edge: a value that exists is valid.
//!
//! Every type has a `parse` constructor that returns a [`ValueError`] naming
//! the field, and (de)serializes as its plain representation (a string or a
//! number). Deserializing validates too, so an event read back from the store
//! cannot smuggle in an invalid value.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a raw value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value is empty (after trimming surrounding whitespace).
    #[error("{field} must not be empty")]
    Empty {
        /// The field that was refused.
        field: &'static str,
    },
    /// The value is longer than allowed.
    #[error("{field} must be at most {max} characters long, got {len}")]
    TooLong {
        /// The field that was refused.
        field: &'static str,
        /// The longest allowed, in characters.
        max: usize,
        /// The length given, in characters.
        len: usize,
    },
    /// The value contains a character that is not allowed.
    #[error("{field} must not contain {found:?} (allowed: {allowed})")]
    InvalidCharacter {
        /// The field that was refused.
        field: &'static str,
        /// The first offending character.
        found: char,
        /// What is allowed, in words.
        allowed: &'static str,
    },
    /// A number is outside its range.
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The field that was refused.
        field: &'static str,
        /// The smallest allowed.
        min: i128,
        /// The largest allowed.
        max: i128,
        /// The value given.
        value: i128,
    },
    /// The value does not have the expected shape (an email, a UUID).
    #[error("{field} is not a valid {expected}")]
    Malformed {
        /// The field that was refused.
        field: &'static str,
        /// What was expected, in words.
        expected: &'static str,
    },
}

impl ValueError {
    /// The name of the refused field, e.g. `sku`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Empty { field }
            | Self::TooLong { field, .. }
            | Self::InvalidCharacter { field, .. }
            | Self::OutOfRange { field, .. }
            | Self::Malformed { field, .. } => field,
        }
    }

    /// A stable machine-readable code for every value error.
    pub fn code(&self) -> &'static str {
        "invalid_input"
    }
}

/// Trims `raw` and checks its length in characters and that it has no control characters.
fn checked_text(
    field: &'static str,
    raw: &str,
    allow_empty: bool,
    max: usize,
) -> Result<String, ValueError> {
    let text = raw.trim();
    if text.is_empty() && !allow_empty {
        return Err(ValueError::Empty { field });
    }
    let len = text.chars().count();
    if len > max {
        return Err(ValueError::TooLong { field, max, len });
    }
    if let Some(found) = text.chars().find(|c| c.is_control() && *c != '\n') {
        return Err(ValueError::InvalidCharacter {
            field,
            found,
            allowed: "printable characters",
        });
    }
    Ok(text.to_owned())
}

/// Implements `as_str`, `Display`, `AsRef<str>` and the serde conversions of a string newtype.
macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(raw: String) -> Result<Self, ValueError> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// A stock-keeping unit: 1–64 characters of `[A-Za-z0-9_-]`, stored uppercase.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    /// The longest SKU, in characters.
    pub const MAX_LEN: usize = 64;

    /// Parses a SKU; surrounding whitespace is ignored and letters are uppercased.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let field = "sku";
        let text = raw.trim();
        if text.is_empty() {
            return Err(ValueError::Empty { field });
        }
        let len = text.chars().count();
        if len > Self::MAX_LEN {
            return Err(ValueError::TooLong {
                field,
                max: Self::MAX_LEN,
                len,
            });
        }
        if let Some(found) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(ValueError::InvalidCharacter {
                field,
                found,
                allowed: "letters, digits, '_' and '-'",
            });
        }
        Ok(Self(text.to_ascii_uppercase()))
    }
}
string_value!(Sku);

/// How many units: more than 0, at most [`Quantity::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// The largest quantity of one line or one restock.
    pub const MAX: u32 = 1_000_000;

    /// Parses a quantity from any integer (GraphQL and JSON hand out signed ones).
    pub fn parse(value: i64) -> Result<Self, ValueError> {
        if value < 1 || value > i64::from(Self::MAX) {
            return Err(ValueError::OutOfRange {
                field: "quantity",
                min: 1,
                max: i128::from(Self::MAX),
                value: i128::from(value),
            });
        }
        // The range check above makes the conversion lossless.
        Ok(Self(u32::try_from(value).unwrap_or(Self::MAX)))
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = ValueError;
    fn try_from(value: u32) -> Result<Self, ValueError> {
        Self::parse(i64::from(value))
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> u32 {
        value.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An amount of money in cents (one currency); may be zero.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(u64);

impl Money {
    /// No money.
    pub const ZERO: Money = Money(0);

    /// An amount in cents.
    pub const fn from_cents(cents: u64) -> Self {
        Self(cents)
    }

    /// Parses an amount in cents; negative amounts are refused.
    pub fn parse(field: &'static str, cents: i64) -> Result<Self, ValueError> {
        u64::try_from(cents)
            .map(Self)
            .map_err(|_| ValueError::OutOfRange {
                field,
                min: 0,
                max: i128::from(i64::MAX),
                value: i128::from(cents),
            })
    }

    /// The amount in cents.
    pub const fn cents(self) -> u64 {
        self.0
    }

    /// The sum, saturating at the largest amount.
    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// The amount times `factor`, saturating at the largest amount.
    pub fn saturating_mul(self, factor: u64) -> Money {
        Money(self.0.saturating_mul(factor))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// A unit price: money in cents, more than 0 and at most [`Price::MAX_CENTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Price(Money);

impl Price {
    /// The largest price: 1,000,000.00.
    pub const MAX_CENTS: u64 = 100_000_000;

    /// Parses a price in cents.
    pub fn parse(cents: i64) -> Result<Self, ValueError> {
        let max = i64::try_from(Self::MAX_CENTS).unwrap_or(i64::MAX);
        if cents < 1 || cents > max {
            return Err(ValueError::OutOfRange {
                field: "price_cents",
                min: 1,
                max: i128::from(max),
                value: i128::from(cents),
            });
        }
        Ok(Self(Money(cents.unsigned_abs())))
    }

    /// The price as money.
    pub fn money(self) -> Money {
        self.0
    }

    /// The price in cents.
    pub fn cents(self) -> u64 {
        self.0 .0
    }
}

impl TryFrom<u64> for Price {
    type Error = ValueError;
    fn try_from(cents: u64) -> Result<Self, ValueError> {
        Self::parse(i64::try_from(cents).unwrap_or(i64::MAX))
    }
}

impl From<Price> for u64 {
    fn from(value: Price) -> u64 {
        value.cents()
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An email address, trimmed and lowercased, with a basic shape check.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// The longest address (RFC 5321).
    pub const MAX_LEN: usize = 254;

    /// Parses an address: one `@`, a non-empty local part, a domain with a dot, no whitespace.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let field = "email";
        let text = checked_text(field, raw, false, Self::MAX_LEN)?.to_lowercase();
        let malformed = ValueError::Malformed {
            field,
            expected: "email address",
        };
        if text.chars().any(char::is_whitespace) {
            return Err(malformed);
        }
        let Some((local, domain)) = text.split_once('@') else {
            return Err(malformed);
        };
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || !domain_ok {
            return Err(malformed);
        }
        Ok(Self(text))
    }
}
string_value!(Email);

/// Implements the UUID newtype boilerplate.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// Parses the textual form of a UUID.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                Uuid::parse_str(raw.trim())
                    .map(Self)
                    .map_err(|_| ValueError::Malformed {
                        field: $field,
                        expected: "UUID",
                    })
            }

            /// The UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// Identifies a customer (and their cart and wishlist).
    CustomerId,
    "customer_id"
);
uuid_id!(
    /// Identifies an order (and its payment, shipment and fulfillment).
    OrderId,
    "order_id"
);

/// Implements a trimmed, length-limited text newtype.
macro_rules! text_value {
    ($(#[$meta:meta])* $name:ident, $field:literal, allow_empty = $allow_empty:expr, max = $max:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest value, in characters.
            pub const MAX_LEN: usize = $max;

            /// Parses the value; surrounding whitespace is ignored.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                checked_text($field, raw, $allow_empty, Self::MAX_LEN).map(Self)
            }
        }
        string_value!($name);
    };
}

text_value!(
    /// A product's display name: 1–200 characters.
    ProductName,
    "name",
    allow_empty = false,
    max = 200
);
text_value!(
    /// A product's description: up to 4000 characters, may be empty.
    Description,
    "description",
    allow_empty = true,
    max = 4000
);
text_value!(
    /// A customer's name: 1–200 characters.
    CustomerName,
    "name",
    allow_empty = false,
    max = 200
);
text_value!(
    /// Where an order is shipped: 1–500 characters.
    ShippingAddress,
    "shipping_address",
    allow_empty = false,
    max = 500
);

/// A product category: 1–64 characters, stored lowercase.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Category(String);

impl Category {
    /// The longest category, in characters.
    pub const MAX_LEN: usize = 64;
    /// The category of products added before categories existed (schema v1).
    pub const UNCATEGORIZED: &'static str = "uncategorized";

    /// Parses a category; surrounding whitespace is ignored and letters are lowercased.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        checked_text("category", raw, false, Self::MAX_LEN).map(|text| Self(text.to_lowercase()))
    }

    /// The category of products that were given none.
    pub fn uncategorized() -> Self {
        Self(Self::UNCATEGORIZED.to_owned())
    }
}
string_value!(Category);

/// A payment method token from the (simulated) gateway, e.g. `tok_visa`:
/// 1–128 characters, no whitespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PaymentToken(String);

impl PaymentToken {
    /// The longest token, in characters.
    pub const MAX_LEN: usize = 128;

    /// Parses a token.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let field = "payment_token";
        let text = checked_text(field, raw, false, Self::MAX_LEN)?;
        if let Some(found) = text.chars().find(|c| c.is_whitespace()) {
            return Err(ValueError::InvalidCharacter {
                field,
                found,
                allowed: "no whitespace",
            });
        }
        Ok(Self(text))
    }
}
string_value!(PaymentToken);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sku_is_trimmed_and_uppercased() {
        assert_eq!(Sku::parse("  ab-12_x ").unwrap().as_str(), "AB-12_X");
    }

    #[test]
    fn a_sku_with_a_space_or_too_long_or_empty_is_refused_naming_the_field() {
        let err = Sku::parse("a b").unwrap_err();
        assert_eq!(err.field(), "sku");
        assert!(matches!(
            err,
            ValueError::InvalidCharacter { found: ' ', .. }
        ));
        assert!(matches!(
            Sku::parse(&"A".repeat(65)),
            Err(ValueError::TooLong { len: 65, .. })
        ));
        assert!(Sku::parse(&"A".repeat(64)).is_ok());
        assert!(matches!(Sku::parse("  "), Err(ValueError::Empty { .. })));
    }

    #[test]
    fn a_quantity_is_between_one_and_a_million() {
        assert_eq!(Quantity::parse(1).unwrap().get(), 1);
        assert_eq!(Quantity::parse(1_000_000).unwrap().get(), 1_000_000);
        for bad in [0, -1, 1_000_001, i64::MAX] {
            let err = Quantity::parse(bad).unwrap_err();
            assert_eq!(err.field(), "quantity");
        }
    }

    #[test]
    fn a_price_must_be_positive_and_money_may_be_zero_but_not_negative() {
        assert!(Price::parse(0).is_err());
        assert!(Price::parse(-5).is_err());
        assert_eq!(Price::parse(1999).unwrap().cents(), 1999);
        assert!(Price::parse(100_000_001).is_err());
        assert_eq!(Money::parse("amount", 0).unwrap(), Money::ZERO);
        assert!(Money::parse("amount", -1).is_err());
        assert_eq!(Money::from_cents(1234).to_string(), "12.34");
        assert_eq!(Money::from_cents(5).to_string(), "0.05");
    }

    #[test]
    fn an_email_is_normalized_to_lowercase() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@.com",
            "ada@example..com",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.field(), "email", "{bad:?}");
        }
    }

    #[test]
    fn texts_are_trimmed_and_limited() {
        assert_eq!(ProductName::parse(" Mug ").unwrap().as_str(), "Mug");
        assert!(ProductName::parse(" ").is_err());
        assert!(ProductName::parse(&"x".repeat(201)).is_err());
        assert_eq!(Description::parse("").unwrap().as_str(), "");
        assert!(ShippingAddress::parse("").is_err());
        assert!(CustomerName::parse("bad\u{0}name").is_err());
        assert_eq!(Category::parse(" Kitchen ").unwrap().as_str(), "kitchen");
        assert!(PaymentToken::parse("tok visa").is_err());
        assert_eq!(
            PaymentToken::parse("tok_visa").unwrap().as_str(),
            "tok_visa"
        );
    }

    #[test]
    fn ids_parse_from_uuid_text() {
        let id = OrderId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        assert_eq!(id.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(
            CustomerId::parse("nope").unwrap_err().field(),
            "customer_id"
        );
    }

    #[test]
    fn values_serialize_as_their_plain_form_and_deserializing_validates() {
        let sku = Sku::parse("ab").unwrap();
        assert_eq!(serde_json::to_string(&sku).unwrap(), r#""AB""#);
        assert_eq!(
            serde_json::from_str::<Sku>(r#""cd""#).unwrap().as_str(),
            "CD"
        );
        assert!(serde_json::from_str::<Sku>(r#""c d""#).is_err());
        assert_eq!(
            serde_json::to_string(&Quantity::parse(3).unwrap()).unwrap(),
            "3"
        );
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Price>("0").is_err());
        assert_eq!(serde_json::to_string(&Money::from_cents(7)).unwrap(), "7");
        let id = OrderId::from_uuid(Uuid::from_u128(1));
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            r#""00000000-0000-0000-0000-000000000001""#
        );
    }
}
