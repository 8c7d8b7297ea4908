//! Opening a store: the store id, a check of every record of the log, torn-tail
//! truncation and catching the index up with the log.
//!
//! The log is the truth. Every record is read back, its CRC checked, decoded
//! and its position compared with the count of records before it, so a store
//! that opens has a dense, gap-free log. A damaged record is a *torn tail* —
//! the last group commit cut short by a crash, never acknowledged — only if it
//! is in the last segment, at or past the index checkpoint (everything below
//! that was synced before it was indexed) and within one group commit of the
//! end of the file; then the tail is truncated and the truncation logged.
//! Anything else is corruption and stops the open with the record's position.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use domain::codec;
use domain::envelope::{stream_category, RecordedEvent};
use parking_lot::RwLock;
use tokio::sync::watch;
use uuid::Uuid;

use super::id_filter::IdFilter;
use super::{content_hash_of, OpenError, Segment, Shared, StoreOptions, SPARSE_STRIDE};
use crate::index::{Index, IndexBatch};
use crate::log::{self, Frame, FrameReader};

/// Name of the file holding the store id.
pub(crate) const STORE_ID_FILE: &str = "store-id";
/// Folder of the segment files.
pub(crate) const LOG_DIR: &str = "log";
/// Folder of the sled database.
pub(crate) const INDEX_DIR: &str = "index";

/// How many events the catch-up indexes per sled batch.
const CATCH_UP_CHUNK: usize = 10_000;

/// An opened store, before its writer starts.
pub(crate) struct Opened {
    pub(crate) shared: Arc<Shared>,
    pub(crate) head_sender: watch::Sender<u64>,
    /// Write handle on the last segment, positioned at its end.
    pub(crate) file: File,
    pub(crate) segment: Arc<Segment>,
    pub(crate) segment_len: u64,
    pub(crate) next_position: u64,
}

fn io_error(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpenError {
    let path = path.to_path_buf();
    move |source| OpenError::Io {
        context,
        path,
        source,
    }
}

/// Makes a directory entry (a new or renamed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn load_or_create_store_id(dir: &Path, log_has_events: bool) -> Result<Uuid, OpenError> {
    let path = dir.join(STORE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Uuid::parse_str(text.trim()).map_err(|_| OpenError::InvalidStoreId { path }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if log_has_events {
                return Err(OpenError::MissingStoreId { path });
            }
            let id = Uuid::new_v4();
            let temporary = dir.join(format!("{STORE_ID_FILE}.tmp"));
            let mut file = File::create(&temporary)
                .map_err(io_error("cannot create the store id file", &temporary))?;
            file.write_all(format!("{id}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io_error("cannot write the store id file", &temporary))?;
            std::fs::rename(&temporary, &path)
                .map_err(io_error("cannot move the store id file in place", &path))?;
            sync_dir(dir).map_err(io_error("cannot sync the store directory", dir))?;
            Ok(id)
        }
        Err(error) => Err(io_error("cannot read the store id file", &path)(error)),
    }
}

/// Index updates gathered while scanning the log past the checkpoint.
struct CatchUp<'a> {
    index: &'a Index,
    checkpoint: u64,
    batch: IndexBatch,
    indexed: u64,
    categories: HashSet<String>,
}

impl CatchUp<'_> {
    fn add(&mut self, event: &RecordedEvent, offset: u64) -> Result<(), OpenError> {
        let category = stream_category(&event.stream);
        if !self.categories.contains(category) {
            // Category entries past the checkpoint are of groups whose
            // checkpoint never made it; they go before this catch-up writes its own.
            self.index
                .remove_category_entries_from(category, self.checkpoint)?;
            self.categories.insert(category.to_owned());
        }
        let hash = content_hash_of(
            &event.event_type,
            event.schema_version,
            &event.data,
            &event.metadata,
        );
        self.batch.add_event(
            &event.stream,
            stream_category(&event.stream),
            event.version,
            event.position,
            offset,
            event.event_id,
            &hash,
        );
        self.indexed += 1;
        if self.batch.events() >= CATCH_UP_CHUNK {
            self.apply(event.position + 1)?;
        }
        Ok(())
    }

    fn apply(&mut self, next_position: u64) -> Result<(), OpenError> {
        let batch = std::mem::take(&mut self.batch);
        self.index.apply(batch, next_position)?;
        Ok(())
    }
}

