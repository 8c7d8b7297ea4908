//! The store: a clonable handle over the log, its indexes and its writer.
//!
//! One writer thread (`writer`) owns the log: it takes appends from a channel,
//! checks them, assigns dense positions, writes a whole group with one `write`
//! and one `fdatasync`, then writes the group's index entries to sled, then
//! publishes the new head, and only then answers the callers. Readers go
//! straight to the segment files and the index (`reads`) and never see a
//! position at or past the published head, so everything they see is durable.
//! `recovery` opens a store: it checks every record of the log, truncates a
//! torn tail and catches the index up.
//!
//! The work that needs no shared state is done on the caller's task before
//! the append reaches the writer: name and size checks, JSON checks, the
//! content hash, and the event id lookup (an in-memory filter of every stored
//! id, `id_filter`, spares the index read for new ids).

mod id_filter;
mod reads;
pub(crate) mod recovery;
mod writer;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::codec::CodecError;
use domain::envelope::{NewEvent, RecordedEvent};
use futures::stream::BoxStream;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::index::{ContentHash, Index, IndexError};
use crate::names::{self, NameError};

/// Tunables of a store. The defaults suit production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// A segment file is closed and a new one started once it reaches this size.
    pub segment_size: u64,
    /// The most events one append may carry.
    pub max_events_per_append: usize,
    /// The largest event, counted as the bytes of its type, data and metadata.
    pub max_event_bytes: usize,
    /// The largest append, counted the same way over all its events.
    pub max_append_bytes: usize,
    /// The writer stops adding appends to a group commit once it holds this many bytes.
    pub max_group_bytes: usize,
    /// Memory sled may use for its page cache.
    pub index_cache_bytes: u64,
    /// Stream heads kept in memory by the writer (the cache is emptied when full).
    pub heads_cache_entries: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            segment_size: 64 * 1024 * 1024,
            max_events_per_append: 1000,
            max_event_bytes: 1024 * 1024,
            max_append_bytes: 4 * 1024 * 1024,
            max_group_bytes: 1024 * 1024,
            index_cache_bytes: DEFAULT_INDEX_CACHE_BYTES,
            heads_cache_entries: 50_000,
        }
    }
}

impl StoreOptions {
    /// The most bytes a crash can leave unsynced at the end of the log: one group
    /// commit. A damaged record further from the end is corruption, not a torn write.
    fn max_unsynced_bytes(&self) -> u64 {
        let framing = self.max_events_per_append as u64 * 512;
        (self.max_group_bytes + self.max_append_bytes) as u64 + framing
    }
}

/// What the writer expects of a stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    fn accepts(self, current: Option<u64>) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current.is_none(),
            Self::StreamExists => current.is_some(),
            Self::Exact(version) => current == Some(version),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no_stream"),
            Self::StreamExists => f.write_str("stream_exists"),
            Self::Exact(version) => write!(f, "{version}"),
        }
    }
}

/// The order in which a stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// From the given version upwards.
    Forward,
    /// From the given version downwards.
    Backward,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppendResult {
    /// Global position of the first event of the append.
    pub first_position: u64,
    /// Global position of its last event.
    pub last_position: u64,
    /// The stream's version after the append (its last event's version): the
    /// expected version to send with the next append.
    pub next_expected_version: u64,
    /// The events were stored before (a retry): this is the first answer,
    /// and the stream may have moved on since. Only in the binary answer;
    /// the JSON answer to a retry is the first answer exactly (CONTRACT.md).
    #[serde(default)]
    pub repeat: bool,
    /// When the store recorded the events, for an append that wrote them
    /// (`None` for a repeat). Only in the binary answer: with it a caller
    /// holds the events exactly as stored without reading them back.
    #[serde(default)]
    pub recorded_at: Option<DateTime<Utc>>,
}

impl AppendResult {
    /// The JSON form of the answer (`repeat` left out, see above).
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut body = serde_json::Map::new();
        body.insert("first_position".into(), self.first_position.into());
        body.insert("last_position".into(), self.last_position.into());
        body.insert(
            "next_expected_version".into(),
            self.next_expected_version.into(),
        );
        body
    }
}

