//! The relay benchmark: relay events/s with confirms beside a raw
//! publish-with-confirms baseline, on the same broker, into the same kind of
//! queue (one quorum queue bound to `#`), with the same window, in one run.
//!
//! The store is filled first (not timed). Each round publishes the whole
//! log once through the raw baseline ([`raw_publish_with_confirms`]: the same
//! messages, built before the clock starts, straight on lapin) and once
//! through the [`Relay`] (reading the log, encoding, publishing, moving and
//! writing its checkpoint), emptying the queue in between; the best round of
//! each counts.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use domain::envelope::NewEvent;
use messaging::{
    amqp::baseline::raw_publish_with_confirms, AmqpConfig, AmqpTransport, ConsumerName,
    ConsumerSpec, Namespace, OutgoingMessage, SharedTransport, Transport,
};
use serde_json::{json, Value};
use service_runtime::shutdown::Shutdown;
use tokio::time::Instant;
use uuid::Uuid;

use super::{checkpoint, Relay, RelayOptions};
use crate::store::{ExpectedVersion, Store, StoreOptions};

/// What to run.
#[derive(Clone, Debug)]
pub struct RelayBenchOptions {
    /// The broker.
    pub amqp: String,
    /// Events in the store, each relayed once per round.
    pub events: usize,
    /// Unconfirmed messages at a time, for both the relay and the baseline.
    pub window: usize,
    /// Size of each event's `data`, in bytes.
    pub data_bytes: usize,
    /// Streams the events are spread over.
    pub streams: usize,
    /// Rounds of baseline + relay; the best of each counts.
    pub rounds: usize,
}

impl Default for RelayBenchOptions {
    fn default() -> Self {
        Self {
            amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            events: 100_000,
            window: 1024,
            data_bytes: 300,
            streams: 1000,
            rounds: 2,
        }
    }
}

fn data(bytes: usize) -> String {
    let padding = bytes.saturating_sub(r#"{"pad":""}"#.len());
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(padding))
}

async fn fill(store: &Store, options: &RelayBenchOptions) -> anyhow::Result<()> {
    let data = data(options.data_bytes);
    let streams = options.streams.max(1);
    let per_append = 100usize;
    let mut remaining = options.events;
    let mut appends = Vec::new();
    let mut stream = 0usize;
    while remaining > 0 {
        let count = remaining.min(per_append);
        remaining -= count;
        let events: Vec<NewEvent> = (0..count)
            .map(|_| NewEvent {
                event_id: Uuid::new_v4(),
                event_type: "BenchEvent".into(),
                schema_version: 1,
                data: data.clone(),
                metadata: "{}".into(),
            })
            .collect();
        appends.push((format!("bench-{}", stream % streams), events));
        stream += 1;
    }
    let mut tasks = tokio::task::JoinSet::new();
    // Sixteen writers keep the group commit busy.
    let writers = 16;
    let share = appends.len().div_ceil(writers).max(1);
    let mut appends = appends.into_iter().peekable();
    while appends.peek().is_some() {
        let batch: Vec<(String, Vec<NewEvent>)> = appends.by_ref().take(share).collect();
        let store = store.clone();
        tasks.spawn(async move {
            for (stream, events) in batch {
                store
                    .append(&stream, ExpectedVersion::Any, events)
                    .await
                    .with_context(|| format!("failed to append to {stream}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a filling task panicked")??;
    }
    Ok(())
}

async fn empty_sink(transport: &AmqpTransport, sink: &ConsumerSpec) -> anyhow::Result<()> {
    transport.delete_consumer_topology(&sink.name).await?;
    transport.declare_consumer(sink).await?;
    Ok(())
}

async fn relay_once(
    store: &Store,
    transport: SharedTransport,
    window: usize,
) -> anyhow::Result<Duration> {
    let path = checkpoint::path(store.dir(), transport.namespace());
    if path.exists() {
        std::fs::remove_file(&path).context("failed to reset the relay checkpoint")?;
    }
    let relay = Relay::new(
        store.clone(),
        transport,
        RelayOptions {
            window,
            ..RelayOptions::default()
        },
    )?;
    let mut checkpoint = relay.watch_checkpoint();
    let head = store.head();
    let shutdown = Shutdown::new();
    let started = Instant::now();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    let reached = tokio::time::timeout(
        Duration::from_secs(600),
        checkpoint.wait_for(|position| *position >= head),
    )
    .await;
    let elapsed = started.elapsed();
    shutdown.trigger();
    running.await.context("the relay panicked")??;
    match reached {
        Ok(Ok(_)) => Ok(elapsed),
        _ => anyhow::bail!("the relay did not reach the head ({head}) in time"),
    }
}

/// Runs the benchmark; returns its figures as one JSON object.
pub async fn bench_relay(options: RelayBenchOptions) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir().context("failed to make a temporary directory")?;
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .context("failed to open the benchmark store")?;
    fill(&store, &options).await?;
    let events = store.head();

    let id = Uuid::new_v4().simple().to_string();
    let namespace = Namespace::parse(&format!("bench-{}", &id[..12]))?;
    let config = AmqpConfig::new(options.amqp.clone(), namespace)
        .with_connection_name(format!("relay bench {id}"));
    let transport = AmqpTransport::connect(config.clone())
        .await
        .context("failed to connect to RabbitMQ")?;
    let sink = ConsumerSpec::new(ConsumerName::parse("sink")?, ["#"])?;
    transport.declare_consumer(&sink).await?;

    let outcome = async {
        let store_id = store.store_id();
        let mut messages = Vec::with_capacity(events as usize);
        let mut position = 0;
        while position < events {
            let batch = store.read_all(position, 10_000).await?;
            position += batch.len() as u64;
            for event in &batch {
                messages.push(OutgoingMessage::for_event(event, store_id)?);
            }
        }
        let shared: SharedTransport = Arc::new(transport.clone());
        let mut best_raw = Duration::MAX;
        let mut best_relay = Duration::MAX;
        for round in 0..options.rounds.max(1) {
            empty_sink(&transport, &sink).await?;
            let raw = raw_publish_with_confirms(&config, &messages, options.window)
                .await
                .context("the raw publish baseline failed")?;
            empty_sink(&transport, &sink).await?;
            let relayed = relay_once(&store, Arc::clone(&shared), options.window).await?;
            tracing::info!(
                round,
                raw_per_s = events as f64 / raw.as_secs_f64(),
                relay_per_s = events as f64 / relayed.as_secs_f64(),
                "relay benchmark round"
            );
            best_raw = best_raw.min(raw);
            best_relay = best_relay.min(relayed);
        }
        anyhow::Ok((best_raw, best_relay))
    }
    .await;

    let cleanup = transport.delete_namespace().await;
    transport.close().await;
    store.shutdown().await.ok();
    let (raw, relayed) = outcome?;
    cleanup.context("failed to delete the benchmark's queues")?;

    let raw_per_s = events as f64 / raw.as_secs_f64();
    let relay_per_s = events as f64 / relayed.as_secs_f64();
    Ok(json!({
        "events": events,
        "window": options.window,
        "data_bytes": options.data_bytes,
        "queue_type": "quorum",
        "rounds": options.rounds.max(1),
        "raw_publish_per_s": raw_per_s.round(),
        "relay_events_per_s": relay_per_s.round(),
        "relay_vs_raw": (relay_per_s / raw_per_s * 1000.0).round() / 1000.0,
        "target_relay_vs_raw": 0.8,
    }))
}
