//! The sled indexes over the log.
//!
//! All indexes live in sled's default tree, told apart by a one-byte key prefix.
//! A group commit writes its stream and event id entries (two threads share
//! them, see `IndexHelper`), then its category entries, then (every 100 ms or
//! so; it only bounds the next catch-up) the "indexed up to" checkpoint. Every
//! entry points at a record that is already synced, and the checkpoint goes
//! last, so after a crash sled holds at least the index of the log up to the
//! checkpoint; catching up from the checkpoint rewrites the
//! entries that may be missing (stream and id entries come out the same when
//! written twice; category entries past the checkpoint are removed first,
//! because the catch-up groups events differently).
//!
//! | key | value | what |
//! |---|---|---|
//! | `v` stream `0x00` version | position, offset | stream → version → position (and where the record is) |
//! | `i` event id (16 bytes) | version, position, hash (16 bytes), stream | event id → where it was written, and a hash of its content |
//! | `c` category `0x00` position | (position, offset) pairs | category → positions: one entry per category and group commit, keyed by its first position |
//! | `m` `indexed_up_to` | position | every event below it is indexed |
//!
//! A stream's head (its last version) is the last key of its `v` range, one
//! ordered lookup; a separate head key would be one more sled write per event
//! when every append goes to a different stream, and sled writes are what a
//! group commit spends most of its time on (see BENCHMARKS.md). For the same
//! reason the category index packs a whole group's positions into one entry.
//!
//! Numbers are big-endian `u64` so keys sort numerically; offsets are byte
//! offsets of the record's frame within its segment. Names never contain `0x00`
//! (see [`crate::names`]), so the separator keeps `order-1` and `order-10` apart.
//!
//! sled's own flush is not relied on for durability: the log is the truth and
//! the index is caught up from it on open.

use std::path::Path;
use std::sync::mpsc;

use uuid::Uuid;

const STREAM: u8 = b'v';
const EVENT_ID: u8 = b'i';
const CATEGORY: u8 = b'c';
const CHECKPOINT_KEY: &[u8] = b"mindexed_up_to";

/// A hash of an event's content, to tell an idempotent re-append from an id reused for other content.
pub(crate) type ContentHash = [u8; 16];

/// Failures of the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// sled failed.
    #[error("index database error: {0}")]
    Sled(#[from] sled::Error),
    /// The index helper thread is gone.
    #[error("the index helper thread stopped")]
    HelperStopped,
    /// A stored index value has the wrong shape.
    #[error("index entry under key prefix {prefix:?} is malformed")]
    Malformed {
        /// The key prefix of the bad entry.
        prefix: char,
    },
}

/// Where an event id was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdEntry {
    pub(crate) stream: String,
    pub(crate) version: u64,
    pub(crate) position: u64,
    pub(crate) hash: ContentHash,
}

/// An entry of a stream's version index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamEntry {
    pub(crate) version: u64,
    pub(crate) position: u64,
    pub(crate) offset: u64,
}

/// An entry of a category's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CategoryEntry {
    pub(crate) position: u64,
    pub(crate) offset: u64,
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let slice = bytes.get(at..at + 8)?;
    let mut array = [0u8; 8];
    array.copy_from_slice(slice);
    Some(u64::from_be_bytes(array))
}

fn name_key(prefix: u8, name: &str, capacity: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len() + capacity);
    key.push(prefix);
    key.extend_from_slice(name.as_bytes());
    key
}

fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut key = name_key(STREAM, stream, 9);
    key.push(0);
    key
}

fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn category_prefix(category: &str) -> Vec<u8> {
    let mut key = name_key(CATEGORY, category, 9);
    key.push(0);
    key
}

