//! The shipment aggregate: one stream per order, `shipment-<order uuid>`,
//! and the shipping-cost rule.
//!
//! Lifecycle: `Created` → `Dispatched` → `Delivered`, or `Cancelled` before
//! dispatch. Asking again for what is already done is a no-op.

use serde::{Deserialize, Serialize};

use crate::decider::impl_decider;
use crate::values::{Money, OrderId, ShippingAddress};

/// The stream category of shipments.
pub const STREAM_CATEGORY: &str = "shipment";

/// Orders whose subtotal is at least this ship free: 50.00.
pub const FREE_SHIPPING_FROM: Money = Money::from_cents(5_000);
/// The flat shipping cost below [`FREE_SHIPPING_FROM`]: 4.99.
pub const BASE_SHIPPING_COST: Money = Money::from_cents(499);
/// How many items the flat cost covers.
pub const ITEMS_INCLUDED: u64 = 3;
/// The surcharge for each item beyond [`ITEMS_INCLUDED`]: 0.50.
pub const COST_PER_EXTRA_ITEM: Money = Money::from_cents(50);

/// The shipping cost of an order.
///
/// The rule: free when the subtotal is at least 50.00; otherwise 4.99 plus
/// 0.50 for every item beyond the third (`item_count` counts units, not
/// lines: two lines of 2 units each are 4 items, so 4.99 + 0.50 = 5.49).
pub fn shipping_cost(subtotal: Money, item_count: u64) -> Money {
    if subtotal >= FREE_SHIPPING_FROM {
        return Money::ZERO;
    }
    let extra_items = item_count.saturating_sub(ITEMS_INCLUDED);
    BASE_SHIPPING_COST.saturating_add(COST_PER_EXTRA_ITEM.saturating_mul(extra_items))
}

/// The stream of one order's shipment: `shipment-<order uuid>`.
pub fn stream_name(order_id: &OrderId) -> String {
    format!("{STREAM_CATEGORY}-{order_id}")
}

/// The shipment aggregate, as a [`crate::decider::Decider`].
#[derive(Clone, Copy, Debug)]
pub struct Shipment;
impl_decider!(Shipment, Shipment);

/// What can be asked of a shipment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates the shipment of a confirmed order.
    Create {
        /// The order shipped.
        order_id: OrderId,
        /// Where to.
        address: ShippingAddress,
        /// What the customer pays for it.
        cost: Money,
    },
    /// Hands it to the carrier.
    Dispatch,
    /// Records that it arrived.
    ConfirmDelivery,
    /// Cancels it (before dispatch).
    Cancel,
}

/// What a shipment records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A shipment was created.
    ShipmentCreated {
        /// The order shipped.
        order_id: OrderId,
        /// Where to.
        address: ShippingAddress,
        /// What the customer pays for it.
        cost_cents: Money,
    },
    /// It was handed to the carrier.
    ShipmentDispatched {
        /// The order shipped.
        order_id: OrderId,
    },
    /// It arrived.
    ShipmentDelivered {
        /// The order shipped.
        order_id: OrderId,
    },
    /// It was cancelled.
    ShipmentCancelled {
        /// The order.
        order_id: OrderId,
    },
}

impl Event {
    /// Every event type of this aggregate.
    pub const TYPES: &'static [&'static str] = &[
        "ShipmentCreated",
        "ShipmentDispatched",
        "ShipmentDelivered",
        "ShipmentCancelled",
    ];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::ShipmentCreated { .. } => "ShipmentCreated",
            Self::ShipmentDispatched { .. } => "ShipmentDispatched",
            Self::ShipmentDelivered { .. } => "ShipmentDelivered",
            Self::ShipmentCancelled { .. } => "ShipmentCancelled",
        }
    }

    /// The order the event is about.
    pub fn order_id(&self) -> OrderId {
        match self {
            Self::ShipmentCreated { order_id, .. }
            | Self::ShipmentDispatched { order_id }
            | Self::ShipmentDelivered { order_id }
            | Self::ShipmentCancelled { order_id } => *order_id,
        }
    }
}

