//! The ports over HTTP: clients of the command services' and projectors'
//! internal APIs (`docs/internal-apis.md`).

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{
    CommandAccepted, CommandContext, CommandSender, CommandService, ProductPage, Projector,
    ReadModels, Recommendation, SearchHit, VersionedDocument, View,
};
use crate::{
    config::{CommandServiceUrls, ProjectorUrls},
    error::GatewayError,
};

/// The error body every internal API answers with.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    field: Option<String>,
}

fn transport_error(service: &str, timeout: Duration, error: &reqwest::Error) -> GatewayError {
    if error.is_timeout() {
        GatewayError::call_timeout(service, timeout)
    } else {
        GatewayError::Unavailable {
            service: service.to_owned(),
            message: if error.is_connect() {
                "cannot connect".to_owned()
            } else {
                "the call failed".to_owned()
            },
        }
    }
}

fn base(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Sends commands over HTTP (`POST /commands/{name}`).
#[derive(Clone, Debug)]
pub struct HttpCommands {
    client: reqwest::Client,
    urls: CommandServiceUrls,
    timeout: Duration,
}

impl HttpCommands {
    /// A client of the services at `urls`, each call bounded by `timeout`.
    pub fn new(urls: CommandServiceUrls, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            client,
            urls,
            timeout,
        })
    }
}

#[async_trait]
impl CommandSender for HttpCommands {
    async fn send(
        &self,
        service: CommandService,
        command: &str,
        body: serde_json::Value,
        context: &CommandContext,
    ) -> Result<CommandAccepted, GatewayError> {
        let url = format!("{}/commands/{command}", base(self.urls.url(service)));
        let response = self
            .client
            .post(&url)
            .header("Idempotency-Key", &context.idempotency_key)
            .header("X-Actor", context.actor.to_string())
            .header("X-Correlation-Id", context.correlation_id.to_string())
            .header("X-Causation-Id", context.causation_id.to_string())
            .json(&body)
            .send()
            .await
            .map_err(|error| transport_error(service.as_str(), self.timeout, &error))?;
        let status = response.status();
        if status.is_success() {
            return response.json::<CommandAccepted>().await.map_err(|error| {
                tracing::warn!(%service, command, %error, "malformed command answer");
                GatewayError::Unavailable {
                    service: service.to_string(),
                    message: "malformed answer".to_owned(),
                }
            });
        }
        let body: ErrorBody = response.json().await.unwrap_or_default();
        Err(command_error(service, command, status, body))
    }
}

fn command_error(
    service: CommandService,
    command: &str,
    status: StatusCode,
    body: ErrorBody,
) -> GatewayError {
    let message = if body.message.is_empty() {
        format!("{service} refused {command} ({status})")
    } else {
        body.message
    };
    match status {
        StatusCode::NOT_FOUND => GatewayError::NotFound { what: message },
        StatusCode::CONFLICT => GatewayError::Conflict {
            reason: if body.error.is_empty() {
                "conflict".to_owned()
            } else {
                body.error
            },
            message,
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => GatewayError::Forbidden { message },
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => GatewayError::Timeout {
            service: service.to_string(),
            message,
        },
        status if status.is_client_error() => GatewayError::InvalidInput {
            field: body.field,
            message,
        },
        _ => {
            tracing::warn!(%service, command, %status, %message, "command service failed");
            GatewayError::Unavailable {
                service: service.to_string(),
                message: format!("answered {status}"),
            }
        }
    }
}

/// Reads the projectors over HTTP.
#[derive(Clone, Debug)]
pub struct HttpReadModels {
    client: reqwest::Client,
    urls: ProjectorUrls,
    timeout: Duration,
}

#[derive(Deserialize)]
struct BatchAnswer {
    items: HashMap<String, Option<serde_json::Value>>,
}

#[derive(Deserialize)]
struct PositionAnswer {
    version: Option<u64>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

impl HttpReadModels {
    /// A client of the projectors at `urls`, each call bounded by `timeout`.
    pub fn new(urls: ProjectorUrls, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            client,
            urls,
            timeout,
        })
    }

    fn url(&self, projector: Projector, path: &str) -> String {
        format!("{}{path}", base(self.urls.url(projector)))
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        projector: Projector,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<T>, GatewayError> {
        let response = request
            .send()
            .await
            .map_err(|error| transport_error(projector.as_str(), self.timeout, &error))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            tracing::warn!(%projector, %status, "projector answered an error");
            return Err(GatewayError::Unavailable {
                service: projector.to_string(),
                message: format!("answered {status}"),
            });
        }
        response.json::<T>().await.map(Some).map_err(|error| {
            tracing::warn!(%projector, %error, "malformed projector answer");
            GatewayError::Unavailable {
                service: projector.to_string(),
                message: "malformed answer".to_owned(),
            }
        })
    }

    /// A 404 where a route must exist means the projector is not the one we expect.
    fn missing_route(projector: Projector) -> GatewayError {
        GatewayError::Unavailable {
            service: projector.to_string(),
            message: "route not served".to_owned(),
        }
    }
}

