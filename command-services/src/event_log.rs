//! The port through which services reach the event store.
//!
//! Services hold an `Arc<dyn EventLog>`; the production implementation is the
//! store's HTTP client ([`StoreLog`]). Keeping the port this narrow (read one
//! stream, append to one stream, ping) is what lets the repository's retry and
//! batching logic be reasoned about apart from the transport.

use async_trait::async_trait;
use domain::envelope::{NewEvent, RecordedEvent};

/// What the store must find before it appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The stream must not exist.
    NoStream,
    /// The stream's last event must have this version.
    Exact(u64),
}

impl Expected {
    /// `NoStream` for `None`, else the exact version.
    pub fn from_version(version: Option<u64>) -> Self {
        version.map_or(Self::NoStream, Self::Exact)
    }
}

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Global position of the first event written (or of the first answer's).
    pub first_position: u64,
    /// Global position of the last event written.
    pub last_position: u64,
    /// The version the next append should expect: the last event's version.
    pub last_version: u64,
}

/// Why the store did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another writer moved the stream.
    #[error("wrong expected version: the stream is at {current:?}")]
    WrongExpectedVersion {
        /// The stream's version now (`None`: no stream).
        current: Option<u64>,
    },
    /// The store could not be reached, or answered that it is unavailable;
    /// whether an append happened is unknown.
    #[error("the event store is unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
    },
    /// An event id is already stored with other content or in another
    /// append: an idempotency key was reused for a different command.
    #[error("an event id is already stored with other content: {reason}")]
    EventIdReused {
        /// What the store said.
        reason: String,
    },
    /// The store refused the request as invalid; a bug on our side.
    #[error("the event store refused the request: {reason}")]
    Refused {
        /// What the store said.
        reason: String,
    },
}

/// The event store as command services and the saga use it.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Up to `limit` events of `stream` from version `from`, in order; an empty
    /// list when the stream does not exist or has nothing from there.
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// Appends `events` if the stream is where `expected` says; re-appending
    /// event ids already stored returns the first answer and writes nothing.
    async fn append(
        &self,
        stream: &str,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, LogError>;

    /// Up to `limit` events of every stream of `category`, in log order, from
    /// global position `from`.
    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// Whether the store answers.
    async fn ping(&self) -> Result<(), LogError>;
}

/// Reads a whole stream from `from`, page by page.
pub async fn read_all_from(
    log: &dyn EventLog,
    stream: &str,
    from: u64,
) -> Result<Vec<RecordedEvent>, LogError> {
    const PAGE: usize = 1000;
    let mut events = Vec::new();
    let mut next = from;
    loop {
        let page = log.read_stream(stream, next, PAGE).await?;
        let done = page.len() < PAGE;
        if let Some(last) = page.last() {
            next = last.version + 1;
        }
        events.extend(page);
        if done {
            return Ok(events);
        }
    }
}

/// The store in the same process, for `shop dev` and tests.
#[async_trait]
impl EventLog for event_store::Store {
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        use event_store::ReadError;
        match event_store::Store::read_stream(
            self,
            stream,
            from,
            limit,
            event_store::Direction::Forward,
        )
        .await
        {
            Ok(events) => Ok(events),
            Err(ReadError::StreamNotFound { .. }) => Ok(Vec::new()),
            Err(
                error @ (ReadError::InvalidStreamName { .. } | ReadError::InvalidCategory { .. }),
            ) => Err(LogError::Refused {
                reason: error.to_string(),
            }),
            Err(error) => Err(LogError::Unavailable {
                reason: error.to_string(),
            }),
        }
    }

    async fn append(
        &self,
        stream: &str,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, LogError> {
        use event_store::{AppendError, ExpectedVersion};
        let expected = match expected {
            Expected::NoStream => ExpectedVersion::NoStream,
            Expected::Exact(version) => ExpectedVersion::Exact(version),
        };
        match event_store::Store::append(self, stream, expected, events).await {
            Ok(result) => Ok(Appended {
                first_position: result.first_position,
                last_position: result.last_position,
                last_version: result.next_expected_version,
            }),
            Err(AppendError::WrongExpectedVersion { current, .. }) => {
                Err(LogError::WrongExpectedVersion { current })
            }
            Err(error @ AppendError::EventIdReused { .. }) => Err(LogError::EventIdReused {
                reason: error.to_string(),
            }),
            Err(error @ (AppendError::Closed | AppendError::Storage(_))) => {
                Err(LogError::Unavailable {
                    reason: error.to_string(),
                })
            }
            Err(error) => Err(LogError::Refused {
                reason: error.to_string(),
            }),
        }
    }

    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        event_store::Store::read_category(self, category, from, limit)
            .await
            .map_err(|error| match error {
                event_store::ReadError::InvalidCategory { .. } => LogError::Refused {
                    reason: error.to_string(),
                },
                error => LogError::Unavailable {
                    reason: error.to_string(),
                },
            })
    }

    async fn ping(&self) -> Result<(), LogError> {
        Ok(())
    }
}

/// The store over HTTP, in its binary form.
#[derive(Clone, Debug)]
pub struct StoreLog {
    client: event_store::client::StoreClient,
}

impl StoreLog {
    /// A port to the store at `base_url`. Connection errors are retried only
    /// briefly, so that a command answers 503 soon when the store is down.
    pub fn new(base_url: &str) -> Result<Self, event_store::client::ClientError> {
        let retry = event_store::client::RetryPolicy {
            attempts: 3,
            initial_backoff: std::time::Duration::from_millis(20),
            max_backoff: std::time::Duration::from_millis(200),
        };
        Ok(Self {
            client: event_store::client::StoreClient::new(base_url)?.with_retry(retry),
        })
    }

    fn failure(error: event_store::client::ClientError) -> LogError {
        use event_store::client::ClientError;
        match error {
            ClientError::WrongExpectedVersion { current } => {
                LogError::WrongExpectedVersion { current }
            }
            ClientError::EventIdReused { message } => LogError::EventIdReused { reason: message },
            error @ (ClientError::Server { .. }
            | ClientError::Unreachable { .. }
            | ClientError::Transport(_)) => LogError::Unavailable {
                reason: error.to_string(),
            },
            error => LogError::Refused {
                reason: error.to_string(),
            },
        }
    }
}

#[async_trait]
impl EventLog for StoreLog {
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        match self
            .client
            .read_stream(stream, from, limit, event_store::Direction::Forward)
            .await
        {
            Ok(events) => Ok(events),
            Err(event_store::client::ClientError::StreamNotFound { .. }) => Ok(Vec::new()),
            Err(error) => Err(Self::failure(error)),
        }
    }

    async fn append(
        &self,
        stream: &str,
        expected: Expected,
        events: Vec<NewEvent>,
    ) -> Result<Appended, LogError> {
        let expected = match expected {
            Expected::NoStream => event_store::ExpectedVersion::NoStream,
            Expected::Exact(version) => event_store::ExpectedVersion::Exact(version),
        };
        self.client
            .append(stream, expected, events)
            .await
            .map(|result| Appended {
                first_position: result.first_position,
                last_position: result.last_position,
                last_version: result.next_expected_version,
            })
            .map_err(Self::failure)
    }

    async fn read_category(
        &self,
        category: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.client
            .read_category(category, from, limit)
            .await
            .map_err(Self::failure)
    }

    async fn ping(&self) -> Result<(), LogError> {
        self.client.info().await.map(|_| ()).map_err(Self::failure)
    }
}
