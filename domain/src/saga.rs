//! The order fulfillment process manager, as a decider with its own events
//! (stream `fulfillment-<order uuid>`), so that its progress is recorded and
//! replayable.
//!
//! Input: the domain events of one order ([`Trigger`]: the event, its id and
//! when it was recorded). Output: saga events, which record both what it
//! noticed (`…Noted`) and what it decided; the commands to send follow from
//! the decision events alone ([`commands_for`]), each with an idempotency key
//! derived from the triggering event's id. So a saga service can
//! append the events (with ids from [`crate::catalogue::derive_event_id`]) and
//! then send [`commands_for`] each of them; if it crashes in between, the
//! commands can be derived again from the recorded events and re-sent, and
//! the targets drop the duplicates by key.
//!
//! Lifecycle: `OrderPlaced` → reserve every line → when all are reserved,
//! authorize the payment → when authorized, confirm the order and create the
//! shipment → when the shipment is dispatched, capture the payment, commit
//! the reservations and mark the order shipped → when delivered, mark the
//! order delivered.
//!
//! Compensation: a rejected line releases the lines already reserved and
//! cancels the order `OUT_OF_STOCK`; a decline releases everything and
//! cancels `PAYMENT_DECLINED`; a transient payment error is retried up to
//! [`MAX_PAYMENT_ATTEMPTS`] attempts, then treated as a decline; a customer
//! cancellation (an `OrderCancelled` the saga did not ask for) voids or
//! refunds the payment, releases every reservation and cancels the shipment.
//! Whatever arrives after the saga was aborted — a late `StockReserved`,
//! `PaymentAuthorized`, `PaymentCaptured` or `ShipmentCreated` — is undone as
//! it arrives, so a cancellation while a reservation or payment is in flight
//! converges with nothing reserved and nothing charged.
//!
//! Ordering: commands to different aggregates may be executed in any order
//! relative to each other, but commands to one aggregate must be executed in
//! the order the saga sent them (the saga service sends one order's commands
//! in sequence). A target's business refusal (say, confirming an order the
//! customer has just cancelled) is final and needs no retry: the saga learns
//! what happened from the events that follow.
//!
//! Idempotency: every saga event names its trigger; a trigger already
//! recorded produces nothing, and every reaction also checks the state (a
//! line is reserved once, a payment authorized once).
//!
//! Known limit: the order refuses a cancellation once shipped, but between
//! the shipment's dispatch and the order being marked shipped a customer
//! cancellation can still be accepted. The saga then refunds the payment once
//! captured, but the parcel has left: dispatched goods are not recalled.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalogue::{CatalogueError, DomainEvent};
use crate::envelope::RecordedEvent;
use crate::order::CancellationReason;
use crate::values::{CustomerId, Money, OrderId, PaymentToken, Quantity, ShippingAddress, Sku};
use crate::{order, payment, shipment, stock};

/// The stream category of the saga.
pub const STREAM_CATEGORY: &str = "fulfillment";

/// The triggers the saga reacts to that none of its own commands cause, as
/// (category, event type): all it needs from the broker. The events its
/// commands cause come back in the commands' answers, and the saga handles
/// them from there (docs/adr/0014). A customer's cancellation is here; the
/// saga's own `cancel-order` causes the same event type, which it then
/// finds handled.
pub const OUTSIDE_TRIGGERS: &[(&str, &str)] = &[
    (order::STREAM_CATEGORY, "OrderPlaced"),
    (order::STREAM_CATEGORY, "OrderCancelled"),
    (shipment::STREAM_CATEGORY, "ShipmentDispatched"),
    (shipment::STREAM_CATEGORY, "ShipmentDelivered"),
];

/// Whether [`decide`] can decide anything on `event`, in any state: false
/// for the events that only confirm what the saga already recorded
/// (`OrderConfirmed`, `OrderShipped`, `OrderDelivered`, `ReservationCommitted`)
/// and for events of no order. A saga service need not load its state for
/// the others. The saga's tests check, for every trigger delivered in them,
/// that a `false` here comes with no decision.
pub fn may_react_to(event: &DomainEvent) -> bool {
    use payment::Event as P;
    use shipment::Event as Sh;
    use stock::Event as St;
    match event {
        DomainEvent::Order(event) => matches!(
            event,
            order::Event::OrderPlaced { .. } | order::Event::OrderCancelled { .. }
        ),
        DomainEvent::Stock(event) => matches!(
            event,
            St::StockReserved { .. }
                | St::StockReservationRejected { .. }
                | St::StockReleased { .. }
        ),
        DomainEvent::Payment(event) => matches!(
            event,
            P::PaymentAuthorized { .. }
                | P::PaymentDeclined { .. }
                | P::PaymentAttemptFailed { .. }
                | P::PaymentCaptured { .. }
                | P::PaymentVoided { .. }
                | P::PaymentRefunded { .. }
        ),
        DomainEvent::Shipment(event) => matches!(
            event,
            Sh::ShipmentCreated { .. }
                | Sh::ShipmentCancelled { .. }
                | Sh::ShipmentDispatched { .. }
                | Sh::ShipmentDelivered { .. }
        ),
        _ => false,
    }
}

