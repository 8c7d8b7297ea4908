//! The store benchmark behind `shop bench store`.
//!
//! Every figure is measured in one run on one disk: the raw `fdatasync` rate
//! (write 300 bytes, `sync_data`, repeat) in the benchmark directory; durable
//! 300-byte single-event appends per second with 1, 16 and 256 concurrent
//! writers, in-process and over HTTP (binary form, through [`StoreClient`],
//! one connection per writer); and read-all throughput.
//!
//! A shared disk's sync latency drifts by several times within seconds, so
//! the single writer and the raw sync loop are measured in alternating
//! slices and compared over the same stretch of time.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::envelope::NewEvent;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::client::StoreClient;
use crate::index::{Index, IndexBatch, IndexHelper};
use crate::server;
use crate::store::{ExpectedVersion, Store, StoreOptions};

/// What to run.
#[derive(Debug, Clone)]
pub struct StoreBenchOptions {
    /// Where the benchmark stores live (a fresh temporary folder is made inside
    /// and removed after); the raw sync rate is measured there too. Defaults to
    /// the system temp dir.
    pub dir: Option<PathBuf>,
    /// Concurrent writer counts to run.
    pub writers: Vec<usize>,
    /// How long each in-process append run lasts at most.
    pub duration: Duration,
    /// The most appends of one in-process run.
    pub max_appends: u64,
    /// How long each HTTP append run lasts at most.
    pub http_duration: Duration,
    /// The most appends of one HTTP run.
    pub http_max_appends: u64,
    /// Slices the single-writer run and the raw sync loop alternate in.
    pub sync_slices: u32,
    /// Events read by the read-all run (written first if the appends left fewer).
    pub read_events: u64,
}

impl Default for StoreBenchOptions {
    fn default() -> Self {
        Self {
            dir: None,
            writers: vec![1, 16, 256],
            duration: Duration::from_secs(4),
            max_appends: 1_000_000,
            http_duration: Duration::from_secs(4),
            http_max_appends: 200_000,
            sync_slices: 4,
            read_events: 500_000,
        }
    }
}

/// Size of the `data` of every benchmark event, in bytes.
pub const EVENT_DATA_BYTES: usize = 300;

/// How a benchmark's event ids are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ids {
    /// Time-ordered (UUID v7), as the command services make them for commands
    /// without an idempotency key: each lands at the end of the id index.
    TimeOrdered,
    /// Random (UUID v4), as a client may send: each lands anywhere in the id index.
    Random,
}

impl Ids {
    fn next(self) -> Uuid {
        match self {
            Self::TimeOrdered => Uuid::now_v7(),
            Self::Random => Uuid::new_v4(),
        }
    }
}

fn bench_event(data: &str, ids: Ids) -> NewEvent {
    NewEvent {
        event_id: ids.next(),
        event_type: "BenchEvent".into(),
        schema_version: 1,
        data: data.to_owned(),
        metadata: "{}".into(),
    }
}

fn event_data() -> String {
    // {"pad":"xxx…"} is exactly EVENT_DATA_BYTES long.
    let padding = EVENT_DATA_BYTES - r#"{"pad":""}"#.len();
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(padding))
}

/// A count over a time.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    count: u64,
    elapsed: Duration,
}

impl Tally {
    fn add(self, other: Self) -> Self {
        Self {
            count: self.count + other.count,
            elapsed: self.elapsed + other.elapsed,
        }
    }

    fn rate(self) -> f64 {
        if self.elapsed.is_zero() {
            0.0
        } else {
            self.count as f64 / self.elapsed.as_secs_f64()
        }
    }
}

/// `write(300 bytes)` + `fdatasync` in a loop, in `dir`, for `duration`.
fn raw_sync_loop(dir: &Path, duration: Duration) -> anyhow::Result<Tally> {
    let path = dir.join("raw-sync.bin");
    let mut file = File::create(&path).context("failed to create the raw sync file")?;
    let record = [0x5au8; EVENT_DATA_BYTES];
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < duration {
        file.write_all(&record)
            .context("failed to write the raw sync file")?;
        file.sync_data()
            .context("failed to sync the raw sync file")?;
        count += 1;
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_file(&path).context("failed to remove the raw sync file")?;
    Ok(Tally { count, elapsed })
}

async fn raw_sync(dir: &Path, duration: Duration) -> anyhow::Result<Tally> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || raw_sync_loop(&dir, duration))
        .await
        .context("the raw sync loop panicked")?
}

