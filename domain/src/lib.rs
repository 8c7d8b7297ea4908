//! The shop's pure domain: no I/O, no async, no clock, no randomness.
//! Anything a decision needs from outside (a price, a time, the payment
//! gateway's answer) is put into the command first.
//!
//! Layout:
//! - [`values`]: value types parsed at the edge (`Sku`, `Quantity`, `Money`, `Price`, `Email`, ids, texts);
//! - [`decider`]: the `Decider` trait every aggregate implements, for generic command handling;
//! - one module per aggregate, each with `Command`, `Event`, `State`, `Error`,
//!   `decide`, `evolve` and `STREAM_CATEGORY`: [`product`], [`customer`],
//!   [`cart`], [`wishlist`], [`order`], [`stock`] (one per SKU), [`payment`]
//!   (one per order), [`shipment`] (one per order, and the shipping-cost rule);
//! - [`gateway`]: the simulated payment gateway, a pure function of token and attempt;
//! - [`saga`]: the order fulfillment process manager, a decider with its own events;
//! - [`catalogue`]: every event's type name and schema version, mapping to and from
//!   the envelope, upcasting of old versions, event ids derived from idempotency keys;
//! - [`envelope`]: the event envelope the store records and the relay publishes;
//! - [`codec`]: the one module that knows the binary encoding (bincode 2).
#![warn(missing_docs)]

pub mod cart;
pub mod catalogue;
pub mod codec;
pub mod customer;
pub mod decider;
pub mod envelope;
pub mod gateway;
pub mod order;
pub mod payment;
pub mod product;
pub mod saga;
pub mod shipment;
pub mod stock;
pub mod values;
pub mod wishlist;

pub use catalogue::{derive_event_id, DomainEvent};
pub use decider::{Decider, DomainError};
