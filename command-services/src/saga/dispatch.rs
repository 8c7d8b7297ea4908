//! Sending the saga's commands to the services that own them, over HTTP.
//!
//! A command is sent until it is accepted (2xx) or definitively refused (a
//! 4xx other than 408 and 429): a refusal is a business answer the saga does
//! not wait on (its outcome, if any, arrives as an event). Everything else —
//! a service down, a 5xx, a 503 from a store outage, a timeout — is retried
//! with capped exponential backoff, for as long as it takes, unless the saga
//! is shutting down; then the caller leaves the message unacknowledged.

use std::time::Duration;

use domain::envelope::RecordedEvent;
use domain::saga::{SagaCommand, Target, TargetCommand};
use domain::{order, payment, shipment, stock};
use messaging::Backoff;
use serde_json::{json, Value};
use service_runtime::shutdown::Shutdown;
use uuid::Uuid;

use crate::api::headers;

/// Where each target service answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUrls {
    /// The orders service.
    pub orders: String,
    /// The payments service.
    pub payments: String,
    /// The inventory service.
    pub inventory: String,
    /// The shipping service.
    pub shipping: String,
}

impl ServiceUrls {
    fn base(&self, target: Target) -> &str {
        match target {
            Target::Orders => &self.orders,
            Target::Payments => &self.payments,
            Target::Inventory => &self.inventory,
            Target::Shipping => &self.shipping,
        }
    }
}

/// How a sent command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// The service accepted it (or it was an idempotent repeat), with the
    /// events it appended as the store recorded them (none for a repeat or
    /// a no-op, or from a service that does not return them).
    Accepted {
        /// The command's events, in order.
        events: Vec<RecordedEvent>,
    },
    /// The service refused it for good, with this status and code.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error code.
        code: String,
    },
}

/// The saga is shutting down; the command may or may not have been sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the saga is shutting down")]
pub struct ShuttingDown;

/// The command's name and JSON body on the owning service.
pub fn http_form(command: &SagaCommand) -> (&'static str, Value) {
    let order_id = command.order_id.to_string();
    match &command.command {
        TargetCommand::Stock(stock::Command::ReserveStock { sku, quantity, .. }) => (
            "reserve-stock",
            json!({"sku": sku.as_str(), "order_id": order_id, "quantity": quantity.get()}),
        ),
        TargetCommand::Stock(stock::Command::ReleaseStock { sku, .. }) => (
            "release-stock",
            json!({"sku": sku.as_str(), "order_id": order_id}),
        ),
        TargetCommand::Stock(stock::Command::CommitReservation { sku, .. }) => (
            "commit-reservation",
            json!({"sku": sku.as_str(), "order_id": order_id}),
        ),
        TargetCommand::Stock(stock::Command::Restock { sku, quantity }) => (
            "restock",
            json!({"sku": sku.as_str(), "quantity": quantity.get()}),
        ),
        TargetCommand::AuthorizePayment {
            customer_id,
            amount,
            token,
            ..
        }
        | TargetCommand::Payment(payment::Command::Authorize {
            customer_id,
            amount,
            token,
            ..
        }) => (
            "authorize-payment",
            json!({
                "order_id": order_id,
                "customer_id": customer_id.to_string(),
                "amount_cents": amount.cents(),
                "payment_token": token.as_str(),
            }),
        ),
        TargetCommand::Payment(payment::Command::Capture) => {
            ("capture-payment", json!({"order_id": order_id}))
        }
        TargetCommand::Payment(payment::Command::Void) => {
            ("void-payment", json!({"order_id": order_id}))
        }
        TargetCommand::Payment(payment::Command::Refund) => {
            ("refund-payment", json!({"order_id": order_id}))
        }
        TargetCommand::Order(order::Command::Confirm { at }) => (
            "confirm-order",
            json!({"order_id": order_id, "at": at.to_rfc3339()}),
        ),
        TargetCommand::Order(order::Command::MarkShipped { at }) => (
            "mark-shipped",
            json!({"order_id": order_id, "at": at.to_rfc3339()}),
        ),
        TargetCommand::Order(order::Command::MarkDelivered { at }) => (
            "mark-delivered",
            json!({"order_id": order_id, "at": at.to_rfc3339()}),
        ),
        TargetCommand::Order(order::Command::Cancel { reason, at }) => (
            "cancel-order",
            json!({"order_id": order_id, "reason": reason.as_str(), "at": at.to_rfc3339()}),
        ),
        TargetCommand::Order(order::Command::Place {
            customer_id,
            lines,
            shipping_address,
            payment_token,
            ..
        }) => (
            "place-order",
            json!({
                "order_id": order_id,
                "customer_id": customer_id.to_string(),
                "lines": lines.iter().map(|line| json!({"sku": line.sku.as_str(), "quantity": line.quantity.get()})).collect::<Vec<_>>(),
                "payment_token": payment_token.as_str(),
                "shipping_address": shipping_address.as_str(),
            }),
        ),
        TargetCommand::Shipment(shipment::Command::Create { address, cost, .. }) => (
            "create-shipment",
            json!({"order_id": order_id, "address": address.as_str(), "cost_cents": cost.cents()}),
        ),
        TargetCommand::Shipment(shipment::Command::Cancel) => {
            ("cancel-shipment", json!({"order_id": order_id}))
        }
        TargetCommand::Shipment(shipment::Command::Dispatch) => {
            ("dispatch-shipment", json!({"order_id": order_id}))
        }
        TargetCommand::Shipment(shipment::Command::ConfirmDelivery) => {
            ("confirm-delivery", json!({"order_id": order_id}))
        }
    }
}

