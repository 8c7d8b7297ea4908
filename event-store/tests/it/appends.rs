//! Appends and reads on a real store in a temporary directory.

use std::collections::{BTreeMap, BTreeSet};

use event_store::{AppendError, AppendResult, Direction, ExpectedVersion, ReadError, StoreOptions};
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::{event, event_with_id, reopen, temp_store, temp_store_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_one_stream_each_win_every_version_exactly_once() {
    let (_dir, store) = temp_store().await;
    const TASKS: u64 = 24;
    const EVENTS: u64 = 240;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let mut won = Vec::new();
            let mut expected = ExpectedVersion::NoStream;
            let mut conflicts = 0u64;
            loop {
                let attempt = event(json!({ "task": task }));
                let event_id = attempt.event_id;
                match store.append("race-1", expected, vec![attempt]).await {
                    Ok(result) => {
                        won.push((result.next_expected_version, event_id));
                        expected = ExpectedVersion::Exact(result.next_expected_version);
                    }
                    Err(AppendError::WrongExpectedVersion { current, .. }) => {
                        conflicts += 1;
                        match current {
                            Some(version) if version + 1 >= EVENTS => break,
                            Some(version) => expected = ExpectedVersion::Exact(version),
                            None => expected = ExpectedVersion::NoStream,
                        }
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
                if won.last().is_some_and(|(version, _)| version + 1 >= EVENTS) {
                    break;
                }
            }
            (won, conflicts)
        });
    }
    let mut winners: BTreeMap<u64, Uuid> = BTreeMap::new();
    let mut conflicts = 0;
    while let Some(result) = tasks.join_next().await {
        let (won, task_conflicts) = result.unwrap();
        conflicts += task_conflicts;
        for (version, event_id) in won {
            assert!(
                winners.insert(version, event_id).is_none(),
                "version {version} was won twice"
            );
        }
    }
    assert_eq!(
        winners.keys().copied().collect::<Vec<_>>(),
        (0..EVENTS).collect::<Vec<_>>(),
        "every version was won exactly once"
    );
    assert!(conflicts > 0, "the writers really raced");
    let events = store
        .read_stream("race-1", 0, 10_000, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(events.len() as u64, EVENTS);
    for event in &events {
        assert_eq!(winners[&event.version], event.event_id);
    }
    assert_eq!(store.head(), EVENTS, "losers wrote nothing");
}

#[tokio::test]
async fn every_kind_of_expected_version_is_checked_against_the_stream() {
    let (_dir, store) = temp_store().await;
    let refused = |result: Result<_, AppendError>| match result {
        Err(AppendError::WrongExpectedVersion { current, .. }) => current,
        other => panic!("expected a wrong expected version, got {other:?}"),
    };
    assert_eq!(
        refused(
            store
                .append(
                    "order-1",
                    ExpectedVersion::StreamExists,
                    vec![event(json!(1))]
                )
                .await
        ),
        None
    );
    assert_eq!(
        refused(
            store
                .append("order-1", ExpectedVersion::Exact(0), vec![event(json!(1))])
                .await
        ),
        None
    );
    let first = store
        .append(
            "order-1",
            ExpectedVersion::NoStream,
            vec![event(json!(1)), event(json!(2))],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            first.first_position,
            first.last_position,
            first.next_expected_version
        ),
        (0, 1, 1)
    );
    assert_eq!(
        refused(
            store
                .append("order-1", ExpectedVersion::NoStream, vec![event(json!(3))])
                .await
        ),
        Some(1)
    );
    assert_eq!(
        refused(
            store
                .append("order-1", ExpectedVersion::Exact(0), vec![event(json!(3))])
                .await
        ),
        Some(1)
    );
    let exact = store
        .append("order-1", ExpectedVersion::Exact(1), vec![event(json!(3))])
        .await
        .unwrap();
    assert_eq!(exact.next_expected_version, 2);
    let exists = store
        .append(
            "order-1",
            ExpectedVersion::StreamExists,
            vec![event(json!(4))],
        )
        .await
        .unwrap();
    assert_eq!(exists.next_expected_version, 3);
    let any = store
        .append("order-2", ExpectedVersion::Any, vec![event(json!(5))])
        .await
        .unwrap();
    assert_eq!((any.first_position, any.next_expected_version), (4, 0));
    assert_eq!(store.head(), 5);
    assert_eq!(store.stream_version("order-1").await.unwrap(), Some(3));
    assert_eq!(store.stream_version("order-9").await.unwrap(), None);
}

