//! The payments service: one payment per order (`payment-<order>`), through
//! the simulated card gateway ([`domain::gateway::simulate`]).

use domain::payment::{self, Command, Payment};
use domain::values::{Money, PaymentToken};
use service_runtime::api_error::ApiError;

use super::{request, request_with, unknown_command, Backend};
use crate::api::{invalid_value, CommandContext, CommandReply, Input};
use crate::openapi::{required, Access, CommandSpec, Kind};

/// The payments' commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "authorize-payment",
        summary: "Asks the gateway to hold the amount; records the authorization, the decline or the transient failure.",
        access: Access::Saga,
        id: "the order id",
        fields: &[
            required("order_id", Kind::Uuid, "the order paid for"),
            required("customer_id", Kind::Uuid, "who pays"),
            required("amount_cents", Kind::Integer, "how much, more than 0"),
            required("payment_token", Kind::Text, "tok_visa, tok_chargeDeclined, tok_processingError, …"),
        ],
    },
    CommandSpec {
        name: "capture-payment",
        summary: "Takes the authorized amount (at dispatch).",
        access: Access::Saga,
        id: "the order id",
        fields: &[required("order_id", Kind::Uuid, "the order")],
    },
    CommandSpec {
        name: "void-payment",
        summary: "Drops the authorization (cancellation before capture).",
        access: Access::Saga,
        id: "the order id",
        fields: &[required("order_id", Kind::Uuid, "the order")],
    },
    CommandSpec {
        name: "refund-payment",
        summary: "Gives the captured amount back (cancellation after capture).",
        access: Access::Saga,
        id: "the order id",
        fields: &[required("order_id", Kind::Uuid, "the order")],
    },
];

/// Handles one payments command.
pub async fn handle(
    backend: &Backend,
    command: &str,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    if !COMMANDS.iter().any(|spec| spec.name == command) {
        return Err(unknown_command(backend.name, command));
    }
    context.actor.require_system()?;
    let order_id = input.order_id()?;
    let stream = payment::stream_name(&order_id);
    let request = match command {
        "authorize-payment" => {
            let customer_id = input.customer_id()?;
            let amount = Money::parse("amount_cents", input.integer("amount_cents")?)
                .map_err(invalid_value)?;
            let token = input.parse("payment_token", PaymentToken::parse)?;
            // The gateway answers for the attempt after the ones recorded,
            // so the answer is taken against the state the command is decided on.
            request_with::<Payment>(&context, move |state| {
                Ok(Command::Authorize {
                    order_id,
                    customer_id,
                    amount,
                    outcome: domain::gateway::simulate(&token, state.attempts() + 1),
                    token: token.clone(),
                })
            })
        }
        "capture-payment" => request::<Payment>(Command::Capture, &context),
        "void-payment" => request::<Payment>(Command::Void, &context),
        _ => request::<Payment>(Command::Refund, &context),
    };
    Backend::run(&backend.payments, order_id.to_string(), stream, request).await
}
