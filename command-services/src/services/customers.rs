//! The customers service: registration (`customer-<uuid>`), and the rule
//! that an email belongs to one customer only.
//!
//! That rule spans streams, so the service keeps an email index: it follows
//! the `customer` category in the store (from the position it has read up
//! to) and registrations are checked and written one at a time. The index is
//! rebuilt from the store after a restart. With several instances of the
//! service the check is per instance; one instance is what this build runs.

use std::collections::HashMap;

use domain::customer::{self, Command, Customer};
use domain::values::{CustomerId, CustomerName, Email};
use service_runtime::api_error::ApiError;
use uuid::Uuid;

use crate::event_log::EventLog;
use crate::repository::{CommandError, Refusal, RefusalKind};

use super::{request, unknown_command, Backend};
use crate::api::{CommandContext, CommandReply, Input};
use crate::openapi::{optional, required, Access, CommandSpec, Kind};

/// The customers' commands.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "register-customer",
    summary: "Registers a customer.",
    access: Access::Anyone,
    id: "the customer id",
    fields: &[
        optional(
            "customer_id",
            Kind::Uuid,
            "the new customer's id; derived from the Idempotency-Key, or random, when absent",
        ),
        required("email", Kind::Text, "an email address; stored lowercase"),
        required("name", Kind::Text, "1-200 characters"),
    ],
}];

/// Handles one customers command.
pub async fn handle(
    backend: &Backend,
    command: &str,
    context: CommandContext,
    input: Input,
) -> Result<CommandReply, ApiError> {
    if command != "register-customer" {
        return Err(unknown_command(backend.name, command));
    }
    let customer_id = match input.opt_text("customer_id")? {
        Some(_) => input.customer_id()?,
        None => CustomerId::from_uuid(match &context.key {
            Some(key) => key.derived_uuid("customer"),
            None => Uuid::new_v4(),
        }),
    };
    let email = input.parse("email", Email::parse)?;
    let command = Command::Register {
        customer_id,
        email: email.clone(),
        name: input.parse("name", CustomerName::parse)?,
    };
    // One registration at a time: check the index, then write.
    let mut index = backend.emails.lock().await;
    index.catch_up(backend.log.as_ref()).await?;
    if let Some(owner) = index.owner(&email) {
        if owner != customer_id {
            return Err(CommandError::Refused(Refusal {
                kind: RefusalKind::Rule,
                code: "email_taken".into(),
                message: format!("{email} is registered to another customer"),
            })
            .into());
        }
    }
    let reply = Backend::run(
        &backend.customers,
        customer_id.to_string(),
        customer::stream_name(&customer_id),
        request::<Customer>(command, &context),
    )
    .await?;
    index.claim(email, customer_id);
    Ok(reply)
}

/// Which customer each email belongs to, as far as the store has been read.
#[derive(Debug, Default)]
pub struct EmailIndex {
    owners: HashMap<Email, CustomerId>,
    next_position: u64,
}

impl EmailIndex {
    /// Reads the customer events appended since the last call.
    pub async fn catch_up(&mut self, log: &dyn EventLog) -> Result<(), CommandError> {
        const PAGE: usize = 1000;
        loop {
            let events = log
                .read_category(customer::STREAM_CATEGORY, self.next_position, PAGE)
                .await
                .map_err(|error| match error {
                    crate::event_log::LogError::Unavailable { reason } => {
                        CommandError::Unavailable(reason)
                    }
                    other => CommandError::Internal(other.to_string()),
                })?;
            for record in &events {
                self.next_position = record.position + 1;
                match crate::wire::decode::<Customer>(record) {
                    Ok(customer::Event::CustomerRegistered {
                        customer_id, email, ..
                    }) => {
                        self.owners.entry(email).or_insert(customer_id);
                    }
                    Err(error) => {
                        return Err(CommandError::Internal(error.to_string()));
                    }
                }
            }
            if events.len() < PAGE {
                return Ok(());
            }
        }
    }

    /// Who registered `email` first, if anyone.
    pub fn owner(&self, email: &Email) -> Option<CustomerId> {
        self.owners.get(email).copied()
    }

    /// Records a registration this instance just wrote.
    pub fn claim(&mut self, email: Email, customer_id: CustomerId) {
        self.owners.entry(email).or_insert(customer_id);
    }
}