#[async_trait]
impl ReadModels for HttpReadModels {
    async fn batch(
        &self,
        view: View,
        keys: &[String],
    ) -> Result<HashMap<String, Option<serde_json::Value>>, GatewayError> {
        let projector = view.projector();
        let request = self
            .client
            .post(self.url(projector, &format!("/views/{}/batch", view.as_str())))
            .json(&json!({ "keys": keys }));
        let answer: BatchAnswer = self
            .read(projector, request)
            .await?
            .ok_or_else(|| Self::missing_route(projector))?;
        Ok(answer.items)
    }

    async fn position(
        &self,
        projector: Projector,
        stream: &str,
    ) -> Result<Option<u64>, GatewayError> {
        let request = self
            .client
            .get(self.url(projector, "/positions"))
            .query(&[("stream", stream)]);
        let answer: Option<PositionAnswer> = self.read(projector, request).await?;
        Ok(answer.and_then(|answer| answer.version))
    }

    async fn wait_for_position(
        &self,
        projector: Projector,
        stream: &str,
        min_version: u64,
        wait: Duration,
    ) -> Result<Option<u64>, GatewayError> {
        let request = self
            .client
            .get(self.url(projector, "/positions"))
            .query(&[
                ("stream", stream.to_owned()),
                ("min_version", min_version.to_string()),
                ("timeout_ms", wait.as_millis().to_string()),
            ])
            // The projector holds the request for up to `wait`.
            .timeout(self.timeout + wait);
        let answer: Option<PositionAnswer> = self.read(projector, request).await?;
        Ok(answer.and_then(|answer| answer.version))
    }

    async fn document_at(
        &self,
        view: View,
        key: &str,
        stream: &str,
        min_version: Option<u64>,
        wait: Duration,
    ) -> Result<VersionedDocument, GatewayError> {
        let projector = view.projector();
        let mut query = vec![("stream", stream.to_owned())];
        if let Some(min_version) = min_version {
            query.push(("min_version", min_version.to_string()));
            query.push(("timeout_ms", wait.as_millis().to_string()));
        }
        let path = format!("/views/{}/{}/wait", view.as_str(), encode_path_segment(key));
        let request = self
            .client
            .get(self.url(projector, &path))
            .query(&query)
            // The projector holds the request for up to `wait`.
            .timeout(self.timeout + wait);
        self.read(projector, request)
            .await?
            .ok_or_else(|| Self::missing_route(projector))
    }

    async fn products(
        &self,
        first: usize,
        after: Option<&str>,
        category: Option<&str>,
    ) -> Result<ProductPage, GatewayError> {
        let mut query = vec![("first", first.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        if let Some(category) = category {
            query.push(("category", category.to_owned()));
        }
        let request = self
            .client
            .get(self.url(Projector::Catalog, "/products"))
            .query(&query);
        self.read(Projector::Catalog, request)
            .await?
            .ok_or_else(|| Self::missing_route(Projector::Catalog))
    }

    async fn search(&self, query: &str, first: usize) -> Result<Vec<SearchHit>, GatewayError> {
        let request = self
            .client
            .get(self.url(Projector::Search, "/search"))
            .query(&[("q", query.to_owned()), ("first", first.to_string())]);
        let answer: Items<SearchHit> = self
            .read(Projector::Search, request)
            .await?
            .ok_or_else(|| Self::missing_route(Projector::Search))?;
        Ok(answer.items)
    }

    async fn recommendations(
        &self,
        sku: &str,
        first: usize,
    ) -> Result<Vec<Recommendation>, GatewayError> {
        let path = format!("/recommendations/{}", encode_path_segment(sku));
        let request = self
            .client
            .get(self.url(Projector::Recommendations, &path))
            .query(&[("first", first.to_string())]);
        // A SKU never bought has no recommendations: a 404 is an empty list.
        let answer: Option<Items<Recommendation>> =
            self.read(Projector::Recommendations, request).await?;
        Ok(answer.map(|answer| answer.items).unwrap_or_default())
    }

    async fn sales_stats(&self, top: usize) -> Result<serde_json::Value, GatewayError> {
        let request = self
            .client
            .get(self.url(Projector::Sales, "/stats"))
            .query(&[("top", top.to_string())]);
        self.read(Projector::Sales, request)
            .await?
            .ok_or_else(|| Self::missing_route(Projector::Sales))
    }
}

/// Percent-encodes everything but unreserved characters, so a SKU is one path segment.
fn encode_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_path_segment("SKU-1"), "SKU-1");
        assert_eq!(encode_path_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn command_errors_map_to_graphql_codes() {
        let body = |error: &str| ErrorBody {
            error: error.to_owned(),
            message: "m".to_owned(),
            field: Some("sku".to_owned()),
        };
        let code = |status, error| {
            command_error(CommandService::Orders, "place-order", status, body(error)).code()
        };
        assert_eq!(
            code(StatusCode::BAD_REQUEST, "invalid_sku"),
            "INVALID_INPUT"
        );
        assert_eq!(code(StatusCode::NOT_FOUND, "not_found"), "NOT_FOUND");
        assert_eq!(code(StatusCode::CONFLICT, "out_of_stock"), "CONFLICT");
        assert_eq!(
            code(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            "UNAVAILABLE"
        );
        assert_eq!(code(StatusCode::FORBIDDEN, "forbidden"), "FORBIDDEN");
    }
}
