//! The stock aggregate: one stream per SKU, `stock-<SKU>`.
//!
//! Counts units `available`, `reserved` (held for orders) and `shipped`
//! (committed at dispatch), so that every unit ever restocked is in exactly
//! one of them. Rules: stock is never negative; a reservation is per order
//! and never taken twice (asking again is a no-op); only what was reserved
//! is released or committed. A short reservation is an event, not an
//! error, because the fulfillment saga reacts to it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decider::impl_decider;
use crate::values::{OrderId, Quantity, Sku};

/// The stream category of stock.
pub const STREAM_CATEGORY: &str = "stock";

/// The most units of one SKU on hand (available plus reserved).
pub const MAX_ON_HAND: u64 = 1_000_000_000;

/// The stream of one SKU's stock: `stock-<SKU>`.
pub fn stream_name(sku: &Sku) -> String {
    format!("{STREAM_CATEGORY}-{sku}")
}

/// The stock aggregate, as a [`crate::decider::Decider`].
#[derive(Clone, Copy, Debug)]
pub struct Stock;
impl_decider!(Stock, Stock);

/// What can be asked of a SKU's stock. Every command names the SKU (it is the
/// stream's id) so that its events are self-describing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds units.
    Restock {
        /// The SKU.
        sku: Sku,
        /// How many units arrive.
        quantity: Quantity,
    },
    /// Holds units for an order; a no-op if this order already holds some.
    ReserveStock {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// How many units.
        quantity: Quantity,
    },
    /// Returns an order's reserved units; a no-op if it holds none.
    ReleaseStock {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
    },
    /// At dispatch, turns an order's reserved units into shipped ones.
    CommitReservation {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
    },
}

/// What a SKU's stock records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Units arrived.
    StockRestocked {
        /// The SKU.
        sku: Sku,
        /// How many.
        quantity: Quantity,
    },
    /// Units were reserved for an order.
    StockReserved {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// How many.
        quantity: Quantity,
    },
    /// Not enough units were available for an order.
    StockReservationRejected {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// How many were asked for.
        requested: Quantity,
        /// How many were available.
        available: u64,
    },
    /// An order's reserved units were returned.
    StockReleased {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// How many.
        quantity: Quantity,
    },
    /// An order's reserved units left the warehouse.
    ReservationCommitted {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// How many.
        quantity: Quantity,
    },
}

impl Event {
    /// Every event type of this aggregate.
    pub const TYPES: &'static [&'static str] = &[
        "StockRestocked",
        "StockReserved",
        "StockReservationRejected",
        "StockReleased",
        "ReservationCommitted",
    ];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::StockRestocked { .. } => "StockRestocked",
            Self::StockReserved { .. } => "StockReserved",
            Self::StockReservationRejected { .. } => "StockReservationRejected",
            Self::StockReleased { .. } => "StockReleased",
            Self::ReservationCommitted { .. } => "ReservationCommitted",
        }
    }

    /// The SKU the event is about.
    pub fn sku(&self) -> &Sku {
        match self {
            Self::StockRestocked { sku, .. }
            | Self::StockReserved { sku, .. }
            | Self::StockReservationRejected { sku, .. }
            | Self::StockReleased { sku, .. }
            | Self::ReservationCommitted { sku, .. } => sku,
        }
    }

    /// The order the event is about, if any.
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            Self::StockRestocked { .. } => None,
            Self::StockReserved { order_id, .. }
            | Self::StockReservationRejected { order_id, .. }
            | Self::StockReleased { order_id, .. }
            | Self::ReservationCommitted { order_id, .. } => Some(*order_id),
        }
    }
}

/// What a SKU's stock knows; the default is "nothing on hand".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Units free to reserve.
    pub available: u64,
    /// Units held for orders (the sum of `reservations`).
    pub reserved: u64,
    /// Units committed at dispatch.
    pub shipped: u64,
    /// Units ever restocked: always `available + reserved + shipped`.
    pub restocked: u64,
    /// Units held, by order.
    pub reservations: BTreeMap<OrderId, Quantity>,
    /// Units shipped, by order (a committed reservation is never taken again).
    pub committed: BTreeMap<OrderId, Quantity>,
}

/// Why a stock command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Restocking would put more than [`MAX_ON_HAND`] units on hand.
    #[error("at most {max} units can be on hand")]
    TooMuchStock {
        /// The limit.
        max: u64,
    },
    /// Committing a reservation the order does not hold.
    #[error("order {order_id} holds no reservation")]
    NoReservation {
        /// The order.
        order_id: OrderId,
    },
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooMuchStock { .. } => "stock_limit",
            Self::NoReservation { .. } => "no_reservation",
        }
    }
}

