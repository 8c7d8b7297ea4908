//! `shop`: one binary that starts any component of the system, rebuilds read
//! models, runs scenarios and benchmarks. See CONTRACT.md for the commands.

mod bench;
mod cli;
mod commands;
mod dev;
mod gateway;
mod projection;
mod scenario;
mod store;

use clap::Parser;

// glibc's malloc showed up at ~15% of CPU under load; mimalloc is faster for
// the many small, short-lived allocations of request handling.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    service_runtime::init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shop: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(cli::run(cli));
    service_runtime::shutdown_tracing();
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("shop: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
