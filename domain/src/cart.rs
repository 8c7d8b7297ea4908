//! The cart aggregate: one stream per customer, `cart-<customer uuid>`.
//!
//! Rules: a discontinued product cannot be added (the command carries the
//! product facts the carts service looked up); a line's quantity stays within
//! [`Quantity::MAX`]; at most [`MAX_LINES`] lines; checking out an empty cart
//! is refused, and checking out empties the cart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decider::impl_decider;
use crate::values::{CustomerId, OrderId, Price, Quantity, Sku};

/// The stream category of carts.
pub const STREAM_CATEGORY: &str = "cart";

/// The most distinct SKUs a cart holds.
pub const MAX_LINES: usize = 100;

/// The stream of one customer's cart: `cart-<customer uuid>`.
pub fn stream_name(customer_id: &CustomerId) -> String {
    format!("{STREAM_CATEGORY}-{customer_id}")
}

/// The cart aggregate, as a [`crate::decider::Decider`].
#[derive(Clone, Copy, Debug)]
pub struct Cart;
impl_decider!(Cart, Cart);

/// What can be asked of a cart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds units of a product (to the line of that SKU, if any).
    AddItem {
        /// Whose cart.
        customer_id: CustomerId,
        /// The product.
        sku: Sku,
        /// How many units to add.
        quantity: Quantity,
        /// The product's current unit price, as looked up by the service.
        unit_price: Price,
        /// Whether the product is discontinued, as looked up by the service.
        discontinued: bool,
    },
    /// Removes the line of a product.
    RemoveItem {
        /// Whose cart.
        customer_id: CustomerId,
        /// The product.
        sku: Sku,
    },
    /// Turns the cart into an order (the orders service places it) and empties it.
    CheckOut {
        /// Whose cart.
        customer_id: CustomerId,
        /// The id of the order to be placed.
        order_id: OrderId,
    },
}

/// One line of a cart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The product.
    pub sku: Sku,
    /// How many units.
    pub quantity: Quantity,
    /// The unit price when last added.
    pub unit_price_cents: Price,
}

/// What a cart records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Units of a product were added.
    CartItemAdded {
        /// Whose cart.
        customer_id: CustomerId,
        /// The product.
        sku: Sku,
        /// How many units were added (the line holds the sum of all adds).
        quantity: Quantity,
        /// The unit price at the time (it replaces the line's price).
        unit_price_cents: Price,
    },
    /// A product's line was removed.
    CartItemRemoved {
        /// Whose cart.
        customer_id: CustomerId,
        /// The product.
        sku: Sku,
    },
    /// The cart was checked out into an order and is now empty.
    CartCheckedOut {
        /// Whose cart.
        customer_id: CustomerId,
        /// The order to be placed.
        order_id: OrderId,
        /// The lines checked out, by SKU.
        lines: Vec<CartLine>,
    },
}

impl Event {
    /// Every event type of this aggregate.
    pub const TYPES: &'static [&'static str] =
        &["CartItemAdded", "CartItemRemoved", "CartCheckedOut"];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::CartItemAdded { .. } => "CartItemAdded",
            Self::CartItemRemoved { .. } => "CartItemRemoved",
            Self::CartCheckedOut { .. } => "CartCheckedOut",
        }
    }

    /// Whose cart the event is about.
    pub fn customer_id(&self) -> CustomerId {
        match self {
            Self::CartItemAdded { customer_id, .. }
            | Self::CartItemRemoved { customer_id, .. }
            | Self::CartCheckedOut { customer_id, .. } => *customer_id,
        }
    }
}

/// What a cart knows; the default is an empty cart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The lines, by SKU.
    pub lines: BTreeMap<Sku, CartLine>,
}

