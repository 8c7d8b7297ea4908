//! Integration tests of the event store (one binary, one module per area).

mod appends;
mod bench;
mod client;
mod crash;
mod fixtures;
mod http;
mod log_reader;
mod model;
mod multi_append;
mod recovery;
mod relay;
mod subscription;
