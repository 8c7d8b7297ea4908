//! The shipping service: one shipment per confirmed order
//! (`shipment-<order>`). The shipping cost is computed when the order is
//! placed ([`domain::shipment::shipping_cost`]: free from 50.00, else 4.99
//! plus 0.50 per item beyond the third) and handed to `create-shipment`.

use domain::shipment::{self, Command, Shipment};
use domain::values::{Money, ShippingAddress};
use service_runtime::api_error::ApiError;

use super::{request, unknown_command, Backend};
use crate::api::{invalid_value, CommandContext, CommandReply, Input};
use crate::openapi::{required, Access, CommandSpec, Kind};

/// The shipping commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "dispatch-shipment",
        summary: "Hands the shipment to the carrier; the saga then captures the payment.",
        access: Access::Admin,
        id: "the order id",
        fields: &[required("order_id", Kind::Uuid, "the order")],
    },
    CommandSpec {
        name: "confirm-delivery",
        summary: "Records that the shipment arrived.",
        access: Access::Admin,
        id: "the order id",
        fields: &[required("order_id", Kind::Uuid, "the order")],
    },
    CommandSpec {
        name: "create-shipment",
        summary: "Creates the shipment of a confirmed order.",
        access: Access::Saga,
        id: "the order id",
        fields: &[
            required("order_id", Kind::Uuid, "the order"),
            required("address", Kind::Text, "where to, 1-500 characters"),
            required(
                "cost_cents",
                Kind::Integer,
                "what the customer pays for shipping",
            ),
        ],
    },
    CommandSpec {
        name: "cancel-shipment",
        summary: "Cancels the shipment before dispatch.",
        access: Access::Saga,
        id: "the order id",
        fields: &[required("order_id", Kind::Uuid, "the order")],
    },
];

/// Handles one shipping command.
pub async fn handle(
    backend: &Backend,
    command: &str,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    if !COMMANDS.iter().any(|spec| spec.name == command) {
        return Err(unknown_command(backend.name, command));
    }
    let order_id = input.order_id()?;
    let command = match command {
        "dispatch-shipment" => {
            context.actor.require_admin()?;
            Command::Dispatch
        }
        "confirm-delivery" => {
            context.actor.require_admin()?;
            Command::ConfirmDelivery
        }
        "create-shipment" => {
            context.actor.require_system()?;
            Command::Create {
                order_id,
                address: input.parse("address", ShippingAddress::parse)?,
                cost: Money::parse("cost_cents", input.integer("cost_cents")?)
                    .map_err(invalid_value)?,
            }
        }
        _ => {
            context.actor.require_system()?;
            Command::Cancel
        }
    };
    Backend::run(
        &backend.shipments,
        order_id.to_string(),
        shipment::stream_name(&order_id),
        request::<Shipment>(command, &context),
    )
    .await
}
