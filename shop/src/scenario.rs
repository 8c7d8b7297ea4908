//! `shop scenario run FILE… [--target URL | --spawn]`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use scenarios::actors::AdminCredentials;
use scenarios::runner::{DEFAULT_ADMIN_EMAIL, DEFAULT_ADMIN_PASSWORD};
use scenarios::topology::DEFAULT_AMQP;
use scenarios::{RunOptions, Topology, TopologyConfig};

/// Flags of `shop scenario run`.
#[derive(Debug, clap::Args)]
pub struct ScenarioArgs {
    /// Scenario files (`scenarios/*.toml`; a `Cargo.toml` among them is skipped).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// The query API of a running system (e.g. `shop dev`).
    #[arg(
        long,
        env = "SHOP_TARGET",
        default_value = "http://127.0.0.1:8080",
        conflicts_with = "spawn"
    )]
    pub target: String,

    /// Start the whole system as separate processes on free ports, with a
    /// fresh data directory and a RabbitMQ namespace of its own; run the
    /// scenarios against it; stop it.
    #[arg(long, env = "SHOP_SCENARIO_SPAWN")]
    pub spawn: bool,

    /// RabbitMQ for the spawned system.
    #[arg(long, env = "SHOP_AMQP", default_value = DEFAULT_AMQP)]
    pub amqp: String,

    /// Keep the spawned system's data directory and logs afterwards.
    #[arg(long, env = "SHOP_SCENARIO_KEEP_DATA")]
    pub keep_data: bool,

    /// The admin account's e-mail (what the query API was given).
    #[arg(long, env = "SHOP_ADMIN_EMAIL", default_value = DEFAULT_ADMIN_EMAIL)]
    pub admin_email: String,

    /// The admin account's password.
    #[arg(long, env = "SHOP_ADMIN_PASSWORD", default_value = DEFAULT_ADMIN_PASSWORD, hide_env_values = true, hide_default_value = true)]
    pub admin_password: String,

    /// Print every step inside loops, not only the loop's line.
    #[arg(long, short, env = "SHOP_SCENARIO_VERBOSE")]
    pub verbose: bool,

    /// Stop after the first failed scenario.
    #[arg(long, env = "SHOP_SCENARIO_FAIL_FAST")]
    pub fail_fast: bool,
}

/// Runs the scenarios; exits non-zero when any fails.
pub async fn run(args: ScenarioArgs) -> anyhow::Result<ExitCode> {
    let program = std::env::current_exe().context("cannot find the shop executable")?;
    let admin = AdminCredentials {
        email: args.admin_email.clone(),
        password: args.admin_password.clone(),
    };
    let mut options = RunOptions {
        admin: admin.clone(),
        verbose: args.verbose,
        fail_fast: args.fail_fast,
        shop_program: Some(program.clone()),
        ..RunOptions::default()
    };
    if !args.spawn {
        let summary = scenarios::run_files(&args.files, &args.target, options).await?;
        return Ok(exit_code(summary.passed()));
    }

    let config = TopologyConfig {
        amqp: args.amqp.clone(),
        keep_data: args.keep_data,
        admin,
        ..TopologyConfig::new(program)
    };
    println!("spawning the system (every component its own process) …");
    let topology = Topology::spawn(config)
        .await
        .context("cannot spawn the system")?;
    println!(
        "ready: query API at {}, RabbitMQ namespace {}, data in {}",
        topology.query_api_url(),
        topology.namespace(),
        topology
            .data_dir()
            .map_or_else(String::new, |d| d.display().to_string())
    );
    options.shop_env = topology.client_env();
    let interrupted = service_runtime::shutdown::signal();
    let outcome = tokio::select! {
        summary = scenarios::run_files(&args.files, topology.query_api_url(), options) => Some(summary),
        () = interrupted.wait() => None,
    };
    let failed = outcome
        .as_ref()
        .is_some_and(|s| s.as_ref().map_or(true, |s| !s.passed()));
    if failed && !args.keep_data {
        println!("(run again with --keep-data to keep the components' logs)");
    }
    println!("stopping the system …");
    for exit in topology.shutdown().await {
        if exit.killed {
            eprintln!("{} did not stop on SIGTERM and was killed", exit.component);
        } else if let Some(status) = exit.status.filter(|s| !s.success()) {
            eprintln!("{} exited with {status}", exit.component);
        }
    }
    match outcome {
        None => {
            eprintln!("interrupted");
            Ok(ExitCode::from(130))
        }
        Some(summary) => Ok(exit_code(summary?.passed())),
    }
}

fn exit_code(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