/// How many authorization attempts the saga makes before giving up.
pub const MAX_PAYMENT_ATTEMPTS: u32 = payment::MAX_ATTEMPTS;

/// The saga's stream of one order: `fulfillment-<order uuid>`.
pub fn stream_name(order_id: &OrderId) -> String {
    format!("{STREAM_CATEGORY}-{order_id}")
}

/// One input of the saga: a domain event, with its id and when it was recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The event's id; idempotency keys are derived from it.
    pub event_id: Uuid,
    /// When the store recorded it; commands the saga sends carry this time.
    pub at: DateTime<Utc>,
    /// The event.
    pub event: DomainEvent,
}

impl Trigger {
    /// Reads a recorded event as a trigger.
    pub fn from_recorded(recorded: &RecordedEvent) -> Result<Self, CatalogueError> {
        Ok(Self {
            event_id: recorded.event_id,
            at: recorded.recorded_at,
            event: crate::catalogue::decode(recorded)?,
        })
    }
}

/// The order an event concerns, if it is one the saga reacts to: the saga
/// service routes a trigger to the stream `fulfillment-<that order>`.
pub fn order_id_of(event: &DomainEvent) -> Option<OrderId> {
    match event {
        DomainEvent::Order(event) => Some(event.order_id()),
        DomainEvent::Stock(event) => event.order_id(),
        DomainEvent::Payment(event) => Some(event.order_id()),
        DomainEvent::Shipment(event) => Some(event.order_id()),
        _ => None,
    }
}

/// A line to fulfil.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaLine {
    /// The product.
    pub sku: Sku,
    /// How many units.
    pub quantity: Quantity,
}

