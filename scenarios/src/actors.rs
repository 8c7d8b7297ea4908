//! Who a step acts as: the admin, a named customer, or nobody.
//!
//! A customer is registered (`registerCustomer`) and logged in (`login`) the
//! first time a scenario run names them, once even when parallel steps name
//! them at the same moment. Their e-mail carries the run id, so a scenario
//! can run again against the same system.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::graphql::{string_literal, GraphQlClient, TransportError};

/// The actor name that means the admin account.
pub const ADMIN: &str = "admin";

/// Why an actor could not be logged in.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    /// The query API could not be reached.
    #[error("cannot sign in {actor:?}: {source}")]
    Transport {
        /// The actor.
        actor: String,
        /// What went wrong.
        source: TransportError,
    },
    /// `registerCustomer` or `login` answered with an error.
    #[error("cannot sign in {actor:?}: {operation} failed: {message}{hint}")]
    Refused {
        /// The actor.
        actor: String,
        /// `registerCustomer` or `login`.
        operation: &'static str,
        /// The GraphQL error(s).
        message: String,
        /// Advice, if any.
        hint: &'static str,
    },
    /// An actor name that cannot make an e-mail address.
    #[error("invalid actor name {actor:?}: use letters, digits, '-', '_' and '.'")]
    InvalidName {
        /// The actor.
        actor: String,
    },
}

/// The admin account's credentials.
#[derive(Clone, Debug)]
pub struct AdminCredentials {
    /// `SHOP_ADMIN_EMAIL`.
    pub email: String,
    /// `SHOP_ADMIN_PASSWORD`.
    pub password: String,
}

/// A signed-in actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The actor's name in the scenario.
    pub actor: String,
    /// The bearer token (none for the anonymous actor).
    pub token: Option<String>,
    /// The customer id (customers only).
    pub customer_id: Option<String>,
    /// The e-mail they signed in with (none for the anonymous actor).
    pub email: Option<String>,
}

/// The actors of one scenario run.
pub struct Actors {
    client: GraphQlClient,
    run_id: String,
    admin: AdminCredentials,
    sessions: Mutex<HashMap<String, Arc<OnceCell<Arc<Session>>>>>,
}

impl Actors {
    /// Actors of the run `run_id`, signing in through `client`.
    pub fn new(client: GraphQlClient, run_id: impl Into<String>, admin: AdminCredentials) -> Self {
        Self {
            client,
            run_id: run_id.into(),
            admin,
            sessions: Mutex::default(),
        }
    }

    /// The session of `actor` (`None`: anonymous), signing in on first use.
    pub async fn session(&self, actor: Option<&str>) -> Result<Arc<Session>, ActorError> {
        let Some(actor) = actor else {
            return Ok(Arc::new(Session {
                actor: "anonymous".to_owned(),
                token: None,
                customer_id: None,
                email: None,
            }));
        };
        let cell = {
            // A poisoned lock only means another step panicked; the map is still whole.
            let mut sessions = self
                .sessions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sessions.entry(actor.to_owned()).or_default().clone()
        };
        cell.get_or_try_init(|| async {
            if actor == ADMIN {
                self.sign_in_admin().await
            } else {
                self.sign_up_customer(actor).await
            }
            .map(Arc::new)
        })
        .await
        .cloned()
    }

    async fn sign_in_admin(&self) -> Result<Session, ActorError> {
        let token = self
            .login(
                ADMIN,
                &self.admin.email,
                &self.admin.password,
                " (set SHOP_ADMIN_EMAIL and SHOP_ADMIN_PASSWORD to the gateway's admin account)",
            )
            .await?;
        Ok(Session {
            actor: ADMIN.to_owned(),
            token: Some(token),
            customer_id: None,
            email: Some(self.admin.email.clone()),
        })
    }

    async fn sign_up_customer(&self, actor: &str) -> Result<Session, ActorError> {
        let valid = !actor.is_empty()
            && actor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(ActorError::InvalidName {
                actor: actor.to_owned(),
            });
        }
        let email = format!(
            "{}-{}@scenario.test",
            actor.to_ascii_lowercase(),
            self.run_id.to_ascii_lowercase()
        );
        let password = format!("scenario-{}", uuid::Uuid::new_v4().simple());
        let document = format!(
            "mutation {{ registerCustomer(input: {{email: {}, name: {}, password: {}}}) {{ id token }} }}",
            string_literal(&email),
            string_literal(actor),
            string_literal(&password),
        );
        let data = self.call(actor, "registerCustomer", &document, "").await?;
        let customer_id = data
            .pointer("/registerCustomer/id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let token = self.login(actor, &email, &password, "").await?;
        Ok(Session {
            actor: actor.to_owned(),
            token: Some(token),
            customer_id,
            email: Some(email),
        })
    }

    async fn login(
        &self,
        actor: &str,
        email: &str,
        password: &str,
        hint: &'static str,
    ) -> Result<String, ActorError> {
        let document = format!(
            "mutation {{ login(email: {}, password: {}) }}",
            string_literal(email),
            string_literal(password)
        );
        let data = self.call(actor, "login", &document, hint).await?;
        data.get("login")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ActorError::Refused {
                actor: actor.to_owned(),
                operation: "login",
                message: format!("no token in {data}"),
                hint,
            })
    }

    async fn call(
        &self,
        actor: &str,
        operation: &'static str,
        document: &str,
        hint: &'static str,
    ) -> Result<Value, ActorError> {
        let response = self
            .client
            .execute(document, &json!({}), None)
            .await
            .map_err(|source| ActorError::Transport {
                actor: actor.to_owned(),
                source,
            })?;
        if !response.errors.is_empty() {
            return Err(ActorError::Refused {
                actor: actor.to_owned(),
                operation,
                message: response
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                hint,
            });
        }
        Ok(response.data)
    }
}
