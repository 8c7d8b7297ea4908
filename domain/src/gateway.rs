//! The simulated payment gateway, as a pure function.
//!
//! Tokens follow the common test-card convention (see CONTRACT.md):
//! `tok_visa` is approved; `tok_chargeDeclined` is declined;
//! `tok_processingError` fails with a transient error on attempts 1 and 2
//! and is approved from attempt 3; any other token is declined. The payments
//! service asks it for attempt `payment::State::attempts() + 1` and puts the
//! answer into `payment::Command::Authorize`, so `decide` stays pure.

use serde::{Deserialize, Serialize};

use crate::values::PaymentToken;

/// Always approved.
pub const TOKEN_APPROVED: &str = "tok_visa";
/// Always declined.
pub const TOKEN_DECLINED: &str = "tok_chargeDeclined";
/// Transient errors on the first two attempts, then approved.
pub const TOKEN_PROCESSING_ERROR: &str = "tok_processingError";

/// How many attempts of [`TOKEN_PROCESSING_ERROR`] fail before it is approved.
pub const PROCESSING_ERROR_FAILURES: u32 = 2;

/// The gateway's answer to an authorization attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GatewayOutcome {
    /// The amount is held on the customer's card.
    Approved {
        /// The gateway's reference for the hold.
        authorization_id: String,
    },
    /// The card was declined; retrying will not help.
    Declined,
    /// The gateway failed; a retry may succeed.
    TransientError,
}

/// The simulated gateway's answer for `token` on attempt `attempt` (from 1).
pub fn simulate(token: &PaymentToken, attempt: u32) -> GatewayOutcome {
    let approved = || GatewayOutcome::Approved {
        authorization_id: format!("auth_{}_{attempt}", token.as_str()),
    };
    match token.as_str() {
        TOKEN_APPROVED => approved(),
        TOKEN_PROCESSING_ERROR if attempt <= PROCESSING_ERROR_FAILURES => {
            GatewayOutcome::TransientError
        }
        TOKEN_PROCESSING_ERROR => approved(),
        _ => GatewayOutcome::Declined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(raw: &str) -> PaymentToken {
        PaymentToken::parse(raw).unwrap()
    }

    #[test]
    fn tok_visa_is_approved_on_every_attempt() {
        for attempt in 1..=5 {
            assert!(matches!(
                simulate(&token("tok_visa"), attempt),
                GatewayOutcome::Approved { .. }
            ));
        }
    }

    #[test]
    fn tok_charge_declined_and_unknown_tokens_are_declined() {
        assert_eq!(
            simulate(&token("tok_chargeDeclined"), 1),
            GatewayOutcome::Declined
        );
        assert_eq!(
            simulate(&token("tok_whatever"), 1),
            GatewayOutcome::Declined
        );
    }

    #[test]
    fn tok_processing_error_fails_twice_then_is_approved() {
        let token = token("tok_processingError");
        assert_eq!(simulate(&token, 1), GatewayOutcome::TransientError);
        assert_eq!(simulate(&token, 2), GatewayOutcome::TransientError);
        assert_eq!(
            simulate(&token, 3),
            GatewayOutcome::Approved {
                authorization_id: "auth_tok_processingError_3".into()
            }
        );
    }
}
