//! The HTTP face: GraphiQL at `GET /`, `POST /graphql`, subscriptions over
//! the GraphQL WebSocket protocols at `/graphql/ws`, and the ops routes.
//!
//! `POST /graphql` is handled here rather than by async-graphql-axum's
//! extractor so that the body limit, the rate limit and malformed bodies all
//! answer in the same GraphQL error shape with an `extensions.code`.

use std::{net::SocketAddr, sync::Arc};

use async_graphql::{http::ALL_WEBSOCKET_PROTOCOLS, Data};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State, WebSocketUpgrade},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
    Extension, Json, Router,
};
use serde_json::json;
use service_runtime::ops::{ops_router, ReadyCheck};
use uuid::Uuid;

use crate::{
    auth::Identity,
    graphiql,
    rate_limit::RateLimiter,
    schema::{Caller, Gateway, ShopSchema},
};

/// Everything the routes need.
#[derive(Clone)]
pub struct AppState {
    /// The schema.
    pub schema: ShopSchema,
    /// The shared gateway (the same one the schema holds).
    pub gateway: Arc<Gateway>,
    /// Per-client request budget.
    pub rate_limiter: Arc<RateLimiter>,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// What `/ready` checks.
    pub ready: ReadyCheck,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// The gateway's routes.
pub fn router(state: AppState) -> Router {
    let ready = Arc::clone(&state.ready);
    Router::new()
        .route("/", get(graphiql_page))
        .route("/graphql", post(graphql))
        .route("/graphql/ws", get(subscriptions))
        .with_state(state)
        .merge(ops_router(ready))
}

async fn graphiql_page() -> Html<String> {
    Html(graphiql::page("/graphql", "/graphql/ws"))
}

/// A response in the GraphQL error shape, for refusals before execution.
fn refusal(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "data": null,
        "errors": [{"message": message.into(), "extensions": {"code": code}}],
    });
    (status, Json(body)).into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The key of the caller's rate-limit bucket: who they are if they proved
/// it, else where they connect from.
fn client_key(identity: &Identity, peer: Option<SocketAddr>) -> String {
    match (identity.actor(), peer) {
        (Some(actor), _) => format!("actor:{actor}"),
        (None, Some(peer)) => format!("ip:{}", peer.ip()),
        (None, None) => "unknown".to_owned(),
    }
}

fn rate_limited(
    state: &AppState,
    identity: &Identity,
    peer: Option<SocketAddr>,
) -> Option<Response> {
    let retry_after = state
        .rate_limiter
        .check(&client_key(identity, peer))
        .err()?;
    metrics::counter!("query_api_rate_limited_total").increment(1);
    let mut response = refusal(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        "too many requests; slow down",
    );
    let seconds = retry_after.as_secs().max(1).to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

/// The caller as the headers describe them; a bad `Idempotency-Key` is refused.
fn caller_from(headers: &HeaderMap, identity: Identity) -> Result<Caller, Box<Response>> {
    let idempotency_key = match header_str(headers, "idempotency-key").map(str::trim) {
        None => None,
        Some(key) if !key.is_empty() && key.len() <= 200 => Some(key.to_owned()),
        Some(_) => {
            return Err(Box::new(refusal(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                "the Idempotency-Key header has 1 to 200 characters",
            )))
        }
    };
    let correlation_id =
        header_str(headers, "x-correlation-id").and_then(|raw| Uuid::parse_str(raw.trim()).ok());
    Ok(Caller {
        identity,
        idempotency_key,
        correlation_id,
    })
}

async fn graphql(State(state): State<AppState>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let (parts, body) = request.into_parts();
    let identity = state
        .gateway
        .auth
        .identify(header_str(&parts.headers, "authorization"));
    if let Some(response) = rate_limited(&state, &identity, peer) {
        return response;
    }
    if let Some(content_type) = header_str(&parts.headers, "content-type") {
        if !content_type.trim_start().starts_with("application/json") {
            return refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "INVALID_INPUT",
                "send the request as application/json",
            );
        }
    }
    let caller = match caller_from(&parts.headers, identity) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let bytes = match axum::body::to_bytes(Body::new(body), state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "INVALID_INPUT",
                format!(
                    "the request body is larger than {} bytes",
                    state.max_body_bytes
                ),
            )
        }
    };
    let request: async_graphql::Request = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(error) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                format!("the body is not a GraphQL request: {error}"),
            )
        }
    };
    // Every request gets a correlation id (the client's, or a new one) that
    // follows it into commands, events, messages and projections.
    let mut caller = caller;
    let correlation_id = *caller.correlation_id.get_or_insert_with(Uuid::new_v4);
    let span = tracing::info_span!(
        "graphql",
        %correlation_id,
        operation = request.operation_name.as_deref().unwrap_or(""),
    );
    let response = tracing::Instrument::instrument(
        state.schema.execute(state.gateway.prepare(request, caller)),
        span,
    )
    .await;
    Json(response).into_response()
}

/// Reads a bearer token from a `connection_init` payload:
/// `{"Authorization": "Bearer …"}` (any case) or `{"token": "…"}`.
fn bearer_from_payload(payload: &serde_json::Value) -> Option<String> {
    let object = payload.as_object()?;
    object.iter().find_map(|(key, value)| {
        let value = value.as_str()?;
        if key.eq_ignore_ascii_case("authorization") {
            Some(value.to_owned())
        } else if key == "token" {
            Some(format!("Bearer {value}"))
        } else {
            None
        }
    })
}

async fn subscriptions(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let peer = peer.map(|Extension(ConnectInfo(address))| address);
    let header_identity = state
        .gateway
        .auth
        .identify(header_str(&headers, "authorization"));
    if let Some(response) = rate_limited(&state, &header_identity, peer) {
        return response;
    }
    let caller = match caller_from(&headers, header_identity) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let gateway = Arc::clone(&state.gateway);
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let identity = match bearer_from_payload(&payload) {
                        Some(bearer) => gateway.auth.identify(Some(&bearer)),
                        None => caller.identity.clone(),
                    };
                    if let Identity::Invalid(reason) = &identity {
                        return Err(async_graphql::Error::new(reason.clone()));
                    }
                    let (context, loaders) = gateway.request_data(Caller { identity, ..caller });
                    let mut data = Data::default();
                    data.insert(context);
                    data.insert(loaders);
                    Ok(data)
                })
                .serve()
                .await;
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_init_payloads_carry_the_token_either_way() {
        assert_eq!(
            bearer_from_payload(&json!({"Authorization": "Bearer abc"})).as_deref(),
            Some("Bearer abc")
        );
        assert_eq!(
            bearer_from_payload(&json!({"token": "abc"})).as_deref(),
            Some("Bearer abc")
        );
        assert_eq!(bearer_from_payload(&json!({})), None);
        assert_eq!(bearer_from_payload(&json!(null)), None);
    }
}
