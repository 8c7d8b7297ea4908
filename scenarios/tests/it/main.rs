//! Integration tests of the scenario runner and the scenario files.

mod fake_gateway;
mod files;
mod runner;
