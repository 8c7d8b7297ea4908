//! The services' client against a real server.

use std::time::Duration;

use event_store::client::{ClientError, RetryPolicy, StoreClient};
use event_store::{Direction, ExpectedVersion};
use futures::StreamExt;
use serde_json::json;

use crate::fixtures::{event, spawn_server, spawn_server_in, DEADLINE};

#[tokio::test]
async fn the_client_appends_reads_and_reports_a_conflict_as_its_own_error() {
    let server = spawn_server().await;
    let client = StoreClient::new(&server.url).unwrap();
    let batch = vec![event(json!({"n": 0})), event(json!({"n": 1}))];
    let first = client
        .append("order-7", ExpectedVersion::NoStream, batch.clone())
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
    // A retried append with the same ids gets the same answer, marked as a repeat.
    assert!(!first.repeat);
    assert_eq!(
        client
            .append("order-7", ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap(),
        event_store::AppendResult {
            repeat: true,
            recorded_at: None,
            ..first
        }
    );
    match client
        .append("order-7", ExpectedVersion::Exact(0), vec![event(json!(2))])
        .await
    {
        Err(ClientError::WrongExpectedVersion { current }) => assert_eq!(current, Some(1)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match client
        .append(
            "order-8",
            ExpectedVersion::StreamExists,
            vec![event(json!(2))],
        )
        .await
    {
        Err(ClientError::WrongExpectedVersion { current }) => assert_eq!(current, None),
        other => panic!("expected a conflict, got {other:?}"),
    }
    client
        .append("cart-7", ExpectedVersion::Any, vec![event(json!(3))])
        .await
        .unwrap();

    let read = client
        .read_stream("order-7", 0, 10, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].event_id, batch[0].event_id);
    assert_eq!(read[1].data, batch[1].data);
    assert_eq!(read[1].metadata, batch[1].metadata);
    let backward = client
        .read_stream("order-7", u64::MAX, 1, Direction::Backward)
        .await
        .unwrap();
    assert_eq!(backward[0].version, 1);
    assert!(matches!(
        client
            .read_stream("order-404", 0, 10, Direction::Forward)
            .await,
        Err(ClientError::StreamNotFound { stream }) if stream == "order-404"
    ));
    let all = client.read_all(1, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(client.read_category("cart", 0, 10).await.unwrap().len(), 1);
    let info = client.info().await.unwrap();
    assert_eq!(info.head, 3);
    assert_eq!(info.store_id, server.running.store.store_id());
    match client
        .append("bad name", ExpectedVersion::Any, vec![event(json!(1))])
        .await
    {
        Err(ClientError::Rejected { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (400, "invalid_stream_name"))
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_subscription_catches_up_then_follows_live_appends_in_order() {
    let server = spawn_server().await;
    let client = StoreClient::new(&server.url).unwrap();
    for n in 0..300u64 {
        client
            .append(
                &format!("order-{}", n % 10),
                ExpectedVersion::Any,
                vec![event(json!({ "n": n }))],
            )
            .await
            .unwrap();
    }
    let subscription = client.subscribe_all(0);
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            for n in 300..600u64 {
                client
                    .append(
                        "order-live",
                        ExpectedVersion::Any,
                        vec![event(json!({ "n": n }))],
                    )
                    .await
                    .unwrap();
            }
        })
    };
    let events: Vec<_> = tokio::time::timeout(DEADLINE, subscription.take(600).collect::<Vec<_>>())
        .await
        .expect("every event arrives");
    writer.await.unwrap();
    let positions: Vec<u64> = events.into_iter().map(|e| e.unwrap().position).collect();
    assert_eq!(positions, (0..600).collect::<Vec<_>>());
    server.stop().await;
}

#[tokio::test]
async fn the_client_retries_until_a_store_that_is_starting_answers() {
    // A free port: bound, noted, released; the server takes it a moment later.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = StoreClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_retry(RetryPolicy {
            attempts: 200,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        });
    let append = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .append("order-1", ExpectedVersion::NoStream, vec![event(json!(1))])
                .await
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server_in(dir, &addr.to_string()).await;
    let result = tokio::time::timeout(DEADLINE, append)
        .await
        .expect("the append ends")
        .unwrap()
        .expect("the append went through once the store was up");
    assert_eq!(result.first_position, 0);
    assert_eq!(server.running.store.head(), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_store_is_reported_after_the_retry_budget() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = StoreClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_retry(RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        });
    match client.info().await {
        Err(ClientError::Unreachable { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("expected an unreachable store, got {other:?}"),
    }
}
