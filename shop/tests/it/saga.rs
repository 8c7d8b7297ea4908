//! `shop saga` as a real process against the store, the command services
//! (in this process, on loopback ports) and the real RabbitMQ: killed with
//! SIGKILL in the middle of a run, and with a service it calls down.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;

use command_services::cluster::{Cluster, ClusterOptions};
use command_services::saga::fulfillment::Fulfillment;
use command_services::ServiceName;
use domain::order::{Order, Status};
use domain::payment::Payment;
use domain::saga::PaymentStatus;
use domain::stock::Stock;
use event_store::client::StoreClient;
use futures::future::join_all;
use futures::FutureExt;
use messaging::{ConsumerName, ConsumerSpec, SharedTransport};
use serde_json::{json, Value};

use crate::command_side::{eventually, free_address, read, test_transport, ShopProcess, DEADLINE};

/// The store and the services in this process, relaying to a test namespace.
struct Shop {
    cluster: Cluster,
    transport: SharedTransport,
    store: StoreClient,
    http: reqwest::Client,
}

impl Shop {
    async fn start(dir: &Path) -> Self {
        let cluster = Cluster::start(ClusterOptions::new(dir)).await.unwrap();
        let transport = test_transport().await;
        // The saga's queue exists before anything is relayed, and a sink takes
        // what the saga does not consume so that every event is routable.
        transport
            .declare_consumer(&command_services::saga::consumer_spec(256).unwrap())
            .await
            .unwrap();
        let sink = ConsumerSpec::new(ConsumerName::parse("sink").unwrap(), ["#"]).unwrap();
        transport.declare_consumer(&sink).await.unwrap();
        let mut cluster = cluster;
        cluster.start_relay(Arc::clone(&transport)).unwrap();
        let store = StoreClient::new(&cluster.store_url()).unwrap();
        Self {
            cluster,
            transport,
            store,
            http: reqwest::Client::new(),
        }
    }

    /// `shop saga` pointed at this shop.
    fn spawn_saga(&self, log: &Path) -> ShopProcess {
        let url = |name| self.cluster.url(name).unwrap();
        ShopProcess::spawn(
            &["saga"],
            &[
                ("SHOP_LISTEN", free_address().to_string()),
                ("SHOP_STORE_URL", self.cluster.store_url()),
                ("SHOP_AMQP", crate::command_side::AMQP_URI.to_owned()),
                ("SHOP_NAMESPACE", self.transport.namespace().to_string()),
                ("SHOP_ORDERS_URL", url(ServiceName::Orders)),
                ("SHOP_PAYMENTS_URL", url(ServiceName::Payments)),
                ("SHOP_INVENTORY_URL", url(ServiceName::Inventory)),
                ("SHOP_SHIPPING_URL", url(ServiceName::Shipping)),
            ],
            log,
        )
    }

    async fn command(&self, service: ServiceName, name: &str, actor: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!(
                "{}/commands/{name}",
                self.cluster.url(service).unwrap()
            ))
            .header("x-actor", actor)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{name} {status}: {body}");
        body
    }

    async fn setup_products(&self, products: &[(&str, i64, i64)]) {
        for (sku, price, stock) in products {
            self.command(
                ServiceName::Catalog,
                "add-product",
                "admin",
                json!({"sku": sku, "name": sku, "description": "", "price_cents": price, "category": "test"}),
            )
            .await;
            self.command(
                ServiceName::Inventory,
                "restock",
                "admin",
                json!({"sku": sku, "quantity": stock}),
            )
            .await;
        }
    }

    async fn register(&self, n: usize) -> Vec<String> {
        join_all((0..n).map(|i| async move {
            let id = uuid::Uuid::new_v4().to_string();
            self.command(
                ServiceName::Customers,
                "register-customer",
                "admin",
                json!({"customer_id": id, "email": format!("c{i}-{id}@example.com"), "name": "C"}),
            )
            .await;
            id
        }))
        .await
    }

    async fn place(&self, customer: &str, lines: &[(&str, u32)], token: &str) -> String {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}))
            .collect();
        let body = self
            .command(
                ServiceName::Orders,
                "place-order",
                customer,
                json!({"customer_id": customer, "lines": lines, "payment_token": token, "shipping_address": "1 Saga Road"}),
            )
            .await;
        body["id"].as_str().unwrap().to_owned()
    }

    async fn status(&self, order: &str) -> Option<Status> {
        read::<Order>(&self.store, &format!("order-{order}"))
            .await
            .0
            .status()
    }

    async fn statuses(&self, orders: &[String]) -> Vec<Option<Status>> {
        join_all(orders.iter().map(|order| self.status(order))).await
    }

    async fn wait_all(&self, what: &str, orders: &[String], done: impl Fn(Option<Status>) -> bool) {
        eventually(what, DEADLINE, || async {
            self.statuses(orders).await.into_iter().all(&done)
        })
        .await;
    }
}

