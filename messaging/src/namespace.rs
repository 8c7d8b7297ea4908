//! Names of everything the system declares on the broker.
//!
//! Every exchange and queue carries a namespace prefix so that several
//! systems, and parallel tests, can share one broker without seeing each
//! other's messages.

use std::fmt;

/// Why a namespace or consumer name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {name:?}: {reason}")]
pub struct NameError {
    /// What was being named (`namespace`, `consumer`).
    pub what: &'static str,
    /// The refused name.
    pub name: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// The longest name we accept; AMQP short strings hold 255 bytes and the
/// dead-letter queue adds a suffix to `<namespace>.<consumer>`.
const MAX_NAME_LEN: usize = 100;

fn validate(what: &'static str, name: &str) -> Result<(), NameError> {
    let refuse = |reason| NameError {
        what,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(refuse("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(refuse("must be at most 100 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(refuse(
            "may only contain ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err(refuse("must not start or end with '.'"));
    }
    Ok(())
}

/// The prefix of every exchange and queue name, e.g. `shop`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Parses a namespace: 1–100 ASCII letters, digits, `-`, `_` or `.`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        validate("namespace", name)?;
        Ok(Self(name.to_owned()))
    }

    /// The namespace itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The durable topic exchange every event is published to: `<ns>.events`.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.0)
    }

    /// The direct exchange dead letters go through: `<ns>.dlx`.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.0)
    }

    /// The queue of a consumer: `<ns>.<consumer>`.
    pub fn queue(&self, consumer: &ConsumerName) -> String {
        format!("{}.{}", self.0, consumer.0)
    }

    /// The dead-letter queue of a consumer: `<ns>.<consumer>.dlq`.
    pub fn dead_letter_queue(&self, consumer: &ConsumerName) -> String {
        format!("{}.{}.dlq", self.0, consumer.0)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a consumer (a projector, the saga), which names its queues.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerName(String);

impl ConsumerName {
    /// Parses a consumer name, with the same rules as a [`Namespace`].
    pub fn parse(name: &str) -> Result<Self, NameError> {
        validate("consumer", name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name itself; also the routing key of its dead letters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_derived_from_the_namespace_and_consumer() {
        let ns = Namespace::parse("shop").unwrap();
        let orders = ConsumerName::parse("orders").unwrap();
        assert_eq!(ns.events_exchange(), "shop.events");
        assert_eq!(ns.dead_letter_exchange(), "shop.dlx");
        assert_eq!(ns.queue(&orders), "shop.orders");
        assert_eq!(ns.dead_letter_queue(&orders), "shop.orders.dlq");
    }

    #[test]
    fn empty_long_or_odd_names_are_refused_with_a_reason() {
        assert!(Namespace::parse("").is_err());
        assert!(Namespace::parse(&"a".repeat(101)).is_err());
        let err = ConsumerName::parse("a b").unwrap_err();
        assert_eq!(err.what, "consumer");
        assert!(err.reason.contains("ASCII"));
        assert!(Namespace::parse(".x").is_err());
        assert!(Namespace::parse("test-1.a_b").is_ok());
    }
}
