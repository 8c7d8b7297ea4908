//! `shop bench commands`: commands per second and latency over HTTP.
//!
//! Two workloads, each with 1 and with 64 concurrent clients:
//! - `new_aggregate`: `add-product` with a new SKU every time (one stream
//!   created per command);
//! - `hot_aggregate`: `restock` of one SKU by every client (every command on
//!   the same stream, so concurrency conflicts are the norm and must be
//!   absorbed by the service, never seen by a client).
//!
//! By default the store and the services run in this process, each on its
//! own loopback port with its files in a temp dir; the clients speak HTTP to
//! them like any other caller. Afterwards the hot SKU's stock is checked
//! against the number of accepted restocks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::cluster::{Cluster, ClusterOptions};
use crate::config::ServiceName;

/// Flags of `shop bench commands`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchOptions {
    /// How long each case runs, in seconds.
    #[arg(long, env = "SHOP_BENCH_SECONDS", default_value_t = 5.0)]
    pub seconds: f64,
    /// The numbers of concurrent clients to measure, comma-separated.
    #[arg(
        long,
        env = "SHOP_BENCH_CLIENTS",
        value_delimiter = ',',
        default_value = "1,64"
    )]
    pub clients: Vec<usize>,
    /// Where the store keeps its files (a temp dir when absent).
    #[arg(long, env = "SHOP_BENCH_DATA")]
    pub data: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            seconds: 5.0,
            clients: vec![1, 64],
            data: None,
        }
    }
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    conflicts: u64,
}

/// One measured case.
struct Case {
    workload: &'static str,
    clients: usize,
    commands: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    errors: u64,
    conflicts: u64,
    /// CPU time of the whole process (clients, services and store) during
    /// the case, if the OS tells: on a shared machine a steadier measure of
    /// cost than the rate.
    cpu: Option<Duration>,
}

impl Case {
    fn cpu_us_per_command(&self) -> Option<f64> {
        self.cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / (self.commands.max(1) as f64))
    }

    fn rate(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn json(&self) -> Value {
        json!({
            "workload": self.workload,
            "clients": self.clients,
            "commands": self.commands,
            "seconds": round(self.elapsed.as_secs_f64()),
            "commands_per_sec": round(self.rate()),
            "p50_ms": round(self.p50.as_secs_f64() * 1000.0),
            "p99_ms": round(self.p99.as_secs_f64() * 1000.0),
            "errors": self.errors,
            "conflicts_seen_by_clients": self.conflicts,
            "cpu_us_per_command": self.cpu_us_per_command().map(round),
        })
    }
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The CPU time this process has used (user and system, every thread), from
/// `/proc/self/stat`; `None` where there is no such file.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from after it.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks
    // (100 per second on Linux).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Runs one workload with `clients` concurrent clients for `length`.
async fn measure(
    workload: &'static str,
    clients: usize,
    length: Duration,
    url: String,
    body: Arc<dyn Fn(usize, u64) -> String + Send + Sync>,
) -> anyhow::Result<Case> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(1))
        .tcp_nodelay(true)
        .build()?;
    let cpu_before = process_cpu();
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|client| {
            let http = http.clone();
            let url = url.clone();
            let body = Arc::clone(&body);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let response = http
                        .post(&url)
                        .header("x-actor", "admin")
                        .header("content-type", "application/json")
                        .body(body(client, n))
                        .send()
                        .await;
                    n += 1;
                    match response {
                        Ok(response) if response.status().is_success() => {
                            // Read the answer: a command is done when it is answered.
                            let _ = response.bytes().await;
                            tally.latencies.push(sent.elapsed());
                        }
                        Ok(response) => {
                            let text = response.text().await.unwrap_or_default();
                            if text.contains("concurrency_conflict") {
                                tally.conflicts += 1;
                            }
                            tally.errors += 1;
                        }
                        Err(_) => tally.errors += 1,
                    }
                }
                tally
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut errors, mut conflicts) = (0, 0);
    for task in tasks {
        let tally = task.await.context("a benchmark client failed")?;
        latencies.extend(tally.latencies);
        errors += tally.errors;
        conflicts += tally.conflicts;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(process_cpu())
        .map(|(before, after)| after.saturating_sub(before));
    latencies.sort_unstable();
    Ok(Case {
        workload,
        clients,
        commands: latencies.len() as u64,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        errors,
        conflicts,
        cpu,
    })
}