/// What the saga records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// An order was placed: reserve every line.
    FulfillmentStarted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// Who ordered.
        customer_id: CustomerId,
        /// What to reserve.
        lines: Vec<SagaLine>,
        /// What to charge.
        amount_cents: Money,
        /// How to charge it.
        payment_token: PaymentToken,
        /// Where to ship.
        shipping_address: ShippingAddress,
        /// The shipping cost.
        shipping_cost_cents: Money,
        /// When the order was placed.
        at: DateTime<Utc>,
    },
    /// A line was reserved.
    ReservationNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// The product.
        sku: Sku,
        /// How many units.
        quantity: Quantity,
    },
    /// A line could not be reserved.
    ReservationRejectionNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// The product.
        sku: Sku,
        /// How many units were asked for.
        requested: Quantity,
        /// How many were available.
        available: u64,
    },
    /// A line's reservation was released.
    ReleaseNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// The product.
        sku: Sku,
    },
    /// Every line is reserved (or a transient error was seen): authorize the payment.
    PaymentRequested {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// Who pays.
        customer_id: CustomerId,
        /// How much.
        amount_cents: Money,
        /// With what.
        payment_token: PaymentToken,
        /// Which attempt this is, from 1.
        attempt: u32,
    },
    /// The payment was authorized.
    PaymentAuthorizationNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// The gateway's reference.
        authorization_id: String,
    },
    /// The payment was declined.
    PaymentDeclineNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// Which attempt.
        attempt: u32,
    },
    /// An authorization attempt failed transiently.
    PaymentFailureNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// Which attempt.
        attempt: u32,
    },
    /// The payment was captured.
    PaymentCaptureNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
    },
    /// The payment was voided.
    PaymentVoidNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
    },
    /// The payment was refunded.
    PaymentRefundNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
    },
    /// Stock is reserved and payment authorized: confirm the order, create the shipment.
    FulfillmentConfirmed {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// Where to ship.
        shipping_address: ShippingAddress,
        /// The shipping cost.
        shipping_cost_cents: Money,
        /// When.
        at: DateTime<Utc>,
    },
    /// The shipment was created.
    ShipmentCreationNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
    },
    /// The shipment was cancelled.
    ShipmentCancellationNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
    },
    /// The shipment left after the saga was aborted (a dispatch racing the
    /// cancellation): nothing more can be undone for it.
    ShipmentDispatchNoted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
    },
    /// The shipment left: capture, commit the reservations, mark the order shipped.
    FulfillmentDispatched {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// The reserved lines to commit.
        skus: Vec<Sku>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The shipment arrived: mark the order delivered. The saga is done.
    FulfillmentDelivered {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order will not be fulfilled; cancel it unless it is already cancelled.
    FulfillmentAborted {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// Why.
        reason: CancellationReason,
        /// Whether the saga cancels the order (false when the customer already did).
        cancel_order: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// Undo what was done: release these reservations, void or refund, cancel the shipment.
    CompensationRequested {
        /// The order.
        order_id: OrderId,
        /// The triggering event.
        trigger: Uuid,
        /// The lines to release.
        release: Vec<Sku>,
        /// Whether to void the authorization.
        void_payment: bool,
        /// Whether to refund the capture.
        refund_payment: bool,
        /// Whether to cancel the shipment.
        cancel_shipment: bool,
    },
}

impl Event {
    /// Every event type of the saga.
    pub const TYPES: &'static [&'static str] = &[
        "FulfillmentStarted",
        "ReservationNoted",
        "ReservationRejectionNoted",
        "ReleaseNoted",
        "PaymentRequested",
        "PaymentAuthorizationNoted",
        "PaymentDeclineNoted",
        "PaymentFailureNoted",
        "PaymentCaptureNoted",
        "PaymentVoidNoted",
        "PaymentRefundNoted",
        "FulfillmentConfirmed",
        "ShipmentCreationNoted",
        "ShipmentCancellationNoted",
        "ShipmentDispatchNoted",
        "FulfillmentDispatched",
        "FulfillmentDelivered",
        "FulfillmentAborted",
        "CompensationRequested",
    ];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::FulfillmentStarted { .. } => "FulfillmentStarted",
            Self::ReservationNoted { .. } => "ReservationNoted",
            Self::ReservationRejectionNoted { .. } => "ReservationRejectionNoted",
            Self::ReleaseNoted { .. } => "ReleaseNoted",
            Self::PaymentRequested { .. } => "PaymentRequested",
            Self::PaymentAuthorizationNoted { .. } => "PaymentAuthorizationNoted",
            Self::PaymentDeclineNoted { .. } => "PaymentDeclineNoted",
            Self::PaymentFailureNoted { .. } => "PaymentFailureNoted",
            Self::PaymentCaptureNoted { .. } => "PaymentCaptureNoted",
            Self::PaymentVoidNoted { .. } => "PaymentVoidNoted",
            Self::PaymentRefundNoted { .. } => "PaymentRefundNoted",
            Self::FulfillmentConfirmed { .. } => "FulfillmentConfirmed",
            Self::ShipmentCreationNoted { .. } => "ShipmentCreationNoted",
            Self::ShipmentCancellationNoted { .. } => "ShipmentCancellationNoted",
            Self::ShipmentDispatchNoted { .. } => "ShipmentDispatchNoted",
            Self::FulfillmentDispatched { .. } => "FulfillmentDispatched",
            Self::FulfillmentDelivered { .. } => "FulfillmentDelivered",
            Self::FulfillmentAborted { .. } => "FulfillmentAborted",
            Self::CompensationRequested { .. } => "CompensationRequested",
        }
    }

    /// The order the event is about.
    pub fn order_id(&self) -> OrderId {
        self.ids().0
    }

    /// The id of the event that triggered it.
    pub fn trigger(&self) -> Uuid {
        self.ids().1
    }

    fn ids(&self) -> (OrderId, Uuid) {
        match self {
            Self::FulfillmentStarted {
                order_id, trigger, ..
            }
            | Self::ReservationNoted {
                order_id, trigger, ..
            }
            | Self::ReservationRejectionNoted {
                order_id, trigger, ..
            }
            | Self::ReleaseNoted {
                order_id, trigger, ..
            }
            | Self::PaymentRequested {
                order_id, trigger, ..
            }
            | Self::PaymentAuthorizationNoted {
                order_id, trigger, ..
            }
            | Self::PaymentDeclineNoted {
                order_id, trigger, ..
            }
            | Self::PaymentFailureNoted {
                order_id, trigger, ..
            }
            | Self::PaymentCaptureNoted { order_id, trigger }
            | Self::PaymentVoidNoted { order_id, trigger }
            | Self::PaymentRefundNoted { order_id, trigger }
            | Self::FulfillmentConfirmed {
                order_id, trigger, ..
            }
            | Self::ShipmentCreationNoted { order_id, trigger }
            | Self::ShipmentCancellationNoted { order_id, trigger }
            | Self::ShipmentDispatchNoted { order_id, trigger }
            | Self::FulfillmentDispatched {
                order_id, trigger, ..
            }
            | Self::FulfillmentDelivered {
                order_id, trigger, ..
            }
            | Self::FulfillmentAborted {
                order_id, trigger, ..
            }
            | Self::CompensationRequested {
                order_id, trigger, ..
            } => (*order_id, *trigger),
        }
    }
}

