//! The carts service: one cart per customer (`cart-<customer>`), and
//! checkout, which places the order through the orders service and then
//! empties the cart.
//!
//! Checkout places the order first and records `CartCheckedOut` second, so
//! a refused order (a discontinued product) leaves the cart as it was. With
//! an `Idempotency-Key`, both steps derive their keys from it: a retry after
//! a failure between them places nothing twice and completes the checkout.

use std::time::Duration;

use domain::cart::{self, Cart, Command};
use domain::values::{CustomerId, OrderId, PaymentToken, Quantity, ShippingAddress, Sku};
use serde_json::json;
use service_runtime::api_error::ApiError;
use uuid::Uuid;

use super::{request, unknown_command, Backend};
use crate::api::{headers, invalid_value, CommandContext, CommandReply, Input};
use crate::idempotency::IdempotencyKey;
use crate::openapi::{required, Access, CommandSpec, Kind};
use crate::repository::{CommandError, Refusal};

/// The carts' commands.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "add-to-cart",
        summary: "Adds units of a product to a customer's cart, at its current price.",
        access: Access::Customer,
        id: "the customer id",
        fields: &[
            required("customer_id", Kind::Uuid, "whose cart"),
            required("sku", Kind::Text, "the product"),
            required("quantity", Kind::Integer, "1 to 1000000 units"),
        ],
    },
    CommandSpec {
        name: "remove-from-cart",
        summary: "Removes a product's line from a customer's cart.",
        access: Access::Customer,
        id: "the customer id",
        fields: &[
            required("customer_id", Kind::Uuid, "whose cart"),
            required("sku", Kind::Text, "the product"),
        ],
    },
    CommandSpec {
        name: "checkout",
        summary: "Places an order with the cart's lines and empties the cart.",
        access: Access::Customer,
        id: "the order id",
        fields: &[
            required("customer_id", Kind::Uuid, "whose cart"),
            required(
                "payment_token",
                Kind::Text,
                "tok_visa, tok_chargeDeclined, tok_processingError, …",
            ),
            required("shipping_address", Kind::Text, "1-500 characters"),
        ],
    },
];

/// Handles one carts command.
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
    if context.actor.is_other_customer(customer_id) {
        return Err(
            CommandError::Refused(Refusal::not_found("cart_not_found", "no such cart")).into(),
        );
    }
    let stream = cart::stream_name(&customer_id);
    let command = match command {
        "add-to-cart" => {
            let sku = input.parse("sku", Sku::parse)?;
            let quantity = Quantity::parse(input.integer("quantity")?).map_err(invalid_value)?;
            let (unit_price, discontinued) = backend.product_facts(&sku).await?;
            Command::AddItem {
                customer_id,
                sku,
                quantity,
                unit_price,
                discontinued,
            }
        }
        "remove-from-cart" => Command::RemoveItem {
            customer_id,
            sku: input.parse("sku", Sku::parse)?,
        },
        _ => return checkout(backend, context, input, customer_id, stream).await,
    };
    Backend::run(
        &backend.carts,
        customer_id.to_string(),
        stream,
        request::<Cart>(command, &context),
    )
    .await
}

async fn checkout(
    backend: &Backend,
    context: CommandContext,
    input: Input,
    customer_id: CustomerId,
    stream: String,
) -> Result<CommandReply, ApiError> {
    // Checked here so that a bad field is refused before anything happens.
    let payment_token = input.parse("payment_token", PaymentToken::parse)?;
    let shipping_address = input.parse("shipping_address", ShippingAddress::parse)?;
    let order_id = OrderId::from_uuid(match &context.key {
        Some(key) => key.derived_uuid("checkout-order"),
        None => Uuid::new_v4(),
    });
    let cart = backend.carts.load(&stream).await?;
    if cart.state.lines.is_empty() {
        // Either a retry of a checkout that already emptied the cart (the
        // repository finds it by its key and answers as the first time), or
        // a checkout of an empty cart, which the cart refuses.
        let outcome = backend
            .carts
            .execute(
                stream,
                request::<Cart>(checkout_command(customer_id, order_id), &context),
            )
            .await?;
        return Ok(CommandReply::new(order_id.to_string(), outcome));
    }
    let lines: Vec<serde_json::Value> = cart
        .state
        .lines
        .values()
        .map(|line| json!({"sku": line.sku.as_str(), "quantity": line.quantity.get()}))
        .collect();
    let body = json!({
        "order_id": order_id.to_string(),
        "customer_id": customer_id.to_string(),
        "lines": lines,
        "payment_token": payment_token.as_str(),
        "shipping_address": shipping_address.as_str(),
    });
    backend
        .orders_client
        .place_order(&body, &context, context.derived_key("place-order"))
        .await?;
    let outcome = backend
        .carts
        .execute(
            stream,
            request::<Cart>(checkout_command(customer_id, order_id), &context),
        )
        .await?;
    Ok(CommandReply::new(order_id.to_string(), outcome))
}

fn checkout_command(customer_id: CustomerId, order_id: OrderId) -> Command {
    Command::CheckOut {
        customer_id,
        order_id,
    }
}

/// Calls the orders service's `place-order`.
#[derive(Clone, Debug)]
pub struct OrdersClient {
    http: reqwest::Client,
    url: String,
}

impl OrdersClient {
    /// A client of the orders service at `base_url`.
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            http,
            url: format!("{}/commands/place-order", base_url.trim_end_matches('/')),
        }
    }

    /// Places an order; the orders service's refusal is passed on as it is.
    pub async fn place_order(
        &self,
        body: &serde_json::Value,
        context: &CommandContext,
        key: Option<IdempotencyKey>,
    ) -> Result<CommandReply, ApiError> {
        let mut request = self.http.post(&self.url).json(body);
        if let Some(key) = key {
            request = request.header(headers::IDEMPOTENCY_KEY, key.as_str());
        }
        if let Some(actor) = context.actor.label() {
            request = request.header(headers::ACTOR, actor);
        }
        if let Some(id) = context.metadata.correlation_id {
            request = request.header(headers::CORRELATION_ID, id.to_string());
        }
        if let Some(id) = context.metadata.causation_id {
            request = request.header(headers::CAUSATION_ID, id.to_string());
        }
        let response = request.send().await.map_err(|error| {
            tracing::warn!(%error, "the orders service is unreachable");
            ApiError::unavailable(
                "the orders service is unreachable; retry with the same Idempotency-Key",
            )
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|error| {
            tracing::warn!(%error, "the orders service's answer was cut off");
            ApiError::unavailable("the orders service's answer was cut off")
        })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(ApiError::internal);
        }
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let mut error = ApiError::new(
            status,
            body["error"].as_str().unwrap_or("orders_error"),
            body["message"]
                .as_str()
                .unwrap_or("the orders service refused the order"),
        );
        if let Some(field) = body.get("field") {
            error = error.with("field", field.clone());
        }
        Err(error)
    }
}
