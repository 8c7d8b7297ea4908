//! The customer aggregate: one stream per customer, `customer-<uuid>`.
//!
//! Rules: a customer registers once. That an email is used by one customer
//! only is a cross-stream rule the customers service keeps (it owns the
//! email index); this aggregate only keeps its own history consistent.

use serde::{Deserialize, Serialize};

use crate::decider::impl_decider;
use crate::values::{CustomerId, CustomerName, Email};

/// The stream category of customers.
pub const STREAM_CATEGORY: &str = "customer";

/// The stream of one customer: `customer-<uuid>`.
pub fn stream_name(customer_id: &CustomerId) -> String {
    format!("{STREAM_CATEGORY}-{customer_id}")
}

/// The customer aggregate, as a [`crate::decider::Decider`].
#[derive(Clone, Copy, Debug)]
pub struct Customer;
impl_decider!(Customer, Customer);

/// What can be asked of a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Registers a new customer.
    Register {
        /// The new customer's id.
        customer_id: CustomerId,
        /// Their email address.
        email: Email,
        /// Their name.
        name: CustomerName,
    },
}

/// What a customer records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A customer registered.
    CustomerRegistered {
        /// The customer.
        customer_id: CustomerId,
        /// Their email address.
        email: Email,
        /// Their name.
        name: CustomerName,
    },
}

impl Event {
    /// Every event type of this aggregate.
    pub const TYPES: &'static [&'static str] = &["CustomerRegistered"];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::CustomerRegistered { .. } => "CustomerRegistered",
        }
    }

    /// The customer the event is about.
    pub fn customer_id(&self) -> CustomerId {
        match self {
            Self::CustomerRegistered { customer_id, .. } => *customer_id,
        }
    }
}

/// What a customer knows; the default is "not registered".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The customer, once registered.
    pub customer: Option<CustomerInfo>,
}

/// A registered customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerInfo {
    /// Their id.
    pub customer_id: CustomerId,
    /// Their email address.
    pub email: Email,
    /// Their name.
    pub name: CustomerName,
}

/// Why a customer command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The customer is already registered.
    #[error("customer {customer_id} is already registered")]
    AlreadyRegistered {
        /// The customer.
        customer_id: CustomerId,
    },
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyRegistered { .. } => "already_registered",
        }
    }
}

/// Decides what happens for a command.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::Register {
            customer_id,
            email,
            name,
        } => match &state.customer {
            Some(existing) => Err(Error::AlreadyRegistered {
                customer_id: existing.customer_id,
            }),
            None => Ok(vec![Event::CustomerRegistered {
                customer_id,
                email,
                name,
            }]),
        },
    }
}

/// Applies one event.
pub fn evolve(mut state: State, event: &Event) -> State {
    match event {
        Event::CustomerRegistered {
            customer_id,
            email,
            name,
        } => {
            state.customer = Some(CustomerInfo {
                customer_id: *customer_id,
                email: email.clone(),
                name: name.clone(),
            });
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given::given;
    use uuid::Uuid;

    fn id() -> CustomerId {
        CustomerId::from_uuid(Uuid::from_u128(1))
    }

    fn register() -> Command {
        Command::Register {
            customer_id: id(),
            email: Email::parse("ada@example.com").unwrap(),
            name: CustomerName::parse("Ada").unwrap(),
        }
    }

    fn registered() -> Event {
        Event::CustomerRegistered {
            customer_id: id(),
            email: Email::parse("ada@example.com").unwrap(),
            name: CustomerName::parse("Ada").unwrap(),
        }
    }

    #[test]
    fn registering_a_new_customer_records_it() {
        given::<Customer>(vec![])
            .when(register())
            .then(vec![registered()]);
    }

    #[test]
    fn registering_the_same_customer_twice_is_refused() {
        given::<Customer>(vec![registered()])
            .when(register())
            .then_error(Error::AlreadyRegistered { customer_id: id() });
        assert_eq!(
            Error::AlreadyRegistered { customer_id: id() }.code(),
            "already_registered"
        );
    }
}