/// Why a cart command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The product is discontinued.
    #[error("product {sku} is discontinued")]
    ProductDiscontinued {
        /// The product.
        sku: Sku,
    },
    /// The line would hold more than [`Quantity::MAX`] units.
    #[error("a cart line holds at most {max} units of {sku}")]
    QuantityLimit {
        /// The product.
        sku: Sku,
        /// The limit.
        max: u32,
    },
    /// The cart already has [`MAX_LINES`] lines.
    #[error("a cart holds at most {max} products")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// The product is not in the cart.
    #[error("product {sku} is not in the cart")]
    NotInCart {
        /// The product.
        sku: Sku,
    },
    /// Checking out an empty cart.
    #[error("the cart is empty")]
    EmptyCart,
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ProductDiscontinued { .. } => "product_discontinued",
            Self::QuantityLimit { .. } => "quantity_limit",
            Self::TooManyLines { .. } => "too_many_lines",
            Self::NotInCart { .. } => "not_in_cart",
            Self::EmptyCart => "empty_cart",
        }
    }
}

/// Decides what happens for a command.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::AddItem {
            customer_id,
            sku,
            quantity,
            unit_price,
            discontinued,
        } => {
            if discontinued {
                return Err(Error::ProductDiscontinued { sku });
            }
            match state.lines.get(&sku) {
                Some(line) => {
                    let sum = u64::from(line.quantity.get()) + u64::from(quantity.get());
                    if sum > u64::from(Quantity::MAX) {
                        return Err(Error::QuantityLimit {
                            sku,
                            max: Quantity::MAX,
                        });
                    }
                }
                None if state.lines.len() >= MAX_LINES => {
                    return Err(Error::TooManyLines { max: MAX_LINES })
                }
                None => {}
            }
            Ok(vec![Event::CartItemAdded {
                customer_id,
                sku,
                quantity,
                unit_price_cents: unit_price,
            }])
        }
        Command::RemoveItem { customer_id, sku } => {
            if !state.lines.contains_key(&sku) {
                return Err(Error::NotInCart { sku });
            }
            Ok(vec![Event::CartItemRemoved { customer_id, sku }])
        }
        Command::CheckOut {
            customer_id,
            order_id,
        } => {
            if state.lines.is_empty() {
                return Err(Error::EmptyCart);
            }
            Ok(vec![Event::CartCheckedOut {
                customer_id,
                order_id,
                lines: state.lines.values().cloned().collect(),
            }])
        }
    }
}

