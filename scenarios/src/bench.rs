//! `shop bench e2e`: orders through the whole multi-process pipeline.
//!
//! Method: [`Topology::spawn`] starts every component as its own process
//! (store, eight command services, saga, ten projectors, query API) against
//! RabbitMQ in a namespace of its own. For each rate asked for, a load step
//! (the same open-loop one the scenarios use) places single-line orders
//! through GraphQL for a fixed time and follows each to `CONFIRMED` through
//! the orders view. That gives two latencies from the `placeOrder` mutation:
//! to the confirmed status being readable (polled every 50 ms at first, then
//! every quarter of the time waited so far, up to 1 s, so that a backlog is
//! not made worse by its own polling), and to the timestamp the
//! `OrderConfirmed` event carries (read from the order's timeline), which
//! leaves out the view's lag and the polling. After the last order, the run
//! waits until every projector has applied every stored event of its
//! categories (`lag_events` 0 on every `/status`); that time is reported as
//! `views_caught_up_ms`, and the
//! throughput "with every view caught up" is the orders placed divided by
//! the time from the first order until then. CPU seconds, peak RSS and PSS of
//! every process are read from `/proc`, and RSS split into private pages and
//! pages of mapped files: the sum of RSS counts the one `shop` binary's code
//! once per process, PSS counts it once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use projectors::source::EventSource as _;
use serde_json::{json, Value};

use crate::format::parse_str;
use crate::runner::{RunOptions, ScenarioRunner};
use crate::topology::{ComponentKind, Topology, TopologyConfig};

/// What to run.
#[derive(Clone, Debug)]
pub struct E2eOptions {
    /// The `shop` binary to spawn (the running one, normally).
    pub program: PathBuf,
    /// RabbitMQ.
    pub amqp: String,
    /// Orders per second of each run.
    pub rates: Vec<f64>,
    /// How long each run places orders.
    pub duration: Duration,
    /// Customers placing them.
    pub customers: u32,
    /// How long the views may take to catch up after a run.
    pub settle: Duration,
}

impl Default for E2eOptions {
    fn default() -> Self {
        Self {
            program: PathBuf::from("shop"),
            amqp: crate::topology::DEFAULT_AMQP.to_owned(),
            rates: vec![150.0, 300.0],
            duration: Duration::from_secs(10),
            customers: 50,
            settle: Duration::from_secs(60),
        }
    }
}

/// CPU seconds and memory of one process, from `/proc/<pid>/{stat,status,smaps_rollup}`.
#[derive(Clone, Copy, Debug, Default)]
struct ProcessSample {
    /// CPU seconds used so far (user + system).
    cpu_seconds: f64,
    rss_kib: u64,
    peak_rss_kib: u64,
    /// Proportional set size: private pages plus a share of the pages
    /// mapped by several processes (the `shop` binary's code, mostly), so
    /// a sum over processes counts every page once.
    pss_kib: u64,
    /// Resident private memory (heap, stacks): what the process itself adds.
    rss_anon_kib: u64,
    /// Resident pages of mapped files, the `shop` binary's code above all;
    /// every process that runs the same code counts the same pages again.
    rss_file_kib: u64,
}

fn sample(pid: u32) -> Option<ProcessSample> {
    let cpu_seconds = projectors::bench::cpu_seconds_of(&pid.to_string())?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| kib_field(&status, key).unwrap_or(0);
    let pss_kib = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|rollup| kib_field(&rollup, "Pss:"))
        .unwrap_or(0);
    Some(ProcessSample {
        cpu_seconds,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
        pss_kib,
        rss_anon_kib: kib("RssAnon:"),
        rss_file_kib: kib("RssFile:"),
    })
}

/// The number on the line of a `/proc` file that starts with `key`
/// (`VmRSS:      1234 kB`).
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
}

