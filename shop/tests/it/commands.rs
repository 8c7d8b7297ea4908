//! `shop command-service NAME` as a real process.

use std::time::Duration;

use command_services::cluster::{Cluster, ClusterOptions};
use serde_json::json;

use crate::command_side::{eventually, free_address, ShopProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_command_service_serves_commands_over_http_and_stops_cleanly_on_sigterm() {
    let _one_system_at_a_time = crate::PROCESSES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let options = ClusterOptions {
        services: vec![],
        ..ClusterOptions::new(dir.path())
    };
    let cluster = Cluster::start(options).await.unwrap();
    let listen = free_address();
    let process = ShopProcess::spawn(
        &["command-service", "inventory"],
        &[
            ("SHOP_LISTEN", listen.to_string()),
            ("SHOP_STORE_URL", cluster.store_url()),
            (
                "SHOP_DATA",
                dir.path().join("inventory").display().to_string(),
            ),
        ],
        &dir.path().join("inventory.log"),
    );
    let http = reqwest::Client::new();
    let base = format!("http://{listen}");
    eventually("the service is ready", Duration::from_secs(60), || async {
        matches!(http.get(format!("{base}/ready")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
    let answer = http
        .post(format!("{base}/commands/restock"))
        .header("x-actor", "admin")
        .json(&json!({"sku": "PROC", "quantity": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["token"], "stock-PROC@0");
    let status = process.terminate().await;
    assert!(status.success(), "{status:?}");
    cluster.shutdown().await.unwrap();
}

#[test]
fn shop_command_service_with_an_unknown_name_fails_naming_the_services() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .args(["command-service", "billing"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("catalog") && stderr.contains("shipping"),
        "{stderr}"
    );
}

#[test]
fn the_help_of_command_service_and_saga_names_every_flag_and_its_variable() {
    let help = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_shop"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let service = help(&["command-service", "--help"]);
    for flag in [
        "--listen",
        "--store-url",
        "--data",
        "--snapshot-every",
        "SHOP_STORE_URL",
        "SHOP_ORDERS_URL",
    ] {
        assert!(service.contains(flag), "{flag} missing from:\n{service}");
    }
    let saga = help(&["saga", "--help"]);
    for flag in [
        "--amqp",
        "--namespace",
        "SHOP_ORDERS_URL",
        "SHOP_PAYMENTS_URL",
        "SHOP_INVENTORY_URL",
        "SHOP_SHIPPING_URL",
        "SHOP_STORE_URL",
    ] {
        assert!(saga.contains(flag), "{flag} missing from:\n{saga}");
    }
}
