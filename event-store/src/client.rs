//! [`StoreClient`]: how the services talk to the event store, over HTTP in the
//! binary form.
//!
//! Requests that could not reach the store (connection refused, reset before
//! an answer) are retried with exponential backoff; an answer, of any status,
//! never is: a concurrency conflict or a 4xx is the caller's to handle.
//! Retrying an append is safe anyway, because appends are idempotent by event id.

use std::time::Duration;

use domain::codec::{self, CodecError};
use domain::envelope::{NewEvent, RecordedEvent};
use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use service_runtime::api_error::ErrorBody;

use crate::store::{AppendResult, Direction, ExpectedVersion};
use crate::wire::{
    AppendFailure, AppendOutcome, AppendRequest, MultiAppendResponse, StoreInfo, StreamAppend,
    BINARY_CONTENT_TYPE,
};

/// Why a call to the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not a usable URL.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The stream's version is not the expected one; reload and retry.
    #[error("wrong expected version: the stream is at {current:?}")]
    WrongExpectedVersion {
        /// The stream's current version, `None` if it has no event.
        current: Option<u64>,
    },
    /// An event id was already used for other content.
    #[error("event id reused: {message}")]
    EventIdReused {
        /// The store's explanation.
        message: String,
    },
    /// The stream has no event.
    #[error("stream {stream:?} not found")]
    StreamNotFound {
        /// The stream.
        stream: String,
    },
    /// The store refused the request (a 4xx other than the above).
    #[error("the store refused the request ({status} {code}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The store's error code, e.g. `invalid_stream_name`.
        code: String,
        /// The store's explanation.
        message: String,
    },
    /// The store failed (a 5xx).
    #[error("the store failed ({status} {code}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The store's error code.
        code: String,
        /// The store's explanation.
        message: String,
    },
    /// The store could not be reached, even after retrying.
    #[error("the store at {url} is unreachable after {attempts} attempts: {source}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last connection error.
        #[source]
        source: reqwest::Error,
    },
    /// The request failed in transit after it was sent (it may have been applied).
    #[error("the request to the store failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// A body could not be encoded or decoded.
    #[error("cannot encode or decode a body: {0}")]
    Codec(#[from] CodecError),
    /// A JSON answer could not be decoded.
    #[error("cannot decode the store's answer: {0}")]
    Json(#[source] reqwest::Error),
}

/// How connection errors are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, retry: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_backoff)
    }
}

/// How long a subscription's long poll waits on the server.
const SUBSCRIPTION_WAIT: Duration = Duration::from_secs(20);
/// How many events a subscription asks for at a time.
const SUBSCRIPTION_BATCH: usize = 1000;
/// Timeout of an ordinary request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the event store's HTTP API. Cheap to clone (shares its connection pool).
#[derive(Debug, Clone)]
pub struct StoreClient {
    http: reqwest::Client,
    base: String,
    retry: RetryPolicy,
}

