//! Opening a store whose files were damaged or lost, as a crash or a disk leaves them.

use std::fs::OpenOptions;

use event_store::{Direction, ExpectedVersion, OpenError, Store, StoreOptions};
use serde_json::json;

use crate::fixtures::{event, segment_files, temp_store};

/// Appends `count` single-event appends to `order-<n % 3>` and closes the store.
async fn written_store(count: u64) -> tempfile::TempDir {
    let (dir, store) = temp_store().await;
    for n in 0..count {
        store
            .append(
                &format!("order-{}", n % 3),
                ExpectedVersion::Any,
                vec![event(json!({ "n": n }))],
            )
            .await
            .unwrap();
    }
    store.shutdown().await.unwrap();
    dir
}

#[tokio::test]
async fn a_torn_tail_is_truncated_and_earlier_events_stay_intact() {
    let dir = written_store(20).await;
    let segment = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    // Cut the last record in the middle, as a crash during its write would.
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    // Its index entry may exist (sled was flushed at shutdown), so drop the index
    // too: a crash before the index write is the case a torn tail comes from.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();

    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.head(), 19, "only the torn record is gone");
    let all = store.read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 19);
    for (n, event) in all.iter().enumerate() {
        assert_eq!(event.position, n as u64);
        assert_eq!(event.data, json!({ "n": n }).to_string());
    }
    assert!(
        std::fs::metadata(&segment).unwrap().len() < len - 10,
        "the partial record was cut off the file"
    );
    // The store goes on from the truncation point.
    let next = store
        .append("order-1", ExpectedVersion::Any, vec![event(json!("after"))])
        .await
        .unwrap();
    assert_eq!(next.first_position, 19);
    assert_eq!(store.read_all(19, 1).await.unwrap()[0].data, r#""after""#);
}

#[tokio::test]
async fn a_torn_tail_past_the_indexed_events_is_truncated_too() {
    let dir = written_store(5).await;
    let segment = segment_files(dir.path()).pop().unwrap();
    // Garbage appended by a write that never completed (not a whole record).
    let mut bytes = std::fs::read(&segment).unwrap();
    let clean_len = bytes.len() as u64;
    bytes.extend_from_slice(&[0x17, 0x00, 0x00, 0x00, 0xde, 0xad]);
    std::fs::write(&segment, bytes).unwrap();

    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.head(), 5);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), clean_len);
}

#[tokio::test]
async fn a_corrupt_record_before_the_tail_stops_the_open_naming_its_position() {
    let dir = written_store(20).await;
    let segment = segment_files(dir.path()).pop().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let third = store.read_all(3, 1).await.unwrap().remove(0);
    store.shutdown().await.unwrap();
    drop(store);

    // Flip one byte inside the fourth record's payload (its data is `{"n":3}`).
    let mut bytes = std::fs::read(&segment).unwrap();
    let data = third.data.as_bytes();
    let at = bytes
        .windows(data.len())
        .position(|window| window == data)
        .expect("the record's data is in the segment");
    bytes[at + 1] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();

    match Store::open(dir.path(), StoreOptions::default()).await {
        Err(OpenError::Corrupt {
            position,
            segment: in_segment,
            ..
        }) => {
            assert_eq!(position, 3);
            assert_eq!(in_segment, segment);
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
    // Refusing to start changed nothing: the store still refuses, and says the same.
    let error = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("position 3"), "{error}");
}

#[tokio::test]
async fn a_lost_index_is_rebuilt_from_the_log() {
    let dir = written_store(30).await;
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.head(), 30);
    let stream = store
        .read_stream("order-2", 0, 100, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(
        stream.iter().map(|e| e.position).collect::<Vec<_>>(),
        (0..30).filter(|n| n % 3 == 2).collect::<Vec<_>>()
    );
    assert_eq!(
        store.read_category("order", 0, 100).await.unwrap().len(),
        30
    );
    assert_eq!(store.stream_version("order-0").await.unwrap(), Some(9));
    // Stream heads and event ids came back too.
    let next = store
        .append("order-0", ExpectedVersion::Exact(9), vec![event(json!(1))])
        .await
        .unwrap();
    assert_eq!(next.next_expected_version, 10);
    let replay = store.read_all(0, 1).await.unwrap().remove(0);
    let again = store
        .append(
            "order-0",
            ExpectedVersion::Any,
            vec![domain::envelope::NewEvent {
                event_id: replay.event_id,
                event_type: replay.event_type,
                schema_version: replay.schema_version,
                data: replay.data,
                metadata: replay.metadata,
            }],
        )
        .await
        .unwrap();
    assert_eq!(again.first_position, 0, "the id index knows the old event");
}

#[tokio::test]
async fn a_missing_segment_stops_the_open() {
    let options = StoreOptions {
        segment_size: 1024,
        ..StoreOptions::default()
    };
    let (dir, store) = crate::fixtures::temp_store_with(options.clone()).await;
    for n in 0..60u64 {
        store
            .append(
                "order-1",
                ExpectedVersion::Any,
                vec![event(json!({ "n": n }))],
            )
            .await
            .unwrap();
    }
    store.shutdown().await.unwrap();
    drop(store);
    let all = segment_files(dir.path());
    assert!(all.len() > 3);
    std::fs::remove_file(&all[1]).unwrap();
    assert!(matches!(
        Store::open(dir.path(), options).await,
        Err(OpenError::SegmentGap { .. })
    ));
}

#[tokio::test]
async fn a_damaged_last_record_the_index_covers_is_corruption_not_a_torn_tail() {
    // The index says the last record was synced (and so acknowledged): losing
    // it would lose an acknowledged event, so the open refuses instead.
    let dir = written_store(10).await;
    let segment = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    match Store::open(dir.path(), StoreOptions::default()).await {
        Err(OpenError::Corrupt { position, .. }) => assert_eq!(position, 9),
        other => panic!("expected a corruption error, got {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        len - 3,
        "nothing was truncated"
    );
}
