//! The scenario files against the real multi-process system and RabbitMQ:
//! `shop scenario run --spawn scenarios/*.toml`, and the spawner's teardown.

use std::path::PathBuf;
use std::process::Command;

use ::scenarios::topology::{Topology, TopologyConfig};
use messaging::transport::Transport;
use messaging::{AmqpConfig, AmqpTransport, ConsumerName, Namespace, QueueRole};

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_scenario_passes_against_the_spawned_multi_process_system() {
    let _one_system_at_a_time = crate::PROCESSES.blocking_lock();
    let files = scenario_files();
    let output = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["scenario", "run", "--spawn"])
        .args(&files)
        .env_remove("SHOP_ADMIN_EMAIL")
        .env_remove("SHOP_ADMIN_PASSWORD")
        .output()
        .expect("shop runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "shop scenario run --spawn failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // `files` includes the crate's Cargo.toml, which the runner skips.
    let scenarios = files.iter().filter(|f| !f.ends_with("Cargo.toml")).count();
    assert!(
        stdout.contains(&format!(
            "{scenarios} scenario(s): {scenarios} passed, 0 failed"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("achieved"),
        "the load scenario reports its rate: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spawned_system_stops_every_process_and_deletes_its_files_and_queues() {
    let _one_system_at_a_time = crate::PROCESSES.lock().await;
    let topology = Topology::spawn(TopologyConfig::new(env!("CARGO_BIN_EXE_shop")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ready = reqwest::get(format!("{}/ready", topology.query_api_url()))
        .await
        .unwrap();
    assert!(ready.status().is_success());
    let pids: Vec<u32> = topology
        .components()
        .iter()
        .filter_map(|c| c.pid())
        .collect();
    assert_eq!(pids.len(), 21);
    let data = topology.data_dir().unwrap().to_owned();
    let namespace = Namespace::parse(topology.namespace()).unwrap();
    let amqp = std::env::var("SHOP_AMQP")
        .unwrap_or_else(|_| ::scenarios::topology::DEFAULT_AMQP.to_owned());
    let broker = AmqpTransport::connect(AmqpConfig::new(amqp, namespace))
        .await
        .unwrap();
    let queues = [
        ConsumerName::parse("saga").unwrap(),
        ConsumerName::parse("projector.orders").unwrap(),
    ];
    for queue in &queues {
        assert!(
            broker.ready_messages(queue, QueueRole::Main).await.is_ok(),
            "{queue}"
        );
    }

    let exits = topology.shutdown().await;
    for exit in &exits {
        assert!(!exit.killed, "{} had to be killed", exit.component);
        assert!(
            exit.status.is_some_and(|s| s.success()),
            "{} exited with {:?}",
            exit.component,
            exit.status
        );
    }
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} still runs"
        );
    }
    assert!(!data.exists(), "{} was not removed", data.display());
    for queue in &queues {
        for role in [QueueRole::Main, QueueRole::DeadLetter] {
            assert!(
                broker.ready_messages(queue, role).await.is_err(),
                "{queue} ({role:?}) is still there"
            );
        }
    }
    broker.close().await;
}
