//! The domain crate's integration tests, one binary: golden files of every
//! event type and the catalogue through its public API.

mod catalogue;
mod golden;
mod samples;
