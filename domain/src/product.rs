//! The product aggregate: one stream per SKU, `product-<SKU>`.
//!
//! Rules: a SKU is added once; a price is always more than 0 (see
//! [`Price`]); a discontinued product keeps its history but its price no
//! longer changes.

use serde::{Deserialize, Serialize};

use crate::decider::impl_decider;
use crate::values::{Category, Description, Price, ProductName, Sku};

/// The stream category of products.
pub const STREAM_CATEGORY: &str = "product";

/// The stream of one product: `product-<SKU>`.
pub fn stream_name(sku: &Sku) -> String {
    format!("{STREAM_CATEGORY}-{sku}")
}

/// The product aggregate, as a [`crate::decider::Decider`].
#[derive(Clone, Copy, Debug)]
pub struct Product;
impl_decider!(Product, Product);

/// What can be asked of a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds a new product to the catalog.
    Add {
        /// Its SKU.
        sku: Sku,
        /// Its display name.
        name: ProductName,
        /// Its description.
        description: Description,
        /// Its unit price.
        price: Price,
        /// Its category.
        category: Category,
    },
    /// Changes the unit price.
    ChangePrice {
        /// The new unit price.
        price: Price,
    },
    /// Takes the product off sale for good.
    Discontinue,
}

/// What a product records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A product was added. Schema v2 added `category` (v1 is read as `uncategorized`).
    ProductAdded {
        /// Its SKU.
        sku: Sku,
        /// Its display name.
        name: ProductName,
        /// Its description.
        description: Description,
        /// Its unit price.
        price_cents: Price,
        /// Its category.
        category: Category,
    },
    /// The unit price changed.
    ProductPriceChanged {
        /// The product.
        sku: Sku,
        /// The price before.
        old_price_cents: Price,
        /// The price from now on.
        price_cents: Price,
    },
    /// The product was discontinued.
    ProductDiscontinued {
        /// The product.
        sku: Sku,
    },
}

impl Event {
    /// Every event type of this aggregate.
    pub const TYPES: &'static [&'static str] =
        &["ProductAdded", "ProductPriceChanged", "ProductDiscontinued"];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::ProductAdded { .. } => "ProductAdded",
            Self::ProductPriceChanged { .. } => "ProductPriceChanged",
            Self::ProductDiscontinued { .. } => "ProductDiscontinued",
        }
    }

    /// The product the event is about.
    pub fn sku(&self) -> &Sku {
        match self {
            Self::ProductAdded { sku, .. }
            | Self::ProductPriceChanged { sku, .. }
            | Self::ProductDiscontinued { sku } => sku,
        }
    }
}

/// What a product knows; the default is "not yet added".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The product, once added.
    pub product: Option<ProductInfo>,
}

/// A product that exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductInfo {
    /// Its SKU.
    pub sku: Sku,
    /// Its display name.
    pub name: ProductName,
    /// Its description.
    pub description: Description,
    /// Its current unit price.
    pub price: Price,
    /// Its category.
    pub category: Category,
    /// Whether it is off sale.
    pub discontinued: bool,
}

/// Why a product command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The SKU was already added.
    #[error("product {sku} already exists")]
    AlreadyExists {
        /// The SKU.
        sku: Sku,
    },
    /// No product was added under this SKU.
    #[error("no such product")]
    NotFound,
    /// The product is discontinued.
    #[error("product {sku} is discontinued")]
    Discontinued {
        /// The SKU.
        sku: Sku,
    },
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyExists { .. } => "product_exists",
            Self::NotFound => "product_not_found",
            Self::Discontinued { .. } => "product_discontinued",
        }
    }
}

/// Decides what happens for a command.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
    match (command, &state.product) {
        (
            Command::Add {
                sku,
                name,
                description,
                price,
                category,
            },
            None,
        ) => Ok(vec![Event::ProductAdded {
            sku,
            name,
            description,
            price_cents: price,
            category,
        }]),
        (Command::Add { .. }, Some(product)) => Err(Error::AlreadyExists {
            sku: product.sku.clone(),
        }),
        (Command::ChangePrice { .. } | Command::Discontinue, None) => Err(Error::NotFound),
        (Command::ChangePrice { .. }, Some(product)) if product.discontinued => {
            Err(Error::Discontinued {
                sku: product.sku.clone(),
            })
        }
        (Command::ChangePrice { price }, Some(product)) if price == product.price => Ok(vec![]),
        (Command::ChangePrice { price }, Some(product)) => Ok(vec![Event::ProductPriceChanged {
            sku: product.sku.clone(),
            old_price_cents: product.price,
            price_cents: price,
        }]),
        (Command::Discontinue, Some(product)) if product.discontinued => Ok(vec![]),
        (Command::Discontinue, Some(product)) => Ok(vec![Event::ProductDiscontinued {
            sku: product.sku.clone(),
        }]),
    }
}

