//! The replay benchmark, run small: every figure is there, the rebuild read
//! the whole store from its log files, and the sled floor was measured.

use projectors::bench::{replay, ReplayBenchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_benchmark_rebuilds_every_view_and_measures_the_sled_floor() {
    let dir = tempfile::tempdir().unwrap();
    let figures = replay(ReplayBenchOptions {
        dir: Some(dir.path().to_path_buf()),
        events: 3_000,
        ..ReplayBenchOptions::default()
    })
    .await
    .unwrap();
    let events = figures["events"].as_u64().unwrap();
    assert!(events >= 3_000, "{figures}");
    assert_eq!(figures["views"], 10, "{figures}");
    assert!(figures["events_per_second"].as_f64().unwrap() > 0.0);
    let applied: u64 = figures["per_view"]
        .as_array()
        .unwrap()
        .iter()
        .map(|view| view["applied"].as_u64().unwrap())
        .sum();
    assert!(
        applied >= events,
        "every event reached some view: {figures}"
    );
    let floor = &figures["sled_floor"];
    assert!(floor["entries"].as_u64().unwrap() > 0, "{figures}");
    assert!(floor["ceiling_events_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(floor["threads"].as_u64(), Some(num_threads().min(10)));
    // A second run reuses the filled store.
    let again = replay(ReplayBenchOptions {
        dir: Some(dir.path().to_path_buf()),
        events: 3_000,
        ..ReplayBenchOptions::default()
    })
    .await
    .unwrap();
    assert!(again["fill_seconds"].is_null(), "{again}");
    assert_eq!(again["events"], figures["events"]);
}

fn num_threads() -> u64 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u64)
}
