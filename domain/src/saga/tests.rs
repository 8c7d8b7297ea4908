//! The saga's decisions: driven through the real aggregates in a test
//! [`World`], with delivery and execution interleaved by each test.

use super::world::{customer_id, order_id, qty, sku, World};
use super::*;
use crate::order::CancellationReason::{CustomerRequest, OutOfStock, PaymentDeclined};

fn is_authorize(command: &SagaCommand) -> bool {
    matches!(command.command, TargetCommand::AuthorizePayment { .. })
}

#[test]
fn a_placed_order_asks_to_reserve_every_line_with_keys_derived_from_the_trigger() {
    let mut world = World::with_stock(&[("A", 5), ("B", 5), ("C", 5)]);
    world.place(&[("A", 1), ("B", 2), ("C", 3)], "tok_visa");
    let trigger = world.inbox[0].clone();
    let reaction = react(&world.saga, &trigger);
    assert_eq!(reaction.events.len(), 1);
    assert!(matches!(
        &reaction.events[0],
        Event::FulfillmentStarted { lines, amount_cents, .. }
            if lines.len() == 3 && amount_cents.cents() == 6000
    ));
    let reserves: Vec<_> = reaction
        .commands
        .iter()
        .map(|c| (c.target, c.stream(), c.idempotency_key.clone()))
        .collect();
    let key = |sku: &str| format!("fulfillment:{}:reserve:{sku}", trigger.event_id);
    assert_eq!(
        reserves,
        vec![
            (Target::Inventory, "stock-A".to_owned(), key("A")),
            (Target::Inventory, "stock-B".to_owned(), key("B")),
            (Target::Inventory, "stock-C".to_owned(), key("C")),
        ]
    );
    assert_eq!(
        reaction.commands[1].command,
        TargetCommand::Stock(stock::Command::ReserveStock {
            sku: sku("B"),
            order_id: order_id(),
            quantity: qty(2),
        })
    );
}

#[test]
fn the_happy_path_reserves_authorizes_confirms_ships_and_delivers() {
    let mut world = World::with_stock(&[("A", 5), ("B", 5)]);
    world.place(&[("A", 2), ("B", 1)], "tok_visa");
    world.settle();
    assert_eq!(world.order.status(), Some(order::Status::Confirmed));
    assert_eq!(world.payment.status, payment::Status::Authorized);
    assert_eq!(world.reserved_units(), 3);
    assert!(world.shipment.shipment.is_some());

    world.admin_ships(shipment::Command::Dispatch).unwrap();
    world.settle();
    assert_eq!(world.order.status(), Some(order::Status::Shipped));
    assert_eq!(world.payment.status, payment::Status::Captured);
    assert_eq!(world.payment.captured, world.payment.authorized);
    assert_eq!(world.reserved_units(), 0);
    assert_eq!(world.stock.values().map(|s| s.shipped).sum::<u64>(), 3);

    world
        .admin_ships(shipment::Command::ConfirmDelivery)
        .unwrap();
    world.settle();
    assert_eq!(world.order.status(), Some(order::Status::Delivered));
    assert!(world.saga.is_settled());
    assert!(world.refusals.is_empty(), "{:?}", world.refusals);
    assert_eq!(
        world.saga_types(),
        vec![
            "FulfillmentStarted",
            "ReservationNoted",
            "ReservationNoted",
            "PaymentRequested",
            "PaymentAuthorizationNoted",
            "FulfillmentConfirmed",
            "ShipmentCreationNoted",
            "FulfillmentDispatched",
            "PaymentCaptureNoted",
            "FulfillmentDelivered",
        ]
    );
}