/// The part of an accepted command's answer the saga reads.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    events: Vec<RecordedEvent>,
}

/// Sends saga commands with retries.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    http: reqwest::Client,
    urls: ServiceUrls,
    backoff: Backoff,
}

impl Dispatcher {
    /// A dispatcher to `urls`.
    pub fn new(urls: ServiceUrls, backoff: Backoff) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Self {
            http,
            urls,
            backoff,
        }
    }

    /// Sends `command` until it is accepted or refused for good.
    pub async fn send(
        &self,
        command: &SagaCommand,
        correlation_id: Option<Uuid>,
        causation_id: Uuid,
        shutdown: &Shutdown,
    ) -> Result<Delivered, ShuttingDown> {
        let (name, body) = http_form(command);
        let url = format!(
            "{}/commands/{name}",
            self.urls.base(command.target).trim_end_matches('/')
        );
        let mut delays = self.backoff.delays();
        loop {
            if shutdown.is_triggered() {
                return Err(ShuttingDown);
            }
            let mut request = self
                .http
                .post(&url)
                .header(headers::IDEMPOTENCY_KEY, &command.idempotency_key)
                .header(headers::CAUSATION_ID, causation_id.to_string())
                .header(headers::PREFER, crate::api::RETURN_REPRESENTATION)
                .json(&body);
            if let Some(id) = correlation_id {
                request = request.header(headers::CORRELATION_ID, id.to_string());
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        metrics::counter!("saga_commands_total", "command" => name, "outcome" => "accepted").increment(1);
                        // The events are a shortcut: an answer without them
                        // (or unreadable) only means waiting for the broker.
                        let events = response
                            .json::<Answer>()
                            .await
                            .map(|answer| answer.events)
                            .unwrap_or_default();
                        return Ok(Delivered::Accepted { events });
                    }
                    let retryable = status.is_server_error()
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    let text = response.text().await.unwrap_or_default();
                    let code = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|body| body["error"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    if !retryable {
                        tracing::warn!(
                            command = name,
                            order_id = %command.order_id,
                            status = status.as_u16(),
                            code,
                            "a saga command was refused"
                        );
                        metrics::counter!("saga_commands_total", "command" => name, "outcome" => "refused").increment(1);
                        return Ok(Delivered::Refused {
                            status: status.as_u16(),
                            code,
                        });
                    }
                    format!("{} {code}", status.as_u16())
                }
                Err(error) => error.to_string(),
            };
            metrics::counter!("saga_command_retries_total", "command" => name).increment(1);
            let delay = delays.next().unwrap_or(self.backoff.max);
            tracing::warn!(command = name, order_id = %command.order_id, %failure, ?delay, "a saga command failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait() => return Err(ShuttingDown),
            }
        }
    }
}