/// Where a shipment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Created, waiting for dispatch.
    Created,
    /// With the carrier.
    Dispatched,
    /// Arrived.
    Delivered,
    /// Cancelled before dispatch.
    Cancelled,
}

/// What a shipment knows; the default is "not created".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The shipment, once created.
    pub shipment: Option<ShipmentInfo>,
}

/// A shipment that exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentInfo {
    /// The order shipped.
    pub order_id: OrderId,
    /// Where to.
    pub address: ShippingAddress,
    /// What the customer pays for it.
    pub cost: Money,
    /// Where it is.
    pub status: Status,
}

/// Why a shipment command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No shipment was created for this order.
    #[error("no such shipment")]
    NotCreated,
    /// The shipment was cancelled.
    #[error("the shipment of order {order_id} was cancelled")]
    Cancelled {
        /// The order.
        order_id: OrderId,
    },
    /// Confirming delivery of a shipment that was not dispatched.
    #[error("the shipment of order {order_id} was not dispatched")]
    NotDispatched {
        /// The order.
        order_id: OrderId,
    },
    /// Cancelling a shipment that was dispatched.
    #[error("the shipment of order {order_id} was already dispatched")]
    AlreadyDispatched {
        /// The order.
        order_id: OrderId,
    },
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotCreated => "shipment_not_found",
            Self::Cancelled { .. } => "shipment_cancelled",
            Self::NotDispatched { .. } => "not_dispatched",
            Self::AlreadyDispatched { .. } => "already_dispatched",
        }
    }
}

/// Decides what happens for a command.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
    use Status::*;
    let Some(shipment) = &state.shipment else {
        return match command {
            Command::Create {
                order_id,
                address,
                cost,
            } => Ok(vec![Event::ShipmentCreated {
                order_id,
                address,
                cost_cents: cost,
            }]),
            _ => Err(Error::NotCreated),
        };
    };
    let order_id = shipment.order_id;
    match (command, shipment.status) {
        // Cancelling again is a no-op; anything else is refused.
        (Command::Cancel, Cancelled) => Ok(vec![]),
        (_, Cancelled) => Err(Error::Cancelled { order_id }),
        (Command::Create { .. }, _) => Ok(vec![]),
        (Command::Dispatch, Created) => Ok(vec![Event::ShipmentDispatched { order_id }]),
        (Command::Dispatch, _) => Ok(vec![]),
        (Command::ConfirmDelivery, Created) => Err(Error::NotDispatched { order_id }),
        (Command::ConfirmDelivery, Dispatched) => Ok(vec![Event::ShipmentDelivered { order_id }]),
        (Command::ConfirmDelivery, _) => Ok(vec![]),
        (Command::Cancel, Created) => Ok(vec![Event::ShipmentCancelled { order_id }]),
        (Command::Cancel, _) => Err(Error::AlreadyDispatched { order_id }),
    }
}

