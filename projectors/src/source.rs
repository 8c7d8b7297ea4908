//! Where projectors read history from: the event store, behind a small trait
//! so the runtime can use the HTTP client, an in-process store, or (in
//! tests) a list of events.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use domain::envelope::RecordedEvent;
use parking_lot::RwLock;
use uuid::Uuid;

/// Why the event store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The store is unreachable or failed; trying again later may work.
    #[error("the event store is unavailable: {message}")]
    Unavailable {
        /// What went wrong.
        message: String,
    },
    /// The store refused the request (a bug on our side, or a version mismatch).
    #[error("the event store refused a read: {message}")]
    Refused {
        /// What it said.
        message: String,
    },
}

/// What [`EventSource::read_categories`] found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CategoryRead {
    /// The events of the categories asked for, from the position asked for
    /// and below `complete_below`, in log order.
    pub events: Vec<RecordedEvent>,
    /// Every event of those categories below this position (and at or after
    /// the one asked for) is in `events`: the read covered the log up to here.
    pub complete_below: u64,
}

impl CategoryRead {
    /// Merges per-category reads (each in log order, each at most `limit`
    /// events, each of events below the head the store read them at) into
    /// one read that is complete below `until`, or below the first event a
    /// category read may have stopped short of.
    pub fn merge(reads: Vec<Vec<RecordedEvent>>, until: u64, limit: usize) -> Self {
        let complete_below = reads
            .iter()
            .filter(|events| events.len() >= limit)
            .filter_map(|events| events.last().map(|last| last.position + 1))
            .fold(until, u64::min);
        let mut events: Vec<RecordedEvent> = reads
            .into_iter()
            .flatten()
            .filter(|event| event.position < complete_below)
            .collect();
        events.sort_by_key(|event| event.position);
        Self {
            events,
            complete_below,
        }
    }
}

/// A [`CategoryRead`] from one indexed read per category (`read`, each of
/// at most `limit` events), merged.
async fn read_each_category<'a, F, Fut>(
    categories: &'a [&'a str],
    until: u64,
    limit: usize,
    read: F,
) -> Result<CategoryRead, SourceError>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<RecordedEvent>, SourceError>>,
{
    let mut reads = Vec::with_capacity(categories.len());
    for category in categories {
        reads.push(read(category).await?);
    }
    Ok(CategoryRead::merge(reads, until, limit))
}

/// Reads the event store.
#[async_trait]
pub trait EventSource: Send + Sync + fmt::Debug {
    /// The store's id (random, fixed at its creation).
    async fn store_id(&self) -> Result<Uuid, SourceError>;

    /// The next global position: the number of events stored.
    async fn head(&self) -> Result<u64, SourceError>;

    /// Up to `limit` events of the global log from position `from`, in order.
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, SourceError>;

    /// Up to `limit` events of `stream` from version `from`, in order (empty
    /// if the stream does not exist).
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, SourceError>;

    /// The events of `categories` from global position `from` and below
    /// `until` (at most about `limit` per category), in log order, and how
    /// far the read is complete. This default reads the whole log and
    /// filters it; a store with a category index answers from the index, so
    /// that only the events asked for are read and sent.
    async fn read_categories(
        &self,
        categories: &[&str],
        from: u64,
        until: u64,
        limit: usize,
    ) -> Result<CategoryRead, SourceError> {
        let wanted = usize::try_from(until.saturating_sub(from))
            .unwrap_or(usize::MAX)
            .min(limit);
        let events = self.read_all(from, wanted).await?;
        let complete_below = events
            .last()
            .map_or(from, |last| last.position + 1)
            .min(until);
        Ok(CategoryRead {
            events: events
                .into_iter()
                .filter(|event| {
                    event.position < complete_below && categories.contains(&event.category())
                })
                .collect(),
            complete_below,
        })
    }
}

/// A shared event source.
pub type SharedSource = Arc<dyn EventSource>;

/// An event source holding events in memory (tests, benchmarks).
#[derive(Debug, Default)]
pub struct MemorySource {
    store_id: Uuid,
    events: RwLock<Vec<RecordedEvent>>,
}

impl MemorySource {
    /// An empty source with the given store id.
    pub fn new(store_id: Uuid) -> Self {
        Self {
            store_id,
            events: RwLock::new(Vec::new()),
        }
    }

    /// Adds an event (its position must be the next one for `read_all` to be right).
    pub fn push(&self, event: RecordedEvent) {
        self.events.write().push(event);
    }

    /// Every event.
    pub fn events(&self) -> Vec<RecordedEvent> {
        self.events.read().clone()
    }
}

#[async_trait]
impl EventSource for MemorySource {
    async fn store_id(&self) -> Result<Uuid, SourceError> {
        Ok(self.store_id)
    }