/// Which service a saga command goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// The inventory service (stock).
    Inventory,
    /// The payments service.
    Payments,
    /// The orders service.
    Orders,
    /// The shipping service.
    Shipping,
}

/// What the saga asks of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetCommand {
    /// A stock command (it names its SKU).
    Stock(stock::Command),
    /// Authorize the payment: the payments service asks the gateway
    /// ([`crate::gateway::simulate`]) for attempt `attempts() + 1` and
    /// decides [`payment::Command::Authorize`] with its answer.
    AuthorizePayment {
        /// The order paid for.
        order_id: OrderId,
        /// Who pays.
        customer_id: CustomerId,
        /// How much.
        amount: Money,
        /// With what.
        token: PaymentToken,
    },
    /// Any other payment command (capture, void, refund).
    Payment(payment::Command),
    /// An order command.
    Order(order::Command),
    /// A shipment command.
    Shipment(shipment::Command),
}

/// A command the saga sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaCommand {
    /// Which service.
    pub target: Target,
    /// The order it is for.
    pub order_id: OrderId,
    /// What to do.
    pub command: TargetCommand,
    /// Derived from the triggering event's id and the step; the target
    /// derives its event ids from it, so a re-sent command has one effect.
    pub idempotency_key: String,
}

impl SagaCommand {
    /// The stream of the aggregate the command is for.
    pub fn stream(&self) -> String {
        match &self.command {
            TargetCommand::Stock(
                stock::Command::Restock { sku, .. }
                | stock::Command::ReserveStock { sku, .. }
                | stock::Command::ReleaseStock { sku, .. }
                | stock::Command::CommitReservation { sku, .. },
            ) => stock::stream_name(sku),
            TargetCommand::AuthorizePayment { .. } | TargetCommand::Payment(_) => {
                payment::stream_name(&self.order_id)
            }
            TargetCommand::Order(_) => order::stream_name(&self.order_id),
            TargetCommand::Shipment(_) => shipment::stream_name(&self.order_id),
        }
    }
}

/// Where the saga is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// No `OrderPlaced` seen yet.
    #[default]
    NotStarted,
    /// Reserving the lines.
    Reserving,
    /// Authorizing the payment.
    Authorizing,
    /// Confirmed; waiting for dispatch.
    Confirmed,
    /// Dispatched; waiting for delivery.
    Shipped,
    /// Delivered: done.
    Delivered,
    /// Cancelled; undoing what arrives.
    Aborted(CancellationReason),
}

/// Where one line's reservation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LineStatus {
    /// Asked for.
    Requested,
    /// Held.
    Reserved,
    /// Refused for lack of stock.
    Rejected,
    /// Release asked for.
    ReleaseRequested,
    /// Released.
    Released,
    /// Committed at dispatch.
    Committed,
}

/// Where the payment is, as far as the saga knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentStatus {
    /// Not asked for yet.
    #[default]
    NotRequested,
    /// Authorization attempt `n` asked for.
    Requested(u32),
    /// Authorized.
    Authorized,
    /// Declined, or given up after transient errors.
    Declined,
    /// Capture asked for.
    CaptureRequested,
    /// Captured.
    Captured,
    /// Void asked for.
    VoidRequested,
    /// Voided.
    Voided,
    /// Refund asked for.
    RefundRequested,
    /// Refunded.
    Refunded,
}

/// Where the shipment is, as far as the saga knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ShipmentStatus {
    /// Not asked for.
    #[default]
    NotRequested,
    /// Creation asked for.
    Requested,
    /// Created.
    Created,
    /// Dispatched.
    Dispatched,
    /// Delivered.
    Delivered,
    /// Cancellation asked for.
    CancelRequested,
    /// Cancelled.
    Cancelled,
}

/// The facts of the order, from `OrderPlaced`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFacts {
    /// The order.
    pub order_id: OrderId,
    /// Who ordered.
    pub customer_id: CustomerId,
    /// What to charge.
    pub amount: Money,
    /// How.
    pub payment_token: PaymentToken,
    /// Where to ship.
    pub shipping_address: ShippingAddress,
    /// The shipping cost.
    pub shipping_cost: Money,
}

/// What the saga knows about one order; the default is "not started".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The order, once placed.
    pub order: Option<OrderFacts>,
    /// Where the saga is.
    pub phase: Phase,
    /// Each line's quantity and reservation status, by SKU.
    pub lines: BTreeMap<Sku, (Quantity, LineStatus)>,
    /// Where the payment is.
    pub payment: PaymentStatus,
    /// Where the shipment is.
    pub shipment: ShipmentStatus,
    /// Ids of the triggers already handled.
    pub processed: BTreeSet<Uuid>,
}

