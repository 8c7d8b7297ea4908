//! A small GraphQL-over-HTTP client for the query API.

use std::time::Duration;

use serde_json::{json, Value};

/// A request that got no GraphQL answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The HTTP request failed (connection refused, timeout, …).
    #[error("POST {endpoint} failed: {source}")]
    Http {
        /// The GraphQL endpoint.
        endpoint: String,
        /// The client's error.
        source: reqwest::Error,
    },
    /// The answer was not a GraphQL response.
    #[error("POST {endpoint} answered {status} with {body}")]
    NotGraphQl {
        /// The GraphQL endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// One entry of a response's `errors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphQlError {
    /// The message.
    pub message: String,
    /// `extensions.code` (`CONFLICT`, `NOT_FOUND`, …), if any.
    pub code: Option<String>,
}

impl std::fmt::Display for GraphQlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A GraphQL response: `data` (null when absent) and `errors`.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphQlResponse {
    /// The `data` member.
    pub data: Value,
    /// The `errors` member.
    pub errors: Vec<GraphQlError>,
}

/// Posts GraphQL operations to one endpoint.
#[derive(Clone, Debug)]
pub struct GraphQlClient {
    http: reqwest::Client,
    endpoint: String,
}

impl GraphQlClient {
    /// A client for the query API at `target` (`http://host:port`, with or
    /// without the `/graphql` path).
    pub fn new(target: &str, timeout: Duration) -> Result<Self, TransportError> {
        let base = target.trim_end_matches('/');
        let endpoint = if base.ends_with("/graphql") {
            base.to_owned()
        } else {
            format!("{base}/graphql")
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| TransportError::Http {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(Self { http, endpoint })
    }

    /// The URL operations are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs one operation, as the holder of `bearer` if given.
    pub async fn execute(
        &self,
        document: &str,
        variables: &Value,
        bearer: Option<&str>,
    ) -> Result<GraphQlResponse, TransportError> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .json(&json!({"query": document, "variables": variables}));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let http_error = |source| TransportError::Http {
            endpoint: self.endpoint.clone(),
            source,
        };
        let response = request.send().await.map_err(http_error)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(http_error)?;
        parse_response(&body).ok_or_else(|| TransportError::NotGraphQl {
            endpoint: self.endpoint.clone(),
            status,
            body: String::from_utf8_lossy(&body).chars().take(300).collect(),
        })
    }
}

fn parse_response(body: &[u8]) -> Option<GraphQlResponse> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    if !object.contains_key("data") && !object.contains_key("errors") {
        return None;
    }
    let errors = object
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|error| GraphQlError {
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("(no message)")
                        .to_owned(),
                    code: error
                        .pointer("/extensions/code")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(GraphQlResponse {
        data: object.get("data").cloned().unwrap_or(Value::Null),
        errors,
    })
}

/// A GraphQL string literal holding `text` (JSON string syntax is valid GraphQL).
pub fn string_literal(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_data_and_error_codes() {
        let response = parse_response(
            br#"{"data": null, "errors": [{"message": "no", "extensions": {"code": "CONFLICT"}}, {"message": "x"}]}"#,
        )
        .unwrap();
        assert_eq!(response.data, Value::Null);
        assert_eq!(response.errors[0].code.as_deref(), Some("CONFLICT"));
        assert_eq!(response.errors[0].to_string(), "CONFLICT: no");
        assert_eq!(response.errors[1].code, None);
        assert!(parse_response(b"<html>").is_none());
        assert!(parse_response(br#"{"error": "not_found"}"#).is_none());
    }

    #[test]
    fn string_literals_are_escaped() {
        assert_eq!(string_literal(r#"a "b"\"#), r#""a \"b\"\\""#);
    }

    #[test]
    fn the_endpoint_gets_the_graphql_path_once() {
        let timeout = Duration::from_secs(1);
        let client = GraphQlClient::new("http://127.0.0.1:8080/", timeout).unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:8080/graphql");
        let client = GraphQlClient::new("http://h:1/graphql", timeout).unwrap();
        assert_eq!(client.endpoint(), "http://h:1/graphql");
    }
}
