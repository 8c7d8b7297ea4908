//! The port through which services reach the event store.
//!
//! Services hold an `Arc<dyn EventLog>`; the production implementation is the
//! store's HTTP client ([`StoreLog`]), which batches concurrent appends to
//! different streams into one request. Keeping the port this narrow (read one
//! stream, append to one stream, ping) is what lets the repository's retry and
//! batching logic be reasoned about apart from the transport.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use domain::envelope::{NewEvent, RecordedEvent};
use event_store::wire::StreamAppend;
use tokio::sync::oneshot;

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
    /// The events were stored before: the stream may have moved on since.
    pub repeat: bool,
    /// When the store recorded the events; `None` for a repeat.
    pub recorded_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<event_store::AppendResult> for Appended {
    fn from(result: event_store::AppendResult) -> Self {
        Self {
            first_position: result.first_position,
            last_position: result.last_position,
            last_version: result.next_expected_version,
            repeat: result.repeat,
            recorded_at: result.recorded_at,
        }
    }
}

/// Why the store did not do what was asked.
#[derive(Clone, Debug, thiserror::Error)]
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
            Ok(result) => Ok(result.into()),
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
///
/// Appends are batched: at most [`StoreLog::DEFAULT_APPEND_REQUESTS`] append
/// requests are in flight at a time (a command service's
/// `--store-append-requests` sets another number), and appends that arrive meanwhile (to different streams,
/// from concurrent commands) wait and go together in one multi-stream append
/// (`POST /appends`), each still checked against its own expected version and
/// answered on its own. This is group commit on the service's side: while
/// the store syncs one batch, the next one gathers. An append that finds a
/// request slot free goes at once, alone, so a lone command waits for nothing.
#[derive(Clone, Debug)]
pub struct StoreLog {
    client: event_store::client::StoreClient,
    batcher: Arc<AppendBatcher>,
}

/// The appends waiting for a request slot.
struct AppendBatcher {
    queue: parking_lot::Mutex<Vec<QueuedAppend>>,
    requests: tokio::sync::Semaphore,
    /// Cleared when the store turns out not to know `POST /appends` (an older
    /// store): appends then go one request each.
    multi: AtomicBool,
}

impl std::fmt::Debug for AppendBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendBatcher")
            .field("queued", &self.queue.lock().len())
            .field("free_requests", &self.requests.available_permits())
            .field("multi", &self.multi.load(Ordering::Relaxed))
            .finish()
    }
}

struct QueuedAppend {
    append: StreamAppend,
    reply: oneshot::Sender<Result<Appended, LogError>>,
}

impl StoreLog {
    /// How many append requests may be in flight at a time by default. One
    /// measured cheapest (`shop bench commands`, 64 clients: about 100 µs of
    /// CPU per new-aggregate command with 1, 117 with 2, 130 with 4): the
    /// fewer requests, the larger each batch.
    pub const DEFAULT_APPEND_REQUESTS: usize = 1;

    /// The most appends sent in one request.
    const MAX_BATCH: usize = 256;

    /// About the most bytes of events sent in one request (an append larger
    /// than this goes alone): well under the store's body limit (8 MiB by
    /// default), so that batching never makes a request too large.
    const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

    /// The bytes an append adds to a request, near enough.
    fn size_of(append: &StreamAppend) -> usize {
        append.stream.len()
            + append
                .events
                .iter()
                .map(|event| 64 + event.event_type.len() + event.data.len() + event.metadata.len())
                .sum::<usize>()
    }

    /// A port to the store at `base_url`, with
    /// [`DEFAULT_APPEND_REQUESTS`](Self::DEFAULT_APPEND_REQUESTS).
    pub fn new(base_url: &str) -> Result<Self, event_store::client::ClientError> {
        Self::with_append_requests(base_url, Self::DEFAULT_APPEND_REQUESTS)
    }

