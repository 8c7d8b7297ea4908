//! The projector benchmarks behind `shop bench replay` and
//! `shop bench projectors`. Each prints a few lines on stderr and returns
//! one JSON object with every figure.
//!
//! - [`replay`]: every view rebuilt from a store of (by default) 1,000,000
//!   events of a synthetic shop, in this process, straight from the store's
//!   files; events/s and the peak resident memory of the rebuild.
//! - [`live`]: a projector draining its RabbitMQ queue (quorum, prefetch,
//!   batched acks, one sled batch per delivery batch) beside a raw consumer
//!   that only acks, on a queue with the same bindings and the same messages,
//!   in the same run.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use messaging::{
    AmqpConfig, AmqpTransport, ConsumerName, ConsumerSpec, Namespace, OutgoingMessage, QueueRole,
    SharedTransport,
};
use serde_json::{json, Value};
use service_runtime::shutdown::Shutdown;
use uuid::Uuid;

use crate::{
    layout::ViewDir,
    name::ProjectorName,
    projection::projection_for,
    replay::{rebuild_with, Batching, Target, OFFLINE_BATCHING},
    runtime::{Projector, RuntimeSettings},
    source::{MemorySource, SharedSource},
    viewdb::{DbOptions, ViewDb},
    workload::{self, Workload, WorkloadOptions},
};

/// Options of [`replay`].
#[derive(Clone, Debug, clap::Args)]
pub struct ReplayBenchOptions {
    /// Where the benchmark's files go (default: a temporary folder).
    #[arg(long, env = "SHOP_BENCH_DIR")]
    pub dir: Option<PathBuf>,
    /// Events in the store.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Reuse whatever store a previous run left in `--dir`, even a smaller
    /// one (a store with at least `--events` events is always reused).
    #[arg(long)]
    pub reuse: bool,
    /// Which views to rebuild (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub views: Vec<ProjectorName>,
    /// Events per sled transaction of each view at most (default: the replay's own).
    #[arg(long)]
    pub commit_every: Option<usize>,
    /// Documents a view's transaction may hold before it is written
    /// (default: the replay's own).
    #[arg(long)]
    pub max_held: Option<usize>,
    /// sled's cache per view database, in MiB (default: the replay's own).
    #[arg(long)]
    pub cache_mb: Option<u64>,
}

impl Default for ReplayBenchOptions {
    fn default() -> Self {
        Self {
            dir: None,
            events: 1_000_000,
            reuse: false,
            views: Vec::new(),
            commit_every: None,
            max_held: None,
            cache_mb: None,
        }
    }
}

/// Options of [`live`].
#[derive(Clone, Debug, clap::Args)]
pub struct LiveBenchOptions {
    /// RabbitMQ.
    #[arg(
        long,
        env = "SHOP_AMQP",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp: String,
    /// Events generated (each projector gets those of its categories).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Prefetch of both consumers (default: the projectors' own).
    #[arg(long, default_value_t = RuntimeSettings::default().prefetch)]
    pub prefetch: u16,
    /// Deliveries per batch (one sled batch and one ack for the projector;
    /// default: the projectors' own).
    #[arg(long, default_value_t = RuntimeSettings::default().batch)]
    pub batch: usize,
    /// Which projectors to measure, one after the other.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "orders")]
    pub projectors: Vec<ProjectorName>,
    /// Rounds of (raw drain, projector drain), each with its share of the
    /// messages; the ratio reported is the median of the rounds' ratios,
    /// so a machine whose speed changes between the two drains of one
    /// round weighs less.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Where the views' files go (default: a temporary folder).
    #[arg(long, env = "SHOP_BENCH_DIR")]
    pub dir: Option<PathBuf>,
}

impl Default for LiveBenchOptions {
    fn default() -> Self {
        Self {
            amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            events: 200_000,
            prefetch: RuntimeSettings::default().prefetch,
            batch: RuntimeSettings::default().batch,
            projectors: vec![ProjectorName::Orders],
            rounds: 3,
            dir: None,
        }
    }
}

/// A value from `/proc/self/status` in MiB (`VmHWM`, `VmRSS`).
fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time this process used so far (user + system), from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    cpu_seconds_of("self")
}