/// Applies one event.
pub fn evolve(mut state: State, event: &Event) -> State {
    match event {
        Event::ProductAdded {
            sku,
            name,
            description,
            price_cents,
            category,
        } => {
            state.product = Some(ProductInfo {
                sku: sku.clone(),
                name: name.clone(),
                description: description.clone(),
                price: *price_cents,
                category: category.clone(),
                discontinued: false,
            });
        }
        Event::ProductPriceChanged { price_cents, .. } => {
            if let Some(product) = state.product.as_mut() {
                product.price = *price_cents;
            }
        }
        Event::ProductDiscontinued { .. } => {
            if let Some(product) = state.product.as_mut() {
                product.discontinued = true;
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given::given;

    fn sku() -> Sku {
        Sku::parse("MUG-1").unwrap()
    }

    fn price(cents: i64) -> Price {
        Price::parse(cents).unwrap()
    }

    fn added() -> Event {
        Event::ProductAdded {
            sku: sku(),
            name: ProductName::parse("Mug").unwrap(),
            description: Description::parse("A mug").unwrap(),
            price_cents: price(1200),
            category: Category::parse("kitchen").unwrap(),
        }
    }

    fn add() -> Command {
        Command::Add {
            sku: sku(),
            name: ProductName::parse("Mug").unwrap(),
            description: Description::parse("A mug").unwrap(),
            price: price(1200),
            category: Category::parse("kitchen").unwrap(),
        }
    }

    #[test]
    fn adding_a_new_product_records_it() {
        given::<Product>(vec![]).when(add()).then(vec![added()]);
    }

    #[test]
    fn adding_a_product_twice_is_refused() {
        given::<Product>(vec![added()])
            .when(add())
            .then_error(Error::AlreadyExists { sku: sku() });
    }

    #[test]
    fn changing_the_price_records_old_and_new_price() {
        given::<Product>(vec![added()])
            .when(Command::ChangePrice { price: price(1500) })
            .then(vec![Event::ProductPriceChanged {
                sku: sku(),
                old_price_cents: price(1200),
                price_cents: price(1500),
            }]);
    }

    #[test]
    fn changing_the_price_to_the_same_price_changes_nothing() {
        given::<Product>(vec![added()])
            .when(Command::ChangePrice { price: price(1200) })
            .then(vec![]);
    }

    #[test]
    fn changing_the_price_of_an_unknown_product_is_refused() {
        given::<Product>(vec![])
            .when(Command::ChangePrice { price: price(1500) })
            .then_error(Error::NotFound);
    }

    #[test]
    fn changing_the_price_of_a_discontinued_product_is_refused() {
        given::<Product>(vec![added(), Event::ProductDiscontinued { sku: sku() }])
            .when(Command::ChangePrice { price: price(1500) })
            .then_error(Error::Discontinued { sku: sku() });
    }

    #[test]
    fn discontinuing_a_product_records_it_once() {
        given::<Product>(vec![added()])
            .when(Command::Discontinue)
            .then(vec![Event::ProductDiscontinued { sku: sku() }]);
        given::<Product>(vec![added(), Event::ProductDiscontinued { sku: sku() }])
            .when(Command::Discontinue)
            .then(vec![]);
    }

    #[test]
    fn discontinuing_an_unknown_product_is_refused() {
        given::<Product>(vec![])
            .when(Command::Discontinue)
            .then_error(Error::NotFound);
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(Error::NotFound.code(), "product_not_found");
        assert_eq!(Error::AlreadyExists { sku: sku() }.code(), "product_exists");
        assert_eq!(
            Error::Discontinued { sku: sku() }.code(),
            "product_discontinued"
        );
    }
}