#[test]
fn out_of_stock_on_the_second_of_three_lines_releases_the_others_and_cancels_out_of_stock() {
    let mut world = World::with_stock(&[("A", 5), ("B", 1), ("C", 5)]);
    world.place(&[("A", 1), ("B", 2), ("C", 1)], "tok_visa");
    world.deliver_next(); // OrderPlaced: three reservations asked for
    world.execute_next(); // A reserved
    world.deliver_next();
    world.execute_next(); // B rejected: 2 asked, 1 available
    let before = world.saga_log.len();
    world.deliver_next();
    let trigger = world.delivered.last().unwrap().event_id;
    assert_eq!(
        world.saga_log[before..],
        [
            Event::ReservationRejectionNoted {
                order_id: order_id(),
                trigger,
                sku: sku("B"),
                requested: qty(2),
                available: 1,
            },
            Event::FulfillmentAborted {
                order_id: order_id(),
                trigger,
                reason: OutOfStock,
                cancel_order: true,
                at: world.delivered.last().unwrap().at,
            },
            Event::CompensationRequested {
                order_id: order_id(),
                trigger,
                release: vec![sku("A")],
                void_payment: false,
                refund_payment: false,
                cancel_shipment: false,
            },
        ]
    );
    // C's reservation is still in flight; it is released when it arrives.
    world.settle();
    world.assert_cancelled_cleanly(OutOfStock);
    assert_eq!(world.available_units(), 11);
    assert_eq!(world.payment.attempts(), 0, "payment never asked for");
    assert!(world.sent.iter().all(|c| !is_authorize(c)));
}

#[test]
fn a_declined_payment_releases_every_line_and_cancels_payment_declined() {
    let mut world = World::with_stock(&[("A", 5), ("B", 5)]);
    world.place(&[("A", 2), ("B", 1)], "tok_chargeDeclined");
    world.settle();
    world.assert_cancelled_cleanly(PaymentDeclined);
    assert_eq!(world.payment.status, payment::Status::Declined);
    assert_eq!(world.available_units(), 10);
    assert!(world.refusals.is_empty(), "{:?}", world.refusals);
}