    async fn head(&self) -> Result<u64, SourceError> {
        Ok(self.events.read().len() as u64)
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, SourceError> {
        let events = self.events.read();
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        Ok(events.iter().skip(from).take(limit).cloned().collect())
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, SourceError> {
        let events = self.events.read();
        Ok(events
            .iter()
            .filter(|e| e.stream == stream && e.version >= from)
            .take(limit)
            .cloned()
            .collect())
    }
}

/// The event store over HTTP.
#[derive(Debug, Clone)]
pub struct HttpSource {
    client: event_store::client::StoreClient,
}

impl HttpSource {
    /// A source reading the store at `base_url`.
    pub fn new(base_url: &str) -> Result<Self, SourceError> {
        let client = event_store::client::StoreClient::new(base_url).map_err(|error| {
            SourceError::Refused {
                message: error.to_string(),
            }
        })?;
        Ok(Self { client })
    }

    /// A source over an existing client.
    pub fn from_client(client: event_store::client::StoreClient) -> Self {
        Self { client }
    }
}

fn from_client_error(error: event_store::client::ClientError) -> SourceError {
    use event_store::client::ClientError;
    match error {
        ClientError::Rejected { .. } | ClientError::InvalidUrl { .. } => SourceError::Refused {
            message: error.to_string(),
        },
        other => SourceError::Unavailable {
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl EventSource for HttpSource {
    async fn store_id(&self) -> Result<Uuid, SourceError> {
        Ok(self
            .client
            .info()
            .await
            .map_err(from_client_error)?
            .store_id)
    }

    async fn head(&self) -> Result<u64, SourceError> {
        Ok(self.client.info().await.map_err(from_client_error)?.head)
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, SourceError> {
        self.client
            .read_all(from, limit)
            .await
            .map_err(from_client_error)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, SourceError> {
        match self
            .client
            .read_stream(stream, from, limit, event_store::Direction::Forward)
            .await
        {
            Ok(events) => Ok(events),
            Err(event_store::client::ClientError::StreamNotFound { .. }) => Ok(Vec::new()),
            Err(error) => Err(from_client_error(error)),
        }
    }

    async fn read_categories(
        &self,
        categories: &[&str],
        from: u64,
        until: u64,
        limit: usize,
    ) -> Result<CategoryRead, SourceError> {
        read_each_category(categories, until, limit, |category| async move {
            self.client
                .read_category(category, from, limit)
                .await
                .map_err(from_client_error)
        })
        .await
    }
}

/// An event store opened in this process (`shop dev`, offline replay, tests).
#[derive(Debug, Clone)]
pub struct StoreSource {
    store: event_store::Store,
}

impl StoreSource {
    /// A source over an open store.
    pub fn new(store: event_store::Store) -> Self {
        Self { store }
    }

    /// The store.
    pub fn store(&self) -> &event_store::Store {
        &self.store
    }
}

fn from_read_error(error: event_store::ReadError) -> SourceError {
    match error {
        event_store::ReadError::InvalidStreamName { .. }
        | event_store::ReadError::InvalidCategory { .. } => SourceError::Refused {
            message: error.to_string(),
        },
        other => SourceError::Unavailable {
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl EventSource for StoreSource {
    async fn store_id(&self) -> Result<Uuid, SourceError> {
        Ok(self.store.store_id())
    }

    async fn head(&self) -> Result<u64, SourceError> {
        Ok(self.store.head())
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, SourceError> {
        self.store
            .read_all(from, limit)
            .await
            .map_err(from_read_error)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, SourceError> {
        match self
            .store
            .read_stream(stream, from, limit, event_store::Direction::Forward)
            .await
        {
            Ok(events) => Ok(events),
            Err(event_store::ReadError::StreamNotFound { .. }) => Ok(Vec::new()),
            Err(error) => Err(from_read_error(error)),
        }
    }

    async fn read_categories(
        &self,
        categories: &[&str],
        from: u64,
        until: u64,
        limit: usize,
    ) -> Result<CategoryRead, SourceError> {
        read_each_category(categories, until, limit, |category| async move {
            self.store
                .read_category(category, from, limit)
                .await
                .map_err(from_read_error)
        })
        .await
    }
}

/// A source over a stopped store's log files ([`event_store::LogReader`]):
/// what an offline rebuild reads, without opening the store and its index.
#[derive(Debug, Clone)]
pub struct LogSource {
    reader: Arc<event_store::LogReader>,
}

impl LogSource {
    /// A source over `reader`.
    pub fn new(reader: event_store::LogReader) -> Self {
        Self {
            reader: Arc::new(reader),
        }
    }

    /// The position after the last event of the log.
    pub fn log_head(&self) -> u64 {
        self.reader.head()
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, SourceError> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || reader.read_all(from, limit))
            .await
            .map_err(|error| SourceError::Unavailable {
                message: format!("the log read was cancelled: {error}"),
            })?
            .map_err(|error| SourceError::Unavailable {
                message: error.to_string(),
            })
    }
}

/// Events a [`LogSource`] scans per read while looking for one stream.
const STREAM_SCAN_CHUNK: usize = 10_000;

#[async_trait]
impl EventSource for LogSource {
    async fn store_id(&self) -> Result<Uuid, SourceError> {
        Ok(self.reader.store_id())
    }

    async fn head(&self) -> Result<u64, SourceError> {
        Ok(self.reader.head())
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, SourceError> {
        self.read(from, limit).await
    }

    /// The log has no stream index: this scans it from the start. A rebuild
    /// reads the log in order and never needs it; it is here for completeness.
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, SourceError> {
        let mut found = Vec::new();
        let mut position = 0;
        while found.len() < limit {
            let chunk = self.read(position, STREAM_SCAN_CHUNK).await?;
            let Some(last) = chunk.last() else {
                break;
            };
            position = last.position + 1;
            found.extend(
                chunk
                    .into_iter()
                    .filter(|event| event.stream == stream && event.version >= from),
            );
        }
        found.truncate(limit);
        Ok(found)
    }
}
