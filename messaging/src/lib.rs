//! The RabbitMQ layer shared by the relay, the projectors and the saga, and
//! an in-process transport with the same interface.
//!
//! Services hold an `Arc<dyn Transport>` ([`SharedTransport`]) and ask it
//! for a [`Publisher`] (persistent messages, publisher confirms, `mandatory`,
//! pipelined with an exact confirmed prefix; a message no queue is bound for
//! is confirmed and reported [`Unroutable`]) or a [`Consumer`] (manual acks,
//! prefetch, batches, dead letters with their reason). Every name carries a
//! [`Namespace`] prefix: `<ns>.events` (topic exchange), `<ns>.dlx`,
//! `<ns>.<consumer>` and `<ns>.<consumer>.dlq` (quorum queues).
//!
//! # Layout
//!
//! - [`transport`]: the [`Transport`], [`Publisher`] and [`Consumer`] traits,
//!   [`ConsumerSpec`] and the errors.
//! - [`amqp`]: [`AmqpTransport`], RabbitMQ through lapin, with heartbeats and
//!   reconnection with backoff.
//! - [`memory`]: [`MemoryTransport`], the in-process broker for
//!   `shop dev --broker memory`.
//! - [`message`]: [`OutgoingMessage`], [`Delivery`], [`DeliveryTag`].
//! - [`headers`]: [`MessageHeaders`], typed headers and their wire names.
//! - [`namespace`]: [`Namespace`] and [`ConsumerName`], and the names derived from them.
//! - [`backoff`]: [`Backoff`], capped exponential delays.
//! - [`metrics`]: the metric names this crate records.
//!
//! `examples/hop_latency.rs` measures one hop, publish to consume, through a
//! queue as declared here and through a classic queue beside it.
#![warn(missing_docs)]

pub mod amqp;
pub mod backoff;
pub mod headers;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod namespace;
pub mod transport;

pub use amqp::{AmqpConfig, AmqpTransport};
pub use backoff::Backoff;
pub use headers::MessageHeaders;
pub use memory::MemoryTransport;
pub use message::{Delivery, DeliveryTag, OutgoingMessage};
pub use namespace::{ConsumerName, NameError, Namespace};
pub use transport::{
    Consumer, ConsumerSpec, PublishError, PublishReport, Published, Publisher, QueueRole,
    SharedTransport, Transport, TransportError, Unroutable,
};