/// A failure of the storage itself (disk, index, encoding, a damaged record).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// An event could not be encoded.
    #[error("cannot encode the event: {0}")]
    Encode(#[source] CodecError),
    /// A record read back from the log is damaged.
    #[error("record at position {position} ({segment}, offset {offset}) is corrupt: {reason}")]
    Corrupt {
        /// Its global position.
        position: u64,
        /// Its segment file.
        segment: PathBuf,
        /// The offset of its frame in the segment.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// No segment holds a position below the head (the segment list is broken).
    #[error("no segment holds position {position}")]
    MissingSegment {
        /// The position looked for.
        position: u64,
    },
}

impl StorageError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { context, source }
    }
}

/// Why an append was refused or failed. Nothing was written in any case.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The stream name breaks the naming rules.
    #[error("invalid stream name {stream:?}: {reason}")]
    InvalidStreamName {
        /// The name given.
        stream: String,
        /// The rule it breaks.
        reason: NameError,
    },
    /// An event type breaks the naming rules.
    #[error("event {event_id} has an invalid type {event_type:?}: {reason}")]
    InvalidEventType {
        /// The event.
        event_id: Uuid,
        /// The type given.
        event_type: String,
        /// The rule it breaks.
        reason: NameError,
    },
    /// The append carries no event.
    #[error("an append needs at least one event")]
    NoEvents,
    /// The append carries more events than allowed.
    #[error("an append may carry at most {max} events, this one has {count}")]
    TooManyEvents {
        /// Events in the append.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One event is too large.
    #[error("event {event_id} is {size} bytes; at most {max} are allowed")]
    EventTooLarge {
        /// The event.
        event_id: Uuid,
        /// Its size (type, data and metadata).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The whole append is too large.
    #[error("the append is {size} bytes; at most {max} are allowed")]
    AppendTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An event's data or metadata is not JSON text.
    #[error("event {event_id}: {field} is not valid JSON")]
    InvalidJson {
        /// The event.
        event_id: Uuid,
        /// `data` or `metadata`.
        field: &'static str,
    },
    /// The same event id appears twice in one append.
    #[error("event id {event_id} appears more than once in the append")]
    DuplicateEventId {
        /// The repeated id.
        event_id: Uuid,
    },
    /// The stream's version is not the expected one.
    #[error("wrong expected version: expected {expected}, the stream is at {}", current.map_or_else(|| "no stream".to_owned(), |v| v.to_string()))]
    WrongExpectedVersion {
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's current (last) version, `None` if it has no event.
        current: Option<u64>,
    },
    /// An event id is already stored with other content, in another stream,
    /// or in another append: it cannot be reused.
    #[error(
        "event id {event_id} is already stored with different content or in a different append"
    )]
    EventIdReused {
        /// The reused id.
        event_id: Uuid,
    },
    /// The store is shut down.
    #[error("the store is shut down")]
    Closed,
    /// The storage failed; the store refuses appends until it is reopened.
    #[error("storage failure: {0}")]
    Storage(#[source] Arc<StorageError>),
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream name breaks the naming rules.
    #[error("invalid stream name {stream:?}: {reason}")]
    InvalidStreamName {
        /// The name given.
        stream: String,
        /// The rule it breaks.
        reason: NameError,
    },
    /// The category name breaks the naming rules.
    #[error("invalid category {category:?}: {reason}")]
    InvalidCategory {
        /// The name given.
        category: String,
        /// The rule it breaks.
        reason: NameError,
    },
    /// The stream has no event.
    #[error("stream {stream:?} not found")]
    StreamNotFound {
        /// The stream.
        stream: String,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The read task was cancelled (the runtime is shutting down).
    #[error("the read was cancelled")]
    Cancelled,
}

impl From<IndexError> for ReadError {
    fn from(error: IndexError) -> Self {
        Self::Storage(StorageError::Index(error))
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file operation failed.
    #[error("{context} ({path}): {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The index database could not be opened or read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A record before the tail of the log is damaged: the store refuses to start.
    #[error("corrupt record at position {position} ({segment}, offset {offset}): {reason}")]
    Corrupt {
        /// The global position of the damaged record.
        position: u64,
        /// Its segment file.
        segment: PathBuf,
        /// The offset of its frame within the segment.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Segment files do not follow one another.
    #[error("segment {segment} starts at position {found}, expected {expected}")]
    SegmentGap {
        /// The segment.
        segment: PathBuf,
        /// The position it should start at.
        expected: u64,
        /// The position its name says.
        found: u64,
    },
    /// The index covers more events than the log holds (segments were lost).
    #[error("the index covers {indexed} events but the log holds only {log_end}")]
    IndexAheadOfLog {
        /// Events the index covers.
        indexed: u64,
        /// Events in the log.
        log_end: u64,
    },
    /// The log has events but the store id file is missing.
    #[error("the log has events but {path} is missing")]
    MissingStoreId {
        /// Where the id should be.
        path: PathBuf,
    },
    /// The store id file does not hold a UUID.
    #[error("{path} does not hold a store id")]
    InvalidStoreId {
        /// The file.
        path: PathBuf,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(#[source] io::Error),
    /// The blocking open task was cancelled.
    #[error("the open was cancelled")]
    Cancelled,
}

/// One segment file as readers see it.
pub(crate) struct Segment {
    /// Position of its first record.
    pub(crate) first_position: u64,
    /// Its path.
    pub(crate) path: PathBuf,
    /// A read handle (positioned reads only).
    pub(crate) file: std::fs::File,
    /// Offsets of every [`SPARSE_STRIDE`]-th record, from the first.
    pub(crate) sparse: RwLock<Vec<u64>>,
}

/// Every how many records a segment remembers a record's offset, for `read_all`.
pub(crate) const SPARSE_STRIDE: u64 = 32;

/// sled's page cache for the index by default. sled holds several times
/// this, and more as the index grows (~70 bytes an event beyond the cache,
/// whatever its size): 8 MiB instead of 32 took ~50 MB off a test index
/// of 300,000 events.
pub const DEFAULT_INDEX_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// State shared by the handles, the readers and the writer thread.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) store_id: Uuid,
    pub(crate) options: StoreOptions,
    pub(crate) index: Index,
    pub(crate) segments: RwLock<Vec<Arc<Segment>>>,
    /// The next position: every event below it is durable, indexed and readable.
    pub(crate) head: AtomicU64,
    /// A receiver to clone for watchers; the writer thread owns the sender, so
    /// watchers see the channel close when the writer stops.
    pub(crate) head_watch: watch::Receiver<u64>,
    /// Set by the writer when a storage failure made it refuse appends.
    pub(crate) failed: AtomicBool,
    /// Every stored event id, approximately (no false negatives).
    pub(crate) ids: id_filter::IdFilter,
}

impl Shared {
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }
}

/// An append on its way to the writer, already checked for everything that
/// does not depend on the store's state.
pub(crate) struct PreparedAppend {
    pub(crate) stream: String,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<(NewEvent, ContentHash)>,
    pub(crate) bytes: usize,
    /// `Some(head)` if the caller found none of the event ids in the index
    /// while the head was `head`: the writer then only has to look at ids
    /// written since. `None` if some id is already stored.
    pub(crate) ids_unknown_below: Option<u64>,
}

/// A message to the writer thread.
pub(crate) enum Request {
    Append {
        append: PreparedAppend,
        reply: oneshot::Sender<Result<AppendResult, AppendError>>,
    },
    Shutdown {
        reply: oneshot::Sender<Result<(), Arc<StorageError>>>,
    },
}

struct Inner {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Request>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A handle on an open event store. Cheap to clone; every clone is the same store.
///
/// Dropping the last handle stops the writer after it has finished what it
/// was given; [`Store::shutdown`] does the same and waits for it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.shared.dir)
            .field("store_id", &self.inner.shared.store_id)
            .field("head", &self.head())
            .finish()
    }
}

/// How many events a subscription reads at a time.
const SUBSCRIPTION_BATCH: usize = 512;

/// The content hash of an event: what must match for a re-append to be idempotent.
pub(crate) fn content_hash(event: &NewEvent) -> ContentHash {
    content_hash_of(
        &event.event_type,
        event.schema_version,
        &event.data,
        &event.metadata,
    )
}

/// [`content_hash`] from the parts, for recorded events.
pub(crate) fn content_hash_of(
    event_type: &str,
    schema_version: u32,
    data: &str,
    metadata: &str,
) -> ContentHash {
    let mut hasher = Sha256::new();
    for part in [event_type, data, metadata] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(schema_version.to_le_bytes());
    let digest = hasher.finalize();
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&digest[..16]);
    hash
}

fn event_size(event: &NewEvent) -> usize {
    event.event_type.len() + event.data.len() + event.metadata.len()
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

impl Store {
    /// Opens the store in `dir`, creating it if needed: checks the whole log,
    /// truncates a torn tail, catches the index up and starts the writer.
    pub async fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(dir, options))
            .await
            .map_err(|_| OpenError::Cancelled)?
    }

    fn open_blocking(dir: PathBuf, options: StoreOptions) -> Result<Self, OpenError> {
        let opened = recovery::open(&dir, options)?;
        let (requests, receiver) = mpsc::channel(4096);
        let shared = opened.shared.clone();
        let index_helper =
            crate::index::IndexHelper::start(&opened.shared.index).map_err(OpenError::Thread)?;
        let writer = writer::Writer::new(opened, receiver, index_helper);
        let handle = std::thread::Builder::new()
            .name("event-store-writer".into())
            .spawn(move || writer.run())
            .map_err(OpenError::Thread)?;
        tracing::info!(
            dir = %dir.display(),
            store_id = %shared.store_id,
            head = shared.head(),
            "event store open"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                requests,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// The random id this store got when it was created.
    pub fn store_id(&self) -> Uuid {
        self.inner.shared.store_id
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.shared.options
    }

    /// The next global position: the number of events in the store. Every
    /// position below it is durable and readable.
    pub fn head(&self) -> u64 {
        self.inner.shared.head()
    }

    /// Whether appends are accepted: not shut down and no storage failure.
    pub fn is_writable(&self) -> bool {
        !self.inner.requests.is_closed() && !self.inner.shared.failed.load(Ordering::Acquire)
    }

    /// A watch of [`Store::head`]; it closes when the store shuts down.
    pub fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.shared.head_watch.clone()
    }

    /// Waits until the head is past `position` (some event at `position` or later
    /// exists), at most `timeout`; returns the head then.
    pub async fn wait_for_head_beyond(&self, position: u64, timeout: Duration) -> u64 {
        let mut watch = self.watch_head();
        let _ = tokio::time::timeout(timeout, watch.wait_for(|head| *head > position)).await;
        self.head()
    }

    /// Appends `events` to `stream` atomically if its version matches `expected`.
    ///
    /// Answers only once the events are synced to disk and indexed. If every
    /// event id was already appended together to this stream with the same
    /// content, nothing is written and the first append's result is returned.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        let append = self.prepare(stream, expected, events)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .requests
            .send(Request::Append { append, reply })
            .await
            .map_err(|_| AppendError::Closed)?;
        answer.await.map_err(|_| AppendError::Closed)?
    }

    /// Everything about an append that can be checked without the store's state,
    /// done on the caller's task so the writer thread only decides and writes.
    fn prepare(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<PreparedAppend, AppendError> {
        let options = &self.inner.shared.options;
        names::validate_stream_name(stream).map_err(|reason| AppendError::InvalidStreamName {
            stream: stream.to_owned(),
            reason,
        })?;
        if events.is_empty() {
            return Err(AppendError::NoEvents);
        }
        if events.len() > options.max_events_per_append {
            return Err(AppendError::TooManyEvents {
                count: events.len(),
                max: options.max_events_per_append,
            });
        }
        let bytes: usize = events.iter().map(event_size).sum();
        if bytes > options.max_append_bytes {
            return Err(AppendError::AppendTooLarge {
                size: bytes,
                max: options.max_append_bytes,
            });
        }
        // Single-event appends, the common case, need no duplicate check.
        let check_duplicates = events.len() > 1;
        let mut seen = HashSet::with_capacity(if check_duplicates { events.len() } else { 0 });
        let mut prepared = Vec::with_capacity(events.len());
        for event in events {
            let event_id = event.event_id;
            names::validate_event_type(&event.event_type).map_err(|reason| {
                AppendError::InvalidEventType {
                    event_id,
                    event_type: event.event_type.clone(),
                    reason,
                }
            })?;
            let size = event_size(&event);
            if size > options.max_event_bytes {
                return Err(AppendError::EventTooLarge {
                    event_id,
                    size,
                    max: options.max_event_bytes,
                });
            }
            if !is_json(&event.data) {
                return Err(AppendError::InvalidJson {
                    event_id,
                    field: "data",
                });
            }
            if !is_json(&event.metadata) {
                return Err(AppendError::InvalidJson {
                    event_id,
                    field: "metadata",
                });
            }
            if check_duplicates && !seen.insert(event_id) {
                return Err(AppendError::DuplicateEventId { event_id });
            }
            let hash = content_hash(&event);
            prepared.push((event, hash));
        }
        // Look the ids up here, on the caller's task, rather than in the writer:
        // every event below the head is indexed (and in the id filter), so if
        // none is found the writer only needs to check what it wrote since (it
        // keeps that in memory). The filter spares the index read for new ids.
        let shared = &self.inner.shared;
        let head = shared.head();
        let mut ids_unknown_below = Some(head);
        for (event, _) in &prepared {
            if !shared.ids.might_contain(event.event_id) {
                continue;
            }
            let known = shared
                .index
                .event_id(event.event_id)
                .map_err(|error| AppendError::Storage(Arc::new(error.into())))?;
            if known.is_some() {
                ids_unknown_below = None;
                break;
            }
        }
        Ok(PreparedAppend {
            stream: stream.to_owned(),
            expected,
            events: prepared,
            bytes,
            ids_unknown_below,
        })
    }

    /// Reads up to `limit` events of `stream` starting at version `from`, upwards
    /// or downwards (`u64::MAX` backwards means "from the last event").
    /// A stream with no event is [`ReadError::StreamNotFound`].
    pub async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
        direction: Direction,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        names::validate_stream_name(stream).map_err(|reason| ReadError::InvalidStreamName {
            stream: stream.to_owned(),
            reason,
        })?;
        let shared = self.inner.shared.clone();
        let stream = stream.to_owned();
        blocking(move || reads::read_stream(&shared, &stream, from, limit, direction)).await
    }

    /// The stream's last version, or `None` if it has no event.
    pub async fn stream_version(&self, stream: &str) -> Result<Option<u64>, ReadError> {
        names::validate_stream_name(stream).map_err(|reason| ReadError::InvalidStreamName {
            stream: stream.to_owned(),
            reason,
        })?;
        let shared = self.inner.shared.clone();
        let stream = stream.to_owned();
        blocking(move || reads::stream_version(&shared, &stream)).await
    }

    /// Reads up to `limit` events of the global log from `from_position`, in order.
    pub async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        if from_position >= self.head() || limit == 0 {
            return Ok(Vec::new());
        }
        let shared = self.inner.shared.clone();
        blocking(move || reads::read_all(&shared, from_position, limit)).await
    }

    /// Reads up to `limit` events of every stream of `category` (`order` for
    /// `order-*`) from global position `from_position`, in log order.
    pub async fn read_category(
        &self,
        category: &str,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        names::validate_category(category).map_err(|reason| ReadError::InvalidCategory {
            category: category.to_owned(),
            reason,
        })?;
        let shared = self.inner.shared.clone();
        let category = category.to_owned();
        blocking(move || reads::read_category(&shared, &category, from_position, limit)).await
    }

    /// Every event from `from_position` on: first those already stored, then each
    /// new one as it is appended, with no gap and no duplicate in between (both
    /// phases read the log by position up to the published head). The stream
    /// ends after a read error, or once the store has shut down and it is caught up.
    pub fn subscribe_all(
        &self,
        from_position: u64,
    ) -> BoxStream<'static, Result<RecordedEvent, ReadError>> {
        struct Subscription {
            store: Store,
            head: watch::Receiver<u64>,
            next: u64,
            buffer: std::collections::VecDeque<RecordedEvent>,
            done: bool,
        }
        let state = Subscription {
            store: self.clone(),
            head: self.watch_head(),
            next: from_position,
            buffer: std::collections::VecDeque::new(),
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
                let next = state.next;
                if state.store.head() <= next
                    && state.head.wait_for(|head| *head > next).await.is_err()
                    && state.store.head() <= next
                {
                    // The store shut down and everything was delivered.
                    return None;
                }
                match state.store.read_all(next, SUBSCRIPTION_BATCH).await {
                    Ok(events) => {
                        state.next += events.len() as u64;
                        state.buffer.extend(events);
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

    /// Stops the store: appends already handed to the writer are finished and
    /// synced, the index is flushed and the writer thread ends. Later appends
    /// fail with [`AppendError::Closed`]. Calling it again does nothing.
    pub async fn shutdown(&self) -> Result<(), Arc<StorageError>> {
        let (reply, answer) = oneshot::channel();
        let result = if self
            .inner
            .requests
            .send(Request::Shutdown { reply })
            .await
            .is_ok()
        {
            answer.await.unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        let handle = self.inner.writer.lock().take();
        if let Some(handle) = handle {
            // The thread has answered; joining only waits for it to return.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        result
    }
}

async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|_| ReadError::Cancelled)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: "Happened".into(),
            schema_version: 1,
            data: data.into(),
            metadata: "{}".into(),
        }
    }

    #[test]
    fn expected_versions_accept_exactly_the_states_they_name() {
        use ExpectedVersion::*;
        assert!(Any.accepts(None) && Any.accepts(Some(3)));
        assert!(NoStream.accepts(None) && !NoStream.accepts(Some(0)));
        assert!(!StreamExists.accepts(None) && StreamExists.accepts(Some(0)));
        assert!(Exact(2).accepts(Some(2)) && !Exact(2).accepts(Some(1)) && !Exact(0).accepts(None));
    }

    #[test]
    fn the_content_hash_covers_type_data_metadata_and_schema_version() {
        let base = event(r#"{"a":1}"#);
        let hash = content_hash(&base);
        assert_eq!(hash, content_hash(&base.clone()));
        let variants = [
            NewEvent {
                event_type: "Other".into(),
                ..base.clone()
            },
            NewEvent {
                data: r#"{"a":2}"#.into(),
                ..base.clone()
            },
            NewEvent {
                metadata: r#"{"x":1}"#.into(),
                ..base.clone()
            },
            NewEvent {
                schema_version: 2,
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(content_hash(&variant), hash, "{variant:?}");
        }
        // Moving bytes between fields changes the hash too.
        let a = NewEvent {
            data: "1".into(),
            metadata: "23".into(),
            ..base.clone()
        };
        let b = NewEvent {
            data: "12".into(),
            metadata: "3".into(),
            ..base
        };
        assert_ne!(content_hash(&a), content_hash(&b));
    }

    #[tokio::test]
    async fn catching_up_replaces_category_entries_written_past_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default())
            .await
            .unwrap();
        // One group per append: one category entry per event.
        for n in 0..10 {
            store
                .append("order-1", ExpectedVersion::Any, vec![event(&n.to_string())])
                .await
                .unwrap();
        }
        store.shutdown().await.unwrap();
        drop(store);
        // As if the last checkpoints were lost but the entries before them were not.
        let index = Index::open(&dir.path().join("index"), 1 << 20).unwrap();
        index.rewind_checkpoint(5).unwrap();
        index.flush().unwrap();
        drop(index);

        let store = Store::open(dir.path(), StoreOptions::default())
            .await
            .unwrap();
        let positions: Vec<u64> = store
            .read_category("order", 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(positions, (0..10).collect::<Vec<_>>());
        let from_seven: Vec<u64> = store
            .read_category("order", 7, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(from_seven, vec![7, 8, 9]);
    }

    #[test]
    fn the_unsynced_bound_covers_a_full_group_and_a_full_append() {
        let options = StoreOptions::default();
        assert!(
            options.max_unsynced_bytes()
                > (options.max_group_bytes + options.max_append_bytes) as u64
        );
    }
}