/// Runs the benchmark, prints a table, and returns the figures as one JSON
/// object (the caller prints it as the last line).
pub async fn run(options: BenchOptions) -> anyhow::Result<Value> {
    let temp = match &options.data {
        Some(_) => None,
        None => Some(tempfile_dir()?),
    };
    let data = match (&options.data, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir.clone(),
        (None, None) => anyhow::bail!("no data directory"),
    };
    let cluster = Cluster::start(ClusterOptions {
        services: vec![ServiceName::Catalog, ServiceName::Inventory],
        ..ClusterOptions::new(&data)
    })
    .await?;
    let catalog = format!(
        "{}/commands/add-product",
        cluster.url(ServiceName::Catalog)?
    );
    let inventory = format!("{}/commands/restock", cluster.url(ServiceName::Inventory)?);
    let length = Duration::from_secs_f64(options.seconds.max(0.1));
    let run_id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let mut cases = Vec::new();
    let mut restocked = 0u64;
    for &clients in &options.clients {
        let prefix = format!("B{}C{clients}", &run_id[..8]);
        let new_product: Arc<dyn Fn(usize, u64) -> String + Send + Sync> = Arc::new(
            move |client, n| {
                format!(
                    r#"{{"sku":"{prefix}-{client}-{n}","name":"Benchmark product","description":"","price_cents":1000,"category":"bench"}}"#
                )
            },
        );
        cases.push(
            measure(
                "new_aggregate",
                clients,
                length,
                catalog.clone(),
                new_product,
            )
            .await?,
        );
        let restock_body =
            json!({"sku": format!("HOT-{}", &run_id[..8]), "quantity": 1}).to_string();
        let restock: Arc<dyn Fn(usize, u64) -> String + Send + Sync> =
            Arc::new(move |_, _| restock_body.clone());
        let case = measure("hot_aggregate", clients, length, inventory.clone(), restock).await?;
        restocked += case.commands;
        cases.push(case);
    }
    // Every accepted restock is in the stock, once.
    let hot = format!("stock-HOT-{}", &run_id[..8]);
    let stored = crate::event_log::read_all_from(cluster.store_log()?.as_ref(), &hot, 0)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {hot}: {e}"))?
        .len() as u64;
    anyhow::ensure!(
        stored == restocked,
        "{restocked} restocks were accepted but {stored} are stored"
    );
    cluster.shutdown().await?;
    if let Some(dir) = temp {
        let _ = std::fs::remove_dir_all(dir);
    }

    println!(
        "{:<15} {:>7} {:>9} {:>13} {:>9} {:>9} {:>7} {:>10} {:>11}",
        "workload",
        "clients",
        "commands",
        "commands/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "conflicts",
        "cpu µs/cmd"
    );
    for case in &cases {
        println!(
            "{:<15} {:>7} {:>9} {:>13.0} {:>9.2} {:>9.2} {:>7} {:>10} {:>11.0}",
            case.workload,
            case.clients,
            case.commands,
            case.rate(),
            case.p50.as_secs_f64() * 1000.0,
            case.p99.as_secs_f64() * 1000.0,
            case.errors,
            case.conflicts,
            case.cpu_us_per_command().unwrap_or(f64::NAN)
        );
    }
    Ok(json!({
        "bench": "commands",
        "seconds_per_case": options.seconds,
        "cases": cases.iter().map(Case::json).collect::<Vec<_>>(),
        "hot_aggregate_events_stored": stored,
    }))
}

/// A fresh directory under the system's temp dir.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("shop-bench-commands-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
