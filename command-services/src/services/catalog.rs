//! The catalog service: products (`product-<SKU>`).

use domain::product::{self, Command, Product};
use domain::values::{Category, Description, Price, ProductName, Sku};
use service_runtime::api_error::ApiError;

use super::{request, unknown_command, Backend};
use crate::api::{invalid_value, CommandContext, CommandReply, Input};
use crate::openapi::{required, Access, CommandSpec, Kind};

/// The catalog's commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "add-product",
        summary: "Adds a product to the catalog.",
        access: Access::Admin,
        id: "the SKU",
        fields: &[
            required(
                "sku",
                Kind::Text,
                "1-64 letters, digits, '_' or '-'; stored uppercase",
            ),
            required("name", Kind::Text, "1-200 characters"),
            required("description", Kind::Text, "up to 4000 characters"),
            required(
                "price_cents",
                Kind::Integer,
                "the unit price, 1 to 100000000",
            ),
            required("category", Kind::Text, "1-64 characters; stored lowercase"),
        ],
    },
    CommandSpec {
        name: "change-price",
        summary: "Changes a product's unit price.",
        access: Access::Admin,
        id: "the SKU",
        fields: &[
            required("sku", Kind::Text, "the product"),
            required("price_cents", Kind::Integer, "the new unit price"),
        ],
    },
    CommandSpec {
        name: "discontinue-product",
        summary: "Takes a product off sale for good.",
        access: Access::Admin,
        id: "the SKU",
        fields: &[required("sku", Kind::Text, "the product")],
    },
];

fn price(input: &Input) -> Result<Price, ApiError> {
    Price::parse(input.integer("price_cents")?).map_err(invalid_value)
}

/// Handles one catalog command.
pub async fn handle(
    backend: &Backend,
    command: &str,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    context.actor.require_admin()?;
    let sku = match command {
        "add-product" | "change-price" | "discontinue-product" => input.parse("sku", Sku::parse)?,
        _ => return Err(unknown_command(backend.name, command)),
    };
    let command = match command {
        "add-product" => Command::Add {
            sku: sku.clone(),
            name: input.parse("name", ProductName::parse)?,
            description: input.parse("description", Description::parse)?,
            price: price(&input)?,
            category: input.parse("category", Category::parse)?,
        },
        "change-price" => Command::ChangePrice {
            price: price(&input)?,
        },
        _ => Command::Discontinue,
    };
    let stream = product::stream_name(&sku);
    Backend::run(
        &backend.products,
        sku.as_str(),
        stream,
        request::<Product>(command, &context),
    )
    .await
}