/// The CPU seconds of process `pid` (`self` for this one) so far (Linux);
/// the e2e benchmark reads its processes' with it too.
pub fn cpu_seconds_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks; 100 per second on Linux.
    Some((utime + stime) / 100.0)
}

/// This process's CPU seconds since `before` (a [`cpu_seconds`] reading).
fn cpu_since(before: Option<f64>) -> Option<f64> {
    cpu_seconds()
        .zip(before)
        .map(|(after, before)| after - before)
}

/// The pid of a RabbitMQ running on this machine (its Erlang VM,
/// `beam.smp`), if there is exactly one: its CPU is the broker's share of
/// each drain when the benchmark uses the local broker (the e2e benchmark
/// reads it too).
pub fn local_broker_pid() -> Option<String> {
    let mut found = std::fs::read_dir("/proc").ok()?.filter_map(|entry| {
        let entry = entry.ok()?;
        let pid = entry.file_name().into_string().ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        (pid.bytes().all(|b| b.is_ascii_digit()) && comm.trim() == "beam.smp").then_some(pid)
    });
    let pid = found.next()?;
    found.next().is_none().then_some(pid)
}

/// CPU readings of this process and of the local broker, if there is one.
#[derive(Clone, Copy)]
struct CpuMark {
    own: Option<f64>,
    broker: Option<f64>,
}

impl CpuMark {
    fn now(broker: Option<&str>) -> Self {
        Self {
            own: cpu_seconds(),
            broker: broker.and_then(cpu_seconds_of),
        }
    }

    /// CPU µs per message of this process and of the broker since `self`.
    fn per_message(self, broker: Option<&str>, messages: u64) -> (Option<f64>, Option<f64>) {
        let now = Self::now(broker);
        let per = |before: Option<f64>, after: Option<f64>| {
            before
                .zip(after)
                .map(|(before, after)| (after - before) * 1e6 / messages.max(1) as f64)
        };
        (per(self.own, now.own), per(self.broker, now.broker))
    }
}

/// Resets the peak RSS to the current RSS (Linux: `/proc/self/clear_refs`).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn work_dir(dir: Option<&Path>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok((dir.to_owned(), None))
        }
        None => {
            let temp = tempfile::tempdir().context("cannot make a temporary folder")?;
            Ok((temp.path().to_owned(), Some(temp)))
        }
    }
}

fn store_options() -> event_store::StoreOptions {
    event_store::StoreOptions {
        index_cache_bytes: 16 * 1024 * 1024,
        ..event_store::StoreOptions::default()
    }
}

/// Fills a store with a synthetic history of `events` events.
async fn fill(store: &event_store::Store, events: usize) -> anyhow::Result<()> {
    let mut workload = Workload::new(WorkloadOptions {
        events,
        products: 2_000,
        customers: 20_000,
        in_flight: 256,
        seed: 1,
    });
    let mut chunk_index = 0u64;
    loop {
        let chunk = workload.next_chunk(50_000)?;
        if chunk.is_empty() {
            return Ok(());
        }
        let appends = workload::new_events(&chunk, 1_000 + chunk_index)?;
        chunk_index += 1;
        workload::append_to_store(store, appends, 128).await?;
    }
}