/// CPU seconds a process used between two samples of it.
fn cpu_seconds_between(before: &ProcessSample, after: &ProcessSample) -> f64 {
    (after.cpu_seconds - before.cpu_seconds).max(0.0)
}

fn per_order(seconds: f64, orders: u64) -> f64 {
    seconds * 1000.0 / orders.max(1) as f64
}

/// The local RabbitMQ's pid when `amqp` names this machine (a loopback
/// address or `localhost`) and exactly one runs here.
fn local_broker(amqp: &str) -> Option<u32> {
    let url = reqwest::Url::parse(amqp).ok()?;
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !local {
        return None;
    }
    projectors::bench::local_broker_pid()?.parse().ok()
}

fn scenario_text(rate: f64, duration: Duration, customers: u32, settle: Duration) -> String {
    let orders = (rate * duration.as_secs_f64()).ceil() as u64;
    format!(
        r#"name = "e2e {rate}/s"

[vars]
sku = "E2E-${{run_id}}"

[[step]]
name = "admin adds a product with plenty of stock"
as = "admin"
graphql = '''
mutation {{
  addProduct(input: {{sku: "${{sku}}", name: "Bench mug ${{run_id}}", description: "d", priceCents: 1500, category: "kitchen"}}) {{ id }}
  restock(sku: "${{sku}}", quantity: {stock}) {{ id }}
}}'''

[[step]]
name = "the stock is visible"
wait = 'query {{ inventory(sku: "${{sku}}") {{ available }} }}'
within = "30s"
expect = [{{ path = "inventory.available", equals = {stock} }}]

[[step]]
name = "{rate} orders/s for {secs} s"
as = "e2e-${{index}}"

  [step.load]
  rate = {rate}
  duration = "{secs}s"
  customers = {customers}
  settle = "{settle}s"
  poll = "50ms"
  poll_max = "1s"
  status_query = 'query BenchStatus($id: ID!) {{ order(id: $id, waitFor: [CONFIRMED, CANCELLED], waitMs: 5000) {{ status timeline {{ status at }} }} }}'
  status_variables = {{ id = "${{order_id}}" }}
  timeline_path = "order.timeline"
  order = 'mutation BenchOrder($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{ id }} }}'
  order_variables = {{ input = {{ lines = [{{ sku = "${{sku}}", quantity = 1 }}], paymentToken = "tok_visa", shippingAddress = "${{n}} Bench Road" }} }}
  order_id = "placeOrder.id"
"#,
        stock = orders * 2 + 10,
        secs = duration.as_secs(),
        settle = settle.as_secs(),
    )
}

