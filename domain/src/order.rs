//! The order aggregate: one stream per order, `order-<uuid>`.
//!
//! Lifecycle: `Placed` → `Confirmed` → `Shipped` → `Delivered`, or
//! `Cancelled` with a [`CancellationReason`] any time before it is shipped.
//! Rules: an order has 1 to [`MAX_LINES`] lines with distinct SKUs; a
//! discontinued product cannot be ordered (the command carries the product
//! facts the orders service looked up); the totals are computed here, the
//! shipping cost by [`crate::shipment::shipping_cost`]; an order cannot be
//! cancelled once shipped. Every event carries the time it happened, taken
//! from the command.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decider::impl_decider;
use crate::shipment;
use crate::values::{
    CustomerId, Money, OrderId, PaymentToken, Price, Quantity, ShippingAddress, Sku,
};

/// The stream category of orders.
pub const STREAM_CATEGORY: &str = "order";

/// The most lines an order has.
pub const MAX_LINES: usize = 100;

/// The stream of one order: `order-<uuid>`.
pub fn stream_name(order_id: &OrderId) -> String {
    format!("{STREAM_CATEGORY}-{order_id}")
}

/// The order aggregate, as a [`crate::decider::Decider`].
#[derive(Clone, Copy, Debug)]
pub struct Order;
impl_decider!(Order, Order);

/// Why an order was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationReason {
    /// A line could not be reserved.
    OutOfStock,
    /// The payment was declined (or kept failing).
    PaymentDeclined,
    /// The customer (or an admin on their behalf) cancelled it.
    CustomerRequest,
}

impl CancellationReason {
    /// The contract's name: `OUT_OF_STOCK`, `PAYMENT_DECLINED`, `CUSTOMER_REQUEST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::PaymentDeclined => "PAYMENT_DECLINED",
            Self::CustomerRequest => "CUSTOMER_REQUEST",
        }
    }
}

/// Where an order is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Placed, being fulfilled.
    Placed,
    /// Stock reserved and payment authorized.
    Confirmed,
    /// Handed to the carrier.
    Shipped,
    /// Delivered to the customer.
    Delivered,
    /// Cancelled (see the reason).
    Cancelled,
}

impl Status {
    /// The contract's name: `PLACED`, `CONFIRMED`, `SHIPPED`, `DELIVERED`, `CANCELLED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "PLACED",
            Self::Confirmed => "CONFIRMED",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// A line as asked for, with the product facts the service looked up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceLine {
    /// The product.
    pub sku: Sku,
    /// How many units.
    pub quantity: Quantity,
    /// The product's current unit price.
    pub unit_price: Price,
    /// Whether the product is discontinued.
    pub discontinued: bool,
}

/// A line as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub sku: Sku,
    /// How many units.
    pub quantity: Quantity,
    /// The unit price the customer pays.
    pub unit_price_cents: Price,
}

impl OrderLine {
    /// Quantity times unit price.
    pub fn line_total(&self) -> Money {
        self.unit_price_cents
            .money()
            .saturating_mul(u64::from(self.quantity.get()))
    }
}

/// What can be asked of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Places a new order.
    Place {
        /// The new order's id.
        order_id: OrderId,
        /// Who orders.
        customer_id: CustomerId,
        /// What is ordered, with product facts.
        lines: Vec<PlaceLine>,
        /// Where to ship it.
        shipping_address: ShippingAddress,
        /// How it is paid.
        payment_token: PaymentToken,
        /// When it was placed.
        placed_at: DateTime<Utc>,
    },
    /// Confirms it: stock is reserved and payment authorized.
    Confirm {
        /// When.
        at: DateTime<Utc>,
    },
    /// Marks it shipped.
    MarkShipped {
        /// When.
        at: DateTime<Utc>,
    },
    /// Marks it delivered.
    MarkDelivered {
        /// When.
        at: DateTime<Utc>,
    },
    /// Cancels it.
    Cancel {
        /// Why.
        reason: CancellationReason,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What an order records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An order was placed.
    OrderPlaced {
        /// The order.
        order_id: OrderId,
        /// Who ordered.
        customer_id: CustomerId,
        /// What was ordered.
        lines: Vec<OrderLine>,
        /// Sum of the lines.
        subtotal_cents: Money,
        /// Shipping cost, by [`crate::shipment::shipping_cost`].
        shipping_cost_cents: Money,
        /// Subtotal plus shipping.
        total_cents: Money,
        /// Where to ship it.
        shipping_address: ShippingAddress,
        /// How it is paid.
        payment_token: PaymentToken,
        /// When it was placed.
        placed_at: DateTime<Utc>,
    },
    /// Stock is reserved and payment authorized.
    OrderConfirmed {
        /// The order.
        order_id: OrderId,
        /// When.
        at: DateTime<Utc>,
    },
    /// It was handed to the carrier.
    OrderShipped {
        /// The order.
        order_id: OrderId,
        /// When.
        at: DateTime<Utc>,
    },
    /// It was delivered.
    OrderDelivered {
        /// The order.
        order_id: OrderId,
        /// When.
        at: DateTime<Utc>,
    },
    /// It was cancelled.
    OrderCancelled {
        /// The order.
        order_id: OrderId,
        /// Why.
        reason: CancellationReason,
        /// When.
        at: DateTime<Utc>,
    },
}