#[tokio::test]
async fn re_appending_the_same_event_ids_returns_the_first_result_and_writes_nothing() {
    let (dir, store) = temp_store().await;
    let batch = vec![event(json!({"n": 1})), event(json!({"n": 2}))];
    store
        .append("cart-0", ExpectedVersion::Any, vec![event(json!(0))])
        .await
        .unwrap();
    let first = store
        .append("cart-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    // Same ids, even with an expected version that no longer holds: the
    // first answer, marked as a repeat.
    assert!(!first.repeat);
    let repeat = AppendResult {
        repeat: true,
        recorded_at: None,
        ..first
    };
    let again = store
        .append("cart-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(again, repeat);
    assert_eq!(store.head(), 3);
    // Also after a restart, when the answer comes from the index on disk.
    let store = reopen(store, dir.path(), StoreOptions::default()).await;
    let after_restart = store
        .append("cart-1", ExpectedVersion::Exact(7), batch)
        .await
        .unwrap();
    assert_eq!(after_restart, repeat);
    assert_eq!(store.head(), 3);
    assert_eq!(
        store
            .read_stream("cart-1", 0, 100, Direction::Forward)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn concurrent_re_appends_of_one_batch_write_it_once() {
    let (_dir, store) = temp_store().await;
    let batch = vec![event(json!({"n": 1})), event(json!({"n": 2}))];
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let batch = batch.clone();
            tokio::spawn(async move { store.append("cart-7", ExpectedVersion::Any, batch).await })
        })
        .collect();
    let mut results = BTreeSet::new();
    for attempt in attempts {
        let result = attempt.await.unwrap().unwrap();
        results.insert((result.first_position, result.last_position));
    }
    assert_eq!(results.len(), 1, "every attempt got the same answer");
    assert_eq!(store.head(), 2);
}

#[tokio::test]
async fn an_event_id_reused_for_other_content_or_elsewhere_is_refused() {
    let (_dir, store) = temp_store().await;
    let id = Uuid::new_v4();
    store
        .append(
            "order-1",
            ExpectedVersion::Any,
            vec![event_with_id(id, json!({"a": 1}))],
        )
        .await
        .unwrap();
    let reused = |result: Result<_, AppendError>| {
        assert!(
            matches!(result, Err(AppendError::EventIdReused { event_id }) if event_id == id),
            "{result:?}"
        );
    };
    reused(
        store
            .append(
                "order-1",
                ExpectedVersion::Any,
                vec![event_with_id(id, json!({"a": 2}))],
            )
            .await,
    );
    reused(
        store
            .append(
                "order-2",
                ExpectedVersion::Any,
                vec![event_with_id(id, json!({"a": 1}))],
            )
            .await,
    );
    // A batch mixing a stored id with new ones is not a re-append either.
    reused(
        store
            .append(
                "order-1",
                ExpectedVersion::Any,
                vec![event_with_id(id, json!({"a": 1})), event(json!({"b": 1}))],
            )
            .await,
    );
    assert_eq!(store.head(), 1);
}

#[tokio::test]
async fn bad_appends_are_refused_with_specific_errors_and_write_nothing() {
    let options = StoreOptions {
        max_events_per_append: 5,
        max_event_bytes: 1000,
        max_append_bytes: 3000,
        ..StoreOptions::default()
    };
    let (_dir, store) = temp_store_with(options).await;
    let append = |stream: &'static str, events| {
        let store = store.clone();
        async move { store.append(stream, ExpectedVersion::Any, events).await }
    };
    assert!(matches!(
        append("order 1", vec![event(json!(1))]).await,
        Err(AppendError::InvalidStreamName { .. })
    ));
    assert!(matches!(
        append("nocategory", vec![event(json!(1))]).await,
        Err(AppendError::InvalidStreamName { .. })
    ));
    assert!(matches!(
        append("order-1", vec![]).await,
        Err(AppendError::NoEvents)
    ));
    assert!(matches!(
        append("order-1", (0..6).map(|n| event(json!(n))).collect()).await,
        Err(AppendError::TooManyEvents { count: 6, max: 5 })
    ));
    assert!(matches!(
        append("order-1", vec![event(json!("x".repeat(1000)))]).await,
        Err(AppendError::EventTooLarge { max: 1000, .. })
    ));
    assert!(matches!(
        append(
            "order-1",
            (0..4).map(|_| event(json!("x".repeat(900)))).collect()
        )
        .await,
        Err(AppendError::AppendTooLarge { max: 3000, .. })
    ));
    let mut not_json = event(json!(1));
    not_json.data = "{not json".into();
    assert!(matches!(
        append("order-1", vec![not_json]).await,
        Err(AppendError::InvalidJson { field: "data", .. })
    ));
    let mut bad_type = event(json!(1));
    bad_type.event_type = "Order.Placed".into();
    assert!(matches!(
        append("order-1", vec![bad_type]).await,
        Err(AppendError::InvalidEventType { .. })
    ));
    let twice = event(json!(1));
    assert!(matches!(
        append("order-1", vec![twice.clone(), twice]).await,
        Err(AppendError::DuplicateEventId { .. })
    ));
    assert_eq!(store.head(), 0, "nothing was written");
    assert!(matches!(
        store
            .read_stream("order-1", 0, 10, Direction::Forward)
            .await,
        Err(ReadError::StreamNotFound { .. })
    ));
}

#[tokio::test]
async fn streams_read_forwards_and_backwards_and_a_missing_stream_is_distinct() {
    let (_dir, store) = temp_store().await;
    for n in 0..10u64 {
        let stream = if n % 2 == 0 { "order-a" } else { "order-b" };
        store
            .append(stream, ExpectedVersion::Any, vec![event(json!({ "n": n }))])
            .await
            .unwrap();
    }
    store
        .append(
            "cart-a",
            ExpectedVersion::Any,
            vec![event(json!({"n": 10}))],
        )
        .await
        .unwrap();
    let versions = |events: Vec<domain::envelope::RecordedEvent>| {
        events.iter().map(|e| e.version).collect::<Vec<_>>()
    };
    let forward = store
        .read_stream("order-a", 1, 3, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(versions(forward.clone()), vec![1, 2, 3]);
    assert_eq!(
        forward.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![2, 4, 6]
    );
    assert_eq!(forward[0].data, r#"{"n":2}"#);
    assert_eq!(forward[0].metadata, r#"{"actor":"test"}"#);
    assert_eq!(forward[0].stream, "order-a");
    assert_eq!(
        versions(
            store
                .read_stream("order-b", u64::MAX, 2, Direction::Backward)
                .await
                .unwrap()
        ),
        vec![4, 3]
    );
    assert_eq!(
        versions(
            store
                .read_stream("order-b", 1, 10, Direction::Backward)
                .await
                .unwrap()
        ),
        vec![1, 0]
    );
    // Past the end of an existing stream: empty, not missing.
    assert!(store
        .read_stream("order-a", 99, 10, Direction::Forward)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.read_stream("order-zz", 0, 10, Direction::Forward).await,
        Err(ReadError::StreamNotFound { stream }) if stream == "order-zz"
    ));
    // The category index has every order event, in log order, and no cart event.
    let orders = store.read_category("order", 3, 100).await.unwrap();
    assert_eq!(
        orders.iter().map(|e| e.position).collect::<Vec<_>>(),
        (3..10).collect::<Vec<_>>()
    );
    assert_eq!(store.read_category("cart", 0, 100).await.unwrap().len(), 1);
    assert!(matches!(
        store.read_category("order-a", 0, 1).await,
        Err(ReadError::InvalidCategory { .. })
    ));
    let all = store.read_all(4, 5).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![4, 5, 6, 7, 8]
    );
    assert!(store.read_all(11, 5).await.unwrap().is_empty());
}

#[tokio::test]
async fn segments_roll_at_their_size_and_every_read_spans_them_after_a_restart() {
    let options = StoreOptions {
        segment_size: 4096,
        ..StoreOptions::default()
    };
    let (dir, store) = temp_store_with(options.clone()).await;
    for n in 0..200u64 {
        store
            .append(
                &format!("order-{}", n % 7),
                ExpectedVersion::Any,
                vec![event(json!({ "n": n, "pad": "y".repeat(100) }))],
            )
            .await
            .unwrap();
    }
    let segments = std::fs::read_dir(dir.path().join("log")).unwrap().count();
    assert!(segments > 5, "the log rolled into {segments} segments");
    let store = reopen(store, dir.path(), options).await;
    let all = store.read_all(0, 1000).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (0..200).collect::<Vec<_>>()
    );
    for (n, event) in all.iter().enumerate() {
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["n"], n as u64);
    }
    let middle = store.read_all(95, 10).await.unwrap();
    assert_eq!(middle.first().map(|e| e.position), Some(95));
    let stream = store
        .read_stream("order-3", 0, 1000, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(stream.len(), 29);
    assert!(stream
        .iter()
        .enumerate()
        .all(|(v, e)| e.version == v as u64));
    assert_eq!(
        store.read_category("order", 150, 1000).await.unwrap().len(),
        50
    );
    // Appends go on after the restart, into the last segment.
    let next = store
        .append("order-3", ExpectedVersion::Exact(28), vec![event(json!(1))])
        .await
        .unwrap();
    assert_eq!(next.first_position, 200);
}

#[tokio::test]
async fn a_store_keeps_its_id_across_restarts_and_a_new_store_gets_a_new_one() {
    let (dir, store) = temp_store().await;
    let id = store.store_id();
    let store = reopen(store, dir.path(), StoreOptions::default()).await;
    assert_eq!(store.store_id(), id);
    let (_other_dir, other) = temp_store().await;
    assert_ne!(other.store_id(), id);
}

#[tokio::test]
async fn appends_after_shutdown_are_refused_as_closed() {
    let (_dir, store) = temp_store().await;
    store
        .append("order-1", ExpectedVersion::Any, vec![event(json!(1))])
        .await
        .unwrap();
    store.shutdown().await.unwrap();
    assert!(matches!(
        store
            .append("order-1", ExpectedVersion::Any, vec![event(json!(2))])
            .await,
        Err(AppendError::Closed)
    ));
    assert!(!store.is_writable());
    // Reads still work on a closed store.
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 1);
    store.shutdown().await.unwrap();
}
