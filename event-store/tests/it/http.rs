//! The HTTP API on a real server on a loopback port, as CONTRACT.md fixes it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use domain::codec;
use domain::envelope::{NewEvent, RecordedEvent};
use event_store::store::AppendResult;
use event_store::wire::{AppendRequest, BINARY_CONTENT_TYPE};
use event_store::{ExpectedVersion, Store, StoreOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{event, spawn_server, spawn_server_configured, DEADLINE};

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

async fn post(url: &str, body: &Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn get(url: &str) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn appends_and_reads_have_the_contract_shapes() {
    let server = spawn_server().await;
    let url = &server.url;
    let correlation = Uuid::new_v4();
    let (status, body) = post(
        &format!("{url}/streams/order-1"),
        &json!({
            "expected_version": "no_stream",
            "events": [
                {"event_id": Uuid::new_v4(), "event_type": "OrderPlaced", "data": {"total": 5},
                 "metadata": {"correlation_id": correlation}},
                {"event_id": Uuid::new_v4(), "event_type": "OrderConfirmed", "data": {}},
            ]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"first_position": 0, "last_position": 1, "next_expected_version": 1})
    );

    let (status, body) = get(&format!("{url}/streams/order-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&body), BTreeSet::from(["events"]));
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        keys(&events[0]),
        BTreeSet::from([
            "stream",
            "version",
            "position",
            "event_id",
            "event_type",
            "schema_version",
            "recorded_at",
            "data",
            "metadata"
        ])
    );
    assert_eq!(events[0]["stream"], "order-1");
    assert_eq!(events[0]["version"], 0);
    assert_eq!(events[0]["position"], 0);
    assert_eq!(events[0]["event_type"], "OrderPlaced");
    assert_eq!(events[0]["schema_version"], 1);
    assert_eq!(events[0]["data"], json!({"total": 5}));
    assert_eq!(
        events[0]["metadata"],
        json!({"correlation_id": correlation})
    );
    assert_eq!(events[1]["metadata"], json!({}));
    assert!(events[0]["recorded_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .is_ok());

    let (_, backward) = get(&format!(
        "{url}/streams/order-1?from=1&limit=1&direction=backward"
    ))
    .await;
    assert_eq!(backward["events"].as_array().unwrap().len(), 1);
    assert_eq!(backward["events"][0]["version"], 1);

    post(
        &format!("{url}/streams/cart-1"),
        &json!({"expected_version": "any", "events": [
            {"event_id": Uuid::new_v4(), "event_type": "ItemAdded", "data": {"sku": "A"}}]}),
    )
    .await;
    let (status, all) = get(&format!("{url}/all?from=1&limit=10")).await;
    assert_eq!(status, StatusCode::OK);
    let positions: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![1, 2]);

    let (_, orders) = get(&format!("{url}/categories/order?from=0&limit=10")).await;
    assert_eq!(orders["events"].as_array().unwrap().len(), 2);
    let (_, info) = get(&format!("{url}/info")).await;
    assert_eq!(info["head"], 3);
    assert_eq!(
        info["store_id"],
        server.running.store.store_id().to_string()
    );

    for path in ["/health", "/ready", "/metrics"] {
        let response = reqwest::get(format!("{url}{path}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        if path == "/metrics" {
            let text = response.text().await.unwrap();
            for metric in [
                "event_store_events_appended_total",
                "event_store_appends_total",
                "event_store_sync_seconds",
                "event_store_group_commit_events",
            ] {
                assert!(text.contains(metric), "{metric} in {text}");
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_expected_version_is_a_409_with_the_current_version() {
    let server = spawn_server().await;
    let append = |expected: Value| {
        let url = format!("{}/streams/order-9", server.url);
        async move {
            post(
                &url,
                &json!({"expected_version": expected, "events": [
                    {"event_id": Uuid::new_v4(), "event_type": "OrderPlaced", "data": {}}]}),
            )
            .await
        }
    };
    let (status, body) = append(json!(0)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "wrong_expected_version");
    assert_eq!(body["current_version"], Value::Null);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(append(json!("no_stream")).await.0, StatusCode::OK);
    let (status, body) = append(json!("no_stream")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "wrong_expected_version");
    assert_eq!(body["current_version"], 0);
    assert_eq!(append(json!(0)).await.0, StatusCode::OK);
    assert_eq!(server.running.store.head(), 2);
    server.stop().await;
}

#[tokio::test]
async fn re_posting_the_same_event_ids_returns_the_first_answer() {
    let server = spawn_server().await;
    let body = json!({"expected_version": "no_stream", "events": [
        {"event_id": Uuid::new_v4(), "event_type": "OrderPlaced", "data": {"a": 1}},
        {"event_id": Uuid::new_v4(), "event_type": "OrderPaid", "data": {"b": 2}}]});
    let url = format!("{}/streams/order-3", server.url);
    let first = post(&url, &body).await;
    let again = post(&url, &body).await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(server.running.store.head(), 2);
    let mut changed = body.clone();
    changed["events"][0]["data"] = json!({"a": 2});
    let (status, refused) = post(&url, &changed).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(refused["error"], "event_id_reused");
    assert_eq!(server.running.store.head(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_missing_stream_is_a_404_with_an_error_body() {
    let server = spawn_server().await;
    let (status, body) = get(&format!("{}/streams/order-404", server.url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "stream_not_found");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.contains("order-404")));
    server.stop().await;
}

#[tokio::test]
async fn every_bad_input_is_a_4xx_with_a_code_and_a_message_and_writes_nothing() {
    let server = spawn_server().await;
    let url = &server.url;
    let good_event =
        || json!({"event_id": Uuid::new_v4(), "event_type": "OrderPlaced", "data": {}});
    let client = reqwest::Client::new();
    let cases: Vec<(&str, String, Vec<u8>, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            "order-1".into(),
            b"{\"expected_version\": \"any\", \"events\": [".to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "a body of the wrong shape",
            "order-1".into(),
            json!({"expected_version": "any", "events": "none"}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "an invalid stream name",
            "order%20one".into(),
            json!({"expected_version": "any", "events": [good_event()]}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_stream_name",
        ),
        (
            "a stream name without a category",
            "orders".into(),
            json!({"expected_version": "any", "events": [good_event()]}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_stream_name",
        ),
        (
            "an empty event list",
            "order-1".into(),
            json!({"expected_version": "any", "events": []}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "no_events",
        ),
        (
            "too many events",
            "order-1".into(),
            json!({"expected_version": "any", "events": (0..1001).map(|_| good_event()).collect::<Vec<_>>()})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "too_many_events",
        ),
        (
            "an oversized body",
            "order-1".into(),
            json!({"expected_version": "any", "events": [
                {"event_id": Uuid::new_v4(), "event_type": "Big", "data": "x".repeat(9 * 1024 * 1024)}]})
                .to_string()
                .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "an oversized event",
            "order-1".into(),
            json!({"expected_version": "any", "events": [
                {"event_id": Uuid::new_v4(), "event_type": "Big", "data": "x".repeat(2 * 1024 * 1024)}]})
                .to_string()
                .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "event_too_large",
        ),
        (
            "a bad expected_version",
            "order-1".into(),
            json!({"expected_version": "later", "events": [good_event()]}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_expected_version",
        ),
        (
            "a negative expected_version",
            "order-1".into(),
            json!({"expected_version": -1, "events": [good_event()]}).to_string().into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_expected_version",
        ),
        (
            "an invalid uuid",
            "order-1".into(),
            json!({"expected_version": "any", "events": [
                {"event_id": "not-a-uuid", "event_type": "OrderPlaced", "data": {}}]})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_event_id",
        ),
        (
            "an invalid event type",
            "order-1".into(),
            json!({"expected_version": "any", "events": [
                {"event_id": Uuid::new_v4(), "event_type": "order placed", "data": {}}]})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "invalid_event_type",
        ),
        (
            "a repeated event id",
            "order-1".into(),
            {
                let id = Uuid::new_v4();
                json!({"expected_version": "any", "events": [
                    {"event_id": id, "event_type": "A", "data": {}},
                    {"event_id": id, "event_type": "B", "data": {}}]})
                .to_string()
                .into_bytes()
            },
            StatusCode::BAD_REQUEST,
            "duplicate_event_id",
        ),
        (
            "a binary body that does not decode",
            "order-1".into(),
            vec![1, 2, 3],
            StatusCode::BAD_REQUEST,
            "malformed_body",
        ),
    ];
    for (what, stream, body, status, code) in cases {
        let mut request = client.post(format!("{url}/streams/{stream}")).body(body);
        request = if code == "malformed_body" {
            request.header("content-type", BINARY_CONTENT_TYPE)
        } else {
            request.header("content-type", "application/json")
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
    }
    for (what, path, code) in [
        (
            "a bad direction",
            "/streams/order-1?direction=sideways",
            "invalid_query",
        ),
        ("a non-numeric from", "/all?from=soon", "invalid_query"),
        ("a zero limit", "/all?limit=0", "invalid_query"),
        (
            "an invalid category",
            "/categories/order-1",
            "invalid_category",
        ),
        (
            "an invalid stream to read",
            "/streams/nocategory",
            "invalid_stream_name",
        ),
    ] {
        let (status, body) = get(&format!("{url}{path}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(body["error"], code, "{what}");
    }
    assert_eq!(server.running.store.head(), 0, "nothing was written");
    let (_, all) = get(&format!("{url}/all")).await;
    assert_eq!(all, json!({"events": []}));
    server.stop().await;
}

#[tokio::test]
async fn a_long_poll_on_all_answers_when_an_event_arrives_or_empty_after_the_wait() {
    let server = spawn_server().await;
    let started = Instant::now();
    let (status, body) = get(&format!("{}/all?from=0&wait_ms=150", server.url)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"events": []}));
    assert!(started.elapsed() >= Duration::from_millis(150), "it waited");

    // Waiting for position 1: the first append (position 0) does not end the wait.
    let poll = tokio::spawn({
        let url = format!("{}/all?from=1&wait_ms=30000", server.url);
        async move { get(&url).await }
    });
    let store = server.running.store.clone();
    let started = Instant::now();
    for n in 0..2 {
        store
            .append("order-1", ExpectedVersion::Any, vec![event(json!(n))])
            .await
            .unwrap();
    }
    let (status, body) = tokio::time::timeout(DEADLINE, poll)
        .await
        .expect("the long poll answers")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "it did not wait out"
    );
    assert_eq!(status, StatusCode::OK);
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["position"], 1);
    server.stop().await;
}

#[tokio::test]
async fn long_polls_past_the_bound_are_refused_at_once_and_a_freed_slot_is_taken_again() {
    let server = spawn_server_configured(|config| config.max_waits = 2).await;
    let url = server.url.clone();
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let url = format!("{url}/all?from=0&wait_ms=30000");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    // Once both hold their slots, the next wait is refused at once.
    let deadline = Instant::now() + DEADLINE;
    while server.running.waits.waiting() < 2 {
        assert!(Instant::now() < deadline, "the long polls never waited");
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let (status, refused) = get(&format!("{url}/all?from=0&wait_ms=30000")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "it did not wait"
    );
    assert_eq!(refused["error"], "too_many_waits");
    assert_eq!(refused["retry_after_ms"], 1000);
    assert!(refused["message"].as_str().unwrap().contains('2'));
    // A read that need not wait takes no slot.
    let (status, body) = get(&format!("{url}/all?from=0")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"events": []})));

    // An event answers both waits, which frees their slots.
    server
        .running
        .store
        .append("order-1", ExpectedVersion::Any, vec![event(json!(1))])
        .await
        .unwrap();
    for poll in polls {
        let (status, body) = tokio::time::timeout(DEADLINE, poll)
            .await
            .expect("the long poll answers")
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["events"].as_array().unwrap().len(), 1);
    }
    for _ in 0..3 {
        let (status, body) = get(&format!("{url}/all?from=1&wait_ms=20")).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"events": []})));
    }
    server.stop().await;
}

#[tokio::test]
async fn the_binary_form_carries_appends_and_reads() {
    let server = spawn_server().await;
    let client = reqwest::Client::new();
    let events: Vec<NewEvent> = (0..3).map(|n| event(json!({ "n": n }))).collect();
    let body = codec::encode(&AppendRequest {
        expected_version: ExpectedVersion::NoStream,
        events: events.clone(),
    })
    .unwrap();
    let response = client
        .post(format!("{}/streams/stock-A1", server.url))
        .header("content-type", BINARY_CONTENT_TYPE)
        .header("accept", BINARY_CONTENT_TYPE)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], BINARY_CONTENT_TYPE);
    let result: AppendResult = codec::decode(&response.bytes().await.unwrap()).unwrap();
    let recorded_at = result
        .recorded_at
        .expect("a write says when it was recorded");
    assert_eq!(
        result,
        AppendResult {
            first_position: 0,
            last_position: 2,
            next_expected_version: 2,
            repeat: false,
            recorded_at: Some(recorded_at),
        }
    );
    let response = client
        .get(format!("{}/streams/stock-A1?from=1", server.url))
        .header("accept", BINARY_CONTENT_TYPE)
        .send()
        .await
        .unwrap();
    let read: Vec<RecordedEvent> = codec::decode(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].event_id, events[1].event_id);
    assert_eq!(read[1].data, events[2].data);
    assert!(
        read.iter().all(|event| event.recorded_at == recorded_at),
        "the answer's time is the stored events' time"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_shutdown_finishes_in_flight_appends_and_leaves_a_store_that_reopens() {
    let server = spawn_server().await;
    let client = event_store::StoreClient::new(&server.url).unwrap();
    let (acked, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let writers: Vec<_> = (0..16u64)
        .map(|w| {
            let client = client.clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                for i in 0u64.. {
                    let event = event(json!({ "w": w, "i": i }));
                    let event_id = event.event_id;
                    match client
                        .append(&format!("order-w{w}"), ExpectedVersion::Any, vec![event])
                        .await
                    {
                        Ok(result) => {
                            let _ = acked.send((result.first_position, event_id));
                        }
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    drop(acked);
    // Shut down while appends are in flight.
    let mut confirmed = Vec::new();
    while confirmed.len() < 200 {
        confirmed.push(acks.recv().await.expect("appends are acknowledged"));
    }
    let dir = tokio::time::timeout(DEADLINE, server.stop())
        .await
        .expect("the server drains and stops");
    for writer in writers {
        tokio::time::timeout(DEADLINE, writer)
            .await
            .expect("every writer ends once the server is gone")
            .unwrap();
    }
    while let Ok(ack) = acks.try_recv() {
        confirmed.push(ack);
    }
    let store = Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();
    let all = store.read_all(0, 100_000).await.unwrap();
    assert_eq!(all.len() as u64, store.head());
    for (position, event_id) in confirmed {
        assert_eq!(all[position as usize].event_id, event_id);
    }
}
