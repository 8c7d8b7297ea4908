//! The benchmarks, run small: every figure is there; the rebuild read the
//! whole store from its log files and the sled floor was measured; the live
//! run drained real RabbitMQ queues in rounds.

use projectors::{
    bench::{live, replay, LiveBenchOptions, ReplayBenchOptions},
    ProjectorName,
};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_benchmark_measures_the_projector_against_the_raw_consumer_in_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let figures = live(LiveBenchOptions {
        // The generated history starts with the catalogue: the catalog
        // projector's events come first.
        events: 4_000,
        rounds: 3,
        projectors: vec![ProjectorName::Catalog],
        dir: Some(dir.path().to_path_buf()),
        ..LiveBenchOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(figures["rounds"], 3, "{figures}");
    let result = &figures["results"][0];
    let messages = result["messages"].as_u64().unwrap();
    assert!(messages > 0, "{figures}");
    let rounds = result["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{figures}");
    // Every message was drained by both consumers, round by round.
    let per_round: u64 = rounds.iter().map(|r| r["messages"].as_u64().unwrap()).sum();
    assert_eq!(per_round, messages);
    let mut ratios: Vec<f64> = rounds
        .iter()
        .map(|r| {
            let ratio = r["ratio"].as_f64().unwrap();
            let expected = r["events_per_second"].as_f64().unwrap()
                / r["raw_messages_per_second"].as_f64().unwrap();
            assert!((ratio - expected).abs() < 1e-9, "{figures}");
            ratio
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    assert_eq!(result["ratio"].as_f64().unwrap(), ratios[1], "the median");
    // This process's CPU per message in each phase, and the broker's when
    // it runs on this machine (as in CI), reported as the median of the
    // rounds' (Linux: from /proc/<pid>/stat).
    let mut fields = vec!["cpu_us_per_message", "raw_cpu_us_per_message"];
    if local_rabbitmq() {
        fields.extend(["broker_cpu_us_per_message", "raw_broker_cpu_us_per_message"]);
    }
    for field in fields {
        let mut per_round: Vec<f64> = rounds
            .iter()
            .map(|r| r[field].as_f64().expect(field))
            .collect();
        assert!(per_round.iter().all(|cpu| *cpu >= 0.0), "{figures}");
        per_round.sort_by(f64::total_cmp);
        assert_eq!(result[field].as_f64().unwrap(), per_round[1], "{field}");
    }
}

/// Whether a RabbitMQ (an Erlang VM) runs on this machine.
fn local_rabbitmq() -> bool {
    std::fs::read_dir("/proc").is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "beam.smp")
        })
    })
}

fn num_threads() -> u64 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u64)
}