/// Applies one event.
pub fn evolve(mut state: State, event: &Event) -> State {
    match event {
        Event::CartItemAdded {
            sku,
            quantity,
            unit_price_cents,
            ..
        } => {
            match state.lines.get_mut(sku) {
                Some(line) => {
                    // Add up and keep the latest price. A sum over the limit
                    // is never recorded (decide refuses it); capping only
                    // guards a hand-made history.
                    let sum = line.quantity.get().saturating_add(quantity.get());
                    line.quantity = Quantity::try_from(sum.min(Quantity::MAX)).unwrap_or(*quantity);
                    line.unit_price_cents = *unit_price_cents;
                }
                None => {
                    state.lines.insert(
                        sku.clone(),
                        CartLine {
                            sku: sku.clone(),
                            quantity: *quantity,
                            unit_price_cents: *unit_price_cents,
                        },
                    );
                }
            }
        }
        Event::CartItemRemoved { sku, .. } => {
            state.lines.remove(sku);
        }
        Event::CartCheckedOut { .. } => state.lines.clear(),
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given::given;
    use crate::decider::Decider;
    use uuid::Uuid;

    fn customer() -> CustomerId {
        CustomerId::from_uuid(Uuid::from_u128(1))
    }

    fn sku(raw: &str) -> Sku {
        Sku::parse(raw).unwrap()
    }

    fn qty(n: i64) -> Quantity {
        Quantity::parse(n).unwrap()
    }

    fn price(cents: i64) -> Price {
        Price::parse(cents).unwrap()
    }

    fn add(raw: &str, quantity: i64, cents: i64, discontinued: bool) -> Command {
        Command::AddItem {
            customer_id: customer(),
            sku: sku(raw),
            quantity: qty(quantity),
            unit_price: price(cents),
            discontinued,
        }
    }

    fn added(raw: &str, quantity: i64, cents: i64) -> Event {
        Event::CartItemAdded {
            customer_id: customer(),
            sku: sku(raw),
            quantity: qty(quantity),
            unit_price_cents: price(cents),
        }
    }

    #[test]
    fn adding_an_item_records_it_with_its_price() {
        given::<Cart>(vec![])
            .when(add("A", 2, 500, false))
            .then(vec![added("A", 2, 500)]);
    }

    #[test]
    fn adding_a_discontinued_product_is_refused() {
        given::<Cart>(vec![])
            .when(add("A", 1, 500, true))
            .then_error(Error::ProductDiscontinued { sku: sku("A") });
    }

    #[test]
    fn adding_more_of_a_product_adds_up_and_keeps_the_latest_price() {
        let state = Cart::fold(&[added("A", 2, 500), added("A", 3, 450)]);
        assert_eq!(
            state.lines.get(&sku("A")),
            Some(&CartLine {
                sku: sku("A"),
                quantity: qty(5),
                unit_price_cents: price(450)
            })
        );
    }

    #[test]
    fn adding_beyond_the_line_quantity_limit_is_refused() {
        given::<Cart>(vec![added("A", 999_999, 500)])
            .when(add("A", 2, 500, false))
            .then_error(Error::QuantityLimit {
                sku: sku("A"),
                max: Quantity::MAX,
            });
    }

    #[test]
    fn adding_a_new_product_to_a_full_cart_is_refused() {
        let full = (0..MAX_LINES)
            .map(|n| added(&format!("S{n}"), 1, 100))
            .collect();
        given::<Cart>(full)
            .when(add("NEW", 1, 100, false))
            .then_error(Error::TooManyLines { max: MAX_LINES });
    }

    #[test]
    fn removing_an_item_in_the_cart_records_it() {
        given::<Cart>(vec![added("A", 1, 500)])
            .when(Command::RemoveItem {
                customer_id: customer(),
                sku: sku("A"),
            })
            .then(vec![Event::CartItemRemoved {
                customer_id: customer(),
                sku: sku("A"),
            }]);
    }

    #[test]
    fn removing_an_item_not_in_the_cart_is_refused() {
        given::<Cart>(vec![added("A", 1, 500)])
            .when(Command::RemoveItem {
                customer_id: customer(),
                sku: sku("B"),
            })
            .then_error(Error::NotInCart { sku: sku("B") });
    }

    #[test]
    fn checking_out_records_the_lines_and_empties_the_cart() {
        let order_id = OrderId::from_uuid(Uuid::from_u128(9));
        let history = vec![added("B", 1, 300), added("A", 2, 500)];
        let checked_out = Event::CartCheckedOut {
            customer_id: customer(),
            order_id,
            lines: vec![
                CartLine {
                    sku: sku("A"),
                    quantity: qty(2),
                    unit_price_cents: price(500),
                },
                CartLine {
                    sku: sku("B"),
                    quantity: qty(1),
                    unit_price_cents: price(300),
                },
            ],
        };
        given::<Cart>(history.clone())
            .when(Command::CheckOut {
                customer_id: customer(),
                order_id,
            })
            .then(vec![checked_out.clone()]);
        let after: Vec<Event> = history.into_iter().chain([checked_out]).collect();
        assert!(Cart::fold(&after).lines.is_empty());
    }

    #[test]
    fn checking_out_an_empty_cart_is_refused() {
        let order_id = OrderId::from_uuid(Uuid::from_u128(9));
        given::<Cart>(vec![])
            .when(Command::CheckOut {
                customer_id: customer(),
                order_id,
            })
            .then_error(Error::EmptyCart);
        given::<Cart>(vec![
            added("A", 1, 500),
            Event::CartItemRemoved {
                customer_id: customer(),
                sku: sku("A"),
            },
        ])
        .when(Command::CheckOut {
            customer_id: customer(),
            order_id,
        })
        .then_error(Error::EmptyCart);
        assert_eq!(Error::EmptyCart.code(), "empty_cart");
    }
}
