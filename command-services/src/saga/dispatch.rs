//! Sending the saga's commands to the services that own them, over HTTP.
//!
//! A command is sent until it is accepted (2xx) or definitively refused (a
//! 4xx other than 408 and 429): a refusal is a business answer the saga does
//! not wait on (its outcome, if any, arrives as an event). Everything else —
//! a service down, a 5xx, a 503 from a store outage, a timeout, an accepted
//! answer without its events — is retried with capped exponential backoff,
//! for as long as it takes, unless the saga is shutting down; then the
//! caller leaves the message unacknowledged. Each command asks for its
//! events in the answer (`Prefer: return=representation`): they are how the
//! saga learns what the command caused (docs/adr/0014).

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
    /// events it appended as the store recorded them (for a repeat, the
    /// first try's; none for a no-op).
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
                        // The saga learns what the command caused only from
                        // this answer (docs/adr/0014): one it cannot read is
                        // asked again, which the service answers as a repeat.
                        match response.json::<Answer>().await {
                            Ok(answer) => {
                                metrics::counter!("saga_commands_total", "command" => name, "outcome" => "accepted").increment(1);
                                return Ok(Delivered::Accepted {
                                    events: answer.events,
                                });
                            }
                            Err(error) => {
                                format!("{} with an unreadable answer: {error}", status.as_u16())
                            }
                        }
                    } else {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::routing::post;
    use domain::saga::{SagaCommand, Target, TargetCommand};
    use domain::values::OrderId;
    use messaging::Backoff;
    use serde_json::json;
    use service_runtime::shutdown::Shutdown;

    use super::{Delivered, Dispatcher, ServiceUrls};

    #[tokio::test]
    async fn an_accepted_answer_without_its_events_is_asked_again_until_it_has_them() {
        // A service that first answers 200 with a body the saga cannot use,
        // then with the events, as a repeat would.
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let app = axum::Router::new().route(
            "/commands/confirm-order",
            post(move |headers: axum::http::HeaderMap| {
                let counter = Arc::clone(&counter);
                async move {
                    // Not asked for the events: a refusal the test sees.
                    if headers
                        .get("prefer")
                        .is_none_or(|v| v != "return=representation")
                    {
                        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({})));
                    }
                    let body = match counter.fetch_add(1, Ordering::SeqCst) {
                        0 => json!({"id": "x"}),
                        _ => json!({"id": "x", "events": []}),
                    };
                    (axum::http::StatusCode::OK, axum::Json(body))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let urls = ServiceUrls {
            orders: url.clone(),
            payments: url.clone(),
            inventory: url.clone(),
            shipping: url,
        };
        let dispatcher = Dispatcher::new(
            urls,
            Backoff {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(20),
            },
        );
        let command = SagaCommand {
            target: Target::Orders,
            order_id: OrderId::from_uuid(uuid::Uuid::from_u128(1)),
            command: TargetCommand::Order(domain::order::Command::Confirm {
                at: chrono::Utc::now(),
            }),
            idempotency_key: "saga:test".to_owned(),
        };
        let delivered = dispatcher
            .send(&command, None, uuid::Uuid::nil(), &Shutdown::new())
            .await
            .unwrap();
        assert_eq!(delivered, Delivered::Accepted { events: Vec::new() });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        server.abort();
    }
}
