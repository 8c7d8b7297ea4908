//! `POST /appends`: appends to several streams in one request, each checked
//! and applied on its own, on a real server, in both forms.

use event_store::client::{ClientError, StoreClient};
use event_store::wire::{StreamAppend, BINARY_CONTENT_TYPE};
use event_store::{Direction, ExpectedVersion};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{event, event_with_id, spawn_server};

fn append(stream: &str, expected: ExpectedVersion, n: usize) -> StreamAppend {
    StreamAppend {
        stream: stream.to_owned(),
        expected_version: expected,
        events: (0..n).map(|i| event(json!({ "n": i }))).collect(),
    }
}

#[tokio::test]
async fn the_client_appends_to_several_streams_each_on_its_own() {
    let server = spawn_server().await;
    let client = StoreClient::new(&server.url).unwrap();
    client
        .append("order-2", ExpectedVersion::NoStream, vec![event(json!(0))])
        .await
        .unwrap();
    let retried = append("order-5", ExpectedVersion::NoStream, 1);
    let first = client
        .append_many(&[
            append("order-1", ExpectedVersion::NoStream, 2),
            // A stale expected version: refused alone.
            append("order-2", ExpectedVersion::NoStream, 1),
            append("order-3", ExpectedVersion::NoStream, 1),
            // An invalid name: refused alone.
            append("bad name", ExpectedVersion::Any, 1),
            // Twice the same stream: in order.
            append("order-4", ExpectedVersion::NoStream, 1),
            append("order-4", ExpectedVersion::Exact(0), 1),
            retried.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(first.len(), 7);
    let ok = |index: usize| first[index].as_ref().unwrap();
    assert_eq!(ok(0).next_expected_version, 1);
    assert_eq!(ok(0).last_position - ok(0).first_position, 1);
    assert!(matches!(
        first[1],
        Err(ClientError::WrongExpectedVersion { current: Some(0) })
    ));
    assert_eq!(ok(2).next_expected_version, 0);
    assert!(matches!(
        &first[3],
        Err(ClientError::Rejected { status: 400, code, .. }) if code == "invalid_stream_name"
    ));
    assert_eq!(ok(4).next_expected_version, 0);
    assert_eq!(ok(5).next_expected_version, 1);
    assert!(ok(5).first_position > ok(4).first_position);
    // Every append written is there, once; the refused ones are not.
    let head = server.running.store.head();
    assert_eq!(head, 1 + 2 + 1 + 2 + 1);
    let order_2 = client
        .read_stream("order-2", 0, 10, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(order_2.len(), 1);
    // A retried append (same ids) gets its first answer and writes nothing.
    let again = client
        .append_many(std::slice::from_ref(&retried))
        .await
        .unwrap();
    assert_eq!(
        again[0].as_ref().unwrap(),
        &event_store::AppendResult {
            repeat: true,
            recorded_at: None,
            ..*ok(6)
        }
    );
    assert_eq!(server.running.store.head(), head);
    // The same ids under another stream are refused as reused.
    let mut moved = retried;
    moved.stream = "order-6".into();
    let reused = client.append_many(&[moved]).await.unwrap();
    assert!(
        matches!(reused[0], Err(ClientError::EventIdReused { .. })),
        "{reused:?}"
    );
    assert_eq!(server.running.store.head(), head);
    server.stop().await;
}

#[tokio::test]
async fn a_json_multi_append_answers_per_append() {
    let server = spawn_server().await;
    let http = reqwest::Client::new();
    let url = format!("{}/appends", server.url);
    let id = Uuid::new_v4();
    let body = json!({"appends": [
        {"stream": "cart-1", "expected_version": "no_stream",
         "events": [{"event_id": id, "event_type": "ItemAdded", "data": {"sku": "A"}}]},
        {"stream": "cart-2", "expected_version": 3,
         "events": [{"event_id": Uuid::new_v4(), "event_type": "ItemAdded", "data": {}}]},
    ]});
    let response = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["results"][0],
        json!({"stream": "cart-1", "first_position": 0, "last_position": 0, "next_expected_version": 0})
    );
    let refused = &answer["results"][1];
    assert_eq!(refused["stream"], "cart-2");
    assert_eq!(refused["status"], 409);
    assert_eq!(refused["error"], "wrong_expected_version");
    assert_eq!(refused["current_version"], Value::Null);
    assert_eq!(server.running.store.head(), 1);
    let stored = server
        .running
        .store
        .read_stream("cart-1", 0, 10, Direction::Forward)
        .await
        .unwrap();
    assert_eq!(stored[0].event_id, id);
    server.stop().await;
}

#[tokio::test]
async fn a_bad_multi_append_is_refused_whole_and_writes_nothing() {
    let server = spawn_server().await;
    let http = reqwest::Client::new();
    let url = format!("{}/appends", server.url);
    let refused = |body: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let response = http.post(&url).json(&body).send().await.unwrap();
            let status = response.status();
            let answer: Value = response.json().await.unwrap();
            (status, answer)
        }
    };
    let good = json!({"stream": "cart-1", "expected_version": "any",
        "events": [{"event_id": Uuid::new_v4(), "event_type": "ItemAdded", "data": {}}]});
    let (status, answer) = refused(json!({"appends": []})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("no_appends"))
    );
    let (status, answer) = refused(json!({"appends": [good.clone(),
        {"stream": "cart-2", "expected_version": "maybe", "events": []}]}))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_expected_version");
    assert_eq!(answer["index"], 1);
    let (status, answer) = refused(json!({"appends": [good.clone(),
        {"expected_version": "any", "events": []}]}))
    .await;
    assert_eq!(
        (status, answer["index"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(1))
    );
    let too_many = vec![good; 1001];
    let (status, answer) = refused(json!({ "appends": too_many })).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("too_many_appends"))
    );
    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = http
        .post(&url)
        .header("content-type", BINARY_CONTENT_TYPE)
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "malformed_body");
    assert_eq!(server.running.store.head(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_multi_appends_to_one_stream_never_both_win_a_version() {
    let server = spawn_server().await;
    let client = StoreClient::new(&server.url).unwrap();
    // Two requests race for version 0 of each of 20 streams: exactly one
    // append per stream wins, the other is refused as a conflict.
    let batch = |tag: &str| -> Vec<StreamAppend> {
        (0..20)
            .map(|n| StreamAppend {
                stream: format!("stock-{n}"),
                expected_version: ExpectedVersion::NoStream,
                events: vec![event_with_id(Uuid::new_v4(), json!({ "by": tag }))],
            })
            .collect()
    };
    let (batch_a, batch_b) = (batch("a"), batch("b"));
    let (a, b) = tokio::join!(client.append_many(&batch_a), client.append_many(&batch_b));
    let (a, b) = (a.unwrap(), b.unwrap());
    for (n, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(
            a.is_ok() != b.is_ok(),
            "stream {n}: exactly one may win: {a:?} / {b:?}"
        );
        let loser = if a.is_ok() { b } else { a };
        assert!(matches!(
            loser,
            Err(ClientError::WrongExpectedVersion { current: Some(0) })
        ));
    }
    assert_eq!(server.running.store.head(), 20);
    server.stop().await;
}
