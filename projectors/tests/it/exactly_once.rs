//! DESIGN.md guarantee 5: whatever the broker does — duplicates, any
//! reordering, events missing until a later one arrives — every view ends
//! up identical (same digest) to the view rebuilt from the log in order.

use std::sync::Arc;

use domain::envelope::RecordedEvent;
use projectors::{
    applier::{decode, Applier, OnPoison, Outcome},
    digest::digest,
    projection::projection_for,
    replay::{rebuild, Target},
    source::{MemorySource, SharedSource},
    viewdb::ViewDb,
    workload::{self, WorkloadOptions},
    ProjectorName,
};
use proptest::prelude::*;
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use uuid::Uuid;

fn history(seed: u64, events: usize, poison: Option<usize>) -> Vec<RecordedEvent> {
    let options = WorkloadOptions {
        events,
        products: 8,
        customers: 6,
        in_flight: 6,
        seed,
    };
    let mut recorded = workload::record(&workload::generate(options).unwrap()).unwrap();
    if let Some(index) = poison {
        let len = recorded.len();
        // A payload that does not decode: a poison event in the log.
        recorded[index % len].data = r#"{"not":"an event"}"#.into();
    }
    recorded
}

fn source_of(events: &[RecordedEvent]) -> Arc<MemorySource> {
    let source = MemorySource::new(Uuid::from_u128(1));
    for event in events {
        source.push(event.clone());
    }
    Arc::new(source)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every view rebuilt from the log, in order, by the replay pipeline.
async fn rebuilt(source: Arc<MemorySource>) -> Vec<(ProjectorName, String)> {
    let head = source.events().len() as u64;
    let targets: Vec<Target> = ProjectorName::ALL
        .into_iter()
        .map(|name| Target {
            projection: projection_for(name),
            db: Arc::new(ViewDb::temporary().unwrap()),
        })
        .collect();
    let shared: SharedSource = source;
    let report = rebuild(targets.clone(), shared, head, Arc::new(|_, _| {}))
        .await
        .unwrap();
    assert_eq!(report.events, head);
    targets
        .iter()
        .map(|t| (t.projection.name(), digest(&t.db).unwrap()))
        .collect()
}

/// Every view fed `deliveries` in batches, as the consumer does, after
/// rebuilding it from the first `rebuilt` events of the log.
async fn delivered(
    source: Arc<MemorySource>,
    deliveries: &[RecordedEvent],
    batch: usize,
    rebuilt: u64,
) -> Vec<(ProjectorName, String)> {
    let mut out = Vec::new();
    for name in ProjectorName::ALL {
        let applier = Applier::new(projection_for(name));
        let db = Arc::new(ViewDb::temporary().unwrap());
        // As a projector's database: positions in their home documents.
        db.set_homes(&projection_for(name).homes()).unwrap();
        if rebuilt > 0 {
            let target = Target {
                projection: projection_for(name),
                db: Arc::clone(&db),
            };
            let shared: SharedSource = source.clone();
            rebuild(vec![target], shared, rebuilt, Arc::new(|_, _| {}))
                .await
                .unwrap();
        }
        for chunk in deliveries.chunks(batch.max(1)) {
            let mut tx = db.begin().unwrap();
            for event in chunk {
                let outcome = applier
                    .deliver(&mut tx, event, &decode(event), OnPoison::Skip, &*source)
                    .await
                    .unwrap();
                assert!(!matches!(outcome, Outcome::Deferred { .. }));
            }
            tx.commit().unwrap();
        }
        out.push((name, digest(&db).unwrap()));
    }
    out
}

/// The history delivered at least once each, some events up to three
/// times, in a shuffled order.
fn chaos(history: &[RecordedEvent], seed: u64) -> Vec<RecordedEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut deliveries = Vec::new();
    for event in history {
        for _ in 0..rng.gen_range(1..=3) {
            deliveries.push(event.clone());
        }
    }
    deliveries.shuffle(&mut rng);
    deliveries
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn duplicated_and_reordered_deliveries_give_every_view_the_digest_of_in_order_replay(
        history_seed in any::<u64>(),
        delivery_seed in any::<u64>(),
        batch in 1usize..64,
        poison in proptest::option::of(any::<usize>()),
    ) {
        let history = history(history_seed, 400, poison);
        let source = source_of(&history);
        let runtime = runtime();
        let expected = runtime.block_on(rebuilt(Arc::clone(&source)));
        let deliveries = chaos(&history, delivery_seed);
        let actual = runtime.block_on(delivered(source, &deliveries, batch, 0));
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn after_a_rebuild_of_part_of_the_log_the_rest_delivered_in_any_order_gives_the_same_digest(
        history_seed in any::<u64>(),
        delivery_seed in any::<u64>(),
        batch in 1usize..64,
        rebuilt_share in 1u64..100,
    ) {
        // The rebuilt view keeps no per-stream positions: old streams are
        // looked up in the store when their next event comes, and redelivered
        // old events are recognised by the swept position.
        let history = history(history_seed, 400, None);
        let source = source_of(&history);
        let runtime = runtime();
        let expected = runtime.block_on(rebuilt(Arc::clone(&source)));
        let rebuilt_events = history.len() as u64 * rebuilt_share / 100;
        let deliveries = chaos(&history, delivery_seed);
        let actual = runtime.block_on(delivered(source, &deliveries, batch, rebuilt_events));
        prop_assert_eq!(actual, expected);
    }
}

#[test]
fn a_poison_event_is_skipped_with_its_reason_and_the_next_event_of_its_stream_applies() {
    let mut history = history(3, 200, None);
    let index = history
        .iter()
        .position(|e| e.event_type == "OrderConfirmed")
        .unwrap();
    history[index].data = "not json".into();
    let poisoned = history[index].clone();
    let next = history
        .iter()
        .find(|e| e.stream == poisoned.stream && e.version == poisoned.version + 1)
        .cloned()
        .unwrap();
    let source = source_of(&history);
    let applier = Applier::new(projection_for(ProjectorName::Orders));
    let db = Arc::new(ViewDb::temporary().unwrap());
    let runtime = runtime();
    runtime.block_on(async {
        let mut tx = db.begin().unwrap();
        // The successor arrives first: the gap is repaired from the store,
        // the poison event on the way skipped, and the successor applied.
        let outcome = applier
            .deliver(&mut tx, &next, &decode(&next), OnPoison::Defer, &*source)
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Applied);
        // The poison event itself, delivered late, is known as poison.
        let late = applier
            .deliver(
                &mut tx,
                &poisoned,
                &decode(&poisoned),
                OnPoison::Defer,
                &*source,
            )
            .await
            .unwrap();
        let Outcome::PoisonedBefore { reason } = late else {
            panic!("expected the poison to be remembered, got {late:?}");
        };
        assert!(reason.contains("OrderConfirmed"), "{reason}");
        tx.commit().unwrap();
    });
    assert_eq!(db.position(&next.stream).unwrap(), Some(next.version));
    assert_eq!(db.meta().unwrap().skipped, 1);
    let reason = db
        .poisoned(&poisoned.stream, poisoned.version)
        .unwrap()
        .unwrap();
    assert!(
        reason.contains("invalid OrderConfirmed payload"),
        "{reason}"
    );
}

#[test]
fn a_delivery_whose_predecessors_are_not_in_the_store_is_an_error_and_changes_nothing() {
    let history = history(5, 100, None);
    let later = history
        .iter()
        .find(|e| e.category() == "order" && e.version == 2)
        .cloned()
        .unwrap();
    let empty = source_of(&[]);
    let applier = Applier::new(projection_for(ProjectorName::Orders));
    let db = Arc::new(ViewDb::temporary().unwrap());
    runtime().block_on(async {
        let mut tx = db.begin().unwrap();
        let result = applier
            .deliver(&mut tx, &later, &decode(&later), OnPoison::Skip, &*empty)
            .await;
        assert!(
            matches!(
                result,
                Err(projectors::applier::ApplyError::MissingInStore { from: 0, to: 2, .. })
            ),
            "{result:?}"
        );
        assert_eq!(tx.position(&later.stream).unwrap(), None);
        assert!(tx.is_empty());
    });
}
