//! The payment aggregate: one stream per order, `payment-<order uuid>`.
//!
//! Lifecycle: attempts (each answered by the gateway, see
//! [`crate::gateway`]) until `Authorized` or `Declined`; an authorization is
//! then either `Captured` (and maybe later `Refunded`) or `Voided`. Rules:
//! captured only after authorization, refunded only after capture, voided
//! only before capture; the captured amount is the authorized amount and the
//! refunded amount the captured one. A decline and a transient failure are
//! events, not errors, because the fulfillment saga reacts to them. Asking
//! again for what is already done (authorize an authorized payment, capture a
//! captured one, …) is a no-op, so retried commands are harmless.

use serde::{Deserialize, Serialize};

use crate::decider::impl_decider;
pub use crate::gateway::GatewayOutcome;
use crate::values::{CustomerId, Money, OrderId, PaymentToken};

/// The stream category of payments.
pub const STREAM_CATEGORY: &str = "payment";

/// The most authorization attempts for one payment.
pub const MAX_ATTEMPTS: u32 = 5;

/// The stream of one order's payment: `payment-<order uuid>`.
pub fn stream_name(order_id: &OrderId) -> String {
    format!("{STREAM_CATEGORY}-{order_id}")
}

/// The payment aggregate, as a [`crate::decider::Decider`].
#[derive(Clone, Copy, Debug)]
pub struct Payment;
impl_decider!(Payment, Payment);

/// What can be asked of a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Records an authorization attempt and the gateway's answer to it.
    Authorize {
        /// The order paid for.
        order_id: OrderId,
        /// Who pays.
        customer_id: CustomerId,
        /// How much.
        amount: Money,
        /// With what.
        token: PaymentToken,
        /// The gateway's answer for attempt `attempts() + 1`.
        outcome: GatewayOutcome,
    },
    /// Takes the authorized amount.
    Capture,
    /// Drops the authorization (before capture).
    Void,
    /// Gives the captured amount back.
    Refund,
}

/// What a payment records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The amount is held on the card.
    PaymentAuthorized {
        /// The order paid for.
        order_id: OrderId,
        /// Who pays.
        customer_id: CustomerId,
        /// How much is held.
        amount_cents: Money,
        /// The gateway's reference.
        authorization_id: String,
        /// Which attempt succeeded, from 1.
        attempt: u32,
    },
    /// The card was declined.
    PaymentDeclined {
        /// The order paid for.
        order_id: OrderId,
        /// Who pays.
        customer_id: CustomerId,
        /// How much was asked.
        amount_cents: Money,
        /// Which attempt, from 1.
        attempt: u32,
    },
    /// The gateway failed on an attempt; a retry may succeed.
    PaymentAttemptFailed {
        /// The order paid for.
        order_id: OrderId,
        /// Which attempt, from 1.
        attempt: u32,
    },
    /// The held amount was taken.
    PaymentCaptured {
        /// The order paid for.
        order_id: OrderId,
        /// How much.
        amount_cents: Money,
    },
    /// The hold was dropped.
    PaymentVoided {
        /// The order paid for.
        order_id: OrderId,
        /// How much was held.
        amount_cents: Money,
    },
    /// The captured amount was given back.
    PaymentRefunded {
        /// The order paid for.
        order_id: OrderId,
        /// How much.
        amount_cents: Money,
    },
}

impl Event {
    /// Every event type of this aggregate.
    pub const TYPES: &'static [&'static str] = &[
        "PaymentAuthorized",
        "PaymentDeclined",
        "PaymentAttemptFailed",
        "PaymentCaptured",
        "PaymentVoided",
        "PaymentRefunded",
    ];

    /// The stable type name of this event.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::PaymentAuthorized { .. } => "PaymentAuthorized",
            Self::PaymentDeclined { .. } => "PaymentDeclined",
            Self::PaymentAttemptFailed { .. } => "PaymentAttemptFailed",
            Self::PaymentCaptured { .. } => "PaymentCaptured",
            Self::PaymentVoided { .. } => "PaymentVoided",
            Self::PaymentRefunded { .. } => "PaymentRefunded",
        }
    }

    /// The order the event is about.
    pub fn order_id(&self) -> OrderId {
        match self {
            Self::PaymentAuthorized { order_id, .. }
            | Self::PaymentDeclined { order_id, .. }
            | Self::PaymentAttemptFailed { order_id, .. }
            | Self::PaymentCaptured { order_id, .. }
            | Self::PaymentVoided { order_id, .. }
            | Self::PaymentRefunded { order_id, .. } => *order_id,
        }
    }
}