/// Waits until every projector reports no lag against the store; returns how long it took.
async fn views_caught_up(
    http: &reqwest::Client,
    topology: &Topology,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let projectors: Vec<String> = topology
        .components()
        .iter()
        .filter(|c| matches!(c.kind, ComponentKind::Projector(_)))
        .map(|c| format!("{}/status", c.url))
        .collect();
    loop {
        let mut behind = 0u64;
        for url in &projectors {
            let status: Value = http
                .get(url)
                .send()
                .await
                .with_context(|| format!("GET {url}"))?
                .json()
                .await
                .with_context(|| format!("GET {url}: not JSON"))?;
            behind += status["lag_events"].as_u64().unwrap_or(u64::MAX / 64);
        }
        if behind == 0 {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < deadline,
            "the views were still {behind} events behind after {deadline:?}"
        );
        // Polling a condition with a deadline, not a sleep as synchronisation.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The hops of every order placed in a run: the events from `from` up to
/// (not including) `to`, grouped by the checkout's correlation id.
async fn order_hops(
    store: &projectors::source::HttpSource,
    from: u64,
    to: u64,
) -> anyhow::Result<Vec<crate::hops::Hop>> {
    let mut events = Vec::new();
    let mut next = from;
    while next < to {
        let page = store
            .read_all(next, 10_000)
            .await
            .map_err(|error| anyhow::anyhow!("reading the run's events: {error}"))?;
        let Some(last) = page.last() else { break };
        next = last.position + 1;
        events.extend(page.into_iter().filter(|event| event.position < to));
    }
    Ok(crate::hops::hops(&events, "OrderPlaced"))
}

fn print_hops(rate: f64, hops: &[crate::hops::Hop]) {
    println!("  at {rate}/s, where an order's time goes (the store's timestamps of its events):");
    for hop in hops.iter().filter(|hop| hop.count > 1) {
        println!(
            "  {:>28} -> {:<28} {:>6} p50 {:>7.1} ms  p99 {:>7.1} ms",
            hop.from, hop.to, hop.count, hop.p50_ms, hop.p99_ms
        );
    }
}

/// Runs the benchmark, prints a table and returns every figure as one JSON object.
pub async fn e2e(options: E2eOptions) -> anyhow::Result<Value> {
    let mut config = TopologyConfig::new(&options.program);
    config.amqp = options.amqp.clone();
    let admin = config.admin.clone();
    let topology = Topology::spawn(config)
        .await
        .context("failed to start the multi-process topology")?;
    let http = reqwest::Client::new();
    let result = run_rates(&options, &topology, &http, admin).await;
    let exits = topology.shutdown().await;
    let unclean: Vec<String> = exits
        .iter()
        .filter(|exit| exit.killed)
        .map(|exit| exit.component.clone())
        .collect();
    if !unclean.is_empty() {
        eprintln!("killed after the grace period: {}", unclean.join(", "));
    }
    result
}

async fn run_rates(
    options: &E2eOptions,
    topology: &Topology,
    http: &reqwest::Client,
    admin: crate::actors::AdminCredentials,
) -> anyhow::Result<Value> {
    let run_options = RunOptions {
        admin,
        ..RunOptions::from_env()
    };
    let runner = ScenarioRunner::new(topology.query_api_url(), run_options)
        .context("failed to create the scenario runner")?;
    let pids: Vec<(String, u32)> = topology
        .components()
        .iter()
        .filter_map(|c| c.pid().map(|pid| (c.kind.name(), pid)))
        .collect();
    // RabbitMQ's CPU and memory, reported beside (never in) the system's
    // figures, when the broker is this machine's.
    let broker = local_broker(&options.amqp);
    let mut runs = Vec::new();
    // Each rate's stretch of the store's log, read for the hops only after
    // the last memory sample: reading 10,000 events a page makes the store
    // build large responses, and what its allocator keeps of them would
    // count in the next rate's figures.
    let mut stretches = Vec::new();
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>12} {:>9} {:>9}",
        "rate/s",
        "placed",
        "confirmed",
        "achieved",
        "p50 ms",
        "p99 ms",
        "rec p50",
        "rec p99",
        "caught-up ms",
        "with views/s",
        "cpu s",
        "broker s"
    );
    let store = projectors::source::HttpSource::new(topology.store_url())
        .map_err(|error| anyhow::anyhow!("the store's URL: {error}"))?;
    for &rate in &options.rates {
        let first_position = store
            .head()
            .await
            .map_err(|error| anyhow::anyhow!("the store's head: {error}"))?;
        let before: Vec<Option<ProcessSample>> = pids.iter().map(|(_, pid)| sample(*pid)).collect();
        let broker_before = broker.and_then(sample);
        let text = scenario_text(rate, options.duration, options.customers, options.settle);
        let scenario = parse_str(&text, std::path::Path::new("e2e.toml"))
            .map_err(|error| anyhow::anyhow!("the e2e scenario does not parse: {error}"))?;
        let report = runner.run(&scenario).await;
        if let Some(failure) = &report.failure {
            anyhow::bail!("the e2e run at {rate}/s failed: {failure}");
        }
        let load = report
            .loads
            .first()
            .cloned()
            .context("the e2e scenario reported no load figures")?;
        let caught_up = views_caught_up(http, topology, options.settle).await?;
        // From the first order to every view caught up: the load step
        // (placing, then following every order to a final status) and the
        // wait for the views after it.
        let load_step = report
            .steps
            .last()
            .map_or(load.duration, |step| step.elapsed);
        let window = load_step + caught_up;
        let with_views = load.placed as f64 / window.as_secs_f64().max(f64::EPSILON);
        let after: Vec<Option<ProcessSample>> = pids.iter().map(|(_, pid)| sample(*pid)).collect();
        let broker_cpu = broker_before
            .zip(broker.and_then(sample))
            .map(|(before, after)| cpu_seconds_between(&before, &after));
        let mut processes = serde_json::Map::new();
        let mut cpu_total = 0.0;
        let mut rss_total_kib = 0u64;
        let mut pss_total_kib = 0u64;
        for (((name, _), before), after) in pids.iter().zip(&before).zip(&after) {
            if let (Some(before), Some(after)) = (before, after) {
                let cpu = cpu_seconds_between(before, after);
                cpu_total += cpu;
                rss_total_kib += after.rss_kib;
                pss_total_kib += after.pss_kib;
                processes.insert(
                    name.clone(),
                    json!({
                        "cpu_seconds": cpu,
                        "rss_mb": after.rss_kib as f64 / 1024.0,
                        "peak_rss_mb": after.peak_rss_kib as f64 / 1024.0,
                        "pss_mb": after.pss_kib as f64 / 1024.0,
                        "rss_anon_mb": after.rss_anon_kib as f64 / 1024.0,
                        "rss_file_mb": after.rss_file_kib as f64 / 1024.0,
                    }),
                );
            }
        }
        let ms = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0);
        println!(
            "{:>8.0} {:>9} {:>9} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>11.0} {:>12.1} {:>9.1} {:>9}",
            rate,
            load.placed,
            load.confirmed,
            load.achieved_rate,
            ms(load.p50).map_or("-".into(), |v| format!("{v:.1}")),
            ms(load.p99).map_or("-".into(), |v| format!("{v:.1}")),
            ms(load.p50_recorded).map_or("-".into(), |v| format!("{v:.1}")),
            ms(load.p99_recorded).map_or("-".into(), |v| format!("{v:.1}")),
            caught_up.as_secs_f64() * 1000.0,
            with_views,
            cpu_total,
            broker_cpu.map_or("-".into(), |cpu| format!("{cpu:.1}")),
        );
        let head = store
            .head()
            .await
            .map_err(|error| anyhow::anyhow!("the store's head: {error}"))?;
        stretches.push((rate, first_position, head));
        runs.push(json!({
            "target_rate": rate,
            "duration_secs": load.duration.as_secs_f64(),
            "placed": load.placed,
            "confirmed": load.confirmed,
            "cancelled": load.cancelled,
            "failed": load.failed,
            "pending": load.pending,
            "achieved_rate": load.achieved_rate,
            "confirmed_rate": load.confirmed_rate,
            "p50_to_confirmed_ms": ms(load.p50),
            "p99_to_confirmed_ms": ms(load.p99),
            "max_to_confirmed_ms": ms(load.max),
            "p50_to_confirmed_recorded_ms": ms(load.p50_recorded),
            "p99_to_confirmed_recorded_ms": ms(load.p99_recorded),
            "views_caught_up_ms": caught_up.as_secs_f64() * 1000.0,
            "orders_per_second_with_views_caught_up": with_views,
            "cpu_seconds_total": cpu_total,
            "cpu_ms_per_order": per_order(cpu_total, load.placed),
            "broker_cpu_seconds": broker_cpu,
            "broker_cpu_ms_per_order": broker_cpu.map(|cpu| per_order(cpu, load.placed)),
            "rss_total_mb": rss_total_kib as f64 / 1024.0,
            "pss_total_mb": pss_total_kib as f64 / 1024.0,
            "processes": processes,
        }));
    }
    let last: Vec<ProcessSample> = pids.iter().filter_map(|(_, pid)| sample(*pid)).collect();
    let total = |field: fn(&ProcessSample) -> u64| {
        last.iter().map(|s| field(s) as f64 / 1024.0).sum::<f64>()
    };
    let rss_total_mb = total(|s| s.rss_kib);
    let peak_rss_total_mb = total(|s| s.peak_rss_kib);
    let pss_total_mb = total(|s| s.pss_kib);
    let rss_anon_total_mb = total(|s| s.rss_anon_kib);
    let rss_file_total_mb = total(|s| s.rss_file_kib);
    println!(
        "system memory (RabbitMQ excluded), over {} processes: RSS {rss_total_mb:.0} MB now \
         ({rss_anon_total_mb:.0} MB private, {rss_file_total_mb:.0} MB of mapped files, the \
         same code counted in every process), {peak_rss_total_mb:.0} MB sum of peaks; \
         PSS {pss_total_mb:.0} MB now (shared code pages counted once)",
        pids.len()
    );
    for ((rate, from, to), run) in stretches.into_iter().zip(runs.iter_mut()) {
        let hops = order_hops(&store, from, to).await?;
        print_hops(rate, &hops);
        run["hops"] = json!(hops);
    }
    let broker_last = broker.and_then(sample);
    if let Some(last) = &broker_last {
        println!(
            "RabbitMQ on this machine (not in the figures above): RSS {:.0} MB, PSS {:.0} MB",
            last.rss_kib as f64 / 1024.0,
            last.pss_kib as f64 / 1024.0
        );
    }
    Ok(json!({
        "benchmark": "e2e",
        "broker_rss_mb": broker_last.as_ref().map(|s| s.rss_kib as f64 / 1024.0),
        "broker_pss_mb": broker_last.as_ref().map(|s| s.pss_kib as f64 / 1024.0),
        "processes": pids.len(),
        "runs": runs,
        "rss_total_mb": rss_total_mb,
        "peak_rss_total_mb": peak_rss_total_mb,
        "pss_total_mb": pss_total_mb,
        "rss_anon_total_mb": rss_anon_total_mb,
        "rss_file_total_mb": rss_file_total_mb,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_scenario_parses_with_its_load_step() {
        let text = scenario_text(150.0, Duration::from_secs(10), 50, Duration::from_secs(60));
        let scenario = parse_str(&text, std::path::Path::new("e2e.toml")).expect("parses");
        assert_eq!(scenario.name, "e2e 150/s");
        assert_eq!(scenario.steps.len(), 3);
    }

    #[test]
    fn only_a_broker_on_this_machine_is_looked_for() {
        assert_eq!(local_broker("amqp://guest:guest@10.0.0.7:5672/%2f"), None);
        assert_eq!(local_broker("amqp://rabbitmq:5672"), None);
        assert_eq!(local_broker("not a url"), None);
        // On this machine, a local URL finds the one beam.smp when RabbitMQ runs here.
        let here = projectors::bench::local_broker_pid().and_then(|pid| pid.parse::<u32>().ok());
        for url in [
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "amqp://localhost",
            "amqp://[::1]:5672",
        ] {
            assert_eq!(local_broker(url), here, "{url}");
        }
    }

    #[test]
    fn a_process_samples_itself_from_proc() {
        let me = sample(std::process::id()).expect("own /proc entry");
        assert!(me.rss_kib > 0);
        assert!(me.peak_rss_kib >= me.rss_kib);
        assert!(me.pss_kib > 0 && me.pss_kib <= me.rss_kib, "{me:?}");
        // VmRSS is the sum of the anonymous, file and shared-memory parts.
        assert!(me.rss_anon_kib > 0 && me.rss_file_kib > 0, "{me:?}");
        assert!(me.rss_anon_kib + me.rss_file_kib <= me.rss_kib, "{me:?}");
    }
}
