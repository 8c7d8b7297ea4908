//! The read API, called through the router without a network.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use projectors::{
    layout::ViewDir,
    router,
    runtime::{Projector, RuntimeSettings},
    source::MemorySource,
    workload::{self, WorkloadOptions},
    ProjectorName,
};
use serde_json::{json, Value};
use service_runtime::shutdown::Shutdown;
use tower::ServiceExt;
use uuid::Uuid;

use crate::support::*;

async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(path);
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

/// A projector over `events`, caught up.
async fn projector_with(
    name: ProjectorName,
    events: &[domain::catalogue::DomainEvent],
) -> (Arc<Projector>, Arc<MemorySource>) {
    projector_with_settings(name, events, RuntimeSettings::default()).await
}

/// A projector over `events` with `settings`, caught up.
async fn projector_with_settings(
    name: ProjectorName,
    events: &[domain::catalogue::DomainEvent],
    settings: RuntimeSettings,
) -> (Arc<Projector>, Arc<MemorySource>) {
    let source = Arc::new(MemorySource::new(Uuid::from_u128(42)));
    for event in workload::record(events).unwrap() {
        source.push(event);
    }
    let projector = Projector::temporary(name, source.clone(), None, settings).unwrap();
    projector.adopt_store(Uuid::from_u128(42)).await.unwrap();
    projector.catch_up(None).await.unwrap();
    (projector, source)
}

/// `GET /positions` waiting (30 s at most) for `stream` to reach `min_version`, in a task.
fn spawn_position_wait(
    app: &Router,
    stream: &str,
    min_version: u64,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let app = app.clone();
    let path = format!("/positions?stream={stream}&min_version={min_version}&timeout_ms=30000");
    tokio::spawn(async move { call(&app, "GET", &path, None).await })
}

/// Applies version 2 of order 1 (its shipment), after [`order_events`].
async fn ship_order_1(projector: &Projector, source: &MemorySource) {
    let mut more = workload::record(&[
        placed(1, 1, &[("MUG", 1, 1000)], 0),
        placed(2, 1, &[("TEA", 2, 500)], 1),
        confirmed(1, 2),
        shipped(1, 3),
    ])
    .unwrap();
    source.push(more.remove(3));
    projector.catch_up(None).await.unwrap();
}

fn order_events() -> Vec<domain::catalogue::DomainEvent> {
    vec![
        placed(1, 1, &[("MUG", 1, 1000)], 0),
        placed(2, 1, &[("TEA", 2, 500)], 1),
        confirmed(1, 2),
    ]
}

#[tokio::test]
async fn a_document_is_served_by_key_and_a_missing_one_is_a_404_with_a_code() {
    let (projector, _) = projector_with(ProjectorName::Orders, &order_events()).await;
    let app = router(projector);
    let (status, doc) = call(&app, "GET", &format!("/views/orders/{}", order_id(1)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["status"], "CONFIRMED");
    assert_eq!(doc["timeline"].as_array().unwrap().len(), 2);
    let (status, error) = call(&app, "GET", "/views/orders/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"], "not_found");
    let (status, error) = call(&app, "GET", "/views/carts/x", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"], "unknown_view");
    assert!(
        error["message"].as_str().unwrap().contains("orders"),
        "{error}"
    );
}

#[tokio::test]
async fn a_batch_get_answers_every_key_with_null_for_missing_ones() {
    let (projector, _) = projector_with(ProjectorName::Orders, &order_events()).await;
    let app = router(projector);
    let keys = json!({"keys": [order_id(1).to_string(), "missing", order_id(2).to_string()]});
    let (status, body) = call(&app, "POST", "/views/orders/batch", Some(keys)).await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_object().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[&order_id(1).to_string()]["status"], "CONFIRMED");
    assert_eq!(items[&order_id(2).to_string()]["status"], "PLACED");
    assert_eq!(items["missing"], Value::Null);
}

