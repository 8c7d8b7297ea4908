//! One module per read model. Each holds its documents' types, its
//! [`crate::projection::Projection`] and the queries its extra routes run.

pub mod carts;
pub mod catalog;
pub mod customers;
pub mod inventory;
pub mod notifications;
pub mod orders;
pub mod recommendations;
pub mod sales;
pub mod search;
pub mod wishlists;
