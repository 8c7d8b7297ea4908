//! Scenario files that drive the shop end to end through its GraphQL API,
//! assert outcomes, and measure; and the runner behind `shop scenario run`.
//!
//! A scenario is a TOML file of steps (see [`format`] for the format): GraphQL
//! operations as the admin or a named customer, waits with deadlines,
//! expectations on fields, variables, loops and parallel blocks, a load
//! step, and `shop` subcommands such as `replay`.
//!
//! Layout:
//! - [`format`]: the file format and its parser;
//! - [`variables`]: variables, `${..}` interpolation and dot paths;
//! - [`expectation`]: checking fields, with messages naming field, expected and got;
//! - [`graphql`]: the GraphQL-over-HTTP client;
//! - [`actors`]: the admin and customers (registered and logged in on first use);
//! - [`load`]: the load step (orders/s, latency to confirmed);
//! - [`runner`]: [`ScenarioRunner`], [`run_files`], the step-by-step report and [`Summary`];
//! - [`topology`]: spawns the real multi-process system on free ports (`--spawn`);
//! - [`bench`]: `shop bench e2e`, orders through that system.
#![warn(missing_docs)]

pub mod actors;
pub mod bench;
pub mod expectation;
pub mod format;
pub mod graphql;
pub mod hops;
pub mod load;
pub mod runner;
pub mod topology;
pub mod variables;

pub use format::{load_file, parse_str, Scenario};
pub use runner::{
    run_files, Failure, RunError, RunOptions, ScenarioFailure, ScenarioReport, ScenarioRunner,
    StepError, Summary,
};
pub use topology::{Topology, TopologyConfig, TopologyError};