/// Decides what happens for a command.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::Restock { sku, quantity } => {
            let on_hand = state.available + state.reserved + u64::from(quantity.get());
            if on_hand > MAX_ON_HAND {
                return Err(Error::TooMuchStock { max: MAX_ON_HAND });
            }
            Ok(vec![Event::StockRestocked { sku, quantity }])
        }
        Command::ReserveStock {
            sku,
            order_id,
            quantity,
        } => {
            if state.reservations.contains_key(&order_id) || state.committed.contains_key(&order_id)
            {
                return Ok(vec![]);
            }
            if u64::from(quantity.get()) > state.available {
                return Ok(vec![Event::StockReservationRejected {
                    sku,
                    order_id,
                    requested: quantity,
                    available: state.available,
                }]);
            }
            Ok(vec![Event::StockReserved {
                sku,
                order_id,
                quantity,
            }])
        }
        Command::ReleaseStock { sku, order_id } => Ok(state
            .reservations
            .get(&order_id)
            .map(|quantity| Event::StockReleased {
                sku,
                order_id,
                quantity: *quantity,
            })
            .into_iter()
            .collect()),
        Command::CommitReservation { sku, order_id } => {
            if state.committed.contains_key(&order_id) {
                return Ok(vec![]);
            }
            let quantity = state
                .reservations
                .get(&order_id)
                .ok_or(Error::NoReservation { order_id })?;
            Ok(vec![Event::ReservationCommitted {
                sku,
                order_id,
                quantity: *quantity,
            }])
        }
    }
}

