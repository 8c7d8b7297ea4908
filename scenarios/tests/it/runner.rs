//! The runner against the fake gateway: sign-in, steps, waits, blocks,
//! load, `shop` steps, and the failure messages.

use std::path::{Path, PathBuf};

use scenarios::actors::AdminCredentials;
use scenarios::{
    parse_str, RunOptions, ScenarioFailure, ScenarioReport, ScenarioRunner, StepError,
};

use crate::fake_gateway::{FakeGateway, ADMIN_EMAIL, ADMIN_PASSWORD};

fn options() -> RunOptions {
    RunOptions {
        admin: AdminCredentials {
            email: ADMIN_EMAIL.to_owned(),
            password: ADMIN_PASSWORD.to_owned(),
        },
        quiet: true,
        ..RunOptions::default()
    }
}

async fn run_with(gateway: &FakeGateway, options: RunOptions, toml: &str) -> ScenarioReport {
    let scenario = parse_str(toml, Path::new("inline.toml")).unwrap();
    ScenarioRunner::new(&gateway.url, options)
        .unwrap()
        .run(&scenario)
        .await
}

async fn run(gateway: &FakeGateway, toml: &str) -> ScenarioReport {
    run_with(gateway, options(), toml).await
}

fn failure(report: &ScenarioReport) -> &scenarios::Failure {
    match &report.failure {
        Some(ScenarioFailure::Step(failure)) => failure,
        other => panic!("expected a step failure, got {other:?}"),
    }
}

const RESTOCK: &str = r#"
[vars]
sku = "MUG-${run_id}"

[[step]]
name = "admin restocks"
as = "admin"
graphql = 'mutation { restock(sku: "${sku}", quantity: 5) { id token } }'
expect = [{ path = "restock.id", equals = "${sku}" }]
"#;

#[tokio::test]
async fn a_scenario_passes_and_each_customer_is_registered_once_and_acts_with_their_token() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        &[
            RESTOCK,
            r#"
[[step]]
name = "alice looks at herself"
as = "alice"
graphql = "query { me { email } }"
expect = [{ path = "me.email", contains = "alice-" }]
capture = { email = "me.email" }

[[step]]
name = "alice again, same account"
as = "alice"
graphql = "query { me { email } }"
expect = [{ path = "me.email", equals = "${email}" }]
"#,
        ]
        .concat(),
    )
    .await;
    assert!(report.passed(), "{:?}", report.failure);
    assert_eq!(report.steps.len(), 3);
    assert!(report.steps.iter().all(|s| s.passed));
    assert_eq!(gateway.registrations(), 1);
    assert_eq!(report.run_id.len(), 8);
}

#[tokio::test]
async fn a_failed_expectation_names_the_file_the_step_the_field_what_was_expected_and_what_was_got()
{
    let gateway = FakeGateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stock.toml");
    std::fs::write(
        &file,
        format!(
            r#"{RESTOCK}
[[step]]
name = "there are 99 mugs"
as = "admin"
graphql = 'query {{ inventory(sku: "${{sku}}") {{ available }} }}'
expect = [{{ path = "inventory.available", gte = 1 }}, {{ path = "inventory.available", equals = 99 }}]

[[step]]
name = "never reached"
as = "admin"
graphql = "query {{ me {{ email }} }}"
"#
        ),
    )
    .unwrap();
    let summary = scenarios::run_files(std::slice::from_ref(&file), &gateway.url, options())
        .await
        .unwrap();
    assert!(!summary.passed());
    let report = &summary.scenarios[0];
    let failure = failure(report);
    assert_eq!(
        failure.to_string(),
        format!(
            "{}: step 2 \"there are 99 mugs\": inventory.available: expected equals 99, got 5",
            file.display()
        )
    );
    let expectation = failure.expectation().unwrap();
    assert_eq!(expectation.field, "inventory.available");
    assert_eq!(expectation.expected, "equals 99");
    assert_eq!(expectation.got, "5");
    assert_eq!(report.steps.len(), 2, "the run stops at the failed step");
    assert!(summary.to_string().contains("1 failed"), "{summary}");
}