fn category_key(category: &str, position: u64) -> Vec<u8> {
    let mut key = category_prefix(category);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

fn id_key(event_id: Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = EVENT_ID;
    key[1..].copy_from_slice(event_id.as_bytes());
    key
}

fn decode_stream_entry(key: &[u8], value: &[u8]) -> Result<StreamEntry, IndexError> {
    let malformed = || IndexError::Malformed { prefix: 'v' };
    let version = key
        .len()
        .checked_sub(8)
        .and_then(|at| u64_at(key, at))
        .ok_or_else(malformed)?;
    Ok(StreamEntry {
        version,
        position: u64_at(value, 0).ok_or_else(malformed)?,
        offset: u64_at(value, 8).ok_or_else(malformed)?,
    })
}

fn decode_id_entry(value: &[u8]) -> Result<IdEntry, IndexError> {
    let malformed = || IndexError::Malformed { prefix: 'i' };
    let version = u64_at(value, 0).ok_or_else(malformed)?;
    let position = u64_at(value, 8).ok_or_else(malformed)?;
    let hash: ContentHash = value
        .get(16..32)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(malformed)?;
    let stream = std::str::from_utf8(&value[32..])
        .map_err(|_| malformed())?
        .to_owned();
    Ok(IdEntry {
        stream,
        version,
        position,
        hash,
    })
}

/// Groups smaller than this are indexed by the writer alone.
const HELPER_MIN_EVENTS: usize = 32;

/// Index entries as (key, value) pairs.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The updates of one group commit (or one catch-up chunk).
#[derive(Default)]
pub(crate) struct IndexBatch {
    streams: Entries,
    ids: Entries,
    /// Per category: its (position, offset) pairs in this batch, packed.
    categories: Vec<(String, u64, Vec<u8>)>,
}

impl IndexBatch {
    /// Indexes one written event. Events must be added in position order.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_event(
        &mut self,
        stream: &str,
        category: &str,
        version: u64,
        position: u64,
        offset: u64,
        event_id: Uuid,
        hash: &ContentHash,
    ) {
        let mut location = [0u8; 16];
        location[..8].copy_from_slice(&position.to_be_bytes());
        location[8..].copy_from_slice(&offset.to_be_bytes());
        self.streams
            .push((stream_key(stream, version), location.to_vec()));

        let mut id_value = Vec::with_capacity(32 + stream.len());
        id_value.extend_from_slice(&version.to_be_bytes());
        id_value.extend_from_slice(&position.to_be_bytes());
        id_value.extend_from_slice(hash);
        id_value.extend_from_slice(stream.as_bytes());
        self.ids.push((id_key(event_id).to_vec(), id_value));

        // A group holds few categories: a linear search beats hashing here.
        match self
            .categories
            .iter_mut()
            .find(|(name, _, _)| name == category)
        {
            Some((_, _, pairs)) => pairs.extend_from_slice(&location),
            None => self
                .categories
                .push((category.to_owned(), position, location.to_vec())),
        }
    }

    /// How many events were added.
    pub(crate) fn events(&self) -> usize {
        self.ids.len()
    }

    /// The category entries and the checkpoint, as one atomic sled batch.
    fn categories_and_checkpoint(
        categories: Vec<(String, u64, Vec<u8>)>,
        next_position: u64,
    ) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (category, first_position, pairs) in categories {
            batch.insert(category_key(&category, first_position), pairs);
        }
        batch.insert(CHECKPOINT_KEY, next_position.to_be_bytes().to_vec());
        batch
    }
}

