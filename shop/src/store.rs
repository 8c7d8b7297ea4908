//! `shop event-store`.

use std::process::ExitCode;

/// Flags of `shop event-store`.
#[derive(Debug, clap::Args)]
pub struct EventStoreArgs {
    #[command(flatten)]
    config: event_store::server::EventStoreConfig,
}

/// Runs the event store (and its relay) until SIGINT/SIGTERM.
pub async fn run(args: EventStoreArgs) -> anyhow::Result<ExitCode> {
    let shutdown = service_runtime::shutdown::signal();
    event_store::server::run(args.config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
