//! The writer thread: the only code that writes to the log or the index.
//!
//! It takes whatever appends are waiting (a *group*), decides each one against
//! the stream heads and event ids it knows, encodes the accepted ones into one
//! buffer, writes it with one `write` and one `fdatasync`, writes the group's
//! index entries (sharing a large group's with a helper thread), publishes
//! the head and then answers every caller. Appends that arrive while a sync is running
//! queue up and form the next group, so one sync serves many appends (group
//! commit). It is a plain thread, not a tokio task, because its `write` and
//! `fdatasync` block.
//!
//! A failed write, sync or index update leaves the log in an unknown state: the
//! writer then refuses every later append (fail-stop) until the store is
//! reopened and recovery has looked at the log.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::codec;
use domain::envelope::stream_category;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::recovery::{sync_dir, Opened, LOG_DIR};
use super::{
    AppendError, AppendResult, PreparedAppend, Request, Segment, Shared, StorageError,
    SPARSE_STRIDE,
};
use crate::index::{IdEntry, IndexBatch, IndexHelper};
use crate::log;

/// The index checkpoint is written at least this often while appends go on…
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// …and at least every this many events.
const CHECKPOINT_EVENTS: u64 = 10_000;

/// How many of the latest event ids the writer keeps in memory.
const RECENT_IDS: usize = 20_000;

type AppendReply = oneshot::Sender<Result<AppendResult, AppendError>>;
type ShutdownReply = oneshot::Sender<Result<(), Arc<StorageError>>>;

impl Request {
    fn bytes(&self) -> usize {
        match self {
            Self::Append { append, .. } => append.bytes,
            Self::Shutdown { .. } => 0,
        }
    }
}

/// The writer's state; see the module doc.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    head_sender: watch::Sender<u64>,
    requests: mpsc::Receiver<Request>,
    file: File,
    segment: Arc<Segment>,
    segment_len: u64,
    next_position: u64,
    /// Last version of recently written streams, so most appends need no index read.
    heads: HashMap<String, u64>,
    /// Event ids of the last [`RECENT_IDS`] events written, the current group's
    /// (not yet indexed) included, so appends whose caller found none of its ids
    /// in the index need no index read here.
    recent: HashMap<Uuid, IdEntry>,
    /// The same ids, oldest first, with their positions.
    recent_order: VecDeque<(u64, Uuid)>,
    /// Every id written at this position or later is in `recent`.
    recent_floor: u64,
    buf: Vec<u8>,
    failed: Option<Arc<StorageError>>,
    index_helper: IndexHelper,
    /// The last checkpoint written to the index, and when.
    checkpointed: u64,
    last_checkpoint: Instant,
}

impl Writer {
    pub(crate) fn new(
        opened: Opened,
        requests: mpsc::Receiver<Request>,
        index_helper: IndexHelper,
    ) -> Self {
        Self {
            shared: opened.shared,
            head_sender: opened.head_sender,
            requests,
            file: opened.file,
            segment: opened.segment,
            segment_len: opened.segment_len,
            next_position: opened.next_position,
            heads: HashMap::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            recent_floor: opened.next_position,
            buf: Vec::with_capacity(1024 * 1024),
            failed: None,
            index_helper,
            checkpointed: opened.next_position,
            last_checkpoint: Instant::now(),
        }
    }