/// Applies one event.
pub fn evolve(mut state: State, event: &Event) -> State {
    match event {
        Event::StockRestocked { quantity, .. } => {
            let units = u64::from(quantity.get());
            state.available += units;
            state.restocked += units;
        }
        Event::StockReserved {
            order_id, quantity, ..
        } => {
            let units = u64::from(quantity.get());
            state.available = state.available.saturating_sub(units);
            state.reserved += units;
            state.reservations.insert(*order_id, *quantity);
        }
        Event::StockReservationRejected { .. } => {}
        Event::StockReleased { order_id, .. } => {
            if let Some(quantity) = state.reservations.remove(order_id) {
                let units = u64::from(quantity.get());
                state.reserved = state.reserved.saturating_sub(units);
                state.available += units;
            }
        }
        Event::ReservationCommitted { order_id, .. } => {
            if let Some(quantity) = state.reservations.remove(order_id) {
                let units = u64::from(quantity.get());
                state.reserved = state.reserved.saturating_sub(units);
                state.shipped += units;
                state.committed.insert(*order_id, quantity);
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given::given;
    use crate::decider::Decider;
    use uuid::Uuid;

    fn sku() -> Sku {
        Sku::parse("MUG").unwrap()
    }

    fn qty(n: i64) -> Quantity {
        Quantity::parse(n).unwrap()
    }

    fn order(n: u128) -> OrderId {
        OrderId::from_uuid(Uuid::from_u128(n))
    }

    fn restocked(n: i64) -> Event {
        Event::StockRestocked {
            sku: sku(),
            quantity: qty(n),
        }
    }

    fn reserved(order_n: u128, n: i64) -> Event {
        Event::StockReserved {
            sku: sku(),
            order_id: order(order_n),
            quantity: qty(n),
        }
    }

    fn reserve(order_n: u128, n: i64) -> Command {
        Command::ReserveStock {
            sku: sku(),
            order_id: order(order_n),
            quantity: qty(n),
        }
    }

    #[test]
    fn restocking_adds_available_units() {
        given::<Stock>(vec![])
            .when(Command::Restock {
                sku: sku(),
                quantity: qty(5),
            })
            .then(vec![restocked(5)]);
        let state = Stock::fold(&[restocked(5), restocked(3)]);
        assert_eq!((state.available, state.restocked), (8, 8));
    }

    #[test]
    fn restocking_beyond_the_on_hand_limit_is_refused() {
        let history = (0..1000).map(|_| restocked(1_000_000)).collect();
        given::<Stock>(history)
            .when(Command::Restock {
                sku: sku(),
                quantity: qty(1),
            })
            .then_error(Error::TooMuchStock { max: MAX_ON_HAND });
    }

    #[test]
    fn reserving_what_is_available_reserves_it() {
        given::<Stock>(vec![restocked(5)])
            .when(reserve(1, 5))
            .then(vec![reserved(1, 5)]);
        let state = Stock::fold(&[restocked(5), reserved(1, 3)]);
        assert_eq!((state.available, state.reserved), (2, 3));
    }

    #[test]
    fn reserving_more_than_is_available_is_rejected_as_an_event() {
        given::<Stock>(vec![restocked(5), reserved(1, 4)])
            .when(reserve(2, 2))
            .then(vec![Event::StockReservationRejected {
                sku: sku(),
                order_id: order(2),
                requested: qty(2),
                available: 1,
            }]);
    }

    #[test]
    fn reserving_again_for_the_same_order_changes_nothing() {
        given::<Stock>(vec![restocked(5), reserved(1, 2)])
            .when(reserve(1, 2))
            .then(vec![]);
        let committed = Event::ReservationCommitted {
            sku: sku(),
            order_id: order(1),
            quantity: qty(2),
        };
        given::<Stock>(vec![restocked(5), reserved(1, 2), committed])
            .when(reserve(1, 2))
            .then(vec![]);
    }

    #[test]
    fn releasing_returns_exactly_what_the_order_reserved() {
        given::<Stock>(vec![restocked(5), reserved(1, 2)])
            .when(Command::ReleaseStock {
                sku: sku(),
                order_id: order(1),
            })
            .then(vec![Event::StockReleased {
                sku: sku(),
                order_id: order(1),
                quantity: qty(2),
            }]);
    }

    #[test]
    fn releasing_for_an_order_that_reserved_nothing_changes_nothing() {
        given::<Stock>(vec![restocked(5), reserved(1, 2)])
            .when(Command::ReleaseStock {
                sku: sku(),
                order_id: order(2),
            })
            .then(vec![]);
        let released = Event::StockReleased {
            sku: sku(),
            order_id: order(1),
            quantity: qty(2),
        };
        given::<Stock>(vec![restocked(5), reserved(1, 2), released])
            .when(Command::ReleaseStock {
                sku: sku(),
                order_id: order(1),
            })
            .then(vec![]);
    }

    #[test]
    fn committing_a_reservation_ships_its_units() {
        let committed = Event::ReservationCommitted {
            sku: sku(),
            order_id: order(1),
            quantity: qty(2),
        };
        given::<Stock>(vec![restocked(5), reserved(1, 2)])
            .when(Command::CommitReservation {
                sku: sku(),
                order_id: order(1),
            })
            .then(vec![committed.clone()]);
        let state = Stock::fold(&[restocked(5), reserved(1, 2), committed.clone()]);
        assert_eq!((state.available, state.reserved, state.shipped), (3, 0, 2));
        given::<Stock>(vec![restocked(5), reserved(1, 2), committed])
            .when(Command::CommitReservation {
                sku: sku(),
                order_id: order(1),
            })
            .then(vec![]);
    }

    #[test]
    fn committing_without_a_reservation_is_refused() {
        given::<Stock>(vec![restocked(5)])
            .when(Command::CommitReservation {
                sku: sku(),
                order_id: order(1),
            })
            .then_error(Error::NoReservation { order_id: order(1) });
        assert_eq!(
            Error::NoReservation { order_id: order(1) }.code(),
            "no_reservation"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn command() -> impl Strategy<Value = Command> {
            let order = (0u128..4).prop_map(order);
            let quantity = (1i64..8).prop_map(qty);
            prop_oneof![
                quantity.clone().prop_map(|quantity| Command::Restock {
                    sku: sku(),
                    quantity
                }),
                (order.clone(), quantity).prop_map(|(order_id, quantity)| {
                    Command::ReserveStock {
                        sku: sku(),
                        order_id,
                        quantity,
                    }
                }),
                order.clone().prop_map(|order_id| Command::ReleaseStock {
                    sku: sku(),
                    order_id
                }),
                order.prop_map(|order_id| Command::CommitReservation {
                    sku: sku(),
                    order_id
                }),
            ]
        }

        proptest! {
            #[test]
            fn random_commands_never_make_stock_negative_or_lose_units(
                commands in proptest::collection::vec(command(), 0..80)
            ) {
                let mut state = State::default();
                for command in commands {
                    let Ok(events) = decide(&state, command.clone()) else { continue };
                    for event in &events {
                        match event {
                            Event::StockReserved { quantity, order_id, .. } => {
                                prop_assert!(u64::from(quantity.get()) <= state.available);
                                prop_assert!(!state.reservations.contains_key(order_id));
                                prop_assert!(!state.committed.contains_key(order_id));
                            }
                            Event::StockReleased { order_id, quantity, .. }
                            | Event::ReservationCommitted { order_id, quantity, .. } => {
                                prop_assert_eq!(state.reservations.get(order_id), Some(quantity));
                            }
                            _ => {}
                        }
                        state = evolve(state, event);
                    }
                    prop_assert_eq!(state.restocked, state.available + state.reserved + state.shipped);
                    let held: u64 = state.reservations.values().map(|q| u64::from(q.get())).sum();
                    prop_assert_eq!(held, state.reserved);
                    let shipped: u64 = state.committed.values().map(|q| u64::from(q.get())).sum();
                    prop_assert_eq!(shipped, state.shipped);
                }
            }
        }
    }
}