const ORDER: &str = r#"
[[step]]
name = "bob orders a mug"
as = "bob"
graphql = 'mutation { placeOrder(input: {lines: [{sku: "${sku}", quantity: 1}], paymentToken: "tok_visa", shippingAddress: "1 Road"}) { id token } }'
capture = { order_id = "placeOrder.id" }
"#;

#[tokio::test]
async fn a_wait_polls_until_the_order_is_confirmed_through_not_found_and_placed() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        &[
            RESTOCK,
            ORDER,
            r#"
[[step]]
name = "the order is confirmed"
as = "bob"
wait = 'query { order(id: "${order_id}") { status } }'
every = "1ms"
expect = [{ path = "order.status", equals = "CONFIRMED" }]
capture = { status = "order.status" }

[[step]]
name = "the captured status"
expect = [{ path = "status", equals = "CONFIRMED" }, { path = "order_id", exists = true }]
"#,
        ]
        .concat(),
    )
    .await;
    assert!(report.passed(), "{:?}", report.failure);
    assert_eq!(report.steps[2].note.as_deref(), Some("(3 polls)"));
}

#[tokio::test]
async fn a_wait_that_never_holds_fails_at_its_deadline_with_the_last_value() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        &[
            RESTOCK,
            ORDER,
            r#"
[[step]]
name = "the order is delivered"
as = "bob"
wait = 'query { order(id: "${order_id}") { status } }'
within = "300ms"
every = "10ms"
expect = [{ path = "order.status", equals = "DELIVERED" }]
"#,
        ]
        .concat(),
    )
    .await;
    let failure = failure(&report);
    assert_eq!(failure.step, "3 \"the order is delivered\"");
    let StepError::WaitTimedOut { waited, failure } = &failure.error else {
        panic!("expected a timeout, got {:?}", failure.error)
    };
    assert!(waited.as_millis() >= 300, "{waited:?}");
    assert_eq!(failure.got, "\"CONFIRMED\"");
    assert_eq!(failure.expected, "equals \"DELIVERED\"");
}

#[tokio::test]
async fn an_expected_error_code_passes_and_a_success_where_an_error_was_expected_fails() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        &[
            RESTOCK,
            ORDER,
            r#"
[[step]]
name = "cancelling is refused"
as = "bob"
graphql = 'mutation { cancelOrder(orderId: "${order_id}") { id } }'
expect_error = "CONFLICT"
expect = [{ path = "error.message", contains = "shipped" }]

[[step]]
name = "restocking is refused"
as = "admin"
graphql = 'mutation { restock(sku: "${sku}", quantity: 1) { id } }'
expect_error = "FORBIDDEN"
"#,
        ]
        .concat(),
    )
    .await;
    let failure = failure(&report);
    assert_eq!(failure.step, "4 \"restocking is refused\"");
    assert!(
        matches!(&failure.error, StepError::MissingError { expected, .. } if expected == "FORBIDDEN"),
        "{failure}"
    );
    assert!(report.steps[2].passed, "the CONFLICT step passed");
}

#[tokio::test]
async fn an_unexpected_graphql_error_fails_the_step_with_its_code() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        &[
            RESTOCK,
            r#"
[[step]]
name = "a customer restocks"
as = "carol"
graphql = 'mutation { restock(sku: "${sku}", quantity: 1) { id } }'
"#,
        ]
        .concat(),
    )
    .await;
    let failure = failure(&report);
    assert_eq!(
        failure.error.to_string(),
        "GraphQL error: FORBIDDEN: this needs the admin account"
    );
}

#[tokio::test]
async fn thirty_parallel_buyers_of_ten_units_end_with_ten_confirmed_and_twenty_cancelled_orders() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        r#"
[vars]
sku = "LAST-${run_id}"