impl State {
    /// Whether nothing is left to do or undo: delivered and paid, or aborted with
    /// nothing reserved, nothing held or charged, and no shipment pending.
    pub fn is_settled(&self) -> bool {
        match self.phase {
            Phase::Delivered => self.payment == PaymentStatus::Captured,
            Phase::Aborted(_) => {
                self.lines.values().all(|(_, status)| {
                    matches!(
                        status,
                        LineStatus::Rejected | LineStatus::Released | LineStatus::Committed
                    )
                }) && matches!(
                    self.payment,
                    PaymentStatus::NotRequested
                        | PaymentStatus::Declined
                        | PaymentStatus::Voided
                        | PaymentStatus::Refunded
                ) && matches!(
                    self.shipment,
                    ShipmentStatus::NotRequested
                        | ShipmentStatus::Cancelled
                        | ShipmentStatus::Dispatched
                        | ShipmentStatus::Delivered
                )
            }
            _ => false,
        }
    }

    fn line_status(&self, sku: &Sku) -> Option<LineStatus> {
        self.lines.get(sku).map(|(_, status)| *status)
    }

    fn lines_with(&self, wanted: LineStatus) -> Vec<Sku> {
        self.lines
            .iter()
            .filter(|(_, (_, status))| *status == wanted)
            .map(|(sku, _)| sku.clone())
            .collect()
    }
}

/// The saga's events and the commands they ask for, for one trigger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reaction {
    /// What to record in `fulfillment-<order>`.
    pub events: Vec<Event>,
    /// What to send, in order.
    pub commands: Vec<SagaCommand>,
}

/// Decides the saga's events and commands for one trigger.
pub fn react(state: &State, trigger: &Trigger) -> Reaction {
    let events = decide(state, trigger);
    let commands = events.iter().flat_map(commands_for).collect();
    Reaction { events, commands }
}

