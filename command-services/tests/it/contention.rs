//! Many orders racing for little stock.

use domain::order::{CancellationReason, Order, Status};
use domain::stock::Stock;
use futures::future::join_all;

use crate::{eventually, with_system};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_orders_for_ten_units_confirm_exactly_ten_and_cancel_twenty_out_of_stock() {
    with_system(true, |system| async move {
        system.add_product("RARE", 1000).await;
        system.restock("RARE", 10).await;
        let customers = join_all((0..30).map(|_| system.register())).await;
        let answers = join_all(
            customers
                .iter()
                .map(|customer| system.place_order(customer, &[("RARE", 1)], "tok_visa")),
        )
        .await;
        let orders: Vec<String> = answers.into_iter().map(|answer| answer.id()).collect();
        eventually("every order is confirmed or cancelled", || async {
            for order in &orders {
                match system.order_status(order).await {
                    Some(Status::Confirmed | Status::Cancelled) => {}
                    _ => return false,
                }
            }
            true
        })
        .await;
        let mut confirmed = 0;
        let mut out_of_stock = 0;
        for order in &orders {
            let state = system.state::<Order>(&format!("order-{order}")).await;
            let order = state.order.unwrap();
            match (order.status, order.cancellation_reason) {
                (Status::Confirmed, None) => confirmed += 1,
                (Status::Cancelled, Some(CancellationReason::OutOfStock)) => out_of_stock += 1,
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        assert_eq!((confirmed, out_of_stock), (10, 20));
        let stock = system.state::<Stock>("stock-RARE").await;
        assert_eq!((stock.available, stock.reserved, stock.shipped), (0, 10, 0));
        assert_eq!(stock.reservations.len(), 10);
        system
    })
    .await;
}