[[step]]
name = "ten units"
as = "admin"
graphql = 'mutation { restock(sku: "${sku}", quantity: 10) { id } }'

[[step]]
name = "thirty buyers"
parallel = 30
collect = ["status"]

  [[step.step]]
  name = "buy"
  as = "buyer-${index}"
  graphql = 'mutation { placeOrder(input: {lines: [{sku: "${sku}", quantity: 1}], paymentToken: "tok_visa", shippingAddress: "x"}) { id } }'
  capture = { order_id = "placeOrder.id" }

  [[step.step]]
  name = "final status"
  as = "buyer-${index}"
  wait = 'query { order(id: "${order_id}") { status } }'
  every = "1ms"
  expect = [{ path = "order.status", one_of = ["CONFIRMED", "CANCELLED"] }]
  capture = { status = "order.status" }

[[step]]
name = "ten won"
expect = [
  { path = "status", count = 30 },
  { path = "status", where = "CONFIRMED", count = 10 },
  { path = "status", where = "CANCELLED", count = 20 },
  { path = "index", exists = false },
]
"#,
    )
    .await;
    assert!(report.passed(), "{:?}", report.failure);
    assert_eq!(gateway.registrations(), 30);
    let block = &report.steps[1];
    assert!(
        block
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("30× at once")),
        "{:?}",
        block.note
    );
}

#[tokio::test]
async fn a_failing_iteration_of_a_parallel_block_is_named_with_its_index_and_the_others_counted() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        r#"
[[step]]
name = "three at once"
parallel = 3
index = "i"

  [[step.step]]
  name = "me"
  as = "p-${i}"
  graphql = "query { me { email } }"
  expect = [{ path = "me.email", contains = "p-1-" }]
"#,
    )
    .await;
    let failure = failure(&report);
    assert_eq!(failure.step, "1 \"three at once\" › [0] › 1 \"me\"");
    let message = failure.error.to_string();
    assert!(
        message.contains("me.email: expected contains \"p-1-\""),
        "{message}"
    );
    assert!(
        message.ends_with("(and 1 other iteration(s) failed)"),
        "{message}"
    );
    assert!(failure.expectation().is_some());
}

#[tokio::test]
async fn a_sequential_loop_shares_variables_and_collects_each_iteration() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        &[
            RESTOCK,
            r#"
[[step]]
name = "three orders"
repeat = 3
collect = ["order_id"]

  [[step.step]]
  name = "order number ${index}"
  as = "bob"
  graphql = 'mutation { placeOrder(input: {lines: [{sku: "${sku}", quantity: 1}], paymentToken: "tok_visa", shippingAddress: "1 Road"}) { id } }'
  capture = { order_id = "placeOrder.id", last = "placeOrder.id" }

[[step]]
name = "three ids, the last one still set"
expect = [{ path = "order_id", count = 3 }, { path = "order_id", contains = "${last}" }]
"#,
        ]
        .concat(),
    )
    .await;
    assert!(report.passed(), "{:?}", report.failure);
    assert_eq!(gateway.registrations(), 1);
}

#[tokio::test]
async fn a_load_step_reports_achieved_rate_and_latency_percentiles() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        r#"
[vars]
sku = "LOAD-${run_id}"

[[step]]
as = "admin"
graphql = 'mutation { restock(sku: "${sku}", quantity: 1000) { id } }'