/// Decides the saga's events for one trigger; an event of another order, one
/// the saga does not react to, or a trigger already handled gives none.
pub fn decide(state: &State, trigger: &Trigger) -> Vec<Event> {
    if state.processed.contains(&trigger.event_id) {
        return vec![];
    }
    let id = trigger.event_id;
    let at = trigger.at;
    if let DomainEvent::Order(order::Event::OrderPlaced {
        order_id,
        customer_id,
        lines,
        total_cents,
        shipping_address,
        payment_token,
        shipping_cost_cents,
        placed_at,
        ..
    }) = &trigger.event
    {
        if state.phase != Phase::NotStarted {
            return vec![];
        }
        return vec![Event::FulfillmentStarted {
            order_id: *order_id,
            trigger: id,
            customer_id: *customer_id,
            lines: lines
                .iter()
                .map(|line| SagaLine {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                })
                .collect(),
            amount_cents: *total_cents,
            payment_token: payment_token.clone(),
            shipping_address: shipping_address.clone(),
            shipping_cost_cents: *shipping_cost_cents,
            at: *placed_at,
        }];
    }
    let Some(facts) = &state.order else {
        return vec![];
    };
    if order_id_of(&trigger.event) != Some(facts.order_id) {
        return vec![];
    }
    let order_id = facts.order_id;
    let aborted = matches!(state.phase, Phase::Aborted(_));
    match &trigger.event {
        DomainEvent::Stock(stock::Event::StockReserved { sku, quantity, .. })
            if state.line_status(sku) == Some(LineStatus::Requested) =>
        {
            let mut events = vec![Event::ReservationNoted {
                order_id,
                trigger: id,
                sku: sku.clone(),
                quantity: *quantity,
            }];
            if aborted {
                events.push(compensation(
                    order_id,
                    id,
                    vec![sku.clone()],
                    false,
                    false,
                    false,
                ));
            } else if state.phase == Phase::Reserving
                && state
                    .lines
                    .iter()
                    .all(|(other, (_, status))| other == sku || *status == LineStatus::Reserved)
            {
                events.push(Event::PaymentRequested {
                    order_id,
                    trigger: id,
                    customer_id: facts.customer_id,
                    amount_cents: facts.amount,
                    payment_token: facts.payment_token.clone(),
                    attempt: 1,
                });
            }
            events
        }
        DomainEvent::Stock(stock::Event::StockReservationRejected {
            sku,
            requested,
            available,
            ..
        }) if state.line_status(sku) == Some(LineStatus::Requested) => {
            let mut events = vec![Event::ReservationRejectionNoted {
                order_id,
                trigger: id,
                sku: sku.clone(),
                requested: *requested,
                available: *available,
            }];
            if !aborted {
                events.extend(abort(state, id, at, CancellationReason::OutOfStock, true));
            }
            events
        }
        DomainEvent::Stock(stock::Event::StockReleased { sku, .. })
            if matches!(
                state.line_status(sku),
                Some(LineStatus::Reserved | LineStatus::ReleaseRequested)
            ) =>
        {
            vec![Event::ReleaseNoted {
                order_id,
                trigger: id,
                sku: sku.clone(),
            }]
        }
        DomainEvent::Payment(payment::Event::PaymentAuthorized {
            authorization_id, ..
        }) if matches!(state.payment, PaymentStatus::Requested(_)) => {
            let mut events = vec![Event::PaymentAuthorizationNoted {
                order_id,
                trigger: id,
                authorization_id: authorization_id.clone(),
            }];
            if aborted {
                events.push(compensation(order_id, id, vec![], true, false, false));
            } else if state.phase == Phase::Authorizing {
                events.push(Event::FulfillmentConfirmed {
                    order_id,
                    trigger: id,
                    shipping_address: facts.shipping_address.clone(),
                    shipping_cost_cents: facts.shipping_cost,
                    at,
                });
            }
            events
        }
        DomainEvent::Payment(payment::Event::PaymentDeclined { attempt, .. })
            if matches!(state.payment, PaymentStatus::Requested(_)) =>
        {
            let mut events = vec![Event::PaymentDeclineNoted {
                order_id,
                trigger: id,
                attempt: *attempt,
            }];
            if state.phase == Phase::Authorizing {
                events.extend(abort(
                    state,
                    id,
                    at,
                    CancellationReason::PaymentDeclined,
                    true,
                ));
            }
            events
        }
        DomainEvent::Payment(payment::Event::PaymentAttemptFailed { attempt, .. })
            if state.payment == PaymentStatus::Requested(*attempt) =>
        {
            let mut events = vec![Event::PaymentFailureNoted {
                order_id,
                trigger: id,
                attempt: *attempt,
            }];
            if state.phase == Phase::Authorizing {
                if *attempt < MAX_PAYMENT_ATTEMPTS {
                    events.push(Event::PaymentRequested {
                        order_id,
                        trigger: id,
                        customer_id: facts.customer_id,
                        amount_cents: facts.amount,
                        payment_token: facts.payment_token.clone(),
                        attempt: attempt + 1,
                    });
                } else {
                    events.extend(abort(
                        state,
                        id,
                        at,
                        CancellationReason::PaymentDeclined,
                        true,
                    ));
                }
            }
            events
        }
        DomainEvent::Payment(payment::Event::PaymentCaptured { .. })
            if state.payment == PaymentStatus::CaptureRequested =>
        {
            let mut events = vec![Event::PaymentCaptureNoted {
                order_id,
                trigger: id,
            }];
            if aborted {
                events.push(compensation(order_id, id, vec![], false, true, false));
            }
            events
        }
        DomainEvent::Payment(payment::Event::PaymentVoided { .. })
            if state.payment == PaymentStatus::VoidRequested =>
        {
            vec![Event::PaymentVoidNoted {
                order_id,
                trigger: id,
            }]
        }
        DomainEvent::Payment(payment::Event::PaymentRefunded { .. })
            if state.payment == PaymentStatus::RefundRequested =>
        {
            vec![Event::PaymentRefundNoted {
                order_id,
                trigger: id,
            }]
        }
        DomainEvent::Shipment(shipment::Event::ShipmentCreated { .. })
            if state.shipment == ShipmentStatus::Requested =>
        {
            let mut events = vec![Event::ShipmentCreationNoted {
                order_id,
                trigger: id,
            }];
            if aborted {
                events.push(compensation(order_id, id, vec![], false, false, true));
            }
            events
        }
        DomainEvent::Shipment(shipment::Event::ShipmentCancelled { .. })
            if state.shipment == ShipmentStatus::CancelRequested =>
        {
            vec![Event::ShipmentCancellationNoted {
                order_id,
                trigger: id,
            }]
        }
        DomainEvent::Shipment(shipment::Event::ShipmentDispatched { .. })
            if state.phase == Phase::Confirmed =>
        {
            vec![Event::FulfillmentDispatched {
                order_id,
                trigger: id,
                skus: state.lines_with(LineStatus::Reserved),
                at,
            }]
        }
        DomainEvent::Shipment(shipment::Event::ShipmentDispatched { .. })
            if aborted
                && matches!(
                    state.shipment,
                    ShipmentStatus::Created | ShipmentStatus::CancelRequested
                ) =>
        {
            vec![Event::ShipmentDispatchNoted {
                order_id,
                trigger: id,
            }]
        }
        DomainEvent::Shipment(shipment::Event::ShipmentDelivered { .. })
            if state.phase == Phase::Shipped =>
        {
            vec![Event::FulfillmentDelivered {
                order_id,
                trigger: id,
                at,
            }]
        }
        // The order is the judge of whether it may be cancelled: once it
        // accepted, whatever the saga did is undone as far as it can be.
        DomainEvent::Order(order::Event::OrderCancelled { reason, .. }) if !aborted => {
            abort(state, id, at, *reason, false)
        }
        _ => vec![],
    }
}

