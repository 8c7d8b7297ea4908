//! The event store: the shop's only source of truth.
//!
//! An append-only log of segment files (length + CRC32C framed records, group
//! commit with one `fdatasync` per group) with sled indexes over it, served
//! over HTTP, with a client for the services and a relay that publishes every
//! event, in order, to RabbitMQ.
//!
//! Layout:
//! - [`names`]: rules for stream, category and event type names;
//! - `log` (private): segment files and record framing;
//! - [`index`]: the sled indexes (stream versions and heads, event ids, categories, checkpoint);
//! - [`store`]: [`Store`], the engine: the writer thread, reads, recovery, subscriptions;
//! - [`wire`]: the HTTP bodies shared by [`server`] and [`client`] (JSON and binary forms);
//! - [`server`]: the HTTP API ([`server::router`], [`server::run`], [`server::EventStoreConfig`]);
//! - [`client`]: [`client::StoreClient`], the services' way to the store;
//! - [`relay`]: publishes the log to RabbitMQ;
//! - [`bench`](mod@bench): the store benchmark behind `shop bench store`.
#![warn(missing_docs)]

pub mod bench;
pub mod client;
pub mod index;
mod log;
pub mod log_reader;
pub mod names;
pub mod relay;
pub mod server;
pub mod store;
pub mod wire;

pub use client::{ClientError, StoreClient};
pub use log_reader::{LogReader, LogReaderError};
pub use store::{
    AppendError, AppendResult, Direction, ExpectedVersion, OpenError, ReadError, StorageError,
    Store, StoreOptions,
};