#[test]
fn a_transient_payment_error_is_retried_until_the_gateway_approves() {
    let mut world = World::with_stock(&[("A", 5)]);
    world.place(&[("A", 1)], "tok_processingError");
    world.settle();
    assert_eq!(world.order.status(), Some(order::Status::Confirmed));
    assert_eq!(world.payment.attempts(), 3);
    let attempts: Vec<u32> = world
        .saga_log
        .iter()
        .filter_map(|event| match event {
            Event::PaymentRequested { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    let keys: Vec<&str> = world
        .sent
        .iter()
        .filter(|c| is_authorize(c))
        .map(|c| c.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys[0] != keys[1] && keys[1] != keys[2],
        "each retry has its own key"
    );
}

#[test]
fn transient_errors_on_every_attempt_give_up_after_the_last_and_cancel_payment_declined() {
    let mut world = World::with_stock(&[("A", 5)]);
    world.place(&[("A", 1)], "tok_visa");
    world.run_until(|w| w.outbox.iter().any(is_authorize));
    for _ in 0..MAX_PAYMENT_ATTEMPTS {
        assert!(world.authorization_fails_transiently());
        world.run_until(|w| w.outbox.iter().any(is_authorize));
    }
    world.settle();
    assert_eq!(world.payment.attempts(), MAX_PAYMENT_ATTEMPTS);
    assert_eq!(
        world.sent.iter().filter(|c| is_authorize(c)).count(),
        MAX_PAYMENT_ATTEMPTS as usize
    );
    world.assert_cancelled_cleanly(PaymentDeclined);
}

#[test]
fn a_customer_cancel_right_after_placing_converges_with_nothing_reserved() {
    let mut world = World::with_stock(&[("A", 5), ("B", 5)]);
    world.place(&[("A", 1), ("B", 1)], "tok_visa");
    world.deliver_next(); // reservations asked for, not yet executed
    world.customer_cancels().unwrap();
    world.settle();
    world.assert_cancelled_cleanly(CustomerRequest);
    assert_eq!(world.available_units(), 10);
    assert_eq!(world.payment.attempts(), 0);
    assert!(world.refusals.is_empty(), "{:?}", world.refusals);
}

#[test]
fn a_customer_cancel_with_some_lines_reserved_releases_them_and_the_late_ones() {
    let mut world = World::with_stock(&[("A", 5), ("B", 5)]);
    world.place(&[("A", 1), ("B", 1)], "tok_visa");
    world.deliver_next();
    world.execute_next(); // A reserved
    world.deliver_next(); // ... and noted
    world.customer_cancels().unwrap();
    world.settle();
    world.assert_cancelled_cleanly(CustomerRequest);
    assert_eq!(world.available_units(), 10);
}

#[test]
fn a_customer_cancel_while_the_payment_is_in_flight_voids_the_late_authorization() {
    let mut world = World::with_stock(&[("A", 5), ("B", 5)]);
    world.place(&[("A", 1), ("B", 1)], "tok_visa");
    world.run_until(|w| w.outbox.iter().any(is_authorize));
    assert_eq!(world.reserved_units(), 2);
    world.customer_cancels().unwrap();
    world.settle();
    world.assert_cancelled_cleanly(CustomerRequest);
    assert_eq!(world.payment.status, payment::Status::Voided);
}

#[test]
fn a_customer_cancel_after_authorization_voids_and_undoes_the_confirmation_in_flight() {
    let mut world = World::with_stock(&[("A", 5)]);
    world.place(&[("A", 1)], "tok_visa");
    world.run_until(|w| w.saga.payment == PaymentStatus::Authorized);
    assert_eq!(world.order.status(), Some(order::Status::Placed));
    world.customer_cancels().unwrap();
    world.settle();
    world.assert_cancelled_cleanly(CustomerRequest);
    assert_eq!(world.payment.status, payment::Status::Voided);
    // The confirmation in flight reached a cancelled order and was refused.
    assert!(world
        .refusals
        .iter()
        .any(|(_, code)| *code == "order_cancelled"));
}

#[test]
fn a_customer_cancel_after_confirmation_voids_releases_and_cancels_the_shipment() {
    let mut world = World::with_stock(&[("A", 5), ("B", 5)]);
    world.place(&[("A", 2), ("B", 1)], "tok_visa");
    world.settle();
    assert_eq!(world.order.status(), Some(order::Status::Confirmed));
    world.customer_cancels().unwrap();
    world.settle();
    world.assert_cancelled_cleanly(CustomerRequest);
    assert_eq!(world.payment.status, payment::Status::Voided);
    assert_eq!(
        world.shipment.shipment.as_ref().map(|s| s.status),
        Some(shipment::Status::Cancelled)
    );
    assert_eq!(world.available_units(), 10);
    assert!(world.refusals.is_empty(), "{:?}", world.refusals);
}

#[test]
fn a_customer_cancel_after_dispatch_is_refused_by_the_order_so_nothing_is_compensated() {
    let mut world = World::with_stock(&[("A", 5)]);
    world.place(&[("A", 1)], "tok_visa");
    world.settle();
    world.admin_ships(shipment::Command::Dispatch).unwrap();
    world.settle();
    let saga_before = world.saga.clone();
    assert_eq!(
        world.customer_cancels(),
        Err(order::Error::AlreadyShipped {
            order_id: order_id()
        })
    );
    world.settle();
    assert_eq!(world.saga, saga_before);
    assert_eq!(world.payment.status, payment::Status::Captured);
    assert_eq!(world.order.status(), Some(order::Status::Shipped));
}

#[test]
fn a_customer_cancel_racing_the_dispatch_refunds_once_the_capture_lands() {
    let mut world = World::with_stock(&[("A", 5)]);
    world.place(&[("A", 1)], "tok_visa");
    world.settle();
    world.admin_ships(shipment::Command::Dispatch).unwrap();
    world.deliver_next(); // dispatch noted: capture, commit, mark shipped queued
    world.customer_cancels().unwrap(); // the order is not marked shipped yet
    world.settle();
    assert_eq!(world.order.status(), Some(order::Status::Cancelled));
    assert_eq!(world.payment.status, payment::Status::Refunded);
    assert_eq!(world.charged_or_held(), 0);
    assert_eq!(world.reserved_units(), 0);
    assert!(world.saga.is_settled());
}

#[test]
fn every_input_event_delivered_twice_produces_nothing_the_second_time() {
    let mut world = World::with_stock(&[("A", 5), ("B", 5)]);
    world.place(&[("A", 2), ("B", 1)], "tok_processingError");
    loop {
        while world.execute_next() {}
        let Some(trigger) = world.inbox.pop_front() else {
            break;
        };
        world.deliver(trigger.clone());
        let state = world.saga.clone();
        assert_eq!(react(&state, &trigger), Reaction::default());
    }
    assert_eq!(world.order.status(), Some(order::Status::Confirmed));
    // And once more, every input from the start.
    let settled = world.saga.clone();
    for trigger in world.delivered.clone() {
        assert_eq!(react(&settled, &trigger), Reaction::default());
    }
}

#[test]
fn the_saga_state_is_rebuilt_from_its_own_events_and_so_are_its_commands() {
    let mut world = World::with_stock(&[("A", 5), ("B", 1)]);
    world.place(&[("A", 1), ("B", 2)], "tok_visa");
    world.settle();
    let rebuilt = world.saga_log.iter().fold(State::default(), evolve);
    assert_eq!(rebuilt, world.saga);
    let derived: Vec<SagaCommand> = world.saga_log.iter().flat_map(commands_for).collect();
    assert_eq!(derived, world.sent);
}

#[test]
fn events_of_other_orders_and_unrelated_events_are_ignored() {
    let mut world = World::with_stock(&[("A", 5)]);
    world.place(&[("A", 1)], "tok_visa");
    world.deliver_next();
    let other = OrderId::from_uuid(Uuid::from_u128(999));
    let foreign = Trigger {
        event_id: Uuid::from_u128(1),
        at: super::world::time(9),
        event: DomainEvent::Stock(stock::Event::StockReserved {
            sku: sku("A"),
            order_id: other,
            quantity: qty(1),
        }),
    };
    assert_eq!(react(&world.saga, &foreign), Reaction::default());
    let unrelated = Trigger {
        event_id: Uuid::from_u128(2),
        at: super::world::time(9),
        event: DomainEvent::Stock(stock::Event::StockRestocked {
            sku: sku("A"),
            quantity: qty(1),
        }),
    };
    assert_eq!(react(&world.saga, &unrelated), Reaction::default());
    assert_eq!(order_id_of(&foreign.event), Some(other));
    assert_eq!(order_id_of(&unrelated.event), None);
    assert_eq!(
        world.saga.order.as_ref().map(|o| o.customer_id),
        Some(customer_id())
    );
}

#[test]
fn every_outside_trigger_is_an_event_type_of_the_catalogue() {
    let known: Vec<(&str, &str)> = crate::catalogue::event_types()
        .into_iter()
        .map(|info| (info.category, info.event_type))
        .collect();
    for trigger in OUTSIDE_TRIGGERS {
        assert!(
            known.contains(trigger),
            "{trigger:?} is not in the catalogue"
        );
    }
}

#[test]
fn events_before_the_order_was_placed_are_ignored() {
    let trigger = Trigger {
        event_id: Uuid::from_u128(1),
        at: super::world::time(1),
        event: DomainEvent::Payment(payment::Event::PaymentAttemptFailed {
            order_id: order_id(),
            attempt: 1,
        }),
    };
    assert_eq!(react(&State::default(), &trigger), Reaction::default());
}

mod properties {
    //! Whatever the interleaving of deliveries and commands, duplicates and
    //! a customer cancel at any point, the order ends delivered and paid,
    //! or cancelled with nothing reserved, held or charged.

    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Deliver,
        Execute(usize),
        ExecuteAndReact(usize),
        Redeliver(usize),
        CustomerCancels,
        Dispatch,
        ConfirmDelivery,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => Just(Step::Deliver),
            4 => (0usize..8).prop_map(Step::Execute),
            3 => (0usize..8).prop_map(Step::ExecuteAndReact),
            1 => (0usize..64).prop_map(Step::Redeliver),
            1 => Just(Step::CustomerCancels),
            1 => Just(Step::Dispatch),
            1 => Just(Step::ConfirmDelivery),
        ]
    }

    fn token() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("tok_visa"),
            Just("tok_chargeDeclined"),
            Just("tok_processingError"),
        ]
    }

    fn check_stock(world: &World) -> Result<(), TestCaseError> {
        for state in world.stock.values() {
            prop_assert_eq!(
                state.restocked,
                state.available + state.reserved + state.shipped
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_interleaving_converges_to_delivered_or_cleanly_cancelled(
            stock in proptest::collection::vec(1i64..4, 3),
            quantities in proptest::collection::vec(1i64..3, 1..=3),
            token in token(),
            steps in proptest::collection::vec(step(), 0..60),
            finish_delivery in any::<bool>(),
            answers_only in any::<bool>(),
        ) {
            let names = ["A", "B", "C"];
            let stock: Vec<(&str, i64)> = names.iter().copied().zip(stock).collect();
            let lines: Vec<(&str, i64)> = names.iter().copied().zip(quantities).collect();
            let mut world = World::with_stock(&stock);
            // As the saga service runs: its commands' events come back as
            // answers, the broker brings only the outside triggers.
            world.answers_only = answers_only;
            world.place(&lines, token);
            for step in steps {
                match step {
                    Step::Deliver => { world.deliver_next(); }
                    Step::Execute(choice) => { world.execute_any(choice); }
                    Step::ExecuteAndReact(choice) => {
                        // The saga service handles a command's own events as
                        // soon as the command answers, before the events
                        // recorded earlier reach it from the broker; they
                        // still arrive through the inbox later, in order.
                        let before = world.inbox.len();
                        world.execute_any(choice);
                        let answered: Vec<Trigger> = world.inbox.iter().skip(before).cloned().collect();
                        for trigger in answered {
                            world.deliver(trigger);
                        }
                    }
                    Step::Redeliver(index) => {
                        if !world.delivered.is_empty() {
                            let trigger = world.delivered[index % world.delivered.len()].clone();
                            let before = world.saga.clone();
                            world.deliver(trigger);
                            prop_assert_eq!(&world.saga, &before);
                        }
                    }
                    Step::CustomerCancels => { let _ = world.customer_cancels(); }
                    Step::Dispatch => { let _ = world.admin_ships(shipment::Command::Dispatch); }
                    Step::ConfirmDelivery => {
                        let _ = world.admin_ships(shipment::Command::ConfirmDelivery);
                    }
                }
                check_stock(&world)?;
            }
            world.settle();
            if finish_delivery {
                let _ = world.admin_ships(shipment::Command::Dispatch);
                world.settle();
                let _ = world.admin_ships(shipment::Command::ConfirmDelivery);
                world.settle();
            }
            check_stock(&world)?;
            let total = world.order.order.as_ref().map(|o| o.total.cents()).unwrap_or(0);
            prop_assert!(world.charged_or_held() <= total);
            prop_assert!(world.payment.captured <= world.payment.authorized);
            match world.order.status() {
                Some(order::Status::Cancelled) => {
                    prop_assert_eq!(world.reserved_units(), 0);
                    prop_assert_eq!(world.charged_or_held(), 0);
                    prop_assert!(world.saga.is_settled(), "{:?}", world.saga);
                    prop_assert!(matches!(world.saga.phase, Phase::Aborted(_)));
                }
                Some(order::Status::Delivered) => {
                    prop_assert_eq!(world.payment.status, payment::Status::Captured);
                    prop_assert_eq!(world.payment.captured.cents(), total);
                    prop_assert_eq!(world.reserved_units(), 0);
                    prop_assert!(world.saga.is_settled());
                }
                Some(order::Status::Confirmed) => {
                    // Only when the admin never dispatched: held, reserved, waiting.
                    prop_assert!(!finish_delivery);
                    prop_assert_eq!(world.payment.status, payment::Status::Authorized);
                    prop_assert_eq!(world.saga.phase, Phase::Confirmed);
                }
                Some(order::Status::Shipped) => {
                    prop_assert!(!finish_delivery);
                    prop_assert_eq!(world.payment.status, payment::Status::Captured);
                    prop_assert_eq!(world.reserved_units(), 0);
                }
                other => prop_assert!(false, "an order ends confirmed or later, got {:?}", other),
            }
            let rebuilt = world.saga_log.iter().fold(State::default(), evolve);
            prop_assert_eq!(&rebuilt, &world.saga);
        }
    }
}
