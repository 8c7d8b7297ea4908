//! `shop dev`: the whole system in one process, its clean stop, and a restart
//! on the same `--data` that resumes where it stopped.

use serde_json::{json, Value};

use crate::command_side::{eventually, free_address, ShopProcess, DEADLINE};

async fn graphql(http: &reqwest::Client, url: &str, token: Option<&str>, query: &str) -> Value {
    let mut request = http.post(url).json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

async fn admin_token(http: &reqwest::Client, url: &str) -> String {
    let login = graphql(
        http,
        url,
        None,
        r#"mutation { login(email: "admin@shop.local", password: "admin-dev-password") }"#,
    )
    .await;
    login["data"]["login"]
        .as_str()
        .unwrap_or_else(|| panic!("admin login failed: {login}"))
        .to_owned()
}

async fn healthy(http: &reqwest::Client, base: &str) -> bool {
    matches!(http.get(format!("{base}/health")).send().await, Ok(r) if r.status().is_success())
}

/// Starts `shop dev` with the in-process transport on a free port.
fn start(
    data: &std::path::Path,
    listen: std::net::SocketAddr,
    log: &std::path::Path,
) -> ShopProcess {
    ShopProcess::spawn(
        &[
            "dev",
            "--broker",
            "memory",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &listen.to_string(),
        ],
        &[
            ("SHOP_ADMIN_EMAIL", "admin@shop.local".to_owned()),
            ("SHOP_ADMIN_PASSWORD", "admin-dev-password".to_owned()),
            (
                "SHOP_JWT_SECRET",
                "dev-test-secret-dev-test-secret".to_owned(),
            ),
        ],
        log,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_dev_serves_the_whole_system_stops_cleanly_and_resumes_on_the_same_data() {
    let _one_system_at_a_time = crate::PROCESSES.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("dev.log");
    let listen = free_address();
    let base = format!("http://{listen}");
    let url = format!("{base}/graphql");
    let http = reqwest::Client::new();
    let sku = format!("DEV-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]).to_uppercase();

    // First run: a product, stocked, visible through its projector.
    let dev = start(&data, listen, &log);
    eventually("shop dev answers", DEADLINE, || healthy(&http, &base)).await;
    let token = admin_token(&http, &url).await;
    let added = graphql(
        &http,
        &url,
        Some(&token),
        &format!(
            r#"mutation {{
              addProduct(input: {{sku: "{sku}", name: "Dev mug", description: "d", priceCents: 900, category: "kitchen"}}) {{ id token }}
              restock(sku: "{sku}", quantity: 7) {{ id token }}
            }}"#
        ),
    )
    .await;
    assert!(added["errors"].is_null(), "{added}");
    let stocked = |expected: u64| {
        let http = http.clone();
        let url = url.clone();
        let sku = sku.clone();
        move || {
            let http = http.clone();
            let url = url.clone();
            let sku = sku.clone();
            async move {
                let answer = graphql(
                    &http,
                    &url,
                    None,
                    &format!(
                        r#"query {{ product(sku: "{sku}") {{ name stock {{ available }} }} }}"#
                    ),
                )
                .await;
                answer["data"]["product"]["stock"]["available"].as_u64() == Some(expected)
            }
        }
    };
    eventually(
        "the product is visible with its stock",
        DEADLINE,
        stocked(7),
    )
    .await;
    let status = dev.terminate().await;
    assert!(
        status.success(),
        "shop dev did not stop cleanly: {status:?}"
    );
    assert!(
        !healthy(&http, &base).await,
        "the port is still served after the stop"
    );

    // Second run on the same data: the product and its stock are still there,
    // and new commands build on the old state.
    let dev = start(&data, listen, &log);
    eventually("shop dev answers again", DEADLINE, || healthy(&http, &base)).await;
    eventually("the product survived the restart", DEADLINE, stocked(7)).await;
    let token = admin_token(&http, &url).await;
    let restocked = graphql(
        &http,
        &url,
        Some(&token),
        &format!(r#"mutation {{ restock(sku: "{sku}", quantity: 3) {{ id }} }}"#),
    )
    .await;
    assert!(restocked["errors"].is_null(), "{restocked}");
    eventually("the new stock adds to the old", DEADLINE, stocked(10)).await;
    let status = dev.terminate().await;
    assert!(
        status.success(),
        "shop dev did not stop cleanly: {status:?}"
    );
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!log.contains("panicked"), "shop dev panicked:\n{log}");
    assert!(
        log.contains("in-process transport"),
        "shop dev did not say loudly that it runs without a broker:\n{log}"
    );
}
