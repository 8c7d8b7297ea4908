//! The mutations: each is forwarded to its command service with the caller
//! (`X-Actor`), the request's correlation id, and an idempotency key, and
//! answers `CommandResult { id, token }`.
//!
//! The idempotency key is the client's `Idempotency-Key` header joined with
//! the field's response key (`<key>:<alias or name>`), so a retried document
//! repeats each of its mutations exactly once even when it holds several;
//! without the header each mutation gets a fresh random key.

use async_graphql::{Context, InputObject, Object, ID};
use serde_json::json;
use uuid::Uuid;

use super::{arguments, gateway, request, types::CommandResult, RequestContext};
use crate::{
    auth::{check_password, Reservation},
    backend::{Actor, CommandContext, CommandService},
    error::GatewayError,
};

/// The mutation root.
#[derive(Debug, Default, Clone, Copy)]
pub struct MutationRoot;

/// A new customer account.
#[derive(InputObject)]
pub struct RegisterCustomerInput {
    /// E-mail, unique among accounts.
    pub email: String,
    /// Display name.
    pub name: String,
    /// 8 to 128 characters; stored only as an argon2 hash.
    #[graphql(secret)]
    pub password: String,
}

/// A new product.
#[derive(InputObject, Debug)]
pub struct AddProductInput {
    /// Its SKU.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its description.
    #[graphql(default)]
    pub description: String,
    /// Its price in cents.
    pub price_cents: i64,
    /// Its category.
    pub category: String,
}

/// Checking out the cart.
#[derive(InputObject, Debug)]
pub struct CheckoutInput {
    /// A payment token: `tok_visa` is approved, `tok_chargeDeclined` declined.
    pub payment_token: String,
    /// Where to ship.
    pub shipping_address: String,
}

/// One line of a direct order.
#[derive(InputObject, Debug)]
pub struct OrderLineInput {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: i32,
}

/// A direct order, without the cart.
#[derive(InputObject, Debug)]
pub struct PlaceOrderInput {
    /// What to order.
    pub lines: Vec<OrderLineInput>,
    /// A payment token.
    pub payment_token: String,
    /// Where to ship.
    pub shipping_address: String,
}

fn check_sku(field: &str, sku: &str) -> Result<String, GatewayError> {
    arguments::sku(field, sku)
}

fn check_quantity(field: &str, quantity: i32) -> Result<(), GatewayError> {
    if quantity < 1 {
        return Err(GatewayError::invalid(field, "a quantity is at least 1"));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), GatewayError> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(GatewayError::invalid(
            field,
            format!("{field} has 1 to {max} characters"),
        ));
    }
    Ok(())
}

fn check_price(field: &str, cents: i64) -> Result<(), GatewayError> {
    if cents < 0 {
        return Err(GatewayError::invalid(field, "a price is not negative"));
    }
    Ok(())
}

fn idempotency_key(ctx: &Context<'_>, request: &RequestContext) -> String {
    match &request.idempotency_key {
        Some(key) => {
            let field = ctx.field();
            format!("{key}:{}", field.alias().unwrap_or(field.name()))
        }
        None => Uuid::new_v4().to_string(),
    }
}

async fn forward(
    ctx: &Context<'_>,
    actor: Actor,
    service: CommandService,
    command: &str,
    body: serde_json::Value,
) -> Result<CommandResult, GatewayError> {
    let gateway = gateway(ctx)?;
    let request = request(ctx)?;
    let context = CommandContext {
        actor,
        idempotency_key: idempotency_key(ctx, request),
        correlation_id: request.correlation_id,
        causation_id: request.request_id,
    };
    let outcome = gateway
        .commands
        .send(service, command, body, &context)
        .await;
    let label = match &outcome {
        Ok(_) => "accepted",
        Err(error) => error.code(),
    };
    metrics::counter!("query_api_commands_total", "command" => command.to_owned(), "outcome" => label)
        .increment(1);
    let accepted = outcome?;
    tracing::debug!(command, id = %accepted.id, token = %accepted.token, "command accepted");
    Ok(CommandResult {
        id: ID(accepted.id),
        token: accepted.token,
    })
}

/// Forwards a catalog or stock command and drops the SKU from the catalog cache.
async fn forward_catalog(
    ctx: &Context<'_>,
    service: CommandService,
    command: &str,
    sku: &str,
    body: serde_json::Value,
) -> Result<CommandResult, GatewayError> {
    request(ctx)?.identity.require_admin()?;
    let result = forward(ctx, Actor::Admin, service, command, body).await;
    gateway(ctx)?.catalog_cache.invalidate(sku);
    result
}