impl Event {
    /// Every event type of this aggregate.
    pub const TYPES: &'static [&'static str] = &[
        "OrderPlaced",
        "OrderConfirmed",
        "OrderShipped",
        "OrderDelivered",
        "OrderCancelled",
    ];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::OrderPlaced { .. } => "OrderPlaced",
            Self::OrderConfirmed { .. } => "OrderConfirmed",
            Self::OrderShipped { .. } => "OrderShipped",
            Self::OrderDelivered { .. } => "OrderDelivered",
            Self::OrderCancelled { .. } => "OrderCancelled",
        }
    }

    /// The order the event is about.
    pub fn order_id(&self) -> OrderId {
        match self {
            Self::OrderPlaced { order_id, .. }
            | Self::OrderConfirmed { order_id, .. }
            | Self::OrderShipped { order_id, .. }
            | Self::OrderDelivered { order_id, .. }
            | Self::OrderCancelled { order_id, .. } => *order_id,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::OrderPlaced { placed_at: at, .. }
            | Self::OrderConfirmed { at, .. }
            | Self::OrderShipped { at, .. }
            | Self::OrderDelivered { at, .. }
            | Self::OrderCancelled { at, .. } => *at,
        }
    }
}

/// What an order knows; the default is "not placed".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The order, once placed.
    pub order: Option<OrderInfo>,
}

impl State {
    /// The status, once placed.
    pub fn status(&self) -> Option<Status> {
        self.order.as_ref().map(|order| order.status)
    }
}

/// A placed order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInfo {
    /// Its id.
    pub order_id: OrderId,
    /// Who ordered.
    pub customer_id: CustomerId,
    /// What was ordered.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines.
    pub subtotal: Money,
    /// Shipping cost.
    pub shipping_cost: Money,
    /// What the customer pays.
    pub total: Money,
    /// Where to ship it.
    pub shipping_address: ShippingAddress,
    /// How it is paid.
    pub payment_token: PaymentToken,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// Where it is in its lifecycle.
    pub status: Status,
    /// Why it was cancelled, if it was.
    pub cancellation_reason: Option<CancellationReason>,
}

/// Why an order command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No order was placed under this id.
    #[error("no such order")]
    NotPlaced,
    /// An order was already placed under this id.
    #[error("order {order_id} already exists")]
    AlreadyPlaced {
        /// The order.
        order_id: OrderId,
    },
    /// An order needs at least one line.
    #[error("an order needs at least one line")]
    NoLines,
    /// Too many lines.
    #[error("an order has at most {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// Two lines name the same SKU.
    #[error("product {sku} appears on more than one line")]
    DuplicateLine {
        /// The product.
        sku: Sku,
    },
    /// A line names a discontinued product.
    #[error("product {sku} is discontinued")]
    ProductDiscontinued {
        /// The product.
        sku: Sku,
    },
    /// The order is shipped (or delivered) and can no longer be cancelled.
    #[error("order {order_id} is already shipped")]
    AlreadyShipped {
        /// The order.
        order_id: OrderId,
    },
    /// The order is cancelled.
    #[error("order {order_id} is cancelled")]
    Cancelled {
        /// The order.
        order_id: OrderId,
    },
    /// Shipping an order that is not confirmed.
    #[error("order {order_id} is not confirmed")]
    NotConfirmed {
        /// The order.
        order_id: OrderId,
    },
    /// Delivering an order that is not shipped.
    #[error("order {order_id} is not shipped")]
    NotShipped {
        /// The order.
        order_id: OrderId,
    },
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotPlaced => "order_not_found",
            Self::AlreadyPlaced { .. } => "order_exists",
            Self::NoLines => "empty_order",
            Self::TooManyLines { .. } => "too_many_lines",
            Self::DuplicateLine { .. } => "duplicate_line",
            Self::ProductDiscontinued { .. } => "product_discontinued",
            Self::AlreadyShipped { .. } => "already_shipped",
            Self::Cancelled { .. } => "order_cancelled",
            Self::NotConfirmed { .. } => "not_confirmed",
            Self::NotShipped { .. } => "not_shipped",
        }
    }
}