[[step]]
name = "50 orders/s"
as = "shopper-${index}"
load = { rate = 50, duration = "400ms", customers = 4, poll = "1ms", order = 'mutation O($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }', order_variables = { input = { lines = [{ sku = "${sku}", quantity = 1 }], paymentToken = "tok_visa", shippingAddress = "n ${n}" } }, order_id = "placeOrder.id" }
expect = [
  { path = "orders", equals = 20 },
  { path = "confirmed", equals = 20 },
  { path = "failed", equals = 0 },
  { path = "achieved_rate", gte = 25 },
  { path = "p99_ms", gte = 0 },
]
capture = { p50 = "p50_ms" }
"#,
    )
    .await;
    assert!(report.passed(), "{:?}", report.failure);
    assert_eq!(gateway.registrations(), 4);
    let load = &report.loads[0];
    assert_eq!(load.placed, 20);
    assert!(load.p50.is_some() && load.p50 <= load.p99 && load.p99 <= load.max);
    assert!(
        report.steps[1]
            .note
            .as_deref()
            .is_some_and(|n| n.contains("20 confirmed") && n.contains("p99")),
        "{:?}",
        report.steps[1].note
    );
}

#[tokio::test]
async fn a_shop_step_runs_the_configured_program_with_interpolated_arguments() {
    let gateway = FakeGateway::start().await;
    let options = RunOptions {
        shop_program: Some(PathBuf::from("echo")),
        ..options()
    };
    let report = run_with(
        &gateway,
        options.clone(),
        r#"
[[step]]
name = "digests"
shop = ["digest", "--all", "--target", "${target}"]
capture = { digests = "stdout" }

[[step]]
expect = [{ path = "digests", contains = "digest --all --target http://127.0.0.1:" }]
"#,
    )
    .await;
    assert!(report.passed(), "{:?}", report.failure);

    let failing = RunOptions {
        shop_program: Some(PathBuf::from("false")),
        ..options
    };
    let report = run_with(
        &gateway,
        failing,
        "[[step]]\nshop = [\"replay\", \"--all\"]\n",
    )
    .await;
    let message = failure(&report).error.to_string();
    assert!(
        message.starts_with("`shop replay --all` exit status: 1"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unknown_variable_fails_the_step_that_uses_it() {
    let gateway = FakeGateway::start().await;
    let report = run(
        &gateway,
        "[[step]]\nname = \"typo\"\nas = \"admin\"\ngraphql = 'query { inventory(sku: \"${skew}\") { available } }'\n",
    )
    .await;
    let message = failure(&report).to_string();
    assert!(
        message.contains("step 1 \"typo\": unknown variable ${skew}"),
        "{message}"
    );
}

#[tokio::test]
async fn wrong_admin_credentials_are_reported_with_the_variables_to_set() {
    let gateway = FakeGateway::start().await;
    let options = RunOptions {
        admin: AdminCredentials {
            email: ADMIN_EMAIL.to_owned(),
            password: "wrong".to_owned(),
        },
        ..options()
    };
    let report = run_with(&gateway, options, RESTOCK).await;
    let message = failure(&report).error.to_string();
    assert!(message.contains("UNAUTHENTICATED"), "{message}");
    assert!(message.contains("SHOP_ADMIN_PASSWORD"), "{message}");
}

#[tokio::test]
async fn run_files_goes_on_after_a_broken_file_and_names_its_line() {
    let gateway = FakeGateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[step]]\ngraphql = \"q\"\nexpct = 1\n").unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, RESTOCK).unwrap();
    let summary = scenarios::run_files(&[broken, good], &gateway.url, options())
        .await
        .unwrap();
    assert_eq!(summary.scenarios.len(), 2);
    assert!(!summary.scenarios[0].passed());
    assert!(summary.scenarios[1].passed());
    let message = summary.scenarios[0].failure.as_ref().unwrap().to_string();
    assert!(message.contains("broken.toml"), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(matches!(
        scenarios::run_files(&[], &gateway.url, options()).await,
        Err(scenarios::RunError::NoFiles)
    ));
}

#[tokio::test]
async fn an_unreachable_target_fails_the_first_step_naming_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let scenario = parse_str(RESTOCK, Path::new("inline.toml")).unwrap();
    let report = ScenarioRunner::new(&url, options())
        .unwrap()
        .run(&scenario)
        .await;
    let message = failure(&report).to_string();
    assert!(message.contains(&format!("{url}/graphql")), "{message}");
}