/// Applies one event.
pub fn evolve(mut state: State, event: &Event) -> State {
    let status = match event {
        Event::ShipmentCreated {
            order_id,
            address,
            cost_cents,
        } => {
            state.shipment = Some(ShipmentInfo {
                order_id: *order_id,
                address: address.clone(),
                cost: *cost_cents,
                status: Status::Created,
            });
            return state;
        }
        Event::ShipmentDispatched { .. } => Status::Dispatched,
        Event::ShipmentDelivered { .. } => Status::Delivered,
        Event::ShipmentCancelled { .. } => Status::Cancelled,
    };
    if let Some(shipment) = state.shipment.as_mut() {
        shipment.status = status;
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given::given;
    use uuid::Uuid;

    fn order_id() -> OrderId {
        OrderId::from_uuid(Uuid::from_u128(7))
    }

    fn address() -> ShippingAddress {
        ShippingAddress::parse("1 Main St").unwrap()
    }

    fn create() -> Command {
        Command::Create {
            order_id: order_id(),
            address: address(),
            cost: Money::from_cents(499),
        }
    }

    fn created() -> Event {
        Event::ShipmentCreated {
            order_id: order_id(),
            address: address(),
            cost_cents: Money::from_cents(499),
        }
    }

    fn dispatched() -> Event {
        Event::ShipmentDispatched {
            order_id: order_id(),
        }
    }

    fn cancelled() -> Event {
        Event::ShipmentCancelled {
            order_id: order_id(),
        }
    }

    #[test]
    fn shipping_is_free_from_fifty_and_otherwise_costs_4_99_plus_0_50_per_item_beyond_three() {
        assert_eq!(shipping_cost(Money::from_cents(5000), 10), Money::ZERO);
        assert_eq!(
            shipping_cost(Money::from_cents(4999), 1),
            Money::from_cents(499)
        );
        assert_eq!(
            shipping_cost(Money::from_cents(100), 3),
            Money::from_cents(499)
        );
        assert_eq!(
            shipping_cost(Money::from_cents(100), 4),
            Money::from_cents(549)
        );
        assert_eq!(
            shipping_cost(Money::from_cents(100), 10),
            Money::from_cents(849)
        );
    }

    #[test]
    fn creating_a_shipment_records_it() {
        given::<Shipment>(vec![])
            .when(create())
            .then(vec![created()]);
        given::<Shipment>(vec![created()])
            .when(create())
            .then(vec![]);
    }

    #[test]
    fn creating_a_cancelled_shipment_again_is_refused() {
        given::<Shipment>(vec![created(), cancelled()])
            .when(create())
            .then_error(Error::Cancelled {
                order_id: order_id(),
            });
    }

    #[test]
    fn dispatching_a_created_shipment_records_it() {
        given::<Shipment>(vec![created()])
            .when(Command::Dispatch)
            .then(vec![dispatched()]);
        given::<Shipment>(vec![created(), dispatched()])
            .when(Command::Dispatch)
            .then(vec![]);
    }

    #[test]
    fn dispatching_a_missing_or_cancelled_shipment_is_refused() {
        given::<Shipment>(vec![])
            .when(Command::Dispatch)
            .then_error(Error::NotCreated);
        given::<Shipment>(vec![created(), cancelled()])
            .when(Command::Dispatch)
            .then_error(Error::Cancelled {
                order_id: order_id(),
            });
    }

    #[test]
    fn confirming_delivery_of_a_dispatched_shipment_records_it() {
        given::<Shipment>(vec![created(), dispatched()])
            .when(Command::ConfirmDelivery)
            .then(vec![Event::ShipmentDelivered {
                order_id: order_id(),
            }]);
    }

    #[test]
    fn confirming_delivery_before_dispatch_is_refused() {
        given::<Shipment>(vec![created()])
            .when(Command::ConfirmDelivery)
            .then_error(Error::NotDispatched {
                order_id: order_id(),
            });
        given::<Shipment>(vec![])
            .when(Command::ConfirmDelivery)
            .then_error(Error::NotCreated);
    }

    #[test]
    fn cancelling_before_dispatch_records_it_once() {
        given::<Shipment>(vec![created()])
            .when(Command::Cancel)
            .then(vec![cancelled()]);
        given::<Shipment>(vec![created(), cancelled()])
            .when(Command::Cancel)
            .then(vec![]);
    }

    #[test]
    fn cancelling_after_dispatch_or_without_a_shipment_is_refused() {
        given::<Shipment>(vec![created(), dispatched()])
            .when(Command::Cancel)
            .then_error(Error::AlreadyDispatched {
                order_id: order_id(),
            });
        given::<Shipment>(vec![])
            .when(Command::Cancel)
            .then_error(Error::NotCreated);
        assert_eq!(
            Error::AlreadyDispatched {
                order_id: order_id()
            }
            .code(),
            "already_dispatched"
        );
    }
}