/// Runs `writers` concurrent loops of single-event appends to their own
/// streams until `duration` passes or `max_appends` are done.
async fn append_run<F, Fut>(
    writers: usize,
    duration: Duration,
    max_appends: u64,
    ids: Ids,
    append: F,
) -> anyhow::Result<Tally>
where
    F: Fn(String, NewEvent) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let data = event_data();
    let writers = writers.max(1);
    let per_writer = max_appends.div_ceil(writers as u64).max(1);
    let run = Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let append = append.clone();
        let data = data.clone();
        let stream = format!("bench-{}w{writer}", &run[..8]);
        tasks.spawn(async move {
            let mut done = 0u64;
            while done < per_writer && Instant::now() < deadline {
                append(stream.clone(), bench_event(&data, ids)).await?;
                done += 1;
            }
            anyhow::Ok(done)
        });
    }
    let mut count = 0u64;
    while let Some(result) = tasks.join_next().await {
        count += result.context("a benchmark writer panicked")??;
    }
    Ok(Tally {
        count,
        elapsed: started.elapsed(),
    })
}

async fn in_process_run(
    store: &Store,
    writers: usize,
    duration: Duration,
    max_appends: u64,
    ids: Ids,
) -> anyhow::Result<Tally> {
    let store = store.clone();
    append_run(writers, duration, max_appends, ids, move |stream, event| {
        let store = store.clone();
        async move {
            store
                .append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .context("in-process append failed")?;
            Ok(())
        }
    })
    .await
}

async fn http_run(
    client: &StoreClient,
    writers: usize,
    options: &StoreBenchOptions,
) -> anyhow::Result<Tally> {
    let client = client.clone();
    append_run(
        writers,
        options.http_duration,
        options.http_max_appends,
        Ids::TimeOrdered,
        move |stream, event| {
            let client = client.clone();
            async move {
                client
                    .append(&stream, ExpectedVersion::Any, vec![event])
                    .await
                    .context("HTTP append failed")?;
                Ok(())
            }
        },
    )
    .await
}

/// The store's index work alone, as a ceiling for the appends: groups of
/// `group` single-event appends to `group` streams, with time-ordered ids,
/// written through the same index code and helper thread as the writer, with
/// no log, no sync, no callers. In a fresh sled database in `dir`.
async fn index_only_run(dir: &Path, group: usize, duration: Duration) -> anyhow::Result<Tally> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let index = Index::open(&dir, StoreOptions::default().index_cache_bytes)
            .context("failed to open the index-only database")?;
        let helper = IndexHelper::start(&index).context("failed to start the index helper")?;
        let group = group.max(1);
        let streams: Vec<String> = (0..group).map(|n| format!("bench-index-w{n}")).collect();
        let mut versions = vec![0u64; group];
        let hash = [7u8; 16];
        let started = Instant::now();
        let mut position = 0u64;
        while started.elapsed() < duration {
            let mut batch = IndexBatch::default();
            for (stream, version) in streams.iter().zip(versions.iter_mut()) {
                let offset = position * (EVENT_DATA_BYTES as u64 + 100);
                batch.add_event(
                    stream,
                    "bench",
                    *version,
                    position,
                    offset,
                    Ids::TimeOrdered.next(),
                    &hash,
                );
                *version += 1;
                position += 1;
            }
            index
                .apply_with(batch, Some(position), &helper)
                .context("index-only write failed")?;
        }
        Ok(Tally {
            count: position,
            elapsed: started.elapsed(),
        })
    })
    .await
    .context("the index-only run panicked")?
}

/// Tops the store up to `events` and reads it all, 1000 events at a time.
async fn read_all_run(store: &Store, events: u64) -> anyhow::Result<Tally> {
    let data = event_data();
    let mut batch_number = 0u64;
    while store.head() < events {
        let count = (events - store.head()).min(1000);
        let batch = (0..count)
            .map(|_| bench_event(&data, Ids::TimeOrdered))
            .collect();
        store
            .append(
                &format!("bench-fill-{}", batch_number % 64),
                ExpectedVersion::Any,
                batch,
            )
            .await
            .context("failed to fill the store for the read benchmark")?;
        batch_number += 1;
    }
    let head = store.head();
    let started = Instant::now();
    let mut position = 0;
    while position < head {
        let events = store
            .read_all(position, 1000)
            .await
            .context("read_all failed")?;
        anyhow::ensure!(
            !events.is_empty(),
            "read_all returned nothing below the head"
        );
        position += events.len() as u64;
    }
    Ok(Tally {
        count: head,
        elapsed: started.elapsed(),
    })
}

fn row(label: &str, per_second: f64) {
    println!("{label:<48} {per_second:>14.0}");
}