/// Rebuilds every view from a store of `options.events` events.
pub async fn replay(options: ReplayBenchOptions) -> anyhow::Result<Value> {
    let (dir, _temp) = work_dir(options.dir.as_deref())?;
    let store_dir = dir.join(format!("replay-store-{}", options.events));
    let mut filled = None;
    // The history is the same on every run: a store a previous run filled is reused.
    let reusable = if store_dir.exists() {
        let store = event_store::Store::open(&store_dir, store_options()).await?;
        let head = store.head();
        store
            .shutdown()
            .await
            .map_err(|error| anyhow::anyhow!("cannot close the store: {error}"))?;
        options.reuse || head >= options.events as u64
    } else {
        false
    };
    if !reusable {
        if store_dir.exists() {
            std::fs::remove_dir_all(&store_dir)
                .with_context(|| format!("cannot remove {}", store_dir.display()))?;
        }
        let store = event_store::Store::open(&store_dir, store_options()).await?;
        let started = Instant::now();
        fill(&store, options.events).await?;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "filled the store with {} events in {seconds:.1} s ({:.0} appends/s)",
            store.head(),
            store.head() as f64 / seconds
        );
        filled = Some(seconds);
        store
            .shutdown()
            .await
            .map_err(|error| anyhow::anyhow!("cannot close the store: {error}"))?;
    }
    // Read as `shop replay --data` reads: the stopped store's log files only.
    let log = crate::replay::open_log(&store_dir)?;
    let head = log.log_head();
    let views_dir = dir.join("replay-views");
    if views_dir.exists() {
        std::fs::remove_dir_all(&views_dir)
            .with_context(|| format!("cannot remove {}", views_dir.display()))?;
    }
    let rss_before = proc_status_mib("VmRSS:");
    let peak_reset = reset_peak_rss();
    let names = if options.views.is_empty() {
        ProjectorName::ALL.to_vec()
    } else {
        options.views.clone()
    };
    let mut targets = Vec::new();
    for name in names {
        let db_options = match options.cache_mb {
            Some(mib) => DbOptions {
                cache_bytes: mib.max(1) * 1024 * 1024,
            },
            None => DbOptions::default(),
        };
        let db = ViewDb::open(&views_dir.join(name.as_str()), db_options)?;
        targets.push(Target {
            projection: projection_for(name),
            db: Arc::new(db),
        });
    }
    let source: SharedSource = Arc::new(log);
    let cpu_before = cpu_seconds();
    let batching = Batching {
        events: options.commit_every.unwrap_or(OFFLINE_BATCHING.events),
        documents: options.max_held.unwrap_or(OFFLINE_BATCHING.documents),
    };
    let report = rebuild_with(targets, source, head, Arc::new(|_, _| {}), batching).await?;
    let cpu = cpu_since(cpu_before);
    let peak = proc_status_mib("VmHWM:");
    let floor = sled_floor(
        &views_dir,
        &dir.join("replay-floor"),
        &report,
        options.cache_mb,
    )
    .await?;
    if options.dir.is_some() {
        std::fs::remove_dir_all(&views_dir).ok();
    }
    eprintln!(
        "sled floor: copying the rebuilt views' {} entries into fresh databases, sorted, on {} threads: {:.2} s, {:.1} CPU s; the replay cannot beat {:.0} events/s on sled",
        floor.entries,
        floor.threads,
        floor.seconds,
        floor.cpu_seconds.unwrap_or(f64::NAN),
        floor.ceiling_events_per_second
    );
    eprintln!(
        "replay: {} events into {} views in {:.2} s: {:.0} events/s (target 300000), {:.1} CPU s; peak RSS {:.0} MiB (the target, < 200 MB, is one projector's: --views NAME)",
        report.events,
        report.views.len(),
        report.seconds,
        report.events_per_second,
        cpu.unwrap_or(f64::NAN),
        peak.unwrap_or(f64::NAN)
    );
    Ok(json!({
        "benchmark": "replay",
        "events": report.events,
        "views": report.views.len(),
        "seconds": report.seconds,
        "events_per_second": report.events_per_second,
        "cpu_seconds": cpu,
        "events_per_cpu_second": cpu.map(|cpu| report.events as f64 / cpu.max(1e-9)),
        "target_events_per_second": 300_000,
        "peak_rss_mib": peak,
        "peak_rss_reset_before_replay": peak_reset,
        "rss_before_replay_mib": rss_before,
        "target_peak_rss_mib": 200,
        "fill_seconds": filled,
        "batching": {"events": batching.events, "documents": batching.documents},
        "per_view": report.views,
        "sled_floor": {
            "entries": floor.entries,
            "threads": floor.threads,
            "seconds": floor.seconds,
            "cpu_seconds": floor.cpu_seconds,
            "ceiling_events_per_second": floor.ceiling_events_per_second,
            "replay_vs_ceiling": report.events_per_second / floor.ceiling_events_per_second.max(1e-9),
        },
    }))
}

/// What writing the rebuilt views alone into sled costs.
struct SledFloor {
    entries: u64,
    threads: usize,
    seconds: f64,
    cpu_seconds: Option<f64>,
    /// The replay's events divided by `seconds`: what the replay would reach
    /// if reading, decoding and applying events cost nothing.
    ceiling_events_per_second: f64,
}