/// Where a payment is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// No attempt yet, or only failed ones.
    #[default]
    Pending,
    /// Held.
    Authorized,
    /// Declined for good.
    Declined,
    /// Taken.
    Captured,
    /// Hold dropped.
    Voided,
    /// Given back.
    Refunded,
}

/// What a payment knows; the default is "no attempt yet".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The order paid for, once attempted.
    pub order_id: Option<OrderId>,
    /// Where it is.
    pub status: Status,
    /// How many authorization attempts were recorded.
    pub attempts: u32,
    /// How much is (or was) held.
    pub authorized: Money,
    /// How much was taken.
    pub captured: Money,
    /// How much was given back.
    pub refunded: Money,
    /// The gateway's reference, once authorized.
    pub authorization_id: Option<String>,
}

impl State {
    /// How many authorization attempts were recorded; the next one is `attempts() + 1`.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// Why a payment command is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Authorizing nothing.
    #[error("the amount must be more than 0")]
    ZeroAmount,
    /// Every allowed attempt was used.
    #[error("at most {max} authorization attempts")]
    TooManyAttempts {
        /// The limit.
        max: u32,
    },
    /// Capturing or voiding what was not authorized.
    #[error("the payment is not authorized")]
    NotAuthorized,
    /// Capturing a voided authorization.
    #[error("the payment was voided")]
    Voided,
    /// Voiding what was captured.
    #[error("the payment was already captured")]
    AlreadyCaptured,
    /// Refunding what was not captured.
    #[error("the payment was not captured")]
    NotCaptured,
}

impl Error {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ZeroAmount => "invalid_amount",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::NotAuthorized => "not_authorized",
            Self::Voided => "payment_voided",
            Self::AlreadyCaptured => "already_captured",
            Self::NotCaptured => "not_captured",
        }
    }
}

/// Decides what happens for a command.
pub fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
    use Status::*;
    match command {
        Command::Authorize {
            order_id,
            customer_id,
            amount,
            token: _,
            outcome,
        } => {
            if state.status != Pending {
                return Ok(vec![]);
            }
            if amount == Money::ZERO {
                return Err(Error::ZeroAmount);
            }
            if state.attempts >= MAX_ATTEMPTS {
                return Err(Error::TooManyAttempts { max: MAX_ATTEMPTS });
            }
            let attempt = state.attempts + 1;
            Ok(vec![match outcome {
                GatewayOutcome::Approved { authorization_id } => Event::PaymentAuthorized {
                    order_id,
                    customer_id,
                    amount_cents: amount,
                    authorization_id,
                    attempt,
                },
                GatewayOutcome::Declined => Event::PaymentDeclined {
                    order_id,
                    customer_id,
                    amount_cents: amount,
                    attempt,
                },
                GatewayOutcome::TransientError => Event::PaymentAttemptFailed { order_id, attempt },
            }])
        }
        Command::Capture => match (state.status, state.order_id) {
            (Authorized, Some(order_id)) => Ok(vec![Event::PaymentCaptured {
                order_id,
                amount_cents: state.authorized,
            }]),
            (Captured | Refunded, _) => Ok(vec![]),
            (Voided, _) => Err(Error::Voided),
            _ => Err(Error::NotAuthorized),
        },
        Command::Void => match (state.status, state.order_id) {
            (Authorized, Some(order_id)) => Ok(vec![Event::PaymentVoided {
                order_id,
                amount_cents: state.authorized,
            }]),
            (Voided, _) => Ok(vec![]),
            (Captured | Refunded, _) => Err(Error::AlreadyCaptured),
            _ => Err(Error::NotAuthorized),
        },
        Command::Refund => match (state.status, state.order_id) {
            (Captured, Some(order_id)) => Ok(vec![Event::PaymentRefunded {
                order_id,
                amount_cents: state.captured,
            }]),
            (Refunded, _) => Ok(vec![]),
            _ => Err(Error::NotCaptured),
        },
    }
}