/// Runs the store benchmark, prints a table and returns every figure as one JSON object.
pub async fn run_store_bench(options: StoreBenchOptions) -> anyhow::Result<Value> {
    let base = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).context("failed to create the benchmark directory")?;
    let scratch = tempfile::Builder::new()
        .prefix("store-bench-")
        .tempdir_in(&base)
        .context("failed to create a temporary benchmark directory")?;
    let dir = scratch.path().to_path_buf();

    // In-process. The single writer alternates with the raw sync loop.
    let store = Store::open(dir.join("in-process"), StoreOptions::default())
        .await
        .context("failed to open the benchmark store")?;
    let mut in_process = Map::new();
    let mut raw = Tally::default();
    let mut single = Tally::default();
    for &writers in &options.writers {
        let tally = if writers == 1 {
            let slices = options.sync_slices.max(1);
            let slice = options.duration / slices;
            for _ in 0..slices {
                raw = raw.add(raw_sync(&dir, slice).await?);
                single = single.add(
                    in_process_run(&store, 1, slice, options.max_appends, Ids::TimeOrdered).await?,
                );
            }
            single
        } else {
            in_process_run(
                &store,
                writers,
                options.duration,
                options.max_appends,
                Ids::TimeOrdered,
            )
            .await?
        };
        in_process.insert(writers.to_string(), json!(tally.rate().round()));
    }
    // The most writers again with random ids, and the index's own ceiling.
    let most = options.writers.iter().copied().max().unwrap_or(1);
    let random_ids = in_process_run(
        &store,
        most,
        options.duration,
        options.max_appends,
        Ids::Random,
    )
    .await?;
    let index_alone = index_only_run(&dir.join("index-only"), most, options.duration).await?;
    let read = read_all_run(&store, options.read_events).await?;
    store
        .shutdown()
        .await
        .map_err(|e| anyhow::anyhow!("failed to shut the benchmark store down: {e}"))?;
    drop(store);

    // Over HTTP, binary form, a real server on a loopback port.
    let shutdown = service_runtime::shutdown::Shutdown::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("failed to bind a port for the HTTP benchmark")?;
    let config = server::EventStoreConfig::for_data_dir(dir.join("http"));
    let running = server::start(&config, listener, shutdown.clone()).await?;
    let client = StoreClient::new(&format!("http://{}", running.addr))?;
    let mut http = Map::new();
    for &writers in &options.writers {
        let tally = http_run(&client, writers, &options).await?;
        http.insert(writers.to_string(), json!(tally.rate().round()));
    }
    shutdown.trigger();
    running.wait().await?;

    let figure =
        |map: &Map<String, Value>, key: &str| map.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let raw_rate = raw.rate();
    let single_vs_raw = if raw_rate > 0.0 {
        single.rate() / raw_rate
    } else {
        0.0
    };
    let many = figure(&in_process, "256");

    println!(
        "event store benchmark: {EVENT_DATA_BYTES}-byte single-event appends, in {}",
        base.display()
    );
    println!("{:<48} {:>14}", "figure", "per second");
    row("raw write + fdatasync", raw_rate);
    for &writers in &options.writers {
        row(
            &format!("durable appends, in-process, {writers} writers"),
            figure(&in_process, &writers.to_string()),
        );
    }
    row(
        &format!("durable appends, {most} writers, random ids"),
        random_ids.rate(),
    );
    row(
        &format!("index writes alone, groups of {most} (ceiling)"),
        index_alone.rate(),
    );
    for &writers in &options.writers {
        row(
            &format!("durable appends, HTTP (binary), {writers} writers"),
            figure(&http, &writers.to_string()),
        );
    }
    row(
        &format!("read-all events ({} events)", read.count),
        read.rate(),
    );
    println!(
        "{:<48} {:>13.0}%",
        "1 writer / raw fdatasync",
        single_vs_raw * 100.0
    );

    Ok(json!({
        "benchmark": "store",
        "event_data_bytes": EVENT_DATA_BYTES,
        "dir": base.display().to_string(),
        "raw_fdatasync_per_sec": raw_rate.round(),
        "in_process_appends_per_sec": in_process,
        "in_process_random_ids_appends_per_sec": { most.to_string(): random_ids.rate().round() },
        "index_only_events_per_sec": index_alone.rate().round(),
        "http_appends_per_sec": http,
        "read_all_events_per_sec": read.rate().round(),
        "read_all_events": read.count,
        "single_writer_vs_raw_sync": (single_vs_raw * 1000.0).round() / 1000.0,
        "targets": {
            "in_process_256_writers_at_least_100000": many >= 100_000.0,
            "single_writer_at_least_80_percent_of_raw_sync": single_vs_raw >= 0.8,
            "read_all_at_least_1000000": read.rate() >= 1_000_000.0,
        },
    }))
}