/// The events that give up on the order: abort, and undo what is done. What
/// is still in flight is undone when it arrives (see [`decide`]).
fn abort(
    state: &State,
    trigger: Uuid,
    at: DateTime<Utc>,
    reason: CancellationReason,
    cancel_order: bool,
) -> Vec<Event> {
    let Some(facts) = &state.order else {
        return vec![];
    };
    let order_id = facts.order_id;
    let mut events = vec![Event::FulfillmentAborted {
        order_id,
        trigger,
        reason,
        cancel_order,
        at,
    }];
    let release = state.lines_with(LineStatus::Reserved);
    let void_payment = state.payment == PaymentStatus::Authorized;
    let refund_payment = state.payment == PaymentStatus::Captured;
    let cancel_shipment = state.shipment == ShipmentStatus::Created;
    if !release.is_empty() || void_payment || refund_payment || cancel_shipment {
        events.push(compensation(
            order_id,
            trigger,
            release,
            void_payment,
            refund_payment,
            cancel_shipment,
        ));
    }
    events
}

fn compensation(
    order_id: OrderId,
    trigger: Uuid,
    release: Vec<Sku>,
    void_payment: bool,
    refund_payment: bool,
    cancel_shipment: bool,
) -> Event {
    Event::CompensationRequested {
        order_id,
        trigger,
        release,
        void_payment,
        refund_payment,
        cancel_shipment,
    }
}

/// The commands a saga event asks for ("noted" events ask for none).
pub fn commands_for(event: &Event) -> Vec<SagaCommand> {
    let order_id = event.order_id();
    let trigger = event.trigger();
    let command = |target, step: &str, command| SagaCommand {
        target,
        order_id,
        command,
        idempotency_key: format!("{STREAM_CATEGORY}:{trigger}:{step}"),
    };
    match event {
        Event::FulfillmentStarted { lines, .. } => lines
            .iter()
            .map(|line| {
                command(
                    Target::Inventory,
                    &format!("reserve:{}", line.sku),
                    TargetCommand::Stock(stock::Command::ReserveStock {
                        sku: line.sku.clone(),
                        order_id,
                        quantity: line.quantity,
                    }),
                )
            })
            .collect(),
        Event::PaymentRequested {
            customer_id,
            amount_cents,
            payment_token,
            attempt,
            ..
        } => vec![command(
            Target::Payments,
            &format!("authorize:{attempt}"),
            TargetCommand::AuthorizePayment {
                order_id,
                customer_id: *customer_id,
                amount: *amount_cents,
                token: payment_token.clone(),
            },
        )],
        Event::FulfillmentConfirmed {
            shipping_address,
            shipping_cost_cents,
            at,
            ..
        } => vec![
            command(
                Target::Orders,
                "confirm",
                TargetCommand::Order(order::Command::Confirm { at: *at }),
            ),
            command(
                Target::Shipping,
                "create-shipment",
                TargetCommand::Shipment(shipment::Command::Create {
                    order_id,
                    address: shipping_address.clone(),
                    cost: *shipping_cost_cents,
                }),
            ),
        ],
        Event::FulfillmentDispatched { skus, at, .. } => {
            let mut commands = vec![command(
                Target::Payments,
                "capture",
                TargetCommand::Payment(payment::Command::Capture),
            )];
            commands.extend(skus.iter().map(|sku| {
                command(
                    Target::Inventory,
                    &format!("commit:{sku}"),
                    TargetCommand::Stock(stock::Command::CommitReservation {
                        sku: sku.clone(),
                        order_id,
                    }),
                )
            }));
            commands.push(command(
                Target::Orders,
                "mark-shipped",
                TargetCommand::Order(order::Command::MarkShipped { at: *at }),
            ));
            commands
        }
        Event::FulfillmentDelivered { at, .. } => vec![command(
            Target::Orders,
            "mark-delivered",
            TargetCommand::Order(order::Command::MarkDelivered { at: *at }),
        )],
        Event::FulfillmentAborted {
            reason,
            cancel_order: true,
            at,
            ..
        } => vec![command(
            Target::Orders,
            "cancel",
            TargetCommand::Order(order::Command::Cancel {
                reason: *reason,
                at: *at,
            }),
        )],
        Event::CompensationRequested {
            release,
            void_payment,
            refund_payment,
            cancel_shipment,
            ..
        } => {
            let mut commands: Vec<SagaCommand> = release
                .iter()
                .map(|sku| {
                    command(
                        Target::Inventory,
                        &format!("release:{sku}"),
                        TargetCommand::Stock(stock::Command::ReleaseStock {
                            sku: sku.clone(),
                            order_id,
                        }),
                    )
                })
                .collect();
            if *void_payment {
                commands.push(command(
                    Target::Payments,
                    "void",
                    TargetCommand::Payment(payment::Command::Void),
                ));
            }
            if *refund_payment {
                commands.push(command(
                    Target::Payments,
                    "refund",
                    TargetCommand::Payment(payment::Command::Refund),
                ));
            }
            if *cancel_shipment {
                commands.push(command(
                    Target::Shipping,
                    "cancel-shipment",
                    TargetCommand::Shipment(shipment::Command::Cancel),
                ));
            }
            commands
        }
        _ => vec![],
    }
}