/// Decides what happens for a command.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
    let Command::Place {
        order_id,
        customer_id,
        lines,
        shipping_address,
        payment_token,
        placed_at,
    } = command
    else {
        let order = state.order.as_ref().ok_or(Error::NotPlaced)?;
        return decide_placed(order, command);
    };
    if let Some(existing) = &state.order {
        return Err(Error::AlreadyPlaced {
            order_id: existing.order_id,
        });
    }
    if lines.is_empty() {
        return Err(Error::NoLines);
    }
    if lines.len() > MAX_LINES {
        return Err(Error::TooManyLines { max: MAX_LINES });
    }
    let mut seen = BTreeSet::new();
    for line in &lines {
        if !seen.insert(&line.sku) {
            return Err(Error::DuplicateLine {
                sku: line.sku.clone(),
            });
        }
        if line.discontinued {
            return Err(Error::ProductDiscontinued {
                sku: line.sku.clone(),
            });
        }
    }
    let lines: Vec<OrderLine> = lines
        .into_iter()
        .map(|line| OrderLine {
            sku: line.sku,
            quantity: line.quantity,
            unit_price_cents: line.unit_price,
        })
        .collect();
    let subtotal = lines.iter().fold(Money::ZERO, |sum, line| {
        sum.saturating_add(line.line_total())
    });
    let item_count = lines
        .iter()
        .map(|line| u64::from(line.quantity.get()))
        .sum::<u64>();
    let shipping_cost = shipment::shipping_cost(subtotal, item_count);
    Ok(vec![Event::OrderPlaced {
        order_id,
        customer_id,
        lines,
        subtotal_cents: subtotal,
        shipping_cost_cents: shipping_cost,
        total_cents: subtotal.saturating_add(shipping_cost),
        shipping_address,
        payment_token,
        placed_at,
    }])
}

/// Decides a command for an order that exists.
fn decide_placed(order: &OrderInfo, command: Command) -> Result<Vec<Event>, Error> {
    use Status::*;
    let order_id = order.order_id;
    match (command, order.status) {
        (Command::Place { .. }, _) => Err(Error::AlreadyPlaced { order_id }),
        (Command::Confirm { at }, Placed) => Ok(vec![Event::OrderConfirmed { order_id, at }]),
        (Command::Confirm { .. }, Confirmed | Shipped | Delivered) => Ok(vec![]),
        (Command::MarkShipped { .. }, Placed) => Err(Error::NotConfirmed { order_id }),
        (Command::MarkShipped { at }, Confirmed) => Ok(vec![Event::OrderShipped { order_id, at }]),
        (Command::MarkShipped { .. }, Shipped | Delivered) => Ok(vec![]),
        (Command::MarkDelivered { .. }, Placed | Confirmed) => Err(Error::NotShipped { order_id }),
        (Command::MarkDelivered { at }, Shipped) => {
            Ok(vec![Event::OrderDelivered { order_id, at }])
        }
        (Command::MarkDelivered { .. }, Delivered) => Ok(vec![]),
        (Command::Cancel { reason, at }, Placed | Confirmed) => Ok(vec![Event::OrderCancelled {
            order_id,
            reason,
            at,
        }]),
        (Command::Cancel { .. }, Shipped | Delivered) => Err(Error::AlreadyShipped { order_id }),
        (Command::Cancel { .. }, Cancelled) => Ok(vec![]),
        (
            Command::Confirm { .. } | Command::MarkShipped { .. } | Command::MarkDelivered { .. },
            Cancelled,
        ) => Err(Error::Cancelled { order_id }),
    }
}