#[Object]
impl MutationRoot {
    /// Creates a customer account; the id is the new customer id. Anyone may register.
    async fn register_customer(
        &self,
        ctx: &Context<'_>,
        input: RegisterCustomerInput,
    ) -> Result<CommandResult, GatewayError> {
        let email = arguments::email(&input.email)?;
        check_text("name", &input.name, 100)?;
        check_password(&input.password)?;
        let gateway = gateway(ctx)?;
        let request = request(ctx)?;
        let client_key = request
            .idempotency_key
            .as_ref()
            .map(|_| idempotency_key(ctx, request));
        let hash = gateway.auth.hash_password(input.password).await?;
        let customer_id = match gateway.auth.reserve(&email, hash, client_key.as_deref())? {
            Reservation::Completed { customer_id, token } => {
                return Ok(CommandResult {
                    id: ID(customer_id.to_string()),
                    token,
                })
            }
            Reservation::Reserved { customer_id } => customer_id,
        };
        let body = json!({
            "customer_id": customer_id,
            "email": email,
            "name": input.name.trim(),
        });
        let outcome = forward(
            ctx,
            Actor::Customer(customer_id),
            CommandService::Customers,
            "register-customer",
            body,
        )
        .await;
        match outcome {
            Ok(result) => {
                gateway
                    .auth
                    .confirm(&email, customer_id, &result.token)
                    .await?;
                Ok(result)
            }
            Err(error) => {
                gateway.auth.release(&email, customer_id);
                Err(error)
            }
        }
    }