    /// Runs until shut down or until every store handle is gone.
    pub(crate) fn run(mut self) {
        let mut group = Vec::new();
        while let Some(first) = self.requests.blocking_recv() {
            let mut bytes = first.bytes();
            group.push(first);
            while bytes < self.shared.options.max_group_bytes {
                match self.requests.try_recv() {
                    Ok(request) => {
                        bytes += request.bytes();
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            let shutdowns = self.commit(&mut group);
            if !shutdowns.is_empty() {
                self.stop(shutdowns);
                return;
            }
        }
        // Every handle is gone: nobody waits for an answer, just leave things tidy.
        if let Err(error) = self.finish() {
            tracing::error!(%error, "event store writer stopped with an error");
        }
    }

    /// Handles one group; returns the shutdown requests found in it.
    fn commit(&mut self, group: &mut Vec<Request>) -> Vec<ShutdownReply> {
        let mut shutdowns = Vec::new();
        let mut replies: Vec<(AppendReply, Result<AppendResult, AppendError>)> =
            Vec::with_capacity(group.len());

        if self.failed.is_none() && self.segment_len >= self.shared.options.segment_size {
            if let Err(error) = self.roll() {
                self.fail(error);
            }
        }
        if self.heads.len() >= self.shared.options.heads_cache_entries {
            // Safe between groups only: everything known here is in the index by now.
            self.heads.clear();
        }
        self.buf.clear();
        let mut batch = IndexBatch::default();
        let mut sparse = Vec::new();
        let recorded_at = Utc::now();
        let group_first = self.next_position;

        for request in group.drain(..) {
            match request {
                Request::Shutdown { reply } => shutdowns.push(reply),
                Request::Append { append, reply } => {
                    let result = match &self.failed {
                        Some(failure) => Err(AppendError::Storage(failure.clone())),
                        None => self.decide(append, recorded_at, &mut batch, &mut sparse),
                    };
                    replies.push((reply, result));
                }
            }
        }

        let written = self.next_position - group_first;
        if written > 0 {
            match self.persist(batch) {
                Ok(()) => {
                    self.segment.sparse.write().extend(sparse);
                    self.segment_len += self.buf.len() as u64;
                    self.shared
                        .head
                        .store(self.next_position, Ordering::Release);
                    self.head_sender.send_replace(self.next_position);
                    metrics::counter!("event_store_events_appended_total").increment(written);
                    metrics::histogram!("event_store_group_commit_events").record(written as f64);
                    metrics::gauge!("event_store_head_position").set(self.next_position as f64);
                }
                Err(error) => {
                    let failure = self.fail(error);
                    for (_, result) in &mut replies {
                        if result.is_ok() {
                            *result = Err(AppendError::Storage(failure.clone()));
                        }
                    }
                }
            }
        }

        while self.recent_order.len() > RECENT_IDS {
            if let Some((position, event_id)) = self.recent_order.pop_front() {
                self.recent.remove(&event_id);
                self.recent_floor = position + 1;
            }
        }

        let mut outcomes = [0u64; 3];
        for (reply, result) in replies {
            outcomes[match &result {
                Ok(_) => 0,
                Err(AppendError::WrongExpectedVersion { .. }) => 1,
                Err(_) => 2,
            }] += 1;
            // A caller that gave up waiting is no reason to stop.
            let _ = reply.send(result);
        }
        for (result, count) in ["ok", "wrong_expected_version", "error"]
            .into_iter()
            .zip(outcomes)
        {
            if count > 0 {
                metrics::counter!("event_store_appends_total", "result" => result).increment(count);
            }
        }
        shutdowns
    }

    /// Writes and syncs the group's records, then indexes them.
    fn persist(&mut self, batch: IndexBatch) -> Result<(), StorageError> {
        let started = Instant::now();
        self.file
            .write_all(&self.buf)
            .map_err(StorageError::io("cannot write to the log"))?;
        self.file
            .sync_data()
            .map_err(StorageError::io("cannot sync the log"))?;
        metrics::histogram!("event_store_sync_seconds").record(started.elapsed().as_secs_f64());
        // The checkpoint only bounds the catch-up on the next open, so it is
        // written now and then rather than with every group.
        let checkpoint = (self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
            || self.next_position - self.checkpointed >= CHECKPOINT_EVENTS)
            .then_some(self.next_position);
        self.shared
            .index
            .apply_with(batch, checkpoint, &self.index_helper)?;
        if let Some(position) = checkpoint {
            self.checkpointed = position;
            self.last_checkpoint = Instant::now();
        }
        Ok(())
    }

    fn fail(&mut self, error: StorageError) -> Arc<StorageError> {
        tracing::error!(%error, "event store storage failure; refusing appends until reopened");
        let failure = Arc::new(error);
        self.failed = Some(failure.clone());
        self.shared.failed.store(true, Ordering::Release);
        failure
    }

    /// Decides one append and, if it is to be written, encodes it into the group buffer.
    fn decide(
        &mut self,
        append: PreparedAppend,
        recorded_at: DateTime<Utc>,
        batch: &mut IndexBatch,
        sparse: &mut Vec<u64>,
    ) -> Result<AppendResult, AppendError> {
        let storage = |error: StorageError| AppendError::Storage(Arc::new(error));
        if let Some(result) = self.already_appended(&append)? {
            return Ok(result);
        }
        let current = self.current_version(&append.stream).map_err(storage)?;
        if !append.expected.accepts(current) {
            return Err(AppendError::WrongExpectedVersion {
                expected: append.expected,
                current,
            });
        }

        let first_version = current.map_or(0, |version| version + 1);
        let first_position = self.next_position;
        let buf_start = self.buf.len();
        let mut written = Vec::with_capacity(append.events.len());
        for (i, (event, hash)) in append.events.into_iter().enumerate() {
            let record = event.into_recorded(
                append.stream.clone(),
                first_version + i as u64,
                first_position + i as u64,
                recorded_at,
            );
            let payload = match codec::encode(&record) {
                Ok(payload) => payload,
                Err(error) => {
                    self.buf.truncate(buf_start);
                    return Err(storage(StorageError::Encode(error)));
                }
            };
            let offset = self.segment_len + self.buf.len() as u64;
            log::append_frame(&mut self.buf, &payload);
            written.push((record.event_id, hash, offset));
        }

        let category = stream_category(&append.stream);
        let count = written.len() as u64;
        for (i, (event_id, hash, offset)) in written.into_iter().enumerate() {
            let version = first_version + i as u64;
            let position = first_position + i as u64;
            batch.add_event(
                &append.stream,
                category,
                version,
                position,
                offset,
                event_id,
                &hash,
            );
            if (position - self.segment.first_position) % SPARSE_STRIDE == 0 {
                sparse.push(offset);
            }
            self.recent.insert(
                event_id,
                IdEntry {
                    stream: append.stream.clone(),
                    version,
                    position,
                    hash,
                },
            );
            self.recent_order.push_back((position, event_id));
            self.shared.ids.insert(event_id);
        }
        self.next_position += count;
        let last_version = first_version + count - 1;
        self.heads.insert(append.stream, last_version);
        Ok(AppendResult {
            first_position,
            last_position: first_position + count - 1,
            next_expected_version: last_version,
            repeat: false,
            recorded_at: Some(recorded_at),
        })
    }

    /// If every event id of the append is already stored, together, in this
    /// stream and with the same content, the original result; if some are
    /// stored but not like that, [`AppendError::EventIdReused`].
    fn already_appended(
        &self,
        append: &PreparedAppend,
    ) -> Result<Option<AppendResult>, AppendError> {
        let mut found: Vec<(Uuid, IdEntry)> = Vec::new();
        let mut missing = false;
        for (event, hash) in &append.events {
            let entry = match self.recent.get(&event.event_id) {
                Some(entry) => Some(entry.clone()),
                // The caller saw none of the ids in the index, and nothing written
                // since it looked has left `recent`: the id is new.
                None if append
                    .ids_unknown_below
                    .is_some_and(|head| head >= self.recent_floor) =>
                {
                    None
                }
                None => self
                    .shared
                    .index
                    .event_id(event.event_id)
                    .map_err(|error| AppendError::Storage(Arc::new(error.into())))?,
            };
            match entry {
                Some(entry) if entry.stream != append.stream || entry.hash != *hash => {
                    return Err(AppendError::EventIdReused {
                        event_id: event.event_id,
                    });
                }
                Some(entry) => found.push((event.event_id, entry)),
                None => missing = true,
            }
        }
        let Some((first_id, first)) = found.first() else {
            return Ok(None);
        };
        if missing {
            return Err(AppendError::EventIdReused {
                event_id: *first_id,
            });
        }
        for (i, (event_id, entry)) in found.iter().enumerate() {
            if entry.version != first.version + i as u64 {
                return Err(AppendError::EventIdReused {
                    event_id: *event_id,
                });
            }
        }
        let last = &found[found.len() - 1].1;
        Ok(Some(AppendResult {
            first_position: first.position,
            last_position: last.position,
            next_expected_version: last.version,
            repeat: true,
            recorded_at: None,
        }))
    }

    fn current_version(&mut self, stream: &str) -> Result<Option<u64>, StorageError> {
        if let Some(version) = self.heads.get(stream) {
            return Ok(Some(*version));
        }
        let version = self.shared.index.head(stream)?;
        if let Some(version) = version {
            self.heads.insert(stream.to_owned(), version);
        }
        Ok(version)
    }

    /// Starts a new segment. Called between groups, so the old one is fully synced.
    fn roll(&mut self) -> Result<(), StorageError> {
        let first_position = self.next_position;
        let log_dir = self.shared.dir.join(LOG_DIR);
        let path = log_dir.join(log::segment_file_name(first_position));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StorageError::io("cannot create a segment"))?;
        sync_dir(&log_dir).map_err(StorageError::io("cannot sync the log directory"))?;
        let reader = File::open(&path).map_err(StorageError::io("cannot open a segment"))?;
        let segment = Arc::new(Segment {
            first_position,
            path,
            file: reader,
            sparse: RwLock::new(Vec::new()),
        });
        self.shared.segments.write().push(segment.clone());
        tracing::info!(first_position, "started a new log segment");
        self.file = file;
        self.segment = segment;
        self.segment_len = 0;
        Ok(())
    }

    /// Syncs the log (a no-op unless something failed half-way) and flushes the
    /// index so the next open has nothing to catch up.
    fn finish(&mut self) -> Result<(), Arc<StorageError>> {
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        self.file
            .sync_all()
            .map_err(|e| Arc::new(StorageError::io("cannot sync the log")(e)))?;
        self.shared
            .index
            .apply_with(
                IndexBatch::default(),
                Some(self.next_position),
                &self.index_helper,
            )
            .and_then(|()| self.shared.index.flush())
            .map_err(|e| Arc::new(StorageError::Index(e)))?;
        self.checkpointed = self.next_position;
        Ok(())
    }

    fn stop(mut self, shutdowns: Vec<ShutdownReply>) {
        let result = self.finish();
        self.requests.close();
        while let Ok(request) = self.requests.try_recv() {
            match request {
                Request::Append { reply, .. } => {
                    let _ = reply.send(Err(AppendError::Closed));
                }
                Request::Shutdown { reply } => {
                    let _ = reply.send(result.clone());
                }
            }
        }
        tracing::info!(head = self.next_position, "event store writer stopped");
        for reply in shutdowns {
            let _ = reply.send(result.clone());
        }
    }
}
