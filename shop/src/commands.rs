//! `shop command-service NAME` and `shop saga`.

use std::process::ExitCode;

use command_services::saga::SagaConfig;
use command_services::{ServiceConfig, ServiceName};

/// Flags of `shop command-service`.
#[derive(Debug, clap::Args)]
pub struct CommandServiceArgs {
    /// Which service: catalog, customers, carts, wishlists, orders, payments, inventory, shipping.
    #[arg(value_enum)]
    pub name: ServiceName,

    #[command(flatten)]
    pub config: ServiceConfig,
}

/// Flags of `shop saga`.
#[derive(Debug, clap::Args)]
pub struct SagaArgs {
    #[command(flatten)]
    pub config: SagaConfig,
}

/// Runs one command service until SIGINT/SIGTERM.
pub async fn run_command_service(args: CommandServiceArgs) -> anyhow::Result<ExitCode> {
    let shutdown = service_runtime::shutdown::signal();
    command_services::run(args.name, args.config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the fulfillment saga until SIGINT/SIGTERM.
pub async fn run_saga(args: SagaArgs) -> anyhow::Result<ExitCode> {
    let shutdown = service_runtime::shutdown::signal();
    command_services::saga::run(args.config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
