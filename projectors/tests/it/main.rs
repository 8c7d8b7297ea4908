//! Integration tests of the projectors crate: view logic, exactly-once
//! application, the read API, replay, and the runtime against RabbitMQ.

mod api;
mod bench;
mod exactly_once;
mod rabbitmq;
mod replay;
mod source;
mod support;
mod views;
