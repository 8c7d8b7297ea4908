//! Subscriptions to the global log: catch-up, then live.

use event_store::ExpectedVersion;
use futures::StreamExt;
use serde_json::json;

use crate::fixtures::{event, temp_store, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_switches_from_catch_up_to_live_without_gap_or_duplicate() {
    let (_dir, store) = temp_store().await;
    const BEFORE: u64 = 1500;
    const DURING: u64 = 1500;
    // History, in batches so the catch-up has several reads to do.
    for n in 0..BEFORE / 50 {
        let events = (0..50).map(|i| event(json!({ "n": n * 50 + i }))).collect();
        store
            .append(&format!("sub-{}", n % 5), ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    let mut subscription = store.subscribe_all(0);
    // Appends race the subscription while it catches up and after it switches to live.
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..DURING / 4 {
                    store
                        .append(
                            &format!("live-{w}"),
                            ExpectedVersion::Any,
                            vec![event(json!({ "w": w, "i": i }))],
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut positions = Vec::new();
    let collect = async {
        while (positions.len() as u64) < BEFORE + DURING {
            let event = subscription
                .next()
                .await
                .expect("the subscription goes on")
                .unwrap();
            positions.push(event.position);
        }
    };
    tokio::time::timeout(DEADLINE, collect)
        .await
        .expect("every event arrives");
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(
        positions,
        (0..BEFORE + DURING).collect::<Vec<_>>(),
        "every position once, in order"
    );
    // Nothing more than what was appended.
    assert_eq!(store.head(), BEFORE + DURING);
}

#[tokio::test]
async fn a_subscription_from_the_middle_starts_there_and_ends_when_the_store_shuts_down() {
    let (_dir, store) = temp_store().await;
    for n in 0..10u64 {
        store
            .append("order-1", ExpectedVersion::Any, vec![event(json!(n))])
            .await
            .unwrap();
    }
    let subscription = store.subscribe_all(7);
    let appended = store
        .append("order-1", ExpectedVersion::Any, vec![event(json!(10))])
        .await
        .unwrap();
    assert_eq!(appended.first_position, 10);
    store.shutdown().await.unwrap();
    let positions: Vec<u64> = tokio::time::timeout(
        DEADLINE,
        subscription.map(|event| event.unwrap().position).collect(),
    )
    .await
    .expect("the subscription ends after the shutdown");
    assert_eq!(positions, vec![7, 8, 9, 10]);
}

#[tokio::test]
async fn the_head_watch_moves_only_when_events_are_durable() {
    let (_dir, store) = temp_store().await;
    let mut head = store.watch_head();
    assert_eq!(*head.borrow_and_update(), 0);
    let result = store
        .append(
            "order-1",
            ExpectedVersion::Any,
            vec![event(json!(1)), event(json!(2))],
        )
        .await
        .unwrap();
    // By the time the append is answered, the head includes it.
    assert!(head.has_changed().unwrap());
    assert_eq!(*head.borrow_and_update(), result.last_position + 1);
    assert_eq!(store.head(), 2);
    assert_eq!(
        store
            .wait_for_head_beyond(1, std::time::Duration::from_secs(1))
            .await,
        2
    );
}
