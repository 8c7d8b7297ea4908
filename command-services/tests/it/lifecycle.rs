//! Every path of the order lifecycle, through HTTP, with the saga running.

use command_services::ServiceName;
use domain::order::{CancellationReason, Order, Status};
use domain::payment::{self, Payment};
use domain::stock::Stock;
use serde_json::json;

use crate::{with_system, TestSystem};

async fn stock(system: &TestSystem, sku: &str) -> domain::stock::State {
    system.state::<Stock>(&format!("stock-{sku}")).await
}

async fn payment(system: &TestSystem, order_id: &str) -> domain::payment::State {
    system
        .state::<Payment>(&format!("payment-{order_id}"))
        .await
}

async fn cancellation_reason(system: &TestSystem, order_id: &str) -> Option<CancellationReason> {
    system
        .state::<Order>(&format!("order-{order_id}"))
        .await
        .order
        .and_then(|order| order.cancellation_reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_paid_with_tok_visa_is_confirmed_shipped_and_delivered() {
    with_system(true, |system| async move {
        let (_, order) = system.stocked_order("MUG", 1200, 5, 2, "tok_visa").await;
        system.wait_for_status(&order, Status::Confirmed).await;
        let held = stock(&system, "MUG").await;
        assert_eq!((held.available, held.reserved), (3, 2));
        assert_eq!(
            payment(&system, &order).await.status,
            payment::Status::Authorized
        );

        let dispatched = system.admin_ships("dispatch-shipment", &order).await;
        assert_eq!(dispatched.status, 200, "{dispatched:?}");
        system.wait_for_status(&order, Status::Shipped).await;
        let delivered = system.admin_ships("confirm-delivery", &order).await;
        assert_eq!(delivered.status, 200, "{delivered:?}");
        system.wait_for_status(&order, Status::Delivered).await;
        system.wait_until_settled(&order).await;

        let left = stock(&system, "MUG").await;
        assert_eq!((left.available, left.reserved, left.shipped), (3, 0, 2));
        let paid = payment(&system, &order).await;
        assert_eq!(paid.status, payment::Status::Captured);
        // 2 × 12.00 = 24.00, below free shipping: 4.99 shipping.
        assert_eq!(paid.captured.cents(), 2400 + 499);
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_with_a_short_line_is_cancelled_out_of_stock_and_its_other_lines_released() {
    with_system(true, |system| async move {
        system.add_product("PEN", 150).await;
        system.add_product("INK", 900).await;
        system.restock("PEN", 10).await;
        system.restock("INK", 1).await;
        let customer = system.register().await;
        let order = system
            .place_order(&customer, &[("PEN", 3), ("INK", 2)], "tok_visa")
            .await
            .id();
        system.wait_for_status(&order, Status::Cancelled).await;
        assert_eq!(
            cancellation_reason(&system, &order).await,
            Some(CancellationReason::OutOfStock)
        );
        system.wait_until_settled(&order).await;
        let pens = stock(&system, "PEN").await;
        assert_eq!((pens.available, pens.reserved), (10, 0));
        let ink = stock(&system, "INK").await;
        assert_eq!((ink.available, ink.reserved), (1, 0));
        // Nothing was ever charged.
        assert_eq!(payment(&system, &order).await.attempts, 0);
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_cancels_the_order_payment_declined_and_releases_its_stock() {
    with_system(true, |system| async move {
        let (_, order) = system
            .stocked_order("HAT", 2500, 4, 1, "tok_chargeDeclined")
            .await;
        system.wait_for_status(&order, Status::Cancelled).await;
        assert_eq!(
            cancellation_reason(&system, &order).await,
            Some(CancellationReason::PaymentDeclined)
        );
        system.wait_until_settled(&order).await;
        let hats = stock(&system, "HAT").await;
        assert_eq!((hats.available, hats.reserved), (4, 0));
        let declined = payment(&system, &order).await;
        assert_eq!(declined.status, payment::Status::Declined);
        assert_eq!(declined.captured.cents(), 0);
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_error_is_retried_until_the_payment_is_authorized() {
    with_system(true, |system| async move {
        let (_, order) = system
            .stocked_order("BAG", 6000, 1, 1, "tok_processingError")
            .await;
        system.wait_for_status(&order, Status::Confirmed).await;
        let paid = payment(&system, &order).await;
        assert_eq!(paid.status, payment::Status::Authorized);
        assert_eq!(paid.attempts, 3, "two transient failures, then approved");
        // 60.00 ships free.
        assert_eq!(paid.authorized.cents(), 6000);
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cancelling_before_dispatch_gets_the_payment_voided_and_the_stock_back() {
    with_system(true, |system| async move {
        let (customer, order) = system.stocked_order("CUP", 800, 3, 3, "tok_visa").await;
        system.wait_for_status(&order, Status::Confirmed).await;
        let cancelled = system
            .call(ServiceName::Orders, "cancel-order")
            .actor(&customer)
            .send(json!({"order_id": order}))
            .await;
        assert_eq!(cancelled.status, 200, "{cancelled:?}");
        system.wait_for_status(&order, Status::Cancelled).await;
        assert_eq!(
            cancellation_reason(&system, &order).await,
            Some(CancellationReason::CustomerRequest)
        );
        system.wait_until_settled(&order).await;
        let cups = stock(&system, "CUP").await;
        assert_eq!((cups.available, cups.reserved, cups.shipped), (3, 0, 0));
        assert_eq!(
            payment(&system, &order).await.status,
            payment::Status::Voided
        );
        let shipment = system
            .state::<domain::shipment::Shipment>(&format!("shipment-{order}"))
            .await;
        assert_eq!(
            shipment.shipment.map(|s| s.status),
            Some(domain::shipment::Status::Cancelled)
        );
        // The cancelled shipment cannot be dispatched any more.
        let dispatch = system.admin_ships("dispatch-shipment", &order).await;
        assert_eq!(
            (dispatch.status, dispatch.code()),
            (409, "shipment_cancelled")
        );
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_cancelling_after_dispatch_is_refused_already_shipped() {
    with_system(true, |system| async move {
        let (customer, order) = system.stocked_order("BOX", 300, 2, 1, "tok_visa").await;
        system.wait_for_status(&order, Status::Confirmed).await;
        system.admin_ships("dispatch-shipment", &order).await.id();
        system.wait_for_status(&order, Status::Shipped).await;
        let refused = system
            .call(ServiceName::Orders, "cancel-order")
            .actor(&customer)
            .send(json!({"order_id": order}))
            .await;
        assert_eq!((refused.status, refused.code()), (409, "already_shipped"));
        assert_eq!(system.order_status(&order).await, Some(Status::Shipped));
        system
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_places_the_carts_lines_as_an_order_and_empties_the_cart() {
    with_system(true, |system| async move {
        system.add_product("TEA", 450).await;
        system.add_product("JAM", 650).await;
        system.restock("TEA", 10).await;
        system.restock("JAM", 10).await;
        let customer = system.register().await;
        for (sku, quantity) in [("TEA", 2), ("JAM", 1), ("TEA", 1)] {
            system
                .call(ServiceName::Carts, "add-to-cart")
                .actor(&customer)
                .send(json!({"customer_id": customer, "sku": sku, "quantity": quantity}))
                .await
                .id();
        }
        let checkout = system
            .call(ServiceName::Carts, "checkout")
            .actor(&customer)
            .key("checkout-1")
            .send(json!({"customer_id": customer, "payment_token": "tok_visa", "shipping_address": "2 Cart Lane"}))
            .await;
        let order = checkout.id();
        system.wait_for_status(&order, Status::Confirmed).await;
        let placed = system.state::<Order>(&format!("order-{order}")).await;
        let lines: Vec<(String, u32)> = placed
            .order
            .unwrap()
            .lines
            .iter()
            .map(|line| (line.sku.to_string(), line.quantity.get()))
            .collect();
        assert_eq!(lines, vec![("JAM".into(), 1), ("TEA".into(), 3)]);
        let cart = system
            .state::<domain::cart::Cart>(&format!("cart-{customer}"))
            .await;
        assert!(cart.lines.is_empty());
        // Retrying the checkout answers the same and places nothing new.
        let again = system
            .call(ServiceName::Carts, "checkout")
            .actor(&customer)
            .key("checkout-1")
            .send(json!({"customer_id": customer, "payment_token": "tok_visa", "shipping_address": "2 Cart Lane"}))
            .await;
        assert_eq!(again.body, checkout.body);
        let empty = system
            .call(ServiceName::Carts, "checkout")
            .actor(&customer)
            .send(json!({"customer_id": customer, "payment_token": "tok_visa", "shipping_address": "2 Cart Lane"}))
            .await;
        assert_eq!((empty.status, empty.code()), (409, "empty_cart"));
        system
    })
    .await;
}