#[tokio::test]
async fn bad_batch_requests_are_refused_with_a_code_and_a_message() {
    let (projector, _) = projector_with(ProjectorName::Orders, &order_events()).await;
    let app = router(projector);
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let (status, error) = call(
        &app,
        "POST",
        "/views/orders/batch",
        Some(json!({"keys": too_many})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "too_many_keys");
    assert_eq!(error["field"], "keys");
    let (status, error) = call(
        &app,
        "POST",
        "/views/orders/batch",
        Some(json!({"ids": []})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_body");
    let request = Request::post("/views/orders/batch")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_position_is_the_last_applied_version_and_a_query_can_wait_for_a_later_one() {
    let (projector, source) = projector_with(ProjectorName::Orders, &order_events()).await;
    let app = router(Arc::clone(&projector));
    let stream = format!("order-{}", order_id(1));
    let (status, body) = call(&app, "GET", &format!("/positions?stream={stream}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"stream": stream, "version": 1}));
    let (_, body) = call(&app, "GET", "/positions?stream=order-unknown", None).await;
    assert_eq!(body["version"], Value::Null);
    let (status, error) = call(&app, "GET", "/positions", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "missing_stream");

    // A query waiting for version 2 is answered once it is applied.
    let waiting = spawn_position_wait(&app, &stream, 2);
    ship_order_1(&projector, &source).await;
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 2);

    // One that waits for what never comes answers with what there is.
    let (_, body) = call(
        &app,
        "GET",
        &format!("/positions?stream={stream}&min_version=9&timeout_ms=50"),
        None,
    )
    .await;
    assert_eq!(body["version"], 2);
}

#[tokio::test]
async fn a_document_wait_answers_with_the_document_once_its_stream_reaches_the_version() {
    let (projector, source) = projector_with(ProjectorName::Orders, &order_events()).await;
    let app = router(Arc::clone(&projector));
    let id = order_id(1);
    let stream = format!("order-{id}");
    // Without a version to wait for: at once, with the stream's version.
    let (status, body) = call(
        &app,
        "GET",
        &format!("/views/orders/{id}/wait?stream={stream}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 1);
    assert_eq!(body["document"]["status"], "CONFIRMED");
    // A document not there yet: no version, no document.
    let unknown = order_id(9);
    let (status, body) = call(
        &app,
        "GET",
        &format!("/views/orders/{unknown}/wait?stream=order-{unknown}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], Value::Null);
    assert_eq!(body["document"], Value::Null);

    // Waiting for version 2: answered once it is applied, with the new document.
    let waiting = {
        let app = app.clone();
        let path =
            format!("/views/orders/{id}/wait?stream={stream}&min_version=2&timeout_ms=30000");
        tokio::spawn(async move { call(&app, "GET", &path, None).await })
    };
    ship_order_1(&projector, &source).await;
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 2);
    assert_eq!(body["document"]["status"], "SHIPPED");

    // What never comes: the document as it is when the time is up.
    let (_, body) = call(
        &app,
        "GET",
        &format!("/views/orders/{id}/wait?stream={stream}&min_version=9&timeout_ms=50"),
        None,
    )
    .await;
    assert_eq!(body["version"], 2);
    assert_eq!(body["document"]["status"], "SHIPPED");

    // Bad requests change nothing and say why.
    let (status, error) = call(&app, "GET", &format!("/views/orders/{id}/wait"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "missing_stream");
    let (status, error) = call(
        &app,
        "GET",
        &format!("/views/nothing/{id}/wait?stream={stream}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"], "unknown_view");
    let (status, error) = call(
        &app,
        "GET",
        &format!("/views/orders/{id}/wait?stream={stream}&min_version=x"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_query");
}

#[tokio::test]
async fn position_waits_past_the_bound_are_refused_at_once_and_a_freed_slot_is_taken_again() {
    let settings = RuntimeSettings {
        max_waits: 1,
        ..RuntimeSettings::default()
    };
    let (projector, source) =
        projector_with_settings(ProjectorName::Orders, &order_events(), settings).await;
    let app = router(Arc::clone(&projector));
    let stream = format!("order-{}", order_id(1));
    let waiting = spawn_position_wait(&app, &stream, 2);
    // Once it holds the only slot, the next wait is refused at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while projector.waits().waiting() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the wait never started"
        );
        tokio::task::yield_now().await;
    }
    let path = format!("/positions?stream={stream}&min_version=2&timeout_ms=30000");
    let (status, refused) =
        tokio::time::timeout(Duration::from_secs(5), call(&app, "GET", &path, None))
            .await
            .expect("a refusal does not wait");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused["error"], "too_many_waits");
    assert_eq!(refused["retry_after_ms"], 1000);
    // A query whose version is there already takes no slot.
    let path = format!("/positions?stream={stream}&min_version=1&timeout_ms=30000");
    let (status, body) = call(&app, "GET", &path, None).await;
    assert_eq!(
        (status, body["version"].clone()),
        (StatusCode::OK, json!(1))
    );

    // The awaited version answers the wait and frees its slot.
    ship_order_1(&projector, &source).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the wait answers")
        .unwrap();
    assert_eq!(
        (status, body["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    for _ in 0..2 {
        let path = format!("/positions?stream={stream}&min_version=9&timeout_ms=20");
        let (status, body) = call(&app, "GET", &path, None).await;
        assert_eq!(
            (status, body["version"].clone()),
            (StatusCode::OK, json!(2))
        );
    }
}

#[tokio::test]
async fn positions_come_from_the_view_alone_until_a_rebuild_leaves_old_streams_to_the_store() {
    let temp = tempfile::tempdir().unwrap();
    let mut history = order_events();
    history.extend((3..=5).map(|n| placed(n, 1, &[("TEA", 1, 500)], 3)));
    history.push(placed(7, 1, &[("MUG", 1, 1000)], 4));
    let mut history = workload::record(&history).unwrap().into_iter();
    let memory = Arc::new(MemorySource::new(Uuid::from_u128(42)));
    for event in history.by_ref().take(3) {
        memory.push(event);
    }
    let source = Arc::new(CountingSource::new(memory.clone()));
    let name = ProjectorName::Orders;
    let projector = Projector::open(
        name,
        ViewDir::new(temp.path(), name),
        source.clone(),
        None,
        RuntimeSettings::default(),
    )
    .unwrap();
    projector.adopt_store(Uuid::from_u128(42)).await.unwrap();
    projector.catch_up(None).await.unwrap();
    let app = router(Arc::clone(&projector));
    let known = format!("order-{}", order_id(1));
    let unknown = format!("order-{}", order_id(7));
    let version = |body: Value| body["version"].clone();

    // Built live: every applied stream has its position, so neither a known
    // stream nor one the view has not reached (a client waiting for a new
    // order) costs the store a read, not even while a long poll waits.
    let (_, body) = call(&app, "GET", &format!("/positions?stream={known}"), None).await;
    assert_eq!(version(body), json!(1));
    let waiting = spawn_position_wait(&app, &unknown, 0);
    // Commits of other streams wake the waiting poll: it looks again, locally.
    for event in history.by_ref().take(3) {
        memory.push(event);
        projector.catch_up(None).await.unwrap();
    }
    assert_eq!(source.stream_reads.load(Ordering::SeqCst), 0);
    memory.push(history.next().unwrap());
    projector.catch_up(None).await.unwrap();
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version(body), json!(0));
    assert_eq!(source.stream_reads.load(Ordering::SeqCst), 0);

    // Rebuilt: the rebuild wrote no positions, so an old stream's position
    // is looked up in the store, and is the same as before.
    projector.replay_live().await.unwrap();
    let (_, body) = call(&app, "GET", &format!("/positions?stream={known}"), None).await;
    assert_eq!(version(body), json!(1));
    assert!(source.stream_reads.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn status_reports_the_applied_position_the_lag_and_the_digest_of_the_content() {
    let events = workload::generate(WorkloadOptions {
        events: 300,
        ..WorkloadOptions::default()
    })
    .unwrap();
    let (projector, source) = projector_with(ProjectorName::Customers, &events).await;
    let app = router(Arc::clone(&projector));
    let (status, body) = call(&app, "GET", "/status", None).await;
    assert_eq!(status, StatusCode::OK);
    let head = source.events().len() as u64;
    assert_eq!(body["name"], "customers");
    assert_eq!(body["applied_position"], head - 1);
    assert_eq!(body["store_head"], head);
    assert_eq!(body["lag_events"], 0);
    assert_eq!(body["dead_letters"], 0);
    let (status, body) = call(&app, "GET", "/digest", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "customers");
    let expected = projectors::digest::digest(&projector.db()).unwrap();
    assert_eq!(body["digest"], expected);
    assert_eq!(expected.len(), 64);
}

#[tokio::test]
async fn the_catalog_lists_products_by_page_and_refuses_bad_page_sizes() {
    let events = [
        product_added("MUG", "Blue Mug", "A mug", 1250, "kitchen"),
        product_added("LAMP", "Desk Lamp", "A lamp", 4000, "office"),
        product_added("TEA", "Green Tea", "Leaves", 800, "kitchen"),
    ];
    let (projector, _) = projector_with(ProjectorName::Catalog, &events).await;
    let app = router(projector);
    let (status, page) = call(&app, "GET", "/products?first=2", None).await;
    assert_eq!(status, StatusCode::OK);
    let skus: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["LAMP", "MUG"]);
    assert_eq!(page["has_next"], true);
    let (_, page) = call(&app, "GET", "/products?first=2&after=MUG", None).await;
    assert_eq!(page["items"][0]["sku"], "TEA");
    assert_eq!(page["has_next"], false);
    let (_, page) = call(&app, "GET", "/products?category=office", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (status, error) = call(&app, "GET", "/products?first=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["field"], "first");
    let (status, _) = call(&app, "GET", "/products?first=many", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, doc) = call(&app, "GET", "/views/products/MUG", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["stock"], json!({"available": 0, "reserved": 0}));
}

#[tokio::test]
async fn search_recommendations_and_stats_answer_on_their_projectors() {
    let products = [
        product_added("MUG", "Blue Mug", "A mug", 1250, "kitchen"),
        product_added("TEA", "Green Tea", "Leaves", 800, "kitchen"),
    ];
    let (search, _) = projector_with(ProjectorName::Search, &products).await;
    let (_, hits) = call(&router(search), "GET", "/search?q=mu&first=5", None).await;
    assert_eq!(hits["items"][0]["sku"], "MUG");

    let orders = [
        placed(1, 1, &[("MUG", 1, 1000), ("TEA", 1, 500)], 0),
        confirmed(1, 1),
    ];
    let (recommendations, _) = projector_with(ProjectorName::Recommendations, &orders).await;
    let app = router(recommendations);
    let (_, items) = call(&app, "GET", "/recommendations/mug?first=3", None).await;
    assert_eq!(items, json!({"items": [{"sku": "TEA", "count": 1}]}));
    let (status, error) = call(&app, "GET", "/recommendations/no%20pe", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_sku");

    let (sales, _) = projector_with(ProjectorName::Sales, &orders).await;
    let (_, stats) = call(&router(sales), "GET", "/stats?top=1", None).await;
    assert_eq!(stats["orders"], 1);
    assert_eq!(stats["revenue_cents"], 1999);
    assert_eq!(stats["top_products"].as_array().unwrap().len(), 1);

    // The routes of one projector are not on another.
    let (carts, _) = projector_with(ProjectorName::Carts, &[]).await;
    let (status, _) = call(&router(carts), "GET", "/search?q=mug", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn health_answers_at_once_and_ready_once_the_projector_has_caught_up() {
    let source = Arc::new(MemorySource::new(Uuid::from_u128(42)));
    for event in workload::record(&order_events()).unwrap() {
        source.push(event);
    }
    let projector = Projector::temporary(
        ProjectorName::Orders,
        source,
        None,
        RuntimeSettings::default(),
    )
    .unwrap();
    let app = router(Arc::clone(&projector));
    let (status, _) = call(&app, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&app, "GET", "/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["reason"].as_str().unwrap().contains("catching up"),
        "{body}"
    );

    let shutdown = Shutdown::new();
    let follower = tokio::spawn(Arc::clone(&projector).follow_store(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = call(&app, "GET", "/ready", None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::task::yield_now().await;
    }
    let (status, text) = {
        let response = app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    };
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("projector_events_applied_total"), "{text}");
    shutdown.trigger();
    follower.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_combined_router_serves_every_projector_under_its_name_and_all_statuses_at_the_root() {
    let source = Arc::new(MemorySource::new(Uuid::from_u128(42)));
    for event in workload::record(&order_events()).unwrap() {
        source.push(event);
    }
    let mut all = Vec::new();
    for name in ProjectorName::ALL {
        let projector =
            Projector::temporary(name, source.clone(), None, RuntimeSettings::default()).unwrap();
        projector.adopt_store(Uuid::from_u128(42)).await.unwrap();
        projector.catch_up(None).await.unwrap();
        all.push(projector);
    }
    let app = projectors::service::combined_router(&all);
    let (status, doc) = call(
        &app,
        "GET",
        &format!("/orders/views/orders/{}", order_id(1)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["status"], "CONFIRMED");
    let (status, stats) = call(&app, "GET", "/sales/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["orders"], 1);
    let (_, digest) = call(&app, "GET", "/carts/digest", None).await;
    assert_eq!(digest["digest"], projectors::digest::empty());
    let (status, body) = call(&app, "GET", "/status", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["projectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ProjectorName::ALL.map(ProjectorName::as_str));
    let (status, _) = call(&app, "GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, "GET", "/orders/health", None).await;
    assert_eq!(status, StatusCode::OK);
}
