//! The repository against the real store engine in the same process:
//! concurrent writers, batching on a hot aggregate, snapshots.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use command_services::event_log::{Appended, EventLog, Expected, LogError};
use command_services::idempotency::Landed;
use command_services::repository::{Repository, RepositoryOptions, Request};
use command_services::snapshots::{SnapshotRecord, SnapshotStore};
use domain::envelope::{EventMetadata, NewEvent, RecordedEvent};
use domain::stock::{self, Command, Stock};
use domain::values::{Quantity, Sku};
use futures::future::join_all;

/// The store, counting what goes through it.
struct Counting {
    store: event_store::Store,
    appends: AtomicUsize,
    reads: AtomicUsize,
    events_read: AtomicUsize,
}

#[async_trait]
impl EventLog for Counting {
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let events = EventLog::read_stream(&self.store, stream, from, limit).await?;
        self.events_read.fetch_add(events.len(), Ordering::SeqCst);
        Ok(events)
    }

    async fn append(
        &self,
        stream: &str,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, LogError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        EventLog::append(&self.store, stream, expected, events).await
    }

    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        EventLog::read_category(&self.store, category, from, limit).await
    }

    async fn ping(&self) -> Result<(), LogError> {
        Ok(())
    }
}

async fn counting_store(dir: &std::path::Path) -> Arc<Counting> {
    let store = event_store::Store::open(dir.join("store"), event_store::StoreOptions::default())
        .await
        .unwrap();
    Arc::new(Counting {
        store,
        appends: AtomicUsize::new(0),
        reads: AtomicUsize::new(0),
        events_read: AtomicUsize::new(0),
    })
}

fn restock(sku: &Sku, units: i64) -> Request<Stock> {
    Request::command(
        Command::Restock {
            sku: sku.clone(),
            quantity: Quantity::parse(units).unwrap(),
        },
        None,
        EventMetadata::default(),
    )
}

fn repository(log: Arc<Counting>, snapshots: SnapshotStore, every: u64) -> Arc<Repository<Stock>> {
    let log: Arc<dyn EventLog> = log;
    Arc::new(Repository::new(
        log,
        snapshots,
        RepositoryOptions {
            snapshot_every: every,
            ..RepositoryOptions::default()
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_writing_one_stream_absorb_their_conflicts_and_lose_no_command() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_store(dir.path()).await;
    let one = repository(Arc::clone(&log), SnapshotStore::disabled(), 0);
    let two = repository(Arc::clone(&log), SnapshotStore::disabled(), 0);
    let sku = Sku::parse("SHARED").unwrap();
    let stream = stock::stream_name(&sku);
    let outcomes = join_all((0..60).map(|n| {
        let repository = if n % 2 == 0 {
            Arc::clone(&one)
        } else {
            Arc::clone(&two)
        };
        let stream = stream.clone();
        let request = restock(&sku, 1);
        async move { repository.execute(stream, request).await }
    }))
    .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let loaded = one.load(&stream).await.unwrap();
    assert_eq!(loaded.state.available, 60);
    assert_eq!(loaded.version, Some(59));
    let mut versions: Vec<u64> = outcomes
        .iter()
        .map(|o| o.as_ref().unwrap().version.unwrap())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 60, "every command got its own version");
}

#[tokio::test]
async fn a_keyed_command_creating_a_stream_needs_no_read_after_it_unless_the_store_says_it_was_a_repeat(
) {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_store(dir.path()).await;
    let one = repository(Arc::clone(&log), SnapshotStore::disabled(), 0);
    let sku = Sku::parse("NEW").unwrap();
    let stream = stock::stream_name(&sku);
    let keyed = || {
        let mut request = restock(&sku, 5);
        request.key =
            Some(command_services::idempotency::IdempotencyKey::parse("first-5").unwrap());
        request
    };
    let first = one.execute(stream.clone(), keyed()).await.unwrap();
    assert_eq!(first.events.len(), 1, "{first:?}");
    one.execute(stream.clone(), restock(&sku, 1)).await.unwrap();
    assert_eq!(
        log.reads.load(Ordering::SeqCst),
        0,
        "the store wrote the keyed append: the stream is known"
    );

    // Another instance (or this one after a restart) retries the keyed
    // command: the store answers with the first append, marked as a repeat;
    // the answer's events are read back, so they are the first try's; the
    // next decision reads what came after it.
    let two = repository(Arc::clone(&log), SnapshotStore::disabled(), 0);
    let retried = two.execute(stream.clone(), keyed()).await.unwrap();
    assert_eq!(retried.version, Some(0));
    assert_eq!(retried.events, first.events);
    assert_eq!(log.reads.load(Ordering::SeqCst), 1, "the repeat's events");
    two.execute(stream.clone(), restock(&sku, 1)).await.unwrap();
    assert!(log.reads.load(Ordering::SeqCst) > 1);
    assert_eq!(two.load(&stream).await.unwrap().state.available, 7);
    assert_eq!(log.appends.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_aggregate_batches_concurrent_commands_into_few_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_store(dir.path()).await;
    let repo = repository(Arc::clone(&log), SnapshotStore::disabled(), 0);
    let sku = Sku::parse("HOT").unwrap();
    let stream = stock::stream_name(&sku);
    let outcomes = join_all((0..300).map(|_| repo.execute(stream.clone(), restock(&sku, 2)))).await;
    assert!(outcomes.iter().all(Result::is_ok));
    assert_eq!(repo.load(&stream).await.unwrap().state.available, 600);
    let appends = log.appends.load(Ordering::SeqCst);
    assert!(appends < 300, "300 commands took {appends} appends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_every_n_events_spares_replaying_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_store(dir.path()).await;
    let snapshots = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
    let sku = Sku::parse("LONG").unwrap();
    let stream = stock::stream_name(&sku);
    let writer = repository(Arc::clone(&log), snapshots.clone(), 10);
    for _ in 0..25 {
        writer
            .execute(stream.clone(), restock(&sku, 1))
            .await
            .unwrap();
    }
    let record = snapshots.get(&stream, 1).expect("a snapshot was taken");
    assert!(record.version >= 9, "{}", record.version);

    // A fresh instance (empty cache) loads the snapshot and the tail only.
    log.events_read.store(0, Ordering::SeqCst);
    let reader = repository(Arc::clone(&log), snapshots.clone(), 10);
    let loaded = reader.load(&stream).await.unwrap();
    assert_eq!((loaded.state.available, loaded.version), (25, Some(24)));
    let read = log.events_read.load(Ordering::SeqCst);
    assert_eq!(
        read as u64,
        24 - record.version,
        "only the tail after the snapshot is read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_another_schema_is_ignored_and_the_stream_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_store(dir.path()).await;
    let snapshots = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
    let sku = Sku::parse("OLD").unwrap();
    let stream = stock::stream_name(&sku);
    let writer = repository(Arc::clone(&log), SnapshotStore::disabled(), 0);
    for _ in 0..5 {
        writer
            .execute(stream.clone(), restock(&sku, 1))
            .await
            .unwrap();
    }
    // A snapshot from an older shape of the state, claiming a wrong count.
    snapshots.put(
        &stream,
        &SnapshotRecord {
            schema: 0,
            version: 4,
            last_position: 4,
            state: serde_json::json!({"available": 999}),
            recent: vec![(
                uuid::Uuid::nil(),
                Landed {
                    version: 4,
                    position: 4,
                },
            )],
        },
    );
    let reader = repository(Arc::clone(&log), snapshots, 10);
    let loaded = reader.load(&stream).await.unwrap();
    assert_eq!((loaded.state.available, loaded.version), (5, Some(4)));
}
