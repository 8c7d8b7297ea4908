//! Reading a view's categories from a real event store (files in a temp
//! dir): the store's category index gives what filtering the whole log
//! gives, and a projector catching up reads only its own categories.

use std::sync::{atomic::Ordering, Arc};

use domain::envelope::RecordedEvent;
use event_store::Store;
use projectors::{
    digest::digest,
    layout::ViewDir,
    runtime::{Projector, RuntimeSettings},
    source::{CategoryRead, EventSource, MemorySource, SharedSource, StoreSource},
    viewdb::ViewDb,
    workload::{self, WorkloadOptions},
    ProjectorName,
};

use crate::support::{confirmed, fold_into, placed, product_added, CountingSource};

/// A small catalogue and few customers, so that orders start early.
fn options(events: usize, seed: u64) -> WorkloadOptions {
    WorkloadOptions {
        events,
        seed,
        products: 20,
        customers: 30,
        ..WorkloadOptions::default()
    }
}

async fn store_with_history(data: &std::path::Path, events: usize, seed: u64) -> Store {
    crate::support::store_with(data, options(events, seed)).await
}

/// Reads `categories` from `source` step by step until `until`, checking
/// each step, and returns every event found.
async fn read_in_steps(
    source: &dyn EventSource,
    categories: &[&str],
    until: u64,
    limit: usize,
) -> Vec<RecordedEvent> {
    let mut from = 0;
    let mut found = Vec::new();
    while from < until {
        let read = source
            .read_categories(categories, from, until, limit)
            .await
            .unwrap();
        assert!(
            read.complete_below > from && read.complete_below <= until,
            "a step from {from} must cover something below {until}: {}",
            read.complete_below
        );
        assert!(read
            .events
            .windows(2)
            .all(|pair| pair[0].position < pair[1].position));
        assert!(read
            .events
            .iter()
            .all(|e| e.position >= from && e.position < read.complete_below));
        found.extend(read.events);
        from = read.complete_below;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_category_index_gives_what_filtering_the_log_gives_in_steps_of_any_size() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_history(temp.path(), 600, 21).await;
    let head = store.head();
    let log = store.read_all(0, head as usize).await.unwrap();
    let indexed = StoreSource::new(store.clone());
    let memory = MemorySource::new(store.store_id());
    for event in &log {
        memory.push(event.clone());
    }
    for name in [
        ProjectorName::Orders,
        ProjectorName::Customers,
        ProjectorName::Search,
    ] {
        let categories = projectors::projection::projection_for(name).categories();
        let expected: Vec<RecordedEvent> = log
            .iter()
            .filter(|e| categories.contains(&e.category()))
            .cloned()
            .collect();
        assert!(
            !expected.is_empty(),
            "{name} reads something of the history"
        );
        for limit in [7, 50, 5000] {
            let from_index = read_in_steps(&indexed, categories, head, limit).await;
            assert_eq!(from_index, expected, "{name} from the index, limit {limit}");
            let from_log = read_in_steps(&memory, categories, head, limit).await;
            assert_eq!(from_log, expected, "{name} from the log, limit {limit}");
        }
    }
    store.shutdown().await.unwrap();
}

#[test]
fn merging_stops_at_the_first_category_that_may_have_more() {
    let log = workload::record(&workload::generate(options(200, 5)).unwrap()).unwrap();
    let of = |category: &str, take: usize| -> Vec<RecordedEvent> {
        log.iter()
            .filter(|e| e.category() == category)
            .take(take)
            .cloned()
            .collect()
    };
    let orders = of("order", 3);
    let products = of("product", 100);
    assert_eq!(orders.len(), 3);
    // The order read was cut at its limit: nothing after its last event is complete.
    let merged = CategoryRead::merge(vec![products.clone(), orders.clone()], 1_000, 3);
    let cut = orders[2].position + 1;
    assert_eq!(merged.complete_below, cut);
    assert!(merged.events.iter().all(|e| e.position < cut));
    assert!(merged
        .events
        .windows(2)
        .all(|pair| pair[0].position < pair[1].position));
    assert_eq!(
        merged.events.len(),
        3 + products.iter().filter(|e| e.position < cut).count()
    );
    // With room to spare, the read is complete up to `until`.
    let merged = CategoryRead::merge(vec![orders, products], 1_000, 1_000);
    assert_eq!(merged.complete_below, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_catching_up_reads_only_its_own_categories_and_sweeps_past_the_rest() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_history(temp.path(), 3000, 22).await;
    let head = store.head();
    let log = store.read_all(0, head as usize).await.unwrap();
    let name = ProjectorName::Search;
    let categories = projectors::projection::projection_for(name).categories();
    let wanted = log
        .iter()
        .filter(|e| categories.contains(&e.category()))
        .count() as u64;
    assert!(wanted > 0 && wanted * 4 < head, "{wanted} of {head}");

    let source = Arc::new(CountingSource::new(Arc::new(StoreSource::new(
        store.clone(),
    ))));
    let projector = Projector::open(
        name,
        ViewDir::new(temp.path(), name),
        source.clone(),
        None,
        RuntimeSettings::default(),
    )
    .unwrap();
    projector.adopt_store(store.store_id()).await.unwrap();
    let covered = projector.catch_up(None).await.unwrap();
    assert_eq!(covered, head, "the catch-up covers the whole log");
    assert_eq!(source.from_log.load(Ordering::SeqCst), 0);
    assert_eq!(source.from_categories.load(Ordering::SeqCst), wanted);
    let meta = projector.db().meta().unwrap();
    assert_eq!(meta.swept_position, Some(head - 1));
    assert_eq!(meta.applied_position, Some(head - 1));
    assert_eq!(projector.status().await.unwrap().lag_events, 0);
    // Nothing new: a sweep covers nothing and reads nothing.
    assert_eq!(projector.catch_up(None).await.unwrap(), 0);
    assert_eq!(source.from_categories.load(Ordering::SeqCst), wanted);

    // The view is the one a fold of the whole log builds.
    let folded = Arc::new(ViewDb::temporary().unwrap());
    fold_into(name, &folded, &log);
    assert_eq!(projector.digest().await.unwrap(), digest(&folded).unwrap());
    drop(projector);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_views_lag_counts_the_events_of_its_own_categories_it_has_not_applied() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_history(temp.path(), 1000, 23).await;
    let name = ProjectorName::Search;
    let source: SharedSource = Arc::new(StoreSource::new(store.clone()));
    let projector = Projector::open(
        name,
        ViewDir::new(temp.path(), name),
        source,
        None,
        RuntimeSettings::default(),
    )
    .unwrap();
    projector.adopt_store(store.store_id()).await.unwrap();
    projector.catch_up(None).await.unwrap();
    let status = projector.status().await.unwrap();
    assert_eq!((status.lag_events, status.log_lag_events), (0, 0));

    // Orders only: nothing for the search view, though it has not looked.
    let orders = [
        placed(9001, 1, &[("MUG", 1, 1000)], 0),
        confirmed(9001, 1),
        placed(9002, 1, &[("TEA", 1, 500)], 2),
    ];
    workload::append_to_store(&store, workload::new_events(&orders, 91).unwrap(), 1)
        .await
        .unwrap();
    let status = projector.status().await.unwrap();
    assert_eq!(status.log_lag_events, 3);
    assert_eq!(status.lag_events, 0, "nothing of its own is pending");

    // A product: one event of its own to apply.
    let product = [product_added("LAMP-9", "Desk lamp", "A lamp", 3000, "home")];
    workload::append_to_store(&store, workload::new_events(&product, 92).unwrap(), 1)
        .await
        .unwrap();
    let status = projector.status().await.unwrap();
    assert_eq!((status.lag_events, status.log_lag_events), (1, 4));
    projector.catch_up(None).await.unwrap();
    let status = projector.status().await.unwrap();
    assert_eq!((status.lag_events, status.log_lag_events), (0, 0));
    drop(projector);
    store.shutdown().await.unwrap();
}
