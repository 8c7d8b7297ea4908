//! The command line: one subcommand per component or tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use service_runtime::LogFormat;

/// An event-sourced CQRS shop on RabbitMQ.
#[derive(Debug, Parser)]
#[command(name = "shop", version, about, long_about = None)]
pub struct Cli {
    /// How log lines are written.
    #[arg(long, global = true, env = "SHOP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Action,
}

/// The components and tools.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// The whole system in one process: event store, command services, saga, projectors, query API.
    Dev(crate::dev::DevArgs),
    /// The event store server (and its relay to RabbitMQ).
    EventStore(crate::store::EventStoreArgs),
    /// One command service: catalog, customers, carts, wishlists, orders, payments, inventory, shipping.
    CommandService(crate::commands::CommandServiceArgs),
    /// The order fulfillment process manager.
    Saga(crate::commands::SagaArgs),
    /// One projector, serving its read model.
    Projector(crate::projection::ProjectorArgs),
    /// The GraphQL gateway.
    QueryApi(Box<crate::gateway::QueryApiArgs>),
    /// Rebuilds read models from the event store and swaps them in.
    Replay(crate::projection::ReplayArgs),
    /// Prints `NAME DIGEST` for read models.
    Digest(crate::projection::DigestArgs),
    /// Runs scenario files.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: crate::bench::BenchCommand,
    },
}

/// Scenario subcommands.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Runs scenario files and exits non-zero if any expectation fails.
    Run {
        #[command(flatten)]
        args: crate::scenario::ScenarioArgs,
    },
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Action::EventStore(args) => crate::store::run(args).await,
        Action::CommandService(args) => crate::commands::run_command_service(args).await,
        Action::Saga(args) => crate::commands::run_saga(args).await,
        Action::Projector(args) => crate::projection::run_projector(args).await,
        Action::QueryApi(args) => crate::gateway::run(*args).await,
        Action::Replay(args) => crate::projection::replay(args).await,
        Action::Digest(args) => crate::projection::digest(args).await,
        Action::Dev(args) => crate::dev::run(args).await,
        Action::Scenario {
            command: ScenarioCommand::Run { args },
        } => crate::scenario::run(args).await,
        Action::Bench { command } => crate::bench::run(command).await,
    }
}
