//! Runs the projector benchmarks without the `shop` binary:
//! `cargo run --release -p projectors --example bench -- replay|live [--events N]`.

use clap::Parser;

#[derive(Debug, Parser)]
enum Bench {
    /// Rebuilding every view from the store.
    Replay(projectors::bench::ReplayBenchOptions),
    /// Live projection from RabbitMQ beside a raw consumer.
    Live(projectors::bench::LiveBenchOptions),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_runtime::init_tracing(service_runtime::LogFormat::Pretty);
    let report = match Bench::parse() {
        Bench::Replay(options) => projectors::bench::replay(options).await?,
        Bench::Live(options) => projectors::bench::live(options).await?,
    };
    println!("{report}");
    Ok(())
}
