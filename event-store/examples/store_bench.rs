//! Runs the store benchmark outside `shop`:
//! `cargo run --release -p event-store --example store_bench [DIR]`.
//! Prints the table, then the JSON object with every figure.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = event_store::bench::StoreBenchOptions::default();
    if let Some(dir) = std::env::args().nth(1) {
        options.dir = Some(dir.into());
    }
    let figures = event_store::bench::run_store_bench(options).await?;
    println!("{}", serde_json::to_string_pretty(&figures)?);
    Ok(())
}
