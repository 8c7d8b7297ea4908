//! Rebuilding views from a real event store (files in a temp dir): offline
//! and live, with the same digest as the views built incrementally.

use std::{path::Path, sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use event_store::Store;
use projectors::{
    layout::ViewDir,
    projection::projection_for,
    replay::{self, digest_offline, replay_offline, store_dir},
    router,
    runtime::{Projector, RuntimeSettings},
    source::{EventSource, SharedSource, StoreSource},
    viewdb::{Collection, DbOptions, ViewDb},
    workload::WorkloadOptions,
    ProjectorName,
};
use serde_json::Value;
use service_runtime::shutdown::Shutdown;
use tower::ServiceExt;

async fn store_with_history(data: &Path, events: usize, seed: u64) -> Store {
    crate::support::store_with(
        data,
        WorkloadOptions {
            events,
            seed,
            ..WorkloadOptions::default()
        },
    )
    .await
}

/// Waits, with a deadline, until the projector has applied the store's last
/// event and finished its first catch-up (a view that was already there
/// commits nothing, so its catch-up is looked for, not waited on).
async fn caught_up(projector: &Projector, head: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut commits = projector.commits();
    loop {
        let applied = projector.db().meta().unwrap().applied_position;
        if applied == Some(head - 1) && projector.is_caught_up() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck at {applied:?} of {head}"
        );
        let look_again = (tokio::time::Instant::now() + Duration::from_millis(20)).min(deadline);
        let _ = tokio::time::timeout_at(look_again, commits.changed()).await;
    }
}