/// Copies every rebuilt view database under `views_dir` into a fresh one
/// under `floor_dir`, key by key in key order, the views spread over one
/// thread per core as the replay spreads them: the least sled itself needs
/// to write what the replay wrote, measured in the same run.
async fn sled_floor(
    views_dir: &Path,
    floor_dir: &Path,
    report: &crate::replay::RebuildReport,
    cache_mb: Option<u64>,
) -> anyhow::Result<SledFloor> {
    let db_options = || match cache_mb {
        Some(mib) => DbOptions {
            cache_bytes: mib.max(1) * 1024 * 1024,
        },
        None => DbOptions::default(),
    };
    if floor_dir.exists() {
        std::fs::remove_dir_all(floor_dir)
            .with_context(|| format!("cannot remove {}", floor_dir.display()))?;
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, report.views.len().max(1));
    let groups = crate::replay::balance(
        report
            .views
            .iter()
            .map(|view| (view.documents_written, view.name.clone()))
            .collect(),
        threads,
    );
    let mut pairs = Vec::new();
    for names in groups {
        let mut group = Vec::new();
        for name in names {
            let from = ViewDb::open(&views_dir.join(&name), db_options())?;
            let to = ViewDb::open(&floor_dir.join(&name), db_options())?;
            group.push((from, to));
        }
        pairs.push(group);
    }
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let entries = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            let handles: Vec<_> = pairs
                .iter()
                .map(|group| {
                    scope.spawn(move || {
                        group.iter().try_fold(0u64, |sum, (from, to)| {
                            from.copy_into(to).map(|copied| sum + copied)
                        })
                    })
                })
                .collect();
            handles.into_iter().try_fold(0u64, |sum, handle| {
                let copied = handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a sled floor thread panicked"))??;
                anyhow::Ok(sum + copied)
            })
        })
    })
    .await
    .context("the sled floor run was cancelled")??;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_since(cpu_before);
    std::fs::remove_dir_all(floor_dir).ok();
    Ok(SledFloor {
        entries,
        threads,
        seconds,
        cpu_seconds: cpu,
        ceiling_events_per_second: report.events as f64 / seconds.max(1e-9),
    })
}

/// Publishes `messages` with confirms, in windows.
async fn publish(transport: &SharedTransport, messages: &[OutgoingMessage]) -> anyhow::Result<()> {
    let mut publisher = transport.publisher().await?;
    for window in messages.chunks(2_000) {
        let report = publisher.publish_batch(window).await;
        if let Some(error) = report.error {
            anyhow::bail!("publishing the benchmark's messages failed: {error}");
        }
    }
    Ok(())
}