/// Runs `body` with a fresh shop, deleting the broker namespace afterwards
/// even when the body fails.
async fn with_shop<F, Fut>(body: F)
where
    F: FnOnce(Shop, std::path::PathBuf) -> Fut,
    Fut: Future<Output = Shop>,
{
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::start(dir.path()).await;
    let transport = Arc::clone(&shop.transport);
    let outcome = AssertUnwindSafe(body(shop, dir.path().to_owned()))
        .catch_unwind()
        .await;
    let panic = match outcome {
        Ok(shop) => {
            shop.cluster.shutdown().await.unwrap();
            None
        }
        Err(panic) => {
            eprintln!("logs are in {}", dir.path().display());
            let _ = dir.keep();
            Some(panic)
        }
    };
    transport.delete_namespace().await.unwrap();
    transport.close().await;
    if let Some(panic) = panic {
        std::panic::resume_unwind(panic);
    }
}

/// Counts of each event type in `events`, for one key.
fn counts(events: &[domain::envelope::RecordedEvent]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        *counts.entry(event.event_type.clone()).or_default() += 1;
    }
    counts
}

/// Checks that no command had two effects, that stock and money are
/// conserved, and that nothing is left reserved or held.
async fn check_conservation(shop: &Shop, orders: &[String], skus: &[&str]) {
    let mut delivered_units: BTreeMap<String, u64> = BTreeMap::new();
    let (mut authorized, mut captured, mut voided, mut refunded, mut held) = (0u64, 0, 0, 0, 0);
    for order_id in orders {
        let (order, order_events) = read::<Order>(&shop.store, &format!("order-{order_id}")).await;
        for (event_type, count) in counts(&order_events) {
            assert_eq!(count, 1, "order {order_id} has {count} {event_type}");
        }
        let order = order.order.unwrap();
        let (payment, payment_events) =
            read::<Payment>(&shop.store, &format!("payment-{order_id}")).await;
        for (event_type, count) in counts(&payment_events) {
            if event_type != "PaymentAttemptFailed" {
                assert_eq!(count, 1, "payment {order_id} has {count} {event_type}");
            }
        }
        for (index, event) in payment_events.iter().enumerate() {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            let amount = data["amount_cents"].as_u64().unwrap_or(0);
            match event.event_type.as_str() {
                "PaymentAuthorized" => authorized += amount,
                "PaymentCaptured" => captured += amount,
                "PaymentVoided" => voided += amount,
                "PaymentRefunded" => refunded += amount,
                _ => {}
            }
            if let Some(attempt) = data["attempt"].as_u64() {
                assert_eq!(
                    attempt,
                    index as u64 + 1,
                    "attempts of {order_id} are in sequence"
                );
            }
        }
        if payment.status == domain::payment::Status::Authorized {
            held += payment.authorized.cents();
        }
        let (_, shipment_events) =
            read::<domain::shipment::Shipment>(&shop.store, &format!("shipment-{order_id}")).await;
        for (event_type, count) in counts(&shipment_events) {
            assert_eq!(count, 1, "shipment {order_id} has {count} {event_type}");
        }
        match order.status {
            Status::Delivered => {
                assert_eq!(payment.status, domain::payment::Status::Captured);
                assert_eq!(
                    payment.captured, order.total,
                    "order {order_id} paid its total"
                );
                for line in &order.lines {
                    *delivered_units.entry(line.sku.to_string()).or_default() +=
                        u64::from(line.quantity.get());
                }
            }
            Status::Cancelled => assert!(
                matches!(
                    payment.status,
                    domain::payment::Status::Pending
                        | domain::payment::Status::Declined
                        | domain::payment::Status::Voided
                        | domain::payment::Status::Refunded
                ),
                "cancelled order {order_id} left its payment {:?}",
                payment.status
            ),
            other => panic!("order {order_id} is not final: {other:?}"),
        }
    }
    // authorized = captured (kept) + voided + refunded + still held.
    assert_eq!(authorized, (captured - refunded) + voided + refunded + held);
    assert_eq!(held, 0, "nothing is left held");
    for sku in skus {
        let (stock, stock_events) = read::<Stock>(&shop.store, &format!("stock-{sku}")).await;
        assert_eq!(
            stock.restocked,
            stock.available + stock.reserved + stock.shipped,
            "{sku}"
        );
        assert_eq!(stock.reserved, 0, "nothing of {sku} is left reserved");
        assert_eq!(
            stock.shipped,
            delivered_units.get(*sku).copied().unwrap_or(0),
            "{sku}"
        );
        let mut per_order: BTreeMap<(String, String), usize> = BTreeMap::new();
        for event in &stock_events {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            if let Some(order) = data["order_id"].as_str() {
                *per_order
                    .entry((order.to_owned(), event.event_type.clone()))
                    .or_default() += 1;
            }
        }
        for ((order, event_type), count) in per_order {
            assert_eq!(count, 1, "{sku}: order {order} has {count} {event_type}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_killed_mid_run_and_restarted_settles_every_order_with_no_double_effect() {
    let _one_system_at_a_time = crate::PROCESSES.lock().await;
    with_shop(|shop, dir| async move {
        let skus = ["KA", "KB", "KC"];
        shop.setup_products(&[("KA", 1500, 1000), ("KB", 700, 1000), ("KC", 2600, 25)])
            .await;
        let customers = shop.register(100).await;
        let saga = shop.spawn_saga(&dir.join("saga-1.log"));
        let plan = |i: usize| -> (Vec<(&str, u32)>, &str) {
            let lines = match i % 3 {
                0 => vec![("KA", 1), ("KC", 1)],
                1 => vec![("KB", 2)],
                _ => vec![("KC", 1), ("KB", 1)],
            };
            let token = match i % 10 {
                7 => "tok_chargeDeclined",
                3 => "tok_processingError",
                _ => "tok_visa",
            };
            (lines, token)
        };
        let place = |range: std::ops::Range<usize>| {
            let shop = &shop;
            let customers = &customers;
            join_all(range.map(move |i| async move {
                let (lines, token) = plan(i);
                shop.place(&customers[i], &lines, token).await
            }))
        };
        let mut orders = place(0..50).await;
        // Kill the saga once it is well into the first orders and before it
        // is through them. The statuses are read back to back (a 50 ms
        // pause between reads once let it finish all 50 unseen).
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = shop
                .statuses(&orders)
                .await
                .iter()
                .filter(|status| !matches!(status, Some(Status::Placed)))
                .count();
            if (10..orders.len()).contains(&left) {
                break;
            }
            assert!(
                left < orders.len() && std::time::Instant::now() < deadline,
                "no moment with 10 or more of the first orders past PLACED and some still in it ({left} past it)"
            );
        }
        saga.kill9();
        let at_kill = shop.statuses(&orders).await;
        let in_flight = at_kill
            .iter()
            .filter(|s| **s == Some(Status::Placed))
            .count();
        assert!(in_flight > 0, "the saga is killed with orders in flight");
        orders.extend(place(50..100).await);
        // Customers cancel while the saga is down: some of these are mid
        // reservation or payment, some already confirmed.
        for order in orders.iter().skip(40).step_by(7).take(6) {
            let customer = read::<Order>(&shop.store, &format!("order-{order}"))
                .await
                .0
                .order
                .unwrap()
                .customer_id;
            let answer = shop
                .http
                .post(format!(
                    "{}/commands/cancel-order",
                    shop.cluster.url(ServiceName::Orders).unwrap()
                ))
                .header("x-actor", customer.to_string())
                .json(&json!({"order_id": order}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
        let saga = shop.spawn_saga(&dir.join("saga-2.log"));
        shop.wait_all("every order is confirmed or cancelled", &orders, |status| {
            matches!(status, Some(Status::Confirmed | Status::Cancelled))
        })
        .await;
        let confirmed: Vec<String> = {
            let statuses = shop.statuses(&orders).await;
            orders
                .iter()
                .zip(statuses)
                .filter(|(_, status)| *status == Some(Status::Confirmed))
                .map(|(order, _)| order.clone())
                .collect()
        };
        assert!(!confirmed.is_empty());
        // The saga confirms the order, then creates its shipment.
        eventually("every confirmed order has a shipment", DEADLINE, || async {
            for order in &confirmed {
                let (shipment, _) =
                    read::<domain::shipment::Shipment>(&shop.store, &format!("shipment-{order}"))
                        .await;
                if shipment.shipment.is_none() {
                    return false;
                }
            }
            true
        })
        .await;
        for order in &confirmed {
            shop.command(
                ServiceName::Shipping,
                "dispatch-shipment",
                "admin",
                json!({"order_id": order}),
            )
            .await;
        }
        shop.wait_all("every confirmed order is shipped", &confirmed, |status| {
            status == Some(Status::Shipped)
        })
        .await;
        for order in &confirmed {
            shop.command(
                ServiceName::Shipping,
                "confirm-delivery",
                "admin",
                json!({"order_id": order}),
            )
            .await;
        }
        shop.wait_all("every order is delivered or cancelled", &orders, |status| {
            matches!(status, Some(Status::Delivered | Status::Cancelled))
        })
        .await;
        eventually("every saga is settled", DEADLINE, || async {
            for order in &orders {
                let (state, _) =
                    read::<Fulfillment>(&shop.store, &format!("fulfillment-{order}")).await;
                if !state.saga.is_settled() {
                    return false;
                }
            }
            true
        })
        .await;
        let statuses = shop.statuses(&orders).await;
        let cancelled = statuses
            .iter()
            .filter(|s| **s == Some(Status::Cancelled))
            .count();
        assert!(
            cancelled >= 10,
            "declines, stock-outs and customers cancel some: {cancelled}"
        );
        check_conservation(&shop, &orders, &skus).await;
        let status = saga.terminate().await;
        assert!(status.success(), "{status:?}");
        shop
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payments_service_down_for_a_while_delays_orders_but_loses_none() {
    let _one_system_at_a_time = crate::PROCESSES.lock().await;
    with_shop(|mut shop, dir| async move {
        shop.setup_products(&[("SD", 900, 1000)]).await;
        let customers = shop.register(30).await;
        let saga = shop.spawn_saga(&dir.join("saga.log"));
        shop.cluster
            .stop_service(ServiceName::Payments)
            .await
            .unwrap();
        let orders = join_all(
            customers
                .iter()
                .map(|customer| shop.place(customer, &[("SD", 1)], "tok_visa")),
        )
        .await;
        // The saga reserves everything and then waits on the payments service.
        eventually("every order waits for its payment", DEADLINE, || async {
            for order in &orders {
                let (state, _) =
                    read::<Fulfillment>(&shop.store, &format!("fulfillment-{order}")).await;
                if !matches!(state.saga.payment, PaymentStatus::Requested(_)) {
                    return false;
                }
            }
            true
        })
        .await;
        assert!(shop
            .statuses(&orders)
            .await
            .iter()
            .all(|status| *status == Some(Status::Placed)));
        shop.cluster
            .start_again(ServiceName::Payments)
            .await
            .unwrap();
        shop.wait_all("every order is confirmed", &orders, |status| {
            status == Some(Status::Confirmed)
        })
        .await;
        for order in &orders {
            let (payment, events) = read::<Payment>(&shop.store, &format!("payment-{order}")).await;
            assert_eq!(payment.status, domain::payment::Status::Authorized);
            assert_eq!(events.len(), 1, "one authorization for {order}");
        }
        let (stock, _) = read::<Stock>(&shop.store, "stock-SD").await;
        assert_eq!((stock.available, stock.reserved), (970, 30));
        let status = saga.terminate().await;
        assert!(status.success(), "{status:?}");
        shop
    })
    .await;
}
