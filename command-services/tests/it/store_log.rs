//! The services' port to the store over HTTP ([`StoreLog`]): concurrent
//! appends to different streams are batched into multi-stream appends, each
//! still checked and answered on its own; against a store without
//! `POST /appends` it appends one by one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use command_services::event_log::{
    read_all_from, Appended, EventLog, Expected, LogError, StoreLog,
};
use domain::envelope::NewEvent;
use event_store::server::EventStoreConfig;
use service_runtime::shutdown::Shutdown;
use uuid::Uuid;

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "Happened".into(),
        schema_version: 1,
        data: format!(r#"{{"n":{n}}}"#),
        metadata: "{}".into(),
    }
}

/// A real store server on a loopback port over `dir`.
async fn store_server(
    dir: &std::path::Path,
) -> (String, Shutdown, event_store::server::RunningServer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = Shutdown::new();
    let running = event_store::server::start(
        &EventStoreConfig::for_data_dir(dir),
        listener,
        shutdown.clone(),
    )
    .await
    .unwrap();
    (format!("http://{}", running.addr), shutdown, running)
}

/// Many concurrent appends to different streams and to one stream, then a
/// retry: every answer matches what the store holds.
async fn check_concurrent_appends(log: Arc<StoreLog>) {
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let stream = format!("product-P{n}");
                let events = vec![event(n), event(n + 1)];
                let appended = log
                    .append(&stream, Expected::NoStream, events.clone())
                    .await
                    .unwrap();
                (stream, events, appended)
            })
        })
        .collect();
    // Meanwhile, stale appends to one existing stream are refused alone.
    log.append("stock-HOT", Expected::NoStream, vec![event(0)])
        .await
        .unwrap();
    let stale: Vec<_> = (0..20)
        .map(|n| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.append("stock-HOT", Expected::NoStream, vec![event(n)])
                    .await
            })
        })
        .collect();
    for task in stale {
        assert!(matches!(
            task.await.unwrap(),
            Err(LogError::WrongExpectedVersion { current: Some(0) })
        ));
    }
    for task in tasks {
        let (stream, events, appended) = task.await.unwrap();
        assert_eq!(appended.last_version, 1);
        assert_eq!(appended.last_position, appended.first_position + 1);
        let stored = read_all_from(log.as_ref(), &stream, 0).await.unwrap();
        assert_eq!(stored.len(), 2, "{stream}");
        assert_eq!(stored[0].event_id, events[0].event_id);
        assert_eq!(stored[0].position, appended.first_position);
        assert_eq!(stored[1].position, appended.last_position);
        // A retry of the same ids gets the first answer, marked as a
        // repeat, and writes nothing.
        assert!(!appended.repeat);
        let again = log
            .append(&stream, Expected::NoStream, events)
            .await
            .unwrap();
        assert_eq!(
            again,
            Appended {
                repeat: true,
                recorded_at: None,
                ..appended
            }
        );
    }
    let hot = read_all_from(log.as_ref(), "stock-HOT", 0).await.unwrap();
    assert_eq!(hot.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_batched_and_each_answered_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (url, shutdown, running) = store_server(dir.path()).await;
    let log = Arc::new(StoreLog::new(&url).unwrap());
    check_concurrent_appends(Arc::clone(&log)).await;
    assert_eq!(running.store.head(), 300 * 2 + 1);
    // An invalid stream name is refused for that append only.
    let (bad, good) = tokio::join!(
        log.append("no such name", Expected::NoStream, vec![event(1)]),
        log.append("cart-ok", Expected::NoStream, vec![event(1)]),
    );
    assert!(matches!(bad, Err(LogError::Refused { .. })), "{bad:?}");
    assert!(good.is_ok());
    shutdown.trigger();
    running.wait().await.unwrap();
}

#[derive(Clone)]
struct Proxy {
    http: reqwest::Client,
    store: String,
}

/// A store of before `POST /appends`: single appends only (forwarded to a real store).
async fn forward_append(
    State(proxy): State<Proxy>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let mut request = proxy
        .http
        .post(format!("{}/streams/{stream}", proxy.store))
        .body(body);
    for name in ["content-type", "accept"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.as_bytes().to_vec())
        .unwrap_or_default();
    let body = response.bytes().await.unwrap();
    (status, [("content-type", content_type)], body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn against_a_store_without_multi_appends_it_appends_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let (url, shutdown, running) = store_server(dir.path()).await;
    let proxy = Proxy {
        http: reqwest::Client::new(),
        store: url.clone(),
    };
    let app = axum::Router::new()
        .route(
            "/streams/{stream}",
            post(forward_append).get({
                let store = url.clone();
                move |Path(stream): Path<String>,
                      axum::extract::RawQuery(query): axum::extract::RawQuery,
                      headers: HeaderMap| async move {
                    let mut request = reqwest::Client::new().get(format!(
                        "{store}/streams/{stream}?{}",
                        query.unwrap_or_default()
                    ));
                    if let Some(value) = headers.get("accept") {
                        request = request.header("accept", value.as_bytes());
                    }
                    let response = request.send().await.unwrap();
                    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
                    (status, response.bytes().await.unwrap())
                }
            }),
        )
        .with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old_store = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(async move { axum::serve(listener, app).await });
    let log = Arc::new(StoreLog::new(&old_store).unwrap());
    check_concurrent_appends(log).await;
    assert_eq!(running.store.head(), 300 * 2 + 1);
    served.abort();
    shutdown.trigger();
    running.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_concurrent_appends_are_split_to_stay_under_the_body_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (url, shutdown, running) = store_server(dir.path()).await;
    let log = Arc::new(StoreLog::new(&url).unwrap());
    // 24 appends of 600 kB each: 14 MB together, more than the store takes
    // in one body (8 MiB), so they must go in several requests.
    let big = format!(r#""{}""#, "x".repeat(600_000));
    let tasks: Vec<_> = (0..24)
        .map(|n| {
            let log = Arc::clone(&log);
            let mut one = event(n);
            one.data = big.clone();
            tokio::spawn(async move {
                log.append(&format!("cart-C{n}"), Expected::NoStream, vec![one])
                    .await
            })
        })
        .collect();
    for task in tasks {
        let appended = task.await.unwrap().unwrap();
        assert_eq!(appended.last_version, 0);
    }
    assert_eq!(running.store.head(), 24);
    shutdown.trigger();
    running.wait().await.unwrap();
}