/// Applies one saga event.
pub fn evolve(mut state: State, event: &Event) -> State {
    state.processed.insert(event.trigger());
    match event {
        Event::FulfillmentStarted {
            order_id,
            customer_id,
            lines,
            amount_cents,
            payment_token,
            shipping_address,
            shipping_cost_cents,
            ..
        } => {
            state.order = Some(OrderFacts {
                order_id: *order_id,
                customer_id: *customer_id,
                amount: *amount_cents,
                payment_token: payment_token.clone(),
                shipping_address: shipping_address.clone(),
                shipping_cost: *shipping_cost_cents,
            });
            state.lines = lines
                .iter()
                .map(|line| (line.sku.clone(), (line.quantity, LineStatus::Requested)))
                .collect();
            state.phase = Phase::Reserving;
        }
        Event::ReservationNoted { sku, .. } => set_line(&mut state, sku, LineStatus::Reserved),
        Event::ReservationRejectionNoted { sku, .. } => {
            set_line(&mut state, sku, LineStatus::Rejected)
        }
        Event::ReleaseNoted { sku, .. } => set_line(&mut state, sku, LineStatus::Released),
        Event::PaymentRequested { attempt, .. } => {
            state.payment = PaymentStatus::Requested(*attempt);
            if state.phase == Phase::Reserving {
                state.phase = Phase::Authorizing;
            }
        }
        Event::PaymentAuthorizationNoted { .. } => state.payment = PaymentStatus::Authorized,
        Event::PaymentDeclineNoted { .. } => state.payment = PaymentStatus::Declined,
        Event::PaymentFailureNoted { attempt, .. } => {
            // A retry follows as its own `PaymentRequested`; without one the
            // saga gave up, which counts as a decline.
            if *attempt >= MAX_PAYMENT_ATTEMPTS || matches!(state.phase, Phase::Aborted(_)) {
                state.payment = PaymentStatus::Declined;
            }
        }
        Event::PaymentCaptureNoted { .. } => state.payment = PaymentStatus::Captured,
        Event::PaymentVoidNoted { .. } => state.payment = PaymentStatus::Voided,
        Event::PaymentRefundNoted { .. } => state.payment = PaymentStatus::Refunded,
        Event::FulfillmentConfirmed { .. } => {
            state.phase = Phase::Confirmed;
            state.shipment = ShipmentStatus::Requested;
        }
        Event::ShipmentCreationNoted { .. } => state.shipment = ShipmentStatus::Created,
        Event::ShipmentCancellationNoted { .. } => state.shipment = ShipmentStatus::Cancelled,
        Event::ShipmentDispatchNoted { .. } => state.shipment = ShipmentStatus::Dispatched,
        Event::FulfillmentDispatched { skus, .. } => {
            state.phase = Phase::Shipped;
            state.shipment = ShipmentStatus::Dispatched;
            state.payment = PaymentStatus::CaptureRequested;
            for sku in skus {
                set_line(&mut state, sku, LineStatus::Committed);
            }
        }
        Event::FulfillmentDelivered { .. } => {
            state.phase = Phase::Delivered;
            state.shipment = ShipmentStatus::Delivered;
        }
        // An answer still in flight (a reservation, an authorization) is
        // undone when it arrives; see `decide`.
        Event::FulfillmentAborted { reason, .. } => state.phase = Phase::Aborted(*reason),
        Event::CompensationRequested {
            release,
            void_payment,
            refund_payment,
            cancel_shipment,
            ..
        } => {
            for sku in release {
                set_line(&mut state, sku, LineStatus::ReleaseRequested);
            }
            if *void_payment {
                state.payment = PaymentStatus::VoidRequested;
            }
            if *refund_payment {
                state.payment = PaymentStatus::RefundRequested;
            }
            if *cancel_shipment {
                state.shipment = ShipmentStatus::CancelRequested;
            }
        }
    }
    state
}

fn set_line(state: &mut State, sku: &Sku, status: LineStatus) {
    if let Some(line) = state.lines.get_mut(sku) {
        line.1 = status;
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod world;
