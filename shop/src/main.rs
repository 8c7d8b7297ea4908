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

/// Threads for blocking work (sled reads and flushes, log reads, argon2).
/// tokio's default, 512, let a busy event store grow past 50 threads, each
/// with its own allocator heap; the work is short, so a queue behind a few
/// threads per core costs nothing measurable and bounds the memory. Each
/// thread's heap keeps partly used pages of its own, so fewer threads hold
/// less: at 150 orders/s, 16 threads left the event store at 71–77 MB PSS,
/// 4 at 48–49, with no latency lost (docs/adr/0009).
const MAX_BLOCKING_THREADS: usize = 4;

/// mimalloc v3's `mi_option_purge_delay` (its `mimalloc.h`); the constants
/// of `libmimalloc-sys` follow the older v2 numbering, which lacks it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays with the process before mimalloc gives it back
/// to the OS. mimalloc v3 waits 1 s (10 s for arenas); a service that reads a
/// large batch now and then kept that memory, and 21 such processes added up
/// (the e2e benchmark's total PSS fell from ~560 to ~420 MB with this).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// mimalloc v3's `mi_option_generic_collect` (its `mimalloc.h`).
const MI_OPTION_GENERIC_COLLECT: libmimalloc_sys::mi_option_t = 34;
/// Every how many allocations that miss a thread's free lists mimalloc
/// collects that thread's heap (frees what other threads gave back, returns
/// empty pages). It does its other bookkeeping every 1,000 such calls, so
/// 1,000 (mimalloc's floor in effect) collects at each of those instead of
/// every tenth (the default, 10,000). Session 12: final PSS of the e2e
/// benchmark's default run 204–213 MB against 219–248 over five alternating
/// pairs, with no CPU difference measured (BENCHMARKS.md).
const GENERIC_COLLECT: std::ffi::c_long = 1_000;

/// Sets the allocator options; before anything else runs.
fn tune_allocator() {
    // SAFETY: mi_option_set stores an integer option; mimalloc allows it at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        libmimalloc_sys::mi_option_set(MI_OPTION_GENERIC_COLLECT, GENERIC_COLLECT);
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = cli::Cli::parse();
    service_runtime::init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_at_those_indexes_are_the_ones_set() {
        #[allow(unsafe_code)]
        // SAFETY: reads an integer option.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        // The options at those indexes have mimalloc v3's defaults of the
        // purge delay (1000 ms) and of the collection interval (10,000 calls).
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 1000);
        assert_eq!(get(MI_OPTION_GENERIC_COLLECT), 10_000);
        tune_allocator();
        assert_eq!(get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
        assert_eq!(get(MI_OPTION_GENERIC_COLLECT), GENERIC_COLLECT);
    }
}
