//! `shop bench …`: every benchmark prints a table and, last, one JSON object
//! with every figure (machine-readable for BENCHMARKS.md).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

/// Benchmark subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Event store appends and reads, and the relay beside a raw publish baseline.
    Store(StoreBenchArgs),
    /// Command services over HTTP: new and hot aggregates, 1 and 64 clients.
    Commands(CommandsBenchArgs),
    /// Rebuilding every read model from 1,000,000 stored events.
    Replay(projectors::bench::ReplayBenchOptions),
    /// Live projection from RabbitMQ beside a raw consume baseline.
    Projectors(projectors::bench::LiveBenchOptions),
    /// GraphQL queries beside a plain endpoint returning the same record.
    Graphql(GraphqlBenchArgs),
    /// Orders through the whole multi-process pipeline, with real RabbitMQ.
    E2e(E2eBenchArgs),
}

/// Flags of `shop bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreBenchArgs {
    /// Where the benchmark's files go (a temporary folder is made inside).
    #[arg(long, env = "SHOP_BENCH_DIR")]
    dir: Option<std::path::PathBuf>,
    /// RabbitMQ for the relay figures.
    #[arg(
        long,
        env = "SHOP_AMQP",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp: String,
    /// Skip the relay figures (no broker needed).
    #[arg(long)]
    no_relay: bool,
    /// Seconds per in-process append run.
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    /// Concurrent writer counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    writers: Vec<usize>,
}

/// Flags of `shop bench commands`.
#[derive(Debug, clap::Args)]
pub struct CommandsBenchArgs {
    /// Seconds per run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

/// Flags of `shop bench graphql`.
#[derive(Debug, clap::Args)]
pub struct GraphqlBenchArgs {
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

/// Flags of `shop bench e2e`.
#[derive(Debug, clap::Args)]
pub struct E2eBenchArgs {
    /// RabbitMQ.
    #[arg(
        long,
        env = "SHOP_AMQP",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp: String,
    /// Orders per second of each run, in order.
    #[arg(long, value_delimiter = ',', default_value = "150,300")]
    rates: Vec<f64>,
    /// Seconds each run places orders.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Customers placing them.
    #[arg(long, default_value_t = 50)]
    customers: u32,
}

/// Runs one benchmark.
pub async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    let report = match command {
        BenchCommand::Store(args) => store(args).await?,
        BenchCommand::Commands(args) => {
            command_services::bench::run(command_services::bench::BenchOptions {
                seconds: args.seconds,
                ..Default::default()
            })
            .await?
        }
        BenchCommand::Replay(options) => projectors::bench::replay(options).await?,
        BenchCommand::Projectors(options) => projectors::bench::live(options).await?,
        BenchCommand::Graphql(args) => {
            query_api::bench::run(query_api::bench::BenchOptions {
                connections: args.connections,
                duration: std::time::Duration::from_secs(args.seconds),
                ..Default::default()
            })
            .await?
        }
        BenchCommand::E2e(args) => {
            scenarios::bench::e2e(scenarios::bench::E2eOptions {
                program: std::env::current_exe().context("cannot find the shop executable")?,
                amqp: args.amqp,
                rates: args.rates,
                duration: std::time::Duration::from_secs(args.seconds),
                customers: args.customers,
                ..Default::default()
            })
            .await?
        }
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

async fn store(args: StoreBenchArgs) -> anyhow::Result<serde_json::Value> {
    let options = event_store::bench::StoreBenchOptions {
        dir: args.dir,
        duration: std::time::Duration::from_secs(args.seconds),
        writers: args.writers,
        ..Default::default()
    };
    let mut report = event_store::bench::run_store_bench(options).await?;
    if !args.no_relay {
        let relay =
            event_store::relay::bench::bench_relay(event_store::relay::bench::RelayBenchOptions {
                amqp: args.amqp,
                ..Default::default()
            })
            .await?;
        if let Some(object) = report.as_object_mut() {
            object.insert("relay".into(), relay);
        }
    }
    Ok(report)
}
