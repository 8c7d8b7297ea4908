//! Runs the relay benchmark alone and prints its JSON:
//! `cargo run --release -p event-store --example relay_bench [EVENTS]`.
//! (`shop bench store` runs it as part of the store benchmark.)

use event_store::relay::bench::{bench_relay, RelayBenchOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_runtime::init_tracing(service_runtime::LogFormat::Pretty);
    let mut options = RelayBenchOptions::default();
    if let Some(events) = std::env::args().nth(1) {
        options.events = events.parse()?;
    }
    if let Ok(amqp) = std::env::var("SHOP_AMQP") {
        options.amqp = amqp;
    }
    let figures = bench_relay(options).await?;
    println!("{figures}");
    Ok(())
}
