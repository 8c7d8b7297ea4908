//! Process-level tests of the `shop` binary.

mod command_side;
mod commands;
mod compose;
mod dev;
mod gateway;
mod projectors;
mod saga;
mod scenarios;

/// Tests that spawn whole systems of `shop` processes take this lock and run
/// one at a time: each binds free ports by asking the OS for one and then
/// hands it to a child process, so two such tests at once can race for a
/// port (and a component then answers for another test's system); running
/// them one by one also gives each the machine's two cores.
pub static PROCESSES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