impl StoreClient {
    /// A client of the store at `base_url` (e.g. `http://127.0.0.1:2113`).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let url = reqwest::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".into()));
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            retry: RetryPolicy::default(),
        })
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The store's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends the request `build` makes, retrying connection errors.
    async fn send(
        &self,
        url: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match build().send().await {
                Ok(response) => return Ok(response),
                Err(error) if error.is_connect() && attempt < self.retry.attempts => {
                    let backoff = self.retry.backoff(attempt - 1);
                    tracing::debug!(url, attempt, ?backoff, %error, "store unreachable; retrying");
                    tokio::time::sleep(backoff).await;
                }
                Err(error) if error.is_connect() => {
                    return Err(ClientError::Unreachable {
                        url: url.to_owned(),
                        attempts: attempt,
                        source: error,
                    })
                }
                Err(error) => return Err(ClientError::Transport(error)),
            }
        }
    }

    /// POSTs a body in the binary form, asking for the binary form back.
    async fn post_binary(
        &self,
        url: &str,
        body: bytes::Bytes,
    ) -> Result<reqwest::Response, ClientError> {
        self.send(url, || {
            self.http
                .post(url)
                .timeout(REQUEST_TIMEOUT)
                .header(CONTENT_TYPE, BINARY_CONTENT_TYPE)
                .header(ACCEPT, BINARY_CONTENT_TYPE)
                .body(body.clone())
        })
        .await
    }

    /// Maps an error answer to a [`ClientError`].
    async fn error_from(response: reqwest::Response, stream: Option<&str>) -> ClientError {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let parsed: ErrorBody = serde_json::from_value(body.clone()).unwrap_or(ErrorBody {
            error: "unknown".into(),
            message: text,
        });
        match (status, parsed.error.as_str()) {
            (StatusCode::CONFLICT, "wrong_expected_version") => ClientError::WrongExpectedVersion {
                current: body
                    .get("current_version")
                    .and_then(serde_json::Value::as_u64),
            },
            (StatusCode::CONFLICT, "event_id_reused") => ClientError::EventIdReused {
                message: parsed.message,
            },
            (StatusCode::NOT_FOUND, "stream_not_found") => ClientError::StreamNotFound {
                stream: stream.unwrap_or_default().to_owned(),
            },
            (status, _) if status.is_server_error() => ClientError::Server {
                status: status.as_u16(),
                code: parsed.error,
                message: parsed.message,
            },
            (status, _) => ClientError::Rejected {
                status: status.as_u16(),
                code: parsed.error,
                message: parsed.message,
            },
        }
    }

    async fn binary_body<T: DeserializeOwned>(
        response: reqwest::Response,
        stream: Option<&str>,
    ) -> Result<T, ClientError> {
        if !response.status().is_success() {
            return Err(Self::error_from(response, stream).await);
        }
        let bytes = response.bytes().await.map_err(ClientError::Transport)?;
        Ok(codec::decode(&bytes)?)
    }

    /// Appends `events` to `stream` if its version matches `expected`.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, ClientError> {
        let body = bytes::Bytes::from(codec::encode(&AppendRequest {
            expected_version: expected,
            events,
        })?);
        let url = format!("{}/streams/{stream}", self.base);
        let response = self.post_binary(&url, body).await?;
        Self::binary_body(response, Some(stream)).await
    }

    /// Appends to several streams in one request (`POST /appends`): each append
    /// is checked against its own expected version and applied atomically on
    /// its own; appends to the same stream are applied in order. The outer
    /// error is the request's (nothing known to be written); the inner ones,
    /// in the order of `appends`, are each append's, as
    /// [`StoreClient::append`] would report them.
    pub async fn append_many(
        &self,
        appends: &[StreamAppend],
    ) -> Result<Vec<Result<AppendResult, ClientError>>, ClientError> {
        /// [`crate::wire::MultiAppendRequest`] borrowing its appends: the same encoding,
        /// without a copy of every event (the caller keeps its appends, e.g.
        /// to send them one by one to a store without `POST /appends`).
        #[derive(serde::Serialize)]
        struct Body<'a> {
            appends: &'a [StreamAppend],
        }
        let count = appends.len();
        let body = bytes::Bytes::from(codec::encode(&Body { appends })?);
        let url = format!("{}/appends", self.base);
        let response = self.post_binary(&url, body).await?;
        let answer: MultiAppendResponse = Self::binary_body(response, None).await?;
        if answer.results.len() != count {
            return Err(ClientError::Rejected {
                status: 200,
                code: "unexpected_answer".into(),
                message: format!("sent {count} appends, got {} results", answer.results.len()),
            });
        }
        Ok(answer
            .results
            .into_iter()
            .map(|outcome| match outcome {
                AppendOutcome::Appended(result) => Ok(result),
                AppendOutcome::Failed(failure) => Err(Self::failure_of(failure)),
            })
            .collect())
    }

    /// The error of one failed append of a multi-stream append.
    fn failure_of(failure: AppendFailure) -> ClientError {
        let AppendFailure {
            status,
            error,
            message,
            current_version,
        } = failure;
        match (status, error.as_str()) {
            (409, "wrong_expected_version") => ClientError::WrongExpectedVersion {
                current: current_version,
            },
            (409, "event_id_reused") => ClientError::EventIdReused { message },
            (status, _) if status >= 500 => ClientError::Server {
                status,
                code: error,
                message,
            },
            (status, _) => ClientError::Rejected {
                status,
                code: error,
                message,
            },
        }
    }

    /// Reads up to `limit` events of `stream` from version `from` (`u64::MAX`
    /// backwards reads from the last event).
    pub async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<RecordedEvent>, ClientError> {
        let direction = match direction {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        };
        let url = format!(
            "{}/streams/{stream}?from={from}&limit={limit}&direction={direction}",
            self.base
        );
        let response = self.get_binary(&url, REQUEST_TIMEOUT).await?;
        Self::binary_body(response, Some(stream)).await
    }

    /// Reads up to `limit` events of the global log from `from_position`.
    pub async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ClientError> {
        let url = format!("{}/all?from={from_position}&limit={limit}", self.base);
        let response = self.get_binary(&url, REQUEST_TIMEOUT).await?;
        Self::binary_body(response, None).await
    }

    /// Like [`StoreClient::read_all`], but if nothing is there yet, waits up to
    /// `wait` for an event at `from_position` or later (a long poll).
    pub async fn read_all_waiting(
        &self,
        from_position: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<RecordedEvent>, ClientError> {
        let url = format!(
            "{}/all?from={from_position}&limit={limit}&wait_ms={}",
            self.base,
            wait.as_millis()
        );
        let response = self.get_binary(&url, wait + REQUEST_TIMEOUT).await?;
        Self::binary_body(response, None).await
    }

    /// Reads up to `limit` events of a category (`order` for `order-*`) from `from_position`.
    pub async fn read_category(
        &self,
        category: &str,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ClientError> {
        let url = format!(
            "{}/categories/{category}?from={from_position}&limit={limit}",
            self.base
        );
        let response = self.get_binary(&url, REQUEST_TIMEOUT).await?;
        Self::binary_body(response, None).await
    }

    async fn get_binary(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        self.send(url, || {
            self.http
                .get(url)
                .timeout(timeout)
                .header(ACCEPT, BINARY_CONTENT_TYPE)
        })
        .await
    }

    /// The store's id and head.
    pub async fn info(&self) -> Result<StoreInfo, ClientError> {
        let url = format!("{}/info", self.base);
        let response = self
            .send(&url, || self.http.get(&url).timeout(REQUEST_TIMEOUT))
            .await?;
        if !response.status().is_success() {
            return Err(Self::error_from(response, None).await);
        }
        response.json().await.map_err(ClientError::Json)
    }

    /// Every event from `from_position` on, in order, by long polls: first what
    /// is stored, then each new event as it is appended. While the store is
    /// unreachable it keeps retrying with backoff; any other error is yielded
    /// once and ends the stream.
    pub fn subscribe_all(
        &self,
        from_position: u64,
    ) -> BoxStream<'static, Result<RecordedEvent, ClientError>> {
        struct Subscription {
            client: StoreClient,
            next: u64,
            buffer: std::collections::VecDeque<RecordedEvent>,
            failures: u32,
            done: bool,
        }
        let state = Subscription {
            client: self.clone(),
            next: from_position,
            buffer: std::collections::VecDeque::new(),
            failures: 0,
            done: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(event) = state.buffer.pop_front() {
                    return Some((Ok(event), state));
                }
                if state.done {
                    return None;
                }
                match state
                    .client
                    .read_all_waiting(state.next, SUBSCRIPTION_BATCH, SUBSCRIPTION_WAIT)
                    .await
                {
                    Ok(events) => {
                        state.failures = 0;
                        // The store answers from `next` on; anything else would be a gap or a repeat.
                        if let Some(first) = events.first() {
                            if first.position != state.next {
                                state.done = true;
                                return Some((
                                    Err(ClientError::Rejected {
                                        status: 200,
                                        code: "unexpected_position".into(),
                                        message: format!(
                                            "asked for position {}, got {}",
                                            state.next, first.position
                                        ),
                                    }),
                                    state,
                                ));
                            }
                        }
                        state.next += events.len() as u64;
                        state.buffer.extend(events);
                    }
                    Err(ClientError::Unreachable { url, source, .. }) => {
                        let backoff = state.client.retry.backoff(state.failures.min(16));
                        state.failures += 1;
                        tracing::warn!(%url, error = %source, ?backoff, "store unreachable; the subscription retries");
                        tokio::time::sleep(backoff).await;
                    }
                    Err(error) => {
                        state.done = true;
                        return Some((Err(error), state));
                    }
                }
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let waits: Vec<u128> = (0..5).map(|r| policy.backoff(r).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn only_http_urls_make_a_client() {
        assert!(StoreClient::new("http://127.0.0.1:2113").is_ok());
        assert!(matches!(
            StoreClient::new("amqp://127.0.0.1"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            StoreClient::new("not a url"),
            Err(ClientError::InvalidUrl { .. })
        ));
    }
}
