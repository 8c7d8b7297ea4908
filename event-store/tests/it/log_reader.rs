//! Reading a stopped store's log without opening the store.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use event_store::{ExpectedVersion, LogReader, LogReaderError, StorageError, StoreOptions};
use serde_json::json;

use crate::fixtures::{event, segment_files, temp_store_with};

/// Small segments, so a few hundred events span several.
fn small_segments() -> StoreOptions {
    StoreOptions {
        segment_size: 4 * 1024,
        ..StoreOptions::default()
    }
}

/// Writes `appends` appends of 1–3 events to five streams; returns every
/// event as the store reads them back, after closing it.
async fn written(appends: u64) -> (tempfile::TempDir, Vec<domain::envelope::RecordedEvent>) {
    let (dir, store) = temp_store_with(small_segments()).await;
    for n in 0..appends {
        let events = (0..=n % 3)
            .map(|i| event(json!({ "n": n, "i": i })))
            .collect();
        store
            .append(&format!("order-{}", n % 5), ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    let all = store.read_all(0, usize::MAX).await.unwrap();
    store.shutdown().await.unwrap();
    drop(store);
    (dir, all)
}

#[tokio::test]
async fn reads_every_event_across_segments_as_the_store_does() {
    let (dir, all) = written(200).await;
    assert!(
        segment_files(dir.path()).len() > 3,
        "the events span segments"
    );

    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(reader.head(), all.len() as u64);
    let mut read = Vec::new();
    loop {
        let chunk = reader.read_all(read.len() as u64, 7).unwrap();
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 7);
        read.extend(chunk);
    }
    assert_eq!(read, all);

    // Out of order: from anywhere, and past the head.
    assert_eq!(reader.read_all(123, 10).unwrap(), all[123..133].to_vec());
    assert_eq!(reader.read_all(5, 3).unwrap(), all[5..8].to_vec());
    assert!(reader.read_all(all.len() as u64, 10).unwrap().is_empty());
}

#[tokio::test]
async fn a_running_store_is_refused_and_a_stopped_one_read() {
    let (dir, store) = temp_store_with(small_segments()).await;
    store
        .append("order-1", ExpectedVersion::Any, vec![event(json!({}))])
        .await
        .unwrap();
    match LogReader::open(dir.path()) {
        Err(LogReaderError::StoreRunning(path)) => assert_eq!(path, dir.path()),
        other => panic!("expected StoreRunning, got {other:?}"),
    }
    let store_id = store.store_id();
    store.shutdown().await.unwrap();
    drop(store);
    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(reader.store_id(), store_id);
    assert_eq!(reader.head(), 1);
}

#[tokio::test]
async fn a_torn_tail_ends_the_log_and_is_left_for_the_store() {
    let (dir, all) = written(30).await;
    let last = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 10)
        .unwrap();

    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(reader.head(), all.len() as u64 - 1);
    assert_eq!(
        reader.read_all(0, usize::MAX).unwrap(),
        all[..all.len() - 1].to_vec()
    );
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        len - 10,
        "the reader changes nothing"
    );
}

#[tokio::test]
async fn a_damaged_record_before_the_tail_is_an_error() {
    let (dir, _) = written(200).await;
    let first = segment_files(dir.path()).remove(0);
    // Flip a byte inside the first record's payload.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_at(&mut byte, 20).unwrap();
    file.write_at(&[byte[0] ^ 0xff], 20).unwrap();

    let reader = LogReader::open(dir.path()).unwrap();
    match reader.read_all(0, 10) {
        Err(StorageError::Corrupt { position, .. }) => assert_eq!(position, 0),
        other => panic!("expected a corrupt record, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_store_is_named() {
    let dir = tempfile::tempdir().unwrap();
    match LogReader::open(dir.path()) {
        Err(LogReaderError::NoStore(path)) => assert_eq!(path, dir.path()),
        other => panic!("expected NoStore, got {other:?}"),
    }
}
