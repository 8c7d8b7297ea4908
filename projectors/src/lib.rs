//! Projectors: the read side of the shop. Each read model is folded from the
//! event stream into its own sled database and served over a small HTTP API.
//!
//! Layout:
//! - [`name`]: [`ProjectorName`], the ten read models;
//! - [`viewdb`]: a read model's sled database and [`viewdb::ViewTx`], the
//!   transaction one batch of events is applied in (documents, per-stream
//!   positions and bookkeeping in one atomic sled batch);
//! - [`projection`]: the [`projection::Projection`] trait and the registry;
//! - [`views`]: one module per read model;
//! - [`applier`]: exactly-once application (DESIGN.md guarantee 5): dedupe,
//!   gap repair from the store, poison events;
//! - [`source`]: [`source::EventSource`], how history is read from the store;
//! - [`digest`]: the content hash of a view;
//! - [`layout`]: where a view's files live, generations and the atomic swap;
//! - [`runtime`]: [`runtime::Projector`], the consumer runtime: queue,
//!   catch-up, batches into one sled batch, acks, poison, reconnects;
//! - [`replay`]: the fast rebuild from the store, offline and live;
//! - [`api`]: the HTTP read API of one projector;
//! - [`service`]: [`ProjectorConfig`], [`run`] (one projector) and
//!   [`run_all`] (every projector in one process);
//! - [`remote`]: digest and replay against running projectors;
//! - [`workload`]: synthetic shop histories for tests and benchmarks;
//! - [`bench`]: the replay and live benchmarks (`shop bench replay`, `shop bench projectors`).
#![warn(missing_docs)]

pub mod api;
pub mod applier;
pub mod bench;
pub mod digest;
pub mod layout;
pub mod name;
pub mod projection;
pub mod remote;
pub mod replay;
pub mod runtime;
pub mod service;
pub mod source;
pub mod viewdb;
pub mod views;
pub mod workload;

pub use api::router;
pub use name::ProjectorName;
pub use service::{run, run_all, Broker, Dependencies, ProjectorConfig};