/// A thread that writes half of each group's index entries, so the two cores
/// share the index work while the writer waits for it.
pub(crate) struct IndexHelper {
    jobs: Option<mpsc::Sender<Entries>>,
    done: mpsc::Receiver<Result<(), IndexError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IndexHelper {
    /// Starts the helper thread over `index`.
    pub(crate) fn start(index: &Index) -> std::io::Result<Self> {
        let (jobs, job_queue) = mpsc::channel::<Entries>();
        let (results, done) = mpsc::channel();
        let db = index.db.clone();
        let thread = std::thread::Builder::new()
            .name("event-store-index".into())
            .spawn(move || {
                for job in job_queue {
                    let result = job
                        .into_iter()
                        .try_for_each(|(key, value)| db.insert(key, value).map(|_| ()))
                        .map_err(IndexError::from);
                    if results.send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for IndexHelper {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long opening the index waits for sled's file lock to be released.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether sled refused to open because its database file is locked.
fn is_lock_taken(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

/// Opens a sled database, waiting up to [`LOCK_WAIT`] for its file lock.
///
/// sled's file lock can outlive the previous handle for a moment (one of its
/// I/O threads may still hold the file after the last `Db` is gone), so a
/// database closed and reopened in one process may find it taken: that one
/// error is tried again. A lock held by another process stays an error after
/// the wait. The store's index and the projectors' views open through this.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(error) if is_lock_taken(&error) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

/// The store's sled database.
pub(crate) struct Index {
    db: sled::Db,
}

impl Index {
    /// Opens (or creates) the index database in `path` (see [`open_sled`]).
    pub(crate) fn open(path: &Path, cache_bytes: u64) -> Result<Self, IndexError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Background flushes only shorten the catch-up on the next open;
            // durability comes from the log.
            .flush_every_ms(Some(1000));
        Ok(Self {
            db: open_sled(&config)?,
        })
    }

    /// Applies a batch atomically, with the checkpoint `next_position`.
    pub(crate) fn apply(&self, batch: IndexBatch, next_position: u64) -> Result<(), IndexError> {
        let IndexBatch {
            streams,
            ids,
            categories,
        } = batch;
        let mut all = IndexBatch::categories_and_checkpoint(categories, next_position);
        for (key, value) in streams {
            all.insert(key, value);
        }
        for (key, value) in ids {
            all.insert(key, value);
        }
        self.db.apply_batch(all)?;
        Ok(())
    }

    /// Writes a group's entries, `helper` writing the event ids while this
    /// thread writes the stream entries, then the category entries, then the
    /// checkpoint if one is given (every event below it must be indexed). Plain inserts, not a sled batch: a batch makes sled write
    /// out and wait for its log buffer twice (`pin_log`), two more disk writes
    /// per group beside the log's own sync. Not atomic, which is fine: every
    /// entry points at a record already synced, the checkpoint goes last, and
    /// catching up from the checkpoint after a crash rewrites the same stream
    /// and id entries and replaces the category entries past it.
    pub(crate) fn apply_with(
        &self,
        batch: IndexBatch,
        checkpoint: Option<u64>,
        helper: &IndexHelper,
    ) -> Result<(), IndexError> {
        let IndexBatch {
            streams,
            ids,
            categories,
        } = batch;
        // Handing a small group over costs more (a thread wake-up) than it saves.
        let handed_over = match &helper.jobs {
            Some(jobs) if ids.len() >= HELPER_MIN_EVENTS => {
                jobs.send(ids).map_err(|returned| returned.0)
            }
            _ => Err(ids),
        };
        let insert_all = |entries: Entries| {
            entries
                .into_iter()
                .try_for_each(|(key, value)| self.db.insert(key, value).map(|_| ()))
                .map_err(IndexError::from)
        };
        // Without a helper, the ids are written here.
        let ids_written_here = handed_over.err().map(insert_all);
        let streams_written = insert_all(streams);
        let ids_written = match ids_written_here {
            Some(result) => result,
            None => helper.done.recv().unwrap_or(Err(IndexError::HelperStopped)),
        };
        ids_written?;
        streams_written?;
        for (category, first_position, pairs) in categories {
            self.db
                .insert(category_key(&category, first_position), pairs)?;
        }
        // Last: sled recovers a prefix of its log, so a recovered checkpoint
        // comes with every entry written before it.
        if let Some(next_position) = checkpoint {
            self.db
                .insert(CHECKPOINT_KEY, next_position.to_be_bytes().to_vec())?;
        }
        Ok(())
    }

    /// Removes a category's entries keyed at `from` or later: after a crash,
    /// group entries past the checkpoint may exist, and catching up writes its
    /// own entries (over other spans) for the same events.
    pub(crate) fn remove_category_entries_from(
        &self,
        category: &str,
        from: u64,
    ) -> Result<usize, IndexError> {
        let mut stale = sled::Batch::default();
        let mut count = 0;
        for entry in self
            .db
            .range(category_key(category, from)..=category_key(category, u64::MAX))
        {
            let (key, _) = entry?;
            stale.remove(key);
            count += 1;
        }
        if count > 0 {
            self.db.apply_batch(stale)?;
        }
        Ok(count)
    }

    /// Moves the checkpoint back, as a crash that lost its last updates would.
    #[cfg(test)]
    pub(crate) fn rewind_checkpoint(&self, next_position: u64) -> Result<(), IndexError> {
        self.db
            .insert(CHECKPOINT_KEY, next_position.to_be_bytes().to_vec())?;
        Ok(())
    }

    /// Flushes sled's buffers to its files (shortens the next catch-up).
    pub(crate) fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        Ok(())
    }

    /// The position below which every event is indexed.
    pub(crate) fn checkpoint(&self) -> Result<u64, IndexError> {
        match self.db.get(CHECKPOINT_KEY)? {
            None => Ok(0),
            Some(value) => u64_at(&value, 0).ok_or(IndexError::Malformed { prefix: 'm' }),
        }
    }

    /// A stream's last version, as indexed.
    pub(crate) fn head(&self, stream: &str) -> Result<Option<u64>, IndexError> {
        self.stream_entries(stream, u64::MAX, false)
            .next()
            .transpose()
            .map(|entry| entry.map(|entry| entry.version))
    }

    /// Where an event id was written, if it was.
    pub(crate) fn event_id(&self, event_id: Uuid) -> Result<Option<IdEntry>, IndexError> {
        match self.db.get(id_key(event_id))? {
            None => Ok(None),
            Some(value) => decode_id_entry(&value).map(Some),
        }
    }

    /// One entry of a stream's version index.
    pub(crate) fn stream_entry(
        &self,
        stream: &str,
        version: u64,
    ) -> Result<Option<StreamEntry>, IndexError> {
        let key = stream_key(stream, version);
        match self.db.get(&key)? {
            None => Ok(None),
            Some(value) => decode_stream_entry(&key, &value).map(Some),
        }
    }

    /// A stream's entries from `from` upwards (`forward`) or downwards.
    pub(crate) fn stream_entries(
        &self,
        stream: &str,
        from: u64,
        forward: bool,
    ) -> impl Iterator<Item = Result<StreamEntry, IndexError>> {
        let start = stream_key(stream, if forward { from } else { 0 });
        let end = stream_key(stream, if forward { u64::MAX } else { from });
        let range = self.db.range(start..=end);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if forward {
            Box::new(range)
        } else {
            Box::new(range.rev())
        };
        iter.map(|item| {
            let (key, value) = item?;
            decode_stream_entry(&key, &value)
        })
    }

    /// A category's entries from position `from` upwards.
    pub(crate) fn category_entries(
        &self,
        category: &str,
        from: u64,
    ) -> Result<impl Iterator<Item = Result<CategoryEntry, IndexError>>, IndexError> {
        // The packed entry holding `from` starts at or before it.
        let start = match self
            .db
            .range(category_key(category, 0)..=category_key(category, from))
            .next_back()
            .transpose()?
        {
            Some((key, _)) => key.to_vec(),
            None => category_key(category, from),
        };
        let end = category_key(category, u64::MAX);
        Ok(self
            .db
            .range(start..=end)
            .flat_map(
                |item| -> Box<dyn Iterator<Item = Result<CategoryEntry, IndexError>>> {
                    match item {
                        Err(error) => Box::new(std::iter::once(Err(error.into()))),
                        Ok((_, value)) => Box::new(decode_category_pairs(value)),
                    }
                },
            )
            .filter(move |entry| entry.as_ref().map_or(true, |e| e.position >= from)))
    }
}

fn decode_category_pairs(
    value: sled::IVec,
) -> impl Iterator<Item = Result<CategoryEntry, IndexError>> {
    let malformed = value.len() % 16 != 0;
    let count = value.len() / 16;
    let bad = malformed.then_some(Err(IndexError::Malformed { prefix: 'c' }));
    (0..count)
        .map(move |i| {
            let at = i * 16;
            match (u64_at(&value, at), u64_at(&value, at + 8)) {
                (Some(position), Some(offset)) => Ok(CategoryEntry { position, offset }),
                _ => Err(IndexError::Malformed { prefix: 'c' }),
            }
        })
        .chain(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_waits_for_a_lock_the_previous_handle_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let first = Index::open(dir.path(), 1 << 20).unwrap();
        first.db.insert(b"k", b"v".as_slice()).unwrap();
        first.db.flush().unwrap();
        // While the first handle lives, a plain open is refused as locked…
        let refused = sled::Config::new().path(dir.path()).open().unwrap_err();
        assert!(is_lock_taken(&refused), "{refused}");
        // …and `Index::open` waits for it to go instead of failing.
        let path = dir.path().to_path_buf();
        let second = std::thread::spawn(move || Index::open(&path, 1 << 20));
        drop(first);
        let second = second.join().unwrap().expect("opens once the lock is free");
        assert_eq!(
            second.db.get(b"k").unwrap().as_deref(),
            Some(b"v".as_slice())
        );
    }

    #[test]
    fn batches_index_streams_ids_categories_and_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path(), 1 << 20).unwrap();
        let mut batch = IndexBatch::default();
        let ids: Vec<Uuid> = (0..3).map(|n| Uuid::from_u128(n + 1)).collect();
        batch.add_event("order-1", "order", 0, 0, 0, ids[0], &[1; 16]);
        batch.add_event("order-10", "order", 0, 1, 100, ids[1], &[2; 16]);
        batch.add_event("order-1", "order", 1, 2, 200, ids[2], &[3; 16]);
        assert_eq!(batch.events(), 3);
        index.apply(batch, 3).unwrap();
        // A second group: its category entry is keyed by its first position.
        let mut batch = IndexBatch::default();
        batch.add_event("order-2", "order", 0, 3, 300, Uuid::from_u128(50), &[4; 16]);
        batch.add_event("cart-2", "cart", 0, 4, 400, Uuid::from_u128(51), &[5; 16]);
        batch.add_event("order-2", "order", 1, 5, 500, Uuid::from_u128(52), &[6; 16]);
        index.apply(batch, 6).unwrap();

        assert_eq!(index.checkpoint().unwrap(), 6);
        assert_eq!(index.head("order-1").unwrap(), Some(1));
        assert_eq!(index.head("order-2").unwrap(), Some(1));
        assert_eq!(index.head("order-3").unwrap(), None);
        let forward: Vec<_> = index
            .stream_entries("order-1", 0, true)
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            forward,
            vec![
                StreamEntry {
                    version: 0,
                    position: 0,
                    offset: 0
                },
                StreamEntry {
                    version: 1,
                    position: 2,
                    offset: 200
                }
            ]
        );
        let backward: Vec<u64> = index
            .stream_entries("order-1", 0, false)
            .map(|e| e.unwrap().version)
            .collect();
        assert_eq!(backward, vec![0]);
        let backward_all: Vec<u64> = index
            .stream_entries("order-1", u64::MAX, false)
            .map(|e| e.unwrap().version)
            .collect();
        assert_eq!(backward_all, vec![1, 0]);
        let category = |name: &str, from: u64| -> Vec<(u64, u64)> {
            index
                .category_entries(name, from)
                .unwrap()
                .map(|e| e.map(|e| (e.position, e.offset)).unwrap())
                .collect()
        };
        assert_eq!(
            category("order", 1),
            vec![(1, 100), (2, 200), (3, 300), (5, 500)]
        );
        assert_eq!(category("order", 4), vec![(5, 500)]);
        assert_eq!(category("order", 0).len(), 5);
        assert_eq!(category("cart", 0), vec![(4, 400)]);
        assert_eq!(category("cart", 5), vec![]);
        assert_eq!(category("ord", 0), vec![]);
        assert_eq!(
            index.event_id(ids[1]).unwrap(),
            Some(IdEntry {
                stream: "order-10".into(),
                version: 0,
                position: 1,
                hash: [2; 16]
            })
        );
        assert_eq!(index.event_id(Uuid::from_u128(99)).unwrap(), None);
        assert_eq!(
            index.stream_entry("order-10", 0).unwrap().map(|e| e.offset),
            Some(100)
        );
    }
}
