//! The wishlist aggregate: one stream per customer, `wishlist-<customer uuid>`.
//!
//! Rules: adding a SKU that is already there changes nothing; removing one
//! that is not there is refused; at most [`MAX_ITEMS`] SKUs.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::decider::impl_decider;
use crate::values::{CustomerId, Sku};

/// The stream category of wishlists.
pub const STREAM_CATEGORY: &str = "wishlist";

/// The most SKUs a wishlist holds.
pub const MAX_ITEMS: usize = 200;

/// The stream of one customer's wishlist: `wishlist-<customer uuid>`.
pub fn stream_name(customer_id: &CustomerId) -> String {
    format!("{STREAM_CATEGORY}-{customer_id}")
}

/// The wishlist aggregate, as a [`crate::decider::Decider`].
#[derive(Clone, Copy, Debug)]
pub struct Wishlist;
impl_decider!(Wishlist, Wishlist);

/// What can be asked of a wishlist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds a product.
    Add {
        /// Whose wishlist.
        customer_id: CustomerId,
        /// The product.
        sku: Sku,
    },
    /// Removes a product.
    Remove {
        /// Whose wishlist.
        customer_id: CustomerId,
        /// The product.
        sku: Sku,
    },
}

/// What a wishlist records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A product was added.
    WishlistItemAdded {
        /// Whose wishlist.
        customer_id: CustomerId,
        /// The product.
        sku: Sku,
    },
    /// A product was removed.
    WishlistItemRemoved {
        /// Whose wishlist.
        customer_id: CustomerId,
        /// The product.
        sku: Sku,
    },
}

impl Event {
    /// Every event type of this aggregate.
    pub const TYPES: &'static [&'static str] = &["WishlistItemAdded", "WishlistItemRemoved"];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::WishlistItemAdded { .. } => "WishlistItemAdded",
            Self::WishlistItemRemoved { .. } => "WishlistItemRemoved",
        }
    }

    /// Whose wishlist the event is about.
    pub fn customer_id(&self) -> CustomerId {
        match self {
            Self::WishlistItemAdded { customer_id, .. }
            | Self::WishlistItemRemoved { customer_id, .. } => *customer_id,
        }
    }
}

/// What a wishlist knows; the default is an empty wishlist.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The products on it.
    pub skus: BTreeSet<Sku>,
}

/// Why a wishlist command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The product is not on the wishlist.
    #[error("product {sku} is not on the wishlist")]
    NotInWishlist {
        /// The product.
        sku: Sku,
    },
    /// The wishlist is full.
    #[error("a wishlist holds at most {max} products")]
    Full {
        /// The limit.
        max: usize,
    },
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotInWishlist { .. } => "not_in_wishlist",
            Self::Full { .. } => "wishlist_full",
        }
    }
}

/// Decides what happens for a command.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::Add { customer_id, sku } => {
            if state.skus.contains(&sku) {
                return Ok(vec![]);
            }
            if state.skus.len() >= MAX_ITEMS {
                return Err(Error::Full { max: MAX_ITEMS });
            }
            Ok(vec![Event::WishlistItemAdded { customer_id, sku }])
        }
        Command::Remove { customer_id, sku } => {
            if !state.skus.contains(&sku) {
                return Err(Error::NotInWishlist { sku });
            }
            Ok(vec![Event::WishlistItemRemoved { customer_id, sku }])
        }
    }
}

/// Applies one event.
pub fn evolve(mut state: State, event: &Event) -> State {
    match event {
        Event::WishlistItemAdded { sku, .. } => {
            state.skus.insert(sku.clone());
        }
        Event::WishlistItemRemoved { sku, .. } => {
            state.skus.remove(sku);
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given::given;
    use uuid::Uuid;

    fn customer() -> CustomerId {
        CustomerId::from_uuid(Uuid::from_u128(1))
    }

    fn sku(raw: &str) -> Sku {
        Sku::parse(raw).unwrap()
    }

    fn added(raw: &str) -> Event {
        Event::WishlistItemAdded {
            customer_id: customer(),
            sku: sku(raw),
        }
    }

    #[test]
    fn adding_a_product_to_the_wishlist_records_it() {
        given::<Wishlist>(vec![])
            .when(Command::Add {
                customer_id: customer(),
                sku: sku("A"),
            })
            .then(vec![added("A")]);
    }

    #[test]
    fn adding_a_product_already_on_the_wishlist_changes_nothing() {
        given::<Wishlist>(vec![added("A")])
            .when(Command::Add {
                customer_id: customer(),
                sku: sku("A"),
            })
            .then(vec![]);
    }

    #[test]
    fn adding_to_a_full_wishlist_is_refused() {
        let full = (0..MAX_ITEMS).map(|n| added(&format!("S{n}"))).collect();
        given::<Wishlist>(full)
            .when(Command::Add {
                customer_id: customer(),
                sku: sku("ONE-MORE"),
            })
            .then_error(Error::Full { max: MAX_ITEMS });
    }

    #[test]
    fn removing_a_product_on_the_wishlist_records_it() {
        given::<Wishlist>(vec![added("A")])
            .when(Command::Remove {
                customer_id: customer(),
                sku: sku("A"),
            })
            .then(vec![Event::WishlistItemRemoved {
                customer_id: customer(),
                sku: sku("A"),
            }]);
    }

    #[test]
    fn removing_a_product_not_on_the_wishlist_is_refused() {
        given::<Wishlist>(vec![added("A")])
            .when(Command::Remove {
                customer_id: customer(),
                sku: sku("B"),
            })
            .then_error(Error::NotInWishlist { sku: sku("B") });
    }
}