    /// Checks e-mail and password and answers a bearer token for `Authorization: Bearer …`.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        #[graphql(secret)] password: String,
    ) -> Result<String, GatewayError> {
        gateway(ctx)?.auth.login(&email, password).await
    }

    /// Adds a product to the catalog (admin).
    async fn add_product(
        &self,
        ctx: &Context<'_>,
        input: AddProductInput,
    ) -> Result<CommandResult, GatewayError> {
        request(ctx)?.identity.require_admin()?;
        let sku = check_sku("sku", &input.sku)?;
        check_text("name", &input.name, 200)?;
        check_text("category", &input.category, 100)?;
        check_price("priceCents", input.price_cents)?;
        let body = json!({
            "sku": sku,
            "name": input.name,
            "description": input.description,
            "price_cents": input.price_cents,
            "category": input.category,
        });
        forward_catalog(ctx, CommandService::Catalog, "add-product", &sku, body).await
    }

    /// Changes a product's price (admin).
    async fn change_price(
        &self,
        ctx: &Context<'_>,
        sku: String,
        price_cents: i64,
    ) -> Result<CommandResult, GatewayError> {
        request(ctx)?.identity.require_admin()?;
        let sku = check_sku("sku", &sku)?;
        check_price("priceCents", price_cents)?;
        let body = json!({"sku": sku, "price_cents": price_cents});
        forward_catalog(ctx, CommandService::Catalog, "change-price", &sku, body).await
    }

    /// Takes a product off sale (admin).
    async fn discontinue_product(
        &self,
        ctx: &Context<'_>,
        sku: String,
    ) -> Result<CommandResult, GatewayError> {
        request(ctx)?.identity.require_admin()?;
        let sku = check_sku("sku", &sku)?;
        let body = json!({"sku": sku});
        forward_catalog(
            ctx,
            CommandService::Catalog,
            "discontinue-product",
            &sku,
            body,
        )
        .await
    }

    /// Adds stock of a SKU (admin).
    async fn restock(
        &self,
        ctx: &Context<'_>,
        sku: String,
        quantity: i32,
    ) -> Result<CommandResult, GatewayError> {
        request(ctx)?.identity.require_admin()?;
        let sku = check_sku("sku", &sku)?;
        check_quantity("quantity", quantity)?;
        let body = json!({"sku": sku, "quantity": quantity});
        forward_catalog(ctx, CommandService::Inventory, "restock", &sku, body).await
    }

    /// Puts units of a product in the signed-in customer's cart.
    async fn add_to_cart(
        &self,
        ctx: &Context<'_>,
        sku: String,
        #[graphql(default = 1)] quantity: i32,
    ) -> Result<CommandResult, GatewayError> {
        let customer = request(ctx)?.identity.require_customer()?;
        let sku = check_sku("sku", &sku)?;
        check_quantity("quantity", quantity)?;
        let body = json!({"customer_id": customer, "sku": sku, "quantity": quantity});
        forward(
            ctx,
            Actor::Customer(customer),
            CommandService::Carts,
            "add-to-cart",
            body,
        )
        .await
    }

    /// Takes a product out of the signed-in customer's cart.
    async fn remove_from_cart(
        &self,
        ctx: &Context<'_>,
        sku: String,
    ) -> Result<CommandResult, GatewayError> {
        let customer = request(ctx)?.identity.require_customer()?;
        let sku = check_sku("sku", &sku)?;
        let body = json!({"customer_id": customer, "sku": sku});
        forward(
            ctx,
            Actor::Customer(customer),
            CommandService::Carts,
            "remove-from-cart",
            body,
        )
        .await
    }

    /// Puts a product on the signed-in customer's wishlist.
    async fn add_to_wishlist(
        &self,
        ctx: &Context<'_>,
        sku: String,
    ) -> Result<CommandResult, GatewayError> {
        let customer = request(ctx)?.identity.require_customer()?;
        let sku = check_sku("sku", &sku)?;
        let body = json!({"customer_id": customer, "sku": sku});
        forward(
            ctx,
            Actor::Customer(customer),
            CommandService::Wishlists,
            "add-to-wishlist",
            body,
        )
        .await
    }

    /// Takes a product off the signed-in customer's wishlist.
    async fn remove_from_wishlist(
        &self,
        ctx: &Context<'_>,
        sku: String,
    ) -> Result<CommandResult, GatewayError> {
        let customer = request(ctx)?.identity.require_customer()?;
        let sku = check_sku("sku", &sku)?;
        let body = json!({"customer_id": customer, "sku": sku});
        forward(
            ctx,
            Actor::Customer(customer),
            CommandService::Wishlists,
            "remove-from-wishlist",
            body,
        )
        .await
    }

    /// Orders what is in the cart and empties it; the id is the new order's,
    /// and the token is the new order's (`order-<id>@0`), so that
    /// `order(id, consistencyToken)` waits for the order to be readable. (The
    /// carts service answers its cart's token; the cart is emptied after the
    /// order is placed.)
    async fn checkout(
        &self,
        ctx: &Context<'_>,
        input: CheckoutInput,
    ) -> Result<CommandResult, GatewayError> {
        let customer = request(ctx)?.identity.require_customer()?;
        check_text("paymentToken", &input.payment_token, 100)?;
        check_text("shippingAddress", &input.shipping_address, 500)?;
        let body = json!({
            "customer_id": customer,
            "payment_token": input.payment_token,
            "shipping_address": input.shipping_address,
        });
        let placed = forward(
            ctx,
            Actor::Customer(customer),
            CommandService::Carts,
            "checkout",
            body,
        )
        .await?;
        Ok(CommandResult {
            token: format!("order-{}@0", placed.id.as_str()),
            id: placed.id,
        })
    }

    /// Orders the given lines directly; the id is the new order's.
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: PlaceOrderInput,
    ) -> Result<CommandResult, GatewayError> {
        let customer = request(ctx)?.identity.require_customer()?;
        if input.lines.is_empty() || input.lines.len() > 100 {
            return Err(GatewayError::invalid(
                "lines",
                "an order has 1 to 100 lines",
            ));
        }
        let mut lines = Vec::with_capacity(input.lines.len());
        for line in &input.lines {
            let sku = check_sku("lines.sku", &line.sku)?;
            check_quantity("lines.quantity", line.quantity)?;
            lines.push(json!({"sku": sku, "quantity": line.quantity}));
        }
        check_text("paymentToken", &input.payment_token, 100)?;
        check_text("shippingAddress", &input.shipping_address, 500)?;
        let body = json!({
            "customer_id": customer,
            "lines": lines,
            "payment_token": input.payment_token,
            "shipping_address": input.shipping_address,
        });
        forward(
            ctx,
            Actor::Customer(customer),
            CommandService::Orders,
            "place-order",
            body,
        )
        .await
    }

    /// Cancels an order not yet shipped: the customer their own, the admin any.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<CommandResult, GatewayError> {
        let actor = request(ctx)?.identity.require_actor()?;
        let order_id = arguments::order_id("orderId", &order_id)?;
        let body = json!({"order_id": order_id});
        forward(ctx, actor, CommandService::Orders, "cancel-order", body).await
    }

    /// Hands a confirmed order to the carrier (admin).
    async fn dispatch_shipment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<CommandResult, GatewayError> {
        request(ctx)?.identity.require_admin()?;
        let order_id = arguments::order_id("orderId", &order_id)?;
        let body = json!({"order_id": order_id});
        forward(
            ctx,
            Actor::Admin,
            CommandService::Shipping,
            "dispatch-shipment",
            body,
        )
        .await
    }

    /// Records that a shipped order arrived (admin).
    async fn confirm_delivery(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
    ) -> Result<CommandResult, GatewayError> {
        request(ctx)?.identity.require_admin()?;
        let order_id = arguments::order_id("orderId", &order_id)?;
        let body = json!({"order_id": order_id});
        forward(
            ctx,
            Actor::Admin,
            CommandService::Shipping,
            "confirm-delivery",
            body,
        )
        .await
    }
}