/// Applies one event.
pub fn evolve(mut state: State, event: &Event) -> State {
    match event {
        Event::PaymentAuthorized {
            order_id,
            amount_cents,
            authorization_id,
            attempt,
            ..
        } => {
            state.order_id = Some(*order_id);
            state.attempts = *attempt;
            state.status = Status::Authorized;
            state.authorized = *amount_cents;
            state.authorization_id = Some(authorization_id.clone());
        }
        Event::PaymentDeclined {
            order_id, attempt, ..
        } => {
            state.order_id = Some(*order_id);
            state.attempts = *attempt;
            state.status = Status::Declined;
        }
        Event::PaymentAttemptFailed { order_id, attempt } => {
            state.order_id = Some(*order_id);
            state.attempts = *attempt;
        }
        Event::PaymentCaptured { amount_cents, .. } => {
            state.status = Status::Captured;
            state.captured = *amount_cents;
        }
        Event::PaymentVoided { .. } => state.status = Status::Voided,
        Event::PaymentRefunded { amount_cents, .. } => {
            state.status = Status::Refunded;
            state.refunded = *amount_cents;
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::given::given;
    use crate::decider::Decider;
    use uuid::Uuid;

    fn order_id() -> OrderId {
        OrderId::from_uuid(Uuid::from_u128(7))
    }

    fn customer_id() -> CustomerId {
        CustomerId::from_uuid(Uuid::from_u128(1))
    }

    fn amount() -> Money {
        Money::from_cents(2999)
    }

    fn authorize(outcome: GatewayOutcome) -> Command {
        Command::Authorize {
            order_id: order_id(),
            customer_id: customer_id(),
            amount: amount(),
            token: PaymentToken::parse("tok_visa").unwrap(),
            outcome,
        }
    }

    fn approved() -> GatewayOutcome {
        GatewayOutcome::Approved {
            authorization_id: "auth_1".into(),
        }
    }

    fn authorized(attempt: u32) -> Event {
        Event::PaymentAuthorized {
            order_id: order_id(),
            customer_id: customer_id(),
            amount_cents: amount(),
            authorization_id: "auth_1".into(),
            attempt,
        }
    }

    fn failed(attempt: u32) -> Event {
        Event::PaymentAttemptFailed {
            order_id: order_id(),
            attempt,
        }
    }

    fn captured() -> Event {
        Event::PaymentCaptured {
            order_id: order_id(),
            amount_cents: amount(),
        }
    }

    #[test]
    fn an_approved_attempt_authorizes_the_amount() {
        given::<Payment>(vec![])
            .when(authorize(approved()))
            .then(vec![authorized(1)]);
    }

    #[test]
    fn a_declined_attempt_records_the_decline() {
        given::<Payment>(vec![])
            .when(authorize(GatewayOutcome::Declined))
            .then(vec![Event::PaymentDeclined {
                order_id: order_id(),
                customer_id: customer_id(),
                amount_cents: amount(),
                attempt: 1,
            }]);
    }

    #[test]
    fn a_transient_error_records_a_failed_attempt_and_counts_it() {
        given::<Payment>(vec![failed(1)])
            .when(authorize(GatewayOutcome::TransientError))
            .then(vec![failed(2)]);
        given::<Payment>(vec![failed(1), failed(2)])
            .when(authorize(approved()))
            .then(vec![authorized(3)]);
        assert_eq!(Payment::fold(&[failed(1), failed(2)]).attempts(), 2);
    }

    #[test]
    fn authorizing_an_authorized_payment_changes_nothing() {
        given::<Payment>(vec![authorized(1)])
            .when(authorize(approved()))
            .then(vec![]);
    }

    #[test]
    fn authorizing_nothing_is_refused() {
        given::<Payment>(vec![])
            .when(Command::Authorize {
                order_id: order_id(),
                customer_id: customer_id(),
                amount: Money::ZERO,
                token: PaymentToken::parse("tok_visa").unwrap(),
                outcome: approved(),
            })
            .then_error(Error::ZeroAmount);
    }

    #[test]
    fn authorizing_after_every_attempt_failed_is_refused() {
        let history = (1..=MAX_ATTEMPTS).map(failed).collect();
        given::<Payment>(history)
            .when(authorize(approved()))
            .then_error(Error::TooManyAttempts { max: MAX_ATTEMPTS });
    }

    #[test]
    fn capturing_an_authorized_payment_takes_the_authorized_amount() {
        given::<Payment>(vec![authorized(1)])
            .when(Command::Capture)
            .then(vec![captured()]);
        given::<Payment>(vec![authorized(1), captured()])
            .when(Command::Capture)
            .then(vec![]);
    }

    #[test]
    fn capturing_before_authorization_is_refused() {
        given::<Payment>(vec![])
            .when(Command::Capture)
            .then_error(Error::NotAuthorized);
        given::<Payment>(vec![failed(1)])
            .when(Command::Capture)
            .then_error(Error::NotAuthorized);
    }

    #[test]
    fn capturing_a_voided_payment_is_refused() {
        let voided = Event::PaymentVoided {
            order_id: order_id(),
            amount_cents: amount(),
        };
        given::<Payment>(vec![authorized(1), voided])
            .when(Command::Capture)
            .then_error(Error::Voided);
    }

    #[test]
    fn voiding_an_authorized_payment_drops_the_hold() {
        given::<Payment>(vec![authorized(1)])
            .when(Command::Void)
            .then(vec![Event::PaymentVoided {
                order_id: order_id(),
                amount_cents: amount(),
            }]);
    }

    #[test]
    fn voiding_after_capture_or_without_authorization_is_refused() {
        given::<Payment>(vec![authorized(1), captured()])
            .when(Command::Void)
            .then_error(Error::AlreadyCaptured);
        given::<Payment>(vec![])
            .when(Command::Void)
            .then_error(Error::NotAuthorized);
    }

    #[test]
    fn refunding_a_captured_payment_gives_it_back_once() {
        let refunded = Event::PaymentRefunded {
            order_id: order_id(),
            amount_cents: amount(),
        };
        given::<Payment>(vec![authorized(1), captured()])
            .when(Command::Refund)
            .then(vec![refunded.clone()]);
        given::<Payment>(vec![authorized(1), captured(), refunded])
            .when(Command::Refund)
            .then(vec![]);
    }

    #[test]
    fn refunding_without_capture_is_refused() {
        given::<Payment>(vec![authorized(1)])
            .when(Command::Refund)
            .then_error(Error::NotCaptured);
        assert_eq!(Error::NotCaptured.code(), "not_captured");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn command() -> impl Strategy<Value = Command> {
            let outcome = prop_oneof![
                Just(approved()),
                Just(GatewayOutcome::Declined),
                Just(GatewayOutcome::TransientError),
            ];
            prop_oneof![
                outcome.prop_map(authorize),
                Just(Command::Capture),
                Just(Command::Void),
                Just(Command::Refund),
            ]
        }

        proptest! {
            #[test]
            fn random_commands_never_capture_more_than_authorized_nor_refund_without_capture(
                commands in proptest::collection::vec(command(), 0..40)
            ) {
                let mut state = State::default();
                let mut history: Vec<Event> = vec![];
                for command in commands {
                    let Ok(events) = decide(&state, command) else { continue };
                    for event in events {
                        let seen = |t: &str| history.iter().any(|e| e.event_type() == t);
                        match &event {
                            Event::PaymentCaptured { .. } => {
                                prop_assert!(seen("PaymentAuthorized"));
                                prop_assert!(!seen("PaymentVoided") && !seen("PaymentCaptured"));
                            }
                            Event::PaymentRefunded { .. } => {
                                prop_assert!(seen("PaymentCaptured") && !seen("PaymentRefunded"));
                            }
                            Event::PaymentVoided { .. } => {
                                prop_assert!(seen("PaymentAuthorized"));
                                prop_assert!(!seen("PaymentCaptured") && !seen("PaymentVoided"));
                            }
                            Event::PaymentAuthorized { .. } | Event::PaymentDeclined { .. } => {
                                prop_assert!(!seen("PaymentAuthorized") && !seen("PaymentDeclined"));
                            }
                            Event::PaymentAttemptFailed { .. } => {}
                        }
                        state = evolve(state, &event);
                        history.push(event);
                    }
                    prop_assert!(state.captured <= state.authorized);
                    prop_assert!(state.refunded <= state.captured);
                    prop_assert!(state.attempts <= MAX_ATTEMPTS);
                }
            }
        }
    }
}
