//! The inventory service: stock per SKU (`stock-<SKU>`).

use domain::stock::{self, Command, Stock};
use domain::values::{Quantity, Sku};
use service_runtime::api_error::ApiError;

use super::{request, unknown_command, Backend};
use crate::api::{invalid_value, CommandContext, CommandReply, Input};
use crate::openapi::{required, Access, CommandSpec, Kind};

/// The inventory's commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "restock",
        summary: "Adds units of a SKU.",
        access: Access::Admin,
        id: "the SKU",
        fields: &[
            required("sku", Kind::Text, "the SKU"),
            required("quantity", Kind::Integer, "1 to 1000000 units"),
        ],
    },
    CommandSpec {
        name: "reserve-stock",
        summary: "Holds units for an order; records a rejection when short.",
        access: Access::Saga,
        id: "the SKU",
        fields: &[
            required("sku", Kind::Text, "the SKU"),
            required("order_id", Kind::Uuid, "the order"),
            required("quantity", Kind::Integer, "1 to 1000000 units"),
        ],
    },
    CommandSpec {
        name: "release-stock",
        summary: "Returns an order's reserved units.",
        access: Access::Saga,
        id: "the SKU",
        fields: &[
            required("sku", Kind::Text, "the SKU"),
            required("order_id", Kind::Uuid, "the order"),
        ],
    },
    CommandSpec {
        name: "commit-reservation",
        summary: "At dispatch, turns an order's reserved units into shipped ones.",
        access: Access::Saga,
        id: "the SKU",
        fields: &[
            required("sku", Kind::Text, "the SKU"),
            required("order_id", Kind::Uuid, "the order"),
        ],
    },
];

fn quantity(input: &Input) -> Result<Quantity, ApiError> {
    Quantity::parse(input.integer("quantity")?).map_err(invalid_value)
}

/// Handles one inventory command.
pub async fn handle(
    backend: &Backend,
    command: &str,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    if !COMMANDS.iter().any(|spec| spec.name == command) {
        return Err(unknown_command(backend.name, command));
    }
    let sku = input.parse("sku", Sku::parse)?;
    let command = match command {
        "restock" => {
            context.actor.require_admin()?;
            Command::Restock {
                sku: sku.clone(),
                quantity: quantity(&input)?,
            }
        }
        "reserve-stock" => {
            context.actor.require_system()?;
            Command::ReserveStock {
                sku: sku.clone(),
                order_id: input.order_id()?,
                quantity: quantity(&input)?,
            }
        }
        "release-stock" => {
            context.actor.require_system()?;
            Command::ReleaseStock {
                sku: sku.clone(),
                order_id: input.order_id()?,
            }
        }
        _ => {
            context.actor.require_system()?;
            Command::CommitReservation {
                sku: sku.clone(),
                order_id: input.order_id()?,
            }
        }
    };
    Backend::run(
        &backend.stock,
        sku.as_str(),
        stock::stream_name(&sku),
        request::<Stock>(command, &context),
    )
    .await
}