/// Waits (bounded) until `count` messages are ready in a queue.
async fn ready(
    transport: &SharedTransport,
    consumer: &ConsumerName,
    count: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = transport.ready_messages(consumer, QueueRole::Main).await?;
        if ready >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("only {ready} of {count} messages reached {consumer}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drains `count` messages with acks batched per `batch`, doing nothing else.
async fn drain_raw(
    transport: &SharedTransport,
    spec: &ConsumerSpec,
    count: u64,
    batch: usize,
    linger: Duration,
) -> anyhow::Result<f64> {
    let mut consumer = transport.consumer(spec).await?;
    let started = Instant::now();
    let mut seen = 0u64;
    while seen < count {
        let deliveries =
            tokio::time::timeout(Duration::from_secs(60), consumer.next_batch(batch, linger))
                .await
                .context("the raw consumer stalled")??;
        seen += deliveries.len() as u64;
        if let Some(last) = deliveries.last() {
            consumer.ack_up_to(last.tag).await?;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// One projector against the raw baseline.
async fn live_one(
    transport: &SharedTransport,
    name: ProjectorName,
    history: &[domain::envelope::RecordedEvent],
    options: &LiveBenchOptions,
    dir: &Path,
) -> anyhow::Result<Value> {
    let store_id = Uuid::new_v4();
    let projection = projection_for(name);
    let messages: Vec<OutgoingMessage> = history
        .iter()
        .filter(|event| projection.wants(event.category()))
        .map(|event| OutgoingMessage::for_event(event, store_id))
        .collect::<Result<_, _>>()?;
    let count = messages.len() as u64;
    if count == 0 {
        anyhow::bail!(
            "the generated history holds no events the {name} projector reads; raise --events"
        );
    }
    // The projector reads no history: everything it applies comes from the queue.
    let source: SharedSource = Arc::new(MemorySource::new(store_id));
    let settings = RuntimeSettings {
        prefetch: options.prefetch,
        batch: options.batch,
        ..RuntimeSettings::default()
    };
    let linger = settings.linger;
    let projector = Projector::open(
        name,
        ViewDir::new(dir, name),
        source,
        Some(Arc::clone(transport)),
        settings,
    )?;
    let spec = projector.consumer_spec()?;
    let raw = ConsumerSpec::new(
        ConsumerName::parse(&format!("bench.raw.{name}"))?,
        spec.bindings.clone(),
    )?
    .with_prefetch(options.prefetch);
    transport.declare_consumer(&spec).await?;
    transport.declare_consumer(&raw).await?;

    // Each round publishes the next slice of the history (so every stream
    // stays in order across rounds) to both queues, drains the raw queue,
    // then runs the projector until it has applied the slice.
    let rounds = options.rounds.clamp(1, messages.len().max(1));
    let per_round = messages.len().div_ceil(rounds);
    let rss_before = proc_status_mib("VmRSS:");
    let peak_reset = reset_peak_rss();
    let broker = local_broker_pid();
    let broker = broker.as_deref();
    let mut applied_before = 0u64;
    let mut measured = Vec::new();
    for slice in messages.chunks(per_round.max(1)) {
        let slice_count = slice.len() as u64;
        publish(transport, slice).await?;
        ready(transport, &raw.name, slice_count).await?;
        ready(transport, &spec.name, slice_count).await?;
        let raw_mark = CpuMark::now(broker);
        let raw_seconds = drain_raw(transport, &raw, slice_count, options.batch, linger).await?;
        let (raw_cpu_us, raw_broker_cpu_us) = raw_mark.per_message(broker, slice_count);

        let target = applied_before + slice_count;
        let shutdown = Shutdown::new();
        let mut commits = projector.commits();
        let mut starts = projector.consumer_starts();
        starts.borrow_and_update();
        let mut task =
            tokio::spawn(Arc::clone(&projector).consume(Arc::clone(transport), shutdown.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        // Timed from its consumer's start, as the raw consumer is: declaring
        // the queue and catching up from the store happen once per start
        // of a projector, not per message.
        tokio::select! {
            _ = starts.changed() => {}
            ended = &mut task => {
                ended.context("the projector task panicked")??;
                anyhow::bail!("the {name} projector stopped before consuming");
            }
            _ = tokio::time::sleep_until(deadline) => {
                anyhow::bail!("the {name} projector never started consuming");
            }
        }
        let mark = CpuMark::now(broker);
        let started = Instant::now();
        while projector.db().meta()?.events_applied < target {
            if tokio::time::timeout_at(deadline, commits.changed())
                .await
                .is_err()
            {
                anyhow::bail!("the {name} projector stalled");
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let (cpu_us, broker_cpu_us) = mark.per_message(broker, slice_count);
        shutdown.trigger();
        task.await.context("the projector task panicked")??;
        applied_before = target;
        measured.push(Round {
            messages: slice_count,
            rate: slice_count as f64 / seconds.max(1e-9),
            raw_rate: slice_count as f64 / raw_seconds.max(1e-9),
            cpu_us,
            raw_cpu_us,
            broker_cpu_us,
            raw_broker_cpu_us,
        });
    }
    let peak = proc_status_mib("VmHWM:");
    let rss_after = proc_status_mib("VmRSS:");
    let rate = median(measured.iter().map(|r| r.rate).collect());
    let raw_rate = median(measured.iter().map(|r| r.raw_rate).collect());
    let ratio = median(measured.iter().map(|r| r.rate / r.raw_rate).collect());
    let cpu_us = median_of(measured.iter().map(|r| r.cpu_us));
    let raw_cpu_us = median_of(measured.iter().map(|r| r.raw_cpu_us));
    let broker_cpu_us = median_of(measured.iter().map(|r| r.broker_cpu_us));
    let raw_broker_cpu_us = median_of(measured.iter().map(|r| r.raw_broker_cpu_us));
    let ratios: Vec<String> = measured
        .iter()
        .map(|r| format!("{:.2}", r.rate / r.raw_rate))
        .collect();
    eprintln!(
        "live {name}: {count} messages in {} rounds, projector {rate:.0}/s, raw consumer {raw_rate:.0}/s (medians): {:.0}% (target ≥ 80%; rounds {})",
        measured.len(),
        ratio * 100.0,
        ratios.join(", ")
    );
    if let (Some(cpu_us), Some(raw_cpu_us)) = (cpu_us, raw_cpu_us) {
        eprintln!(
            "live {name}: this process's CPU per message (medians; the broker's is not counted): projector {cpu_us:.1} µs, raw consumer {raw_cpu_us:.1} µs"
        );
    }
    if let (Some(broker_cpu_us), Some(raw_broker_cpu_us)) = (broker_cpu_us, raw_broker_cpu_us) {
        eprintln!(
            "live {name}: the local RabbitMQ's CPU per message (medians): while the projector drained {broker_cpu_us:.1} µs, while the raw consumer drained {raw_broker_cpu_us:.1} µs"
        );
    }
    Ok(json!({
        "projector": name.as_str(),
        "messages": count,
        "events_per_second": rate,
        "raw_messages_per_second": raw_rate,
        "ratio": ratio,
        "target_ratio": 0.8,
        "cpu_us_per_message": cpu_us,
        "raw_cpu_us_per_message": raw_cpu_us,
        "broker_cpu_us_per_message": broker_cpu_us,
        "raw_broker_cpu_us_per_message": raw_broker_cpu_us,
        "rounds": measured.iter().map(|r| json!({
            "messages": r.messages,
            "events_per_second": r.rate,
            "raw_messages_per_second": r.raw_rate,
            "ratio": r.rate / r.raw_rate,
            "cpu_us_per_message": r.cpu_us,
            "raw_cpu_us_per_message": r.raw_cpu_us,
            "broker_cpu_us_per_message": r.broker_cpu_us,
            "raw_broker_cpu_us_per_message": r.raw_broker_cpu_us,
        })).collect::<Vec<_>>(),
        "rss_before_projector_mib": rss_before,
        "rss_after_projector_mib": rss_after,
        "peak_rss_while_projecting_mib": peak,
        "peak_rss_reset_before_projecting": peak_reset,
    }))
}

/// One round of the live benchmark.
struct Round {
    messages: u64,
    rate: f64,
    raw_rate: f64,
    /// This process's CPU per message while the projector drained (µs).
    cpu_us: Option<f64>,
    /// The same while the raw consumer drained.
    raw_cpu_us: Option<f64>,
    /// The local broker's CPU per message while the projector drained (µs).
    broker_cpu_us: Option<f64>,
    /// The same while the raw consumer drained.
    raw_broker_cpu_us: Option<f64>,
}

/// The median of figures every round has; `None` if one lacks it.
fn median_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.collect::<Option<Vec<f64>>>().map(median)
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Live projection from RabbitMQ beside a raw consume baseline.
pub async fn live(options: LiveBenchOptions) -> anyhow::Result<Value> {
    let (dir, _temp) = work_dir(options.dir.as_deref())?;
    let id = Uuid::new_v4().simple().to_string();
    let namespace = Namespace::parse(&format!("bench-{}", &id[..12]))?;
    let transport: SharedTransport = Arc::new(
        AmqpTransport::connect(
            AmqpConfig::new(options.amqp.clone(), namespace)
                .with_connection_name("shop bench projectors"),
        )
        .await
        .context("cannot connect to RabbitMQ")?,
    );
    let history = workload::record(&workload::generate(WorkloadOptions {
        events: options.events,
        products: 2_000,
        customers: 20_000,
        in_flight: 256,
        seed: 2,
    })?)?;
    let mut results = Vec::new();
    let mut outcome = Ok(());
    for name in &options.projectors {
        match live_one(
            &transport,
            *name,
            &history,
            &options,
            &dir.join(format!("live-{id}")),
        )
        .await
        {
            Ok(result) => results.push(result),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    let cleanup = transport.delete_namespace().await;
    transport.close().await;
    outcome?;
    cleanup?;
    let peak = proc_status_mib("VmHWM:");
    Ok(json!({
        "benchmark": "projectors",
        "events": history.len(),
        "prefetch": options.prefetch,
        "batch": options.batch,
        "rounds": options.rounds,
        "queue_type": "quorum",
        "results": results,
        "peak_rss_mib": peak,
    }))
}