/// Opens the store in `dir` (see the module doc).
pub(crate) fn open(dir: &Path, options: StoreOptions) -> Result<Opened, OpenError> {
    let log_dir = dir.join(LOG_DIR);
    let index_dir = dir.join(INDEX_DIR);
    for folder in [dir, &log_dir, &index_dir] {
        std::fs::create_dir_all(folder)
            .map_err(io_error("cannot create the store directory", folder))?;
    }
    // sled locks its database, so a second process opening the same store fails here.
    let index = Index::open(&index_dir, options.index_cache_bytes)?;
    let mut segment_files = log::list_segments(&log_dir)
        .map_err(io_error("cannot list the segment files", &log_dir))?;
    let log_has_events = segment_files
        .iter()
        .any(|(_, path)| std::fs::metadata(path).map_or(true, |m| m.len() > 0));
    let store_id = load_or_create_store_id(dir, log_has_events)?;

    if segment_files.is_empty() {
        let path = log_dir.join(log::segment_file_name(0));
        File::create(&path).map_err(io_error("cannot create the first segment", &path))?;
        sync_dir(&log_dir).map_err(io_error("cannot sync the log directory", &log_dir))?;
        segment_files.push((0, path));
    }

    let checkpoint = index.checkpoint()?;
    let ids = IdFilter::default();
    let mut catch_up = CatchUp {
        index: &index,
        checkpoint,
        batch: IndexBatch::default(),
        indexed: 0,
        categories: HashSet::new(),
    };
    let mut segments = Vec::with_capacity(segment_files.len());
    let mut position = 0u64;
    let mut last_len = 0u64;
    let last = segment_files.len() - 1;
    for (number, (first, path)) in segment_files.into_iter().enumerate() {
        if first != position {
            return Err(OpenError::SegmentGap {
                segment: path,
                expected: position,
                found: first,
            });
        }
        let file = File::open(&path).map_err(io_error("cannot open a segment", &path))?;
        let file_len = file
            .metadata()
            .map_err(io_error("cannot stat a segment", &path))?
            .len();
        let mut sparse = Vec::new();
        let mut reader = FrameReader::new(&file, 0, 1024 * 1024);
        let valid_len = loop {
            match reader
                .next_frame(true)
                .map_err(io_error("cannot read a segment", &path))?
            {
                Frame::End => break file_len,
                Frame::Record { offset, payload } => {
                    let corrupt = |reason: String| OpenError::Corrupt {
                        position,
                        segment: path.clone(),
                        offset,
                        reason,
                    };
                    let event: RecordedEvent = codec::decode(payload)
                        .map_err(|error| corrupt(format!("undecodable: {error}")))?;
                    if event.position != position {
                        return Err(corrupt(format!(
                            "the record says position {}",
                            event.position
                        )));
                    }
                    if (position - first) % SPARSE_STRIDE == 0 {
                        sparse.push(offset);
                    }
                    if position >= checkpoint {
                        catch_up.add(&event, offset)?;
                    }
                    ids.insert(event.event_id);
                    position += 1;
                }
                Frame::Damaged { offset, damage } => {
                    let tail_bytes = file_len - offset;
                    let torn = number == last
                        && position >= checkpoint
                        && tail_bytes <= options.max_unsynced_bytes();
                    if !torn {
                        return Err(OpenError::Corrupt {
                            position,
                            segment: path,
                            offset,
                            reason: damage.to_string(),
                        });
                    }
                    tracing::warn!(
                        segment = %path.display(),
                        offset,
                        position,
                        bytes = tail_bytes,
                        %damage,
                        "truncating a torn tail left by a crash (never acknowledged)"
                    );
                    truncate(&path, offset)?;
                    break offset;
                }
            }
        };
        if number == last {
            last_len = valid_len;
        }
        segments.push(Arc::new(Segment {
            first_position: first,
            path,
            file,
            sparse: RwLock::new(sparse),
        }));
    }
    if position < checkpoint {
        return Err(OpenError::IndexAheadOfLog {
            indexed: checkpoint,
            log_end: position,
        });
    }
    if catch_up.indexed > 0 {
        catch_up.apply(position)?;
        tracing::info!(
            events = catch_up.indexed,
            from = checkpoint,
            "caught the index up with the log"
        );
    }

    let segment = segments
        .last()
        .cloned()
        .ok_or_else(|| io_error("no segment", &log_dir)(std::io::ErrorKind::NotFound.into()))?;
    let mut file = OpenOptions::new()
        .write(true)
        .open(&segment.path)
        .map_err(io_error(
            "cannot open the last segment for writing",
            &segment.path,
        ))?;
    file.seek(SeekFrom::Start(last_len))
        .map_err(io_error("cannot seek in the last segment", &segment.path))?;

    let (head_sender, head_watch) = watch::channel(position);
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        store_id,
        options,
        index,
        segments: RwLock::new(segments),
        head: AtomicU64::new(position),
        head_watch,
        failed: AtomicBool::new(false),
        ids,
    });
    Ok(Opened {
        shared,
        head_sender,
        file,
        segment,
        segment_len: last_len,
        next_position: position,
    })
}

fn truncate(path: &PathBuf, len: u64) -> Result<(), OpenError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error("cannot open a segment to truncate it", path))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(io_error("cannot truncate a torn tail", path))
}