/// Applies one event.
pub fn evolve(mut state: State, event: &Event) -> State {
    match event {
        Event::OrderPlaced {
            order_id,
            customer_id,
            lines,
            subtotal_cents,
            shipping_cost_cents,
            total_cents,
            shipping_address,
            payment_token,
            placed_at,
        } => {
            state.order = Some(OrderInfo {
                order_id: *order_id,
                customer_id: *customer_id,
                lines: lines.clone(),
                subtotal: *subtotal_cents,
                shipping_cost: *shipping_cost_cents,
                total: *total_cents,
                shipping_address: shipping_address.clone(),
                payment_token: payment_token.clone(),
                placed_at: *placed_at,
                status: Status::Placed,
                cancellation_reason: None,
            });
        }
        Event::OrderConfirmed { .. } => set_status(&mut state, Status::Confirmed),
        Event::OrderShipped { .. } => set_status(&mut state, Status::Shipped),
        Event::OrderDelivered { .. } => set_status(&mut state, Status::Delivered),
        Event::OrderCancelled { reason, .. } => {
            set_status(&mut state, Status::Cancelled);
            if let Some(order) = state.order.as_mut() {
                order.cancellation_reason = Some(*reason);
            }
        }
    }
    state
}

fn set_status(state: &mut State, status: Status) {
    if let Some(order) = state.order.as_mut() {
        order.status = status;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given::given;
    use crate::decider::Decider;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, minute, 0).unwrap()
    }

    fn order_id() -> OrderId {
        OrderId::from_uuid(Uuid::from_u128(7))
    }

    fn customer_id() -> CustomerId {
        CustomerId::from_uuid(Uuid::from_u128(1))
    }

    fn line(sku: &str, quantity: i64, cents: i64, discontinued: bool) -> PlaceLine {
        PlaceLine {
            sku: Sku::parse(sku).unwrap(),
            quantity: Quantity::parse(quantity).unwrap(),
            unit_price: Price::parse(cents).unwrap(),
            discontinued,
        }
    }

    fn place(lines: Vec<PlaceLine>) -> Command {
        Command::Place {
            order_id: order_id(),
            customer_id: customer_id(),
            lines,
            shipping_address: ShippingAddress::parse("1 Main St").unwrap(),
            payment_token: PaymentToken::parse("tok_visa").unwrap(),
            placed_at: at(0),
        }
    }

    fn placed() -> Event {
        let Ok(mut events) = decide(
            &State::default(),
            place(vec![line("A", 2, 1000, false), line("B", 1, 500, false)]),
        ) else {
            panic!("placing is accepted")
        };
        events.remove(0)
    }

    fn confirmed() -> Event {
        Event::OrderConfirmed {
            order_id: order_id(),
            at: at(1),
        }
    }

    fn shipped() -> Event {
        Event::OrderShipped {
            order_id: order_id(),
            at: at(2),
        }
    }

    fn delivered() -> Event {
        Event::OrderDelivered {
            order_id: order_id(),
            at: at(3),
        }
    }

    fn cancelled(reason: CancellationReason) -> Event {
        Event::OrderCancelled {
            order_id: order_id(),
            reason,
            at: at(4),
        }
    }

    fn cancel(reason: CancellationReason) -> Command {
        Command::Cancel { reason, at: at(4) }
    }

    #[test]
    fn placing_an_order_records_lines_and_totals_with_shipping() {
        given::<Order>(vec![])
            .when(place(vec![
                line("A", 2, 1000, false),
                line("B", 1, 500, false),
            ]))
            .then(vec![Event::OrderPlaced {
                order_id: order_id(),
                customer_id: customer_id(),
                lines: vec![
                    OrderLine {
                        sku: Sku::parse("A").unwrap(),
                        quantity: Quantity::parse(2).unwrap(),
                        unit_price_cents: Price::parse(1000).unwrap(),
                    },
                    OrderLine {
                        sku: Sku::parse("B").unwrap(),
                        quantity: Quantity::parse(1).unwrap(),
                        unit_price_cents: Price::parse(500).unwrap(),
                    },
                ],
                subtotal_cents: Money::from_cents(2500),
                shipping_cost_cents: Money::from_cents(499),
                total_cents: Money::from_cents(2999),
                shipping_address: ShippingAddress::parse("1 Main St").unwrap(),
                payment_token: PaymentToken::parse("tok_visa").unwrap(),
                placed_at: at(0),
            }]);
    }

    #[test]
    fn placing_an_order_of_fifty_or_more_ships_free() {
        let Ok(events) = decide(&State::default(), place(vec![line("A", 5, 1000, false)])) else {
            panic!("accepted")
        };
        assert!(matches!(
            &events[..],
            [Event::OrderPlaced { shipping_cost_cents, total_cents, .. }]
                if *shipping_cost_cents == Money::ZERO && total_cents.cents() == 5000
        ));
    }

    #[test]
    fn placing_an_order_with_no_lines_is_refused() {
        given::<Order>(vec![])
            .when(place(vec![]))
            .then_error(Error::NoLines);
    }

    #[test]
    fn placing_an_order_with_a_discontinued_product_is_refused() {
        given::<Order>(vec![])
            .when(place(vec![
                line("A", 1, 100, false),
                line("B", 1, 100, true),
            ]))
            .then_error(Error::ProductDiscontinued {
                sku: Sku::parse("B").unwrap(),
            });
    }

    #[test]
    fn placing_an_order_naming_a_sku_twice_is_refused() {
        given::<Order>(vec![])
            .when(place(vec![
                line("A", 1, 100, false),
                line("a", 2, 100, false),
            ]))
            .then_error(Error::DuplicateLine {
                sku: Sku::parse("A").unwrap(),
            });
    }

    #[test]
    fn placing_an_order_with_too_many_lines_is_refused() {
        let lines = (0..=MAX_LINES)
            .map(|n| line(&format!("S{n}"), 1, 100, false))
            .collect();
        given::<Order>(vec![])
            .when(place(lines))
            .then_error(Error::TooManyLines { max: MAX_LINES });
    }

    #[test]
    fn placing_an_order_twice_is_refused() {
        given::<Order>(vec![placed()])
            .when(place(vec![line("A", 1, 100, false)]))
            .then_error(Error::AlreadyPlaced {
                order_id: order_id(),
            });
    }

    #[test]
    fn confirming_a_placed_order_records_it() {
        given::<Order>(vec![placed()])
            .when(Command::Confirm { at: at(1) })
            .then(vec![confirmed()]);
    }

    #[test]
    fn confirming_again_changes_nothing() {
        given::<Order>(vec![placed(), confirmed()])
            .when(Command::Confirm { at: at(1) })
            .then(vec![]);
    }

    #[test]
    fn confirming_an_unknown_or_cancelled_order_is_refused() {
        given::<Order>(vec![])
            .when(Command::Confirm { at: at(1) })
            .then_error(Error::NotPlaced);
        given::<Order>(vec![
            placed(),
            cancelled(CancellationReason::CustomerRequest),
        ])
        .when(Command::Confirm { at: at(1) })
        .then_error(Error::Cancelled {
            order_id: order_id(),
        });
    }

    #[test]
    fn shipping_a_confirmed_order_records_it() {
        given::<Order>(vec![placed(), confirmed()])
            .when(Command::MarkShipped { at: at(2) })
            .then(vec![shipped()]);
    }

    #[test]
    fn shipping_an_order_that_is_not_confirmed_is_refused() {
        given::<Order>(vec![placed()])
            .when(Command::MarkShipped { at: at(2) })
            .then_error(Error::NotConfirmed {
                order_id: order_id(),
            });
        given::<Order>(vec![placed(), cancelled(CancellationReason::OutOfStock)])
            .when(Command::MarkShipped { at: at(2) })
            .then_error(Error::Cancelled {
                order_id: order_id(),
            });
    }

    #[test]
    fn delivering_a_shipped_order_records_it() {
        given::<Order>(vec![placed(), confirmed(), shipped()])
            .when(Command::MarkDelivered { at: at(3) })
            .then(vec![delivered()]);
    }

    #[test]
    fn delivering_an_order_that_is_not_shipped_is_refused() {
        given::<Order>(vec![placed(), confirmed()])
            .when(Command::MarkDelivered { at: at(3) })
            .then_error(Error::NotShipped {
                order_id: order_id(),
            });
    }

    #[test]
    fn cancelling_a_placed_or_confirmed_order_records_the_reason() {
        given::<Order>(vec![placed()])
            .when(cancel(CancellationReason::OutOfStock))
            .then(vec![cancelled(CancellationReason::OutOfStock)]);
        given::<Order>(vec![placed(), confirmed()])
            .when(cancel(CancellationReason::CustomerRequest))
            .then(vec![cancelled(CancellationReason::CustomerRequest)]);
    }

    #[test]
    fn cancelling_a_shipped_or_delivered_order_is_refused() {
        given::<Order>(vec![placed(), confirmed(), shipped()])
            .when(cancel(CancellationReason::CustomerRequest))
            .then_error(Error::AlreadyShipped {
                order_id: order_id(),
            });
        given::<Order>(vec![placed(), confirmed(), shipped(), delivered()])
            .when(cancel(CancellationReason::CustomerRequest))
            .then_error(Error::AlreadyShipped {
                order_id: order_id(),
            });
        assert_eq!(
            Error::AlreadyShipped {
                order_id: order_id()
            }
            .code(),
            "already_shipped"
        );
    }

    #[test]
    fn cancelling_a_cancelled_order_changes_nothing() {
        given::<Order>(vec![
            placed(),
            cancelled(CancellationReason::PaymentDeclined),
        ])
        .when(cancel(CancellationReason::CustomerRequest))
        .then(vec![]);
    }

    #[test]
    fn cancelling_an_unknown_order_is_refused() {
        given::<Order>(vec![])
            .when(cancel(CancellationReason::CustomerRequest))
            .then_error(Error::NotPlaced);
    }

    #[test]
    fn the_state_follows_the_lifecycle_and_keeps_the_cancellation_reason() {
        let state = Order::fold(&[placed(), cancelled(CancellationReason::OutOfStock)]);
        assert_eq!(state.status(), Some(Status::Cancelled));
        assert_eq!(
            state.order.and_then(|order| order.cancellation_reason),
            Some(CancellationReason::OutOfStock)
        );
        assert_eq!(
            serde_json::to_string(&CancellationReason::PaymentDeclined).unwrap(),
            r#""PAYMENT_DECLINED""#
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn command() -> impl Strategy<Value = Command> {
            let lines = proptest::collection::vec(
                (
                    0usize..5,
                    1i64..5,
                    1i64..4000,
                    proptest::bool::weighted(0.1),
                ),
                0..4,
            )
            .prop_map(|lines| {
                lines
                    .into_iter()
                    .map(|(n, q, cents, discontinued)| {
                        line(&format!("S{n}"), q, cents, discontinued)
                    })
                    .collect::<Vec<_>>()
            });
            let reason = prop_oneof![
                Just(CancellationReason::OutOfStock),
                Just(CancellationReason::PaymentDeclined),
                Just(CancellationReason::CustomerRequest),
            ];
            prop_oneof![
                lines.prop_map(place),
                Just(Command::Confirm { at: at(1) }),
                Just(Command::MarkShipped { at: at(2) }),
                Just(Command::MarkDelivered { at: at(3) }),
                reason.prop_map(cancel),
            ]
        }

        fn allowed(from: Option<Status>, to: Status) -> bool {
            use Status::*;
            matches!(
                (from, to),
                (None, Placed)
                    | (Some(Placed), Confirmed | Cancelled)
                    | (Some(Confirmed), Shipped | Cancelled)
                    | (Some(Shipped), Delivered)
            )
        }

        proptest! {
            #[test]
            fn random_commands_only_move_an_order_forward_and_keep_its_totals(
                commands in proptest::collection::vec(command(), 0..30)
            ) {
                let mut state = State::default();
                for command in commands {
                    let Ok(events) = decide(&state, command) else { continue };
                    prop_assert!(events.len() <= 1);
                    for event in &events {
                        let before = state.status();
                        state = evolve(state, event);
                        let after = state.status();
                        prop_assert!(
                            after.is_some_and(|to| allowed(before, to)),
                            "{:?} -> {:?}", before, after
                        );
                    }
                    if let Some(order) = &state.order {
                        let subtotal = order.lines.iter().map(|l| l.line_total().cents()).sum::<u64>();
                        prop_assert_eq!(order.subtotal.cents(), subtotal);
                        prop_assert_eq!(order.total.cents(), subtotal + order.shipping_cost.cents());
                        prop_assert!(!order.lines.is_empty());
                        prop_assert_eq!(
                            order.cancellation_reason.is_some(),
                            order.status == Status::Cancelled
                        );
                    }
                }
            }
        }
    }
}
