//! The store benchmark, run small: every figure is there and positive.

use std::time::Duration;

use event_store::bench::{run_store_bench, StoreBenchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_benchmark_measures_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let figures = run_store_bench(StoreBenchOptions {
        dir: Some(dir.path().to_path_buf()),
        writers: vec![1, 4],
        duration: Duration::from_millis(200),
        max_appends: 10_000,
        http_duration: Duration::from_millis(200),
        http_max_appends: 10_000,
        sync_slices: 2,
        read_events: 3_000,
    })
    .await
    .unwrap();
    for figure in ["raw_fdatasync_per_sec", "read_all_events_per_sec"] {
        assert!(
            figures[figure].as_f64().unwrap() > 0.0,
            "{figure}: {figures}"
        );
    }
    for kind in ["in_process_appends_per_sec", "http_appends_per_sec"] {
        for writers in ["1", "4"] {
            assert!(
                figures[kind][writers].as_f64().unwrap() > 0.0,
                "{kind} {writers}: {figures}"
            );
        }
    }
    // At least the asked-for events: the append runs may have left more.
    assert!(
        figures["read_all_events"].as_u64().unwrap() >= 3_000,
        "{figures}"
    );
    assert!(
        figures["in_process_random_ids_appends_per_sec"]["4"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(figures["index_only_events_per_sec"].as_f64().unwrap() > 0.0);
    assert!(figures["single_writer_vs_raw_sync"].as_f64().unwrap() > 0.0);
    assert!(figures["targets"].is_object());
    // The scratch stores are removed afterwards.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
