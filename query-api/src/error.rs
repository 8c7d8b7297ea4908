//! The gateway's errors and their GraphQL form: every error a client sees
//! carries `extensions.code`, one of `UNAUTHENTICATED`, `FORBIDDEN`,
//! `NOT_FOUND`, `INVALID_INPUT`, `CONFLICT`, `UNAVAILABLE`, `TIMEOUT` (and
//! `INTERNAL` for the gateway's own faults, whose details go to the log only).

use async_graphql::ErrorExtensions;

/// What can go wrong while answering a GraphQL request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// No valid bearer token where one is needed, or wrong credentials.
    #[error("{message}")]
    Unauthenticated {
        /// Why.
        message: String,
    },
    /// Authenticated, but not allowed to do this.
    #[error("{message}")]
    Forbidden {
        /// Why.
        message: String,
    },
    /// The thing does not exist, or belongs to another customer.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `order 5d1…`.
        what: String,
    },
    /// An argument is invalid.
    #[error("{message}")]
    InvalidInput {
        /// The offending argument or input field, if known.
        field: Option<String>,
        /// What is wrong with it.
        message: String,
    },
    /// A business rule or a uniqueness check refused the request.
    #[error("{message}")]
    Conflict {
        /// The rule, e.g. `out_of_stock`, `email_taken`.
        reason: String,
        /// A sentence for people.
        message: String,
    },
    /// A backend service cannot be reached, failed, or its circuit is open.
    #[error("{service} is unavailable: {message}")]
    Unavailable {
        /// Which service.
        service: String,
        /// Why.
        message: String,
    },
    /// A backend call, or a consistency wait, ran out of time.
    #[error("{message}")]
    Timeout {
        /// Which service was waited on.
        service: String,
        /// What did not happen in time.
        message: String,
    },
    /// A fault in the gateway itself; the detail is logged, never shown.
    #[error("internal error")]
    Internal {
        /// The detail, for the log.
        detail: String,
    },
}

impl GatewayError {
    /// The stable code in `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated { .. } => "UNAUTHENTICATED",
            Self::Forbidden { .. } => "FORBIDDEN",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::InvalidInput { .. } => "INVALID_INPUT",
            Self::Conflict { .. } => "CONFLICT",
            Self::Unavailable { .. } => "UNAVAILABLE",
            Self::Timeout { .. } => "TIMEOUT",
            Self::Internal { .. } => "INTERNAL",
        }
    }

    /// `UNAUTHENTICATED` with a message.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            message: message.into(),
        }
    }

    /// `FORBIDDEN` with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden {
            message: message.into(),
        }
    }

    /// `NOT_FOUND` for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// `INVALID_INPUT` on `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// `INTERNAL`: logs `detail` now.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        tracing::error!(%detail, "internal gateway error");
        Self::Internal { detail }
    }

    /// `TIMEOUT`: `service` did not answer within `limit`.
    pub fn call_timeout(service: impl Into<String>, limit: std::time::Duration) -> Self {
        let service = service.into();
        Self::Timeout {
            message: format!("{service} did not answer within {} ms", limit.as_millis()),
            service,
        }
    }

    /// Whether this says the backend is down (counts against its circuit breaker).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }
}

impl ErrorExtensions for GatewayError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, extensions| {
            extensions.set("code", self.code());
            match self {
                Self::InvalidInput {
                    field: Some(field), ..
                } => extensions.set("field", field.as_str()),
                Self::Conflict { reason, .. } => extensions.set("reason", reason.as_str()),
                Self::Unavailable { service, .. } | Self::Timeout { service, .. } => {
                    extensions.set("service", service.as_str())
                }
                _ => {}
            }
        })
    }
}

impl From<GatewayError> for async_graphql::Error {
    fn from(error: GatewayError) -> Self {
        error.extend()
    }
}

/// Gives an error from async-graphql itself (parsing, validation, limits) the
/// `INVALID_INPUT` code unless it already has one.
pub fn tag_request_error(mut error: async_graphql::ServerError) -> async_graphql::ServerError {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|extensions| extensions.get("code").is_some());
    if !has_code {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "INVALID_INPUT");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_carries_its_code_and_details_in_extensions() {
        let error: async_graphql::Error = GatewayError::Conflict {
            reason: "out_of_stock".into(),
            message: "not enough stock".into(),
        }
        .into();
        let extensions = error.extensions.expect("extensions");
        assert_eq!(extensions.get("code"), Some(&"CONFLICT".into()));
        assert_eq!(extensions.get("reason"), Some(&"out_of_stock".into()));
        assert_eq!(error.message, "not enough stock");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let error: async_graphql::Error = GatewayError::internal("sled: disk on fire").into();
        assert_eq!(error.message, "internal error");
    }
}
