//! The orders service: placing and cancelling orders (`order-<uuid>`), and
//! the status changes the fulfillment saga asks for.

use domain::order::{self, CancellationReason, Command, Order, PlaceLine};
use domain::values::{CustomerId, OrderId, PaymentToken, Quantity, ShippingAddress, Sku};
use futures::future::try_join_all;
use service_runtime::api_error::ApiError;
use uuid::Uuid;

use super::{at_or_now, request, request_with, unknown_command, Backend};
use crate::api::{invalid, Actor, CommandContext, CommandReply, Input};
use crate::openapi::{optional, required, Access, CommandSpec, Kind};
use crate::repository::Refusal;

/// The orders' commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "place-order",
        summary: "Places an order at the products' current prices; the saga then fulfils it.",
        access: Access::Customer,
        id: "the order id",
        fields: &[
            optional("order_id", Kind::Uuid, "the new order's id; derived from the Idempotency-Key, or random, when absent"),
            required("customer_id", Kind::Uuid, "who orders"),
            required("lines", Kind::Lines, "1 to 100 lines with distinct SKUs"),
            required("payment_token", Kind::Text, "tok_visa, tok_chargeDeclined, tok_processingError, …"),
            required("shipping_address", Kind::Text, "1-500 characters"),
        ],
    },
    CommandSpec {
        name: "cancel-order",
        summary: "Cancels an order before it ships; a customer may cancel only their own.",
        access: Access::Customer,
        id: "the order id",
        fields: &[
            required("order_id", Kind::Uuid, "the order"),
            optional("reason", Kind::Text, "OUT_OF_STOCK, PAYMENT_DECLINED or CUSTOMER_REQUEST (the default, and the only one a customer may give)"),
            optional("at", Kind::Time, "when (the saga passes its trigger's time)"),
        ],
    },
    CommandSpec {
        name: "confirm-order",
        summary: "Confirms an order: stock reserved, payment authorized.",
        access: Access::Saga,
        id: "the order id",
        fields: &[
            required("order_id", Kind::Uuid, "the order"),
            optional("at", Kind::Time, "when"),
        ],
    },
    CommandSpec {
        name: "mark-shipped",
        summary: "Marks an order shipped.",
        access: Access::Saga,
        id: "the order id",
        fields: &[
            required("order_id", Kind::Uuid, "the order"),
            optional("at", Kind::Time, "when"),
        ],
    },
    CommandSpec {
        name: "mark-delivered",
        summary: "Marks an order delivered.",
        access: Access::Saga,
        id: "the order id",
        fields: &[
            required("order_id", Kind::Uuid, "the order"),
            optional("at", Kind::Time, "when"),
        ],
    },
];

/// Handles one orders command.
pub async fn handle(
    backend: &Backend,
    command: &str,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    match command {
        "place-order" => place_order(backend, context, input).await,
        "cancel-order" => cancel_order(backend, context, input).await,
        "confirm-order" | "mark-shipped" | "mark-delivered" => {
            context.actor.require_system()?;
            let order_id = input.order_id()?;
            let at = at_or_now(&input)?;
            let command = match command {
                "confirm-order" => Command::Confirm { at },
                "mark-shipped" => Command::MarkShipped { at },
                _ => Command::MarkDelivered { at },
            };
            Backend::run(
                &backend.orders,
                order_id.to_string(),
                order::stream_name(&order_id),
                request::<Order>(command, &context),
            )
            .await
        }
        _ => Err(unknown_command(backend.name, command)),
    }
}

/// A requested line, before the product facts are looked up.
struct LineInput {
    sku: Sku,
    quantity: Quantity,
}

fn lines(input: &Input) -> Result<Vec<LineInput>, ApiError> {
    let items = input.objects("lines")?;
    if items.is_empty() {
        return Err(invalid(
            "lines",
            "invalid_input",
            "an order needs at least one line",
        ));
    }
    if items.len() > order::MAX_LINES {
        return Err(invalid(
            "lines",
            "invalid_input",
            format!("an order has at most {} lines", order::MAX_LINES),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let sku = item
                .parse("sku", Sku::parse)
                .map_err(|e| rename(e, index, "sku"))?;
            let quantity = item
                .integer("quantity")
                .and_then(|raw| {
                    Quantity::parse(raw).map_err(|e| invalid("quantity", e.code(), e.to_string()))
                })
                .map_err(|e| rename(e, index, "quantity"))?;
            Ok(LineInput { sku, quantity })
        })
        .collect()
}

/// Names a line's field in an error: `lines[2].sku`.
fn rename(mut error: ApiError, index: usize, field: &str) -> ApiError {
    error
        .extra
        .insert("field".into(), format!("lines[{index}].{field}").into());
    error
}

async fn place_order(
    backend: &Backend,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    let order_id = match input.opt_text("order_id")? {
        Some(_) => input.order_id()?,
        None => OrderId::from_uuid(match &context.key {
            Some(key) => key.derived_uuid("order"),
            None => Uuid::new_v4(),
        }),
    };
    let customer_id: CustomerId = input.customer_id()?;
    if context.actor.is_other_customer(customer_id) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "a customer places orders for themselves only",
        ));
    }
    let requested = lines(&input)?;
    let payment_token = input.parse("payment_token", PaymentToken::parse)?;
    let shipping_address = input.parse("shipping_address", ShippingAddress::parse)?;
    let facts = try_join_all(
        requested
            .iter()
            .map(|line| backend.product_facts(&line.sku)),
    )
    .await?;
    let lines = requested
        .into_iter()
        .zip(facts)
        .map(|(line, (unit_price, discontinued))| PlaceLine {
            sku: line.sku,
            quantity: line.quantity,
            unit_price,
            discontinued,
        })
        .collect();
    let command = Command::Place {
        order_id,
        customer_id,
        lines,
        shipping_address,
        payment_token,
        placed_at: chrono::Utc::now(),
    };
    Backend::run(
        &backend.orders,
        order_id.to_string(),
        order::stream_name(&order_id),
        request::<Order>(command, &context),
    )
    .await
}

fn reason(raw: &str) -> Option<CancellationReason> {
    [
        CancellationReason::OutOfStock,
        CancellationReason::PaymentDeclined,
        CancellationReason::CustomerRequest,
    ]
    .into_iter()
    .find(|reason| reason.as_str() == raw)
}

async fn cancel_order(
    backend: &Backend,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    let order_id = input.order_id()?;
    let reason = match input.opt_text("reason")? {
        None => CancellationReason::CustomerRequest,
        Some(raw) => reason(raw).ok_or_else(|| {
            invalid(
                "reason",
                "invalid_input",
                "reason must be OUT_OF_STOCK, PAYMENT_DECLINED or CUSTOMER_REQUEST",
            )
        })?,
    };
    if matches!(context.actor, Actor::Customer(_)) && reason != CancellationReason::CustomerRequest
    {
        return Err(invalid(
            "reason",
            "invalid_input",
            "a customer cancels with CUSTOMER_REQUEST only",
        ));
    }
    let at = at_or_now(&input)?;
    let actor = context.actor;
    let request = request_with::<Order>(&context, move |state| {
        // Someone else's order does not exist, as far as a customer can tell.
        if let (Actor::Customer(me), Some(order)) = (actor, &state.order) {
            if order.customer_id != me {
                return Err(Refusal::not_found("order_not_found", "no such order"));
            }
        }
        Ok(Command::Cancel { reason, at })
    });
    Backend::run(
        &backend.orders,
        order_id.to_string(),
        order::stream_name(&order_id),
        request,
    )
    .await
}