/// Runs a projector following the store until it has everything, and
/// returns its digest; the projector is closed afterwards.
async fn follow(data: &Path, name: ProjectorName, store: &Store) -> String {
    let source: SharedSource = Arc::new(StoreSource::new(store.clone()));
    let projector = Projector::open(
        name,
        ViewDir::new(data, name),
        source,
        None,
        RuntimeSettings::default(),
    )
    .unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(Arc::clone(&projector).follow_store(shutdown.clone()));
    caught_up(&projector, store.head()).await;
    let digest = projector.digest().await.unwrap();
    shutdown.trigger();
    task.await.unwrap().unwrap();
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_replay_rebuilds_every_view_with_the_digest_of_the_live_one_and_swaps_it_in() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path();
    let store = store_with_history(data, 3000, 11).await;
    let mut live = Vec::new();
    for name in ProjectorName::ALL {
        live.push((name, follow(data, name, &store).await));
    }
    // Offline: the store is stopped and only its log files are read.
    let head = store.head();
    store.shutdown().await.unwrap();
    drop(store);
    let log = replay::open_log(&store_dir(data)).unwrap();
    let report = replay_offline(
        &ProjectorName::ALL,
        data,
        Arc::new(log),
        DbOptions::default(),
        Arc::new(|_, _| {}),
    )
    .await
    .unwrap();
    assert_eq!(report.rebuild.events, head);
    for ((name, live_digest), replayed) in live.iter().zip(&report.replayed) {
        assert_eq!(replayed.name, *name);
        assert_eq!(&replayed.digest, live_digest, "{name}");
        let dir = ViewDir::new(data, *name);
        assert_eq!(
            dir.current().unwrap().unwrap().0,
            2,
            "{name} swapped to its second generation"
        );
        assert_eq!(
            digest_offline(*name, data, DbOptions::default())
                .unwrap()
                .as_deref(),
            Some(live_digest.as_str())
        );
    }
    // The first generations are gone.
    assert!(!ViewDir::new(data, ProjectorName::Orders)
        .root()
        .join("gen-000001")
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_laid_out_for_another_version_is_rebuilt_from_the_store_when_it_opens() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path();
    let store = store_with_history(data, 2000, 5).await;
    let notifications = ProjectorName::Notifications;
    let layout = projection_for(notifications).layout();
    let live = follow(data, notifications, &store).await;
    let orders = follow(data, ProjectorName::Orders, &store).await;
    let dir = ViewDir::new(data, notifications);
    let current = dir.current().unwrap().unwrap();
    {
        // What an older build left: layout 1, with a document of its own.
        let db = Arc::new(ViewDb::open(&current.1, DbOptions::default()).unwrap());
        assert_eq!(db.layout().unwrap(), Some(layout));
        let mut tx = db.begin().unwrap();
        tx.put(
            Collection::<Value>::new("notification_items"),
            "customer/item",
            serde_json::json!({"message": "from an older build"}),
        )
        .unwrap();
        tx.commit().unwrap();
        db.set_layout(1).unwrap();
    }
    assert_eq!(
        follow(data, notifications, &store).await,
        live,
        "rebuilt from the store, without the old document"
    );
    assert_eq!(dir.current().unwrap().unwrap().0, current.0 + 1);
    assert!(!current.1.exists(), "the old generation is gone");
    let db = ViewDb::open(&dir.current().unwrap().unwrap().1, DbOptions::default()).unwrap();
    assert_eq!(db.layout().unwrap(), Some(layout));
    assert_eq!(db.homes(), projection_for(notifications).homes());
    drop(db);
    // A view whose layout did not change keeps its generation.
    assert_eq!(follow(data, ProjectorName::Orders, &store).await, orders);
    assert_eq!(
        ViewDir::new(data, ProjectorName::Orders)
            .current()
            .unwrap()
            .unwrap()
            .0,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_replay_refuses_to_read_the_log_of_a_running_store() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path();
    let store = store_with_history(data, 100, 14).await;
    let error = replay::open_log(&store_dir(data)).unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("running"), "{message}");
    assert!(message.contains("--target"), "{message}");
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_replay_refuses_to_touch_the_view_of_a_running_projector() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path();
    let store = store_with_history(data, 200, 12).await;
    let source: SharedSource = Arc::new(StoreSource::new(store.clone()));
    let name = ProjectorName::Carts;
    let running = Projector::open(
        name,
        ViewDir::new(data, name),
        source,
        None,
        RuntimeSettings::default(),
    )
    .unwrap();
    let error = replay_offline(
        &[name],
        data,
        Arc::new(StoreSource::new(store.clone())),
        DbOptions::default(),
        Arc::new(|_, _| {}),
    )
    .await
    .unwrap_err();
    assert!(format!("{error:#}").contains("running"), "{error:#}");
    assert_eq!(ViewDir::new(data, name).current().unwrap().unwrap().0, 1);
    drop(running);
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_replay_rebuilds_beside_the_served_view_and_swaps_it_in_with_the_same_digest() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path();
    let store = store_with_history(data, 2000, 13).await;
    let source: SharedSource = Arc::new(StoreSource::new(store.clone()));
    let name = ProjectorName::Notifications;
    let projector = Projector::open(
        name,
        ViewDir::new(data, name),
        source,
        None,
        RuntimeSettings::default(),
    )
    .unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(Arc::clone(&projector).follow_store(shutdown.clone()));
    caught_up(&projector, store.head()).await;
    let before = projector.digest().await.unwrap();

    let app = router(Arc::clone(&projector));
    let response = app
        .clone()
        .oneshot(Request::post("/admin/replay").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), axum::http::StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let progress = loop {
        let response = app
            .clone()
            .oneshot(Request::get("/admin/replay").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let progress: Value = serde_json::from_slice(&bytes).unwrap();
        if progress["state"] != "running" {
            break progress;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replay never finished"
        );
        let mut commits = projector.commits();
        let _ = tokio::time::timeout(Duration::from_millis(50), commits.changed()).await;
    };
    assert_eq!(progress["state"], "done", "{progress}");
    assert_eq!(progress["digest"], before.as_str());
    assert_eq!(progress["processed"], store.head());
    assert_eq!(projector.digest().await.unwrap(), before);
    assert_eq!(ViewDir::new(data, name).current().unwrap().unwrap().0, 2);
    shutdown.trigger();
    task.await.unwrap().unwrap();
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_that_writes_whenever_few_documents_are_held_gives_the_same_views() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path();
    let store = store_with_history(data, 3000, 21).await;
    let head = store.head();
    let source: SharedSource = Arc::new(StoreSource::new(store.clone()));
    let names = [
        ProjectorName::Orders,
        ProjectorName::Customers,
        ProjectorName::Notifications,
        ProjectorName::Recommendations,
    ];
    let mut rebuilt = Vec::new();
    for (label, batching) in [
        ("whole", replay::OFFLINE_BATCHING),
        (
            "tight",
            replay::Batching {
                events: usize::MAX,
                documents: 20,
            },
        ),
    ] {
        let targets: Vec<replay::Target> = names
            .iter()
            .map(|name| replay::Target {
                projection: projection_for(*name),
                db: Arc::new(
                    ViewDb::open(&data.join(label).join(name.as_str()), DbOptions::default())
                        .unwrap(),
                ),
            })
            .collect();
        let report = replay::rebuild_with(
            targets.clone(),
            Arc::clone(&source),
            head,
            Arc::new(|_, _| {}),
            batching,
        )
        .await
        .unwrap();
        let digests: Vec<String> = targets
            .iter()
            .map(|target| projectors::digest::digest(&target.db).unwrap())
            .collect();
        let written: Vec<u64> = names
            .iter()
            .map(|name| {
                report
                    .views
                    .iter()
                    .find(|view| view.name == name.as_str())
                    .unwrap()
                    .documents_written
            })
            .collect();
        rebuilt.push((digests, written));
    }
    let (whole, tight) = (&rebuilt[0], &rebuilt[1]);
    assert_eq!(whole.0, tight.0, "the same documents");
    for (name, (whole, tight)) in names.iter().zip(whole.1.iter().zip(&tight.1)) {
        assert!(
            tight > whole,
            "{name}: written in many transactions ({tight}) rather than one ({whole})"
        );
    }
    for (name, digest) in names.iter().zip(&whole.0) {
        assert_eq!(
            &follow(data, *name, &store).await,
            digest,
            "{name}: the live view's digest"
        );
    }
    store.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_source_of_a_stopped_store_answers_as_the_store_did() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path();
    let store = store_with_history(data, 500, 15).await;
    let all = store.read_all(0, 1000).await.unwrap();
    // The stream with the most events.
    let mut counts = std::collections::HashMap::new();
    for event in &all {
        *counts.entry(event.stream.clone()).or_insert(0) += 1;
    }
    let (stream, count) = counts.into_iter().max_by_key(|(_, n)| *n).unwrap();
    assert!(
        count >= 2,
        "a stream with several events, got {count} of {}",
        all.len()
    );
    let events = store
        .read_stream(&stream, 0, 1000, event_store::Direction::Forward)
        .await
        .unwrap();
    let (store_id, head) = (store.store_id(), store.head());
    store.shutdown().await.unwrap();
    drop(store);

    let log = replay::open_log(&store_dir(data)).unwrap();
    assert_eq!(log.store_id().await.unwrap(), store_id);
    assert_eq!(log.head().await.unwrap(), head);
    assert_eq!(log.read_all(0, 1000).await.unwrap(), all);
    assert_eq!(log.read_stream(&stream, 0, 1000).await.unwrap(), events);
    assert_eq!(
        log.read_stream(&stream, 1, 1000).await.unwrap(),
        events[1..].to_vec()
    );
    assert_eq!(
        log.read_stream(&stream, 0, 1).await.unwrap(),
        events[..1].to_vec()
    );
    assert!(log
        .read_stream("order-unknown", 0, 10)
        .await
        .unwrap()
        .is_empty());
}