    /// A port to the store at `base_url` with at most `requests` (at least
    /// one) append requests in flight. Connection errors are retried only
    /// briefly, so that a command answers 503 soon when the store is down.
    pub fn with_append_requests(
        base_url: &str,
        requests: usize,
    ) -> Result<Self, event_store::client::ClientError> {
        let retry = event_store::client::RetryPolicy {
            attempts: 3,
            initial_backoff: std::time::Duration::from_millis(20),
            max_backoff: std::time::Duration::from_millis(200),
        };
        let requests = requests.max(1);
        Ok(Self {
            client: event_store::client::StoreClient::new(base_url)?.with_retry(retry),
            batcher: Arc::new(AppendBatcher {
                queue: parking_lot::Mutex::new(Vec::new()),
                requests: tokio::sync::Semaphore::new(requests),
                multi: AtomicBool::new(true),
            }),
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

    /// One append, in a request of its own.
    async fn append_alone(&self, append: StreamAppend) -> Result<Appended, LogError> {
        self.client
            .append(&append.stream, append.expected_version, append.events)
            .await
            .map(Appended::from)
            .map_err(Self::failure)
    }

    /// Waits for a request slot, then sends whatever is queued (in a task of
    /// its own, so that no caller going away can cancel others' appends).
    async fn send_queued(self) {
        let Ok(_slot) = self.batcher.requests.acquire().await else {
            return;
        };
        let batch: Vec<QueuedAppend> = {
            let mut queue = self.batcher.queue.lock();
            // The oldest first, at least one, within both limits.
            let mut bytes = 0;
            let take = queue
                .iter()
                .take(Self::MAX_BATCH)
                .take_while(|queued| {
                    bytes += Self::size_of(&queued.append);
                    bytes <= Self::MAX_BATCH_BYTES
                })
                .count()
                .max(1)
                .min(queue.len());
            if take == queue.len() {
                std::mem::take(&mut *queue)
            } else {
                queue.drain(..take).collect()
            }
        };
        match batch.len() {
            0 => {}
            1 => self.send_one_by_one(batch).await,
            _ if !self.batcher.multi.load(Ordering::Relaxed) => self.send_one_by_one(batch).await,
            size => {
                metrics::histogram!("store_append_batch_size").record(size as f64);
                let (appends, replies): (Vec<StreamAppend>, Vec<_>) = batch
                    .into_iter()
                    .map(|queued| (queued.append, queued.reply))
                    .unzip();
                match self.client.append_many(&appends).await {
                    Ok(results) => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(result.map(Appended::from).map_err(Self::failure));
                        }
                    }
                    Err(event_store::client::ClientError::Rejected {
                        status: 404 | 405, ..
                    }) => {
                        // Nothing was written: an older store without the route.
                        tracing::info!(
                            "the store has no multi-stream append; appending one by one"
                        );
                        self.batcher.multi.store(false, Ordering::Relaxed);
                        let batch = appends
                            .into_iter()
                            .zip(replies)
                            .map(|(append, reply)| QueuedAppend { append, reply })
                            .collect();
                        self.send_one_by_one(batch).await;
                    }
                    Err(error) => {
                        let error = Self::failure(error);
                        for reply in replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
    }

    async fn send_one_by_one(&self, batch: Vec<QueuedAppend>) {
        futures::future::join_all(batch.into_iter().map(|queued| async move {
            let answer = self.append_alone(queued.append).await;
            let _ = queued.reply.send(answer);
        }))
        .await;
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
        let expected_version = match expected {
            Expected::NoStream => event_store::ExpectedVersion::NoStream,
            Expected::Exact(version) => event_store::ExpectedVersion::Exact(version),
        };
        let (reply, answer) = oneshot::channel();
        self.batcher.queue.lock().push(QueuedAppend {
            append: StreamAppend {
                stream: stream.to_owned(),
                expected_version,
                events,
            },
            reply,
        });
        tokio::spawn(self.clone().send_queued());
        answer.await.unwrap_or_else(|_| {
            Err(LogError::Unavailable {
                reason: "the append was dropped before the store answered".into(),
            })
        })
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
