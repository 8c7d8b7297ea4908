//! The wishlists service: one wishlist per customer (`wishlist-<customer>`).

use domain::values::Sku;
use domain::wishlist::{self, Command, Wishlist};
use service_runtime::api_error::ApiError;

use super::{request, unknown_command, Backend};
use crate::api::{CommandContext, CommandReply, Input};
use crate::openapi::{required, Access, CommandSpec, Kind};
use crate::repository::{CommandError, Refusal};

/// The wishlists' commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "add-to-wishlist",
        summary: "Adds a product to a customer's wishlist.",
        access: Access::Customer,
        id: "the customer id",
        fields: &[
            required("customer_id", Kind::Uuid, "whose wishlist"),
            required("sku", Kind::Text, "the product"),
        ],
    },
    CommandSpec {
        name: "remove-from-wishlist",
        summary: "Removes a product from a customer's wishlist.",
        access: Access::Customer,
        id: "the customer id",
        fields: &[
            required("customer_id", Kind::Uuid, "whose wishlist"),
            required("sku", Kind::Text, "the product"),
        ],
    },
];

/// Handles one wishlist command.
pub async fn handle(
    backend: &Backend,
    command: &str,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    if !COMMANDS.iter().any(|spec| spec.name == command) {
        return Err(unknown_command(backend.name, command));
    }
    let customer_id = input.customer_id()?;
    let sku = input.parse("sku", Sku::parse)?;
    if context.actor.is_other_customer(customer_id) {
        return Err(CommandError::Refused(Refusal::not_found(
            "wishlist_not_found",
            "no such wishlist",
        ))
        .into());
    }
    let command = if command == "add-to-wishlist" {
        // Only products that exist can be wished for.
        backend.product_facts(&sku).await?;
        Command::Add { customer_id, sku }
    } else {
        Command::Remove { customer_id, sku }
    };
    Backend::run(
        &backend.wishlists,
        customer_id.to_string(),
        wishlist::stream_name(&customer_id),
        request::<Wishlist>(command, &context),
    )
    .await
}
