//! Reading a stopped store's log straight from its segment files.
//!
//! An offline rebuild (`shop replay --data`) only reads every event in order,
//! which the log alone answers: opening the whole [`crate::Store`] would
//! also open the sled index (about 80 MiB resident for a million events),
//! build the id filter and scan every record for recovery first. A
//! [`LogReader`] opens no index and writes nothing. It takes a shared lock on
//! the index database's file, which the store holds exclusively while it
//! runs, so a reader and a running store exclude each other: a store that is
//! running is reported as such instead of being read while it writes.
//!
//! The end of the log is the last whole record whose checksum holds. A
//! damaged tail of the last segment (a crash mid-write, never acknowledged)
//! ends the log here and is left alone for the store's own recovery; damage
//! anywhere else is an error, as it is for the store.

use std::fs::File;
use std::path::{Path, PathBuf};

use domain::codec;
use domain::envelope::RecordedEvent;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::log::{self, Frame, FrameReader};
use crate::store::recovery::{INDEX_DIR, LOG_DIR, STORE_ID_FILE};
use crate::store::StorageError;

/// Why a log could not be opened for reading.
#[derive(Debug, thiserror::Error)]
pub enum LogReaderError {
    /// A file could not be read.
    #[error("{context} ({path}): {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// There is no store in the directory.
    #[error("no event store in {0} (no store-id file)")]
    NoStore(PathBuf),
    /// The store id file does not hold a store id.
    #[error("the store id file {0} does not hold a UUID")]
    InvalidStoreId(PathBuf),
    /// The store is running (it holds its index database's lock).
    #[error("the event store in {0} is running (its index is locked)")]
    StoreRunning(PathBuf),
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
    /// A record is damaged.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn io_error(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LogReaderError {
    let path = path.to_path_buf();
    move |source| LogReaderError::Io {
        context,
        path,
        source,
    }
}

/// One segment file.
struct SegmentFile {
    first_position: u64,
    path: PathBuf,
    file: File,
}

/// Where the next sequential read starts.
#[derive(Clone, Copy)]
struct Cursor {
    segment: usize,
    offset: u64,
    position: u64,
}

/// Reads a stopped store's events in position order; see the module doc.
pub struct LogReader {
    store_id: Uuid,
    segments: Vec<SegmentFile>,
    head: u64,
    cursor: Mutex<Cursor>,
    /// Held open for its shared lock.
    _lock: Option<File>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("store_id", &self.store_id)
            .field("segments", &self.segments.len())
            .field("head", &self.head)
            .finish()
    }
}

/// How long opening waits for a store that is shutting down to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes read ahead at a time.
const READ_AHEAD: usize = 1024 * 1024;

impl LogReader {
    /// Opens the store in `dir` for reading; fails if the store is running.
    pub fn open(dir: &Path) -> Result<Self, LogReaderError> {
        let id_path = dir.join(STORE_ID_FILE);
        let store_id = match std::fs::read_to_string(&id_path) {
            Ok(text) => Uuid::parse_str(text.trim())
                .map_err(|_| LogReaderError::InvalidStoreId(id_path.clone()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(LogReaderError::NoStore(dir.to_path_buf()))
            }
            Err(error) => return Err(io_error("cannot read the store id file", &id_path)(error)),
        };
        // sled keeps an exclusive lock on this file while the store runs;
        // without the file, no store runs here.
        let lock_path = dir.join(INDEX_DIR).join("db");
        let lock = match File::open(&lock_path) {
            Ok(file) => Some(file),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(io_error("cannot open the index database file", &lock_path)(
                    error,
                ))
            }
        };
        // A store closed a moment ago in this process may still hold it
        // (one of sled's threads outlives the handle briefly): wait a little.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        while let Some(lock) = &lock {
            // The same lock, through the same crate, as sled's.
            match fs2::FileExt::try_lock_shared(lock) {
                Ok(()) => break,
                Err(error) if error.kind() != fs2::lock_contended_error().kind() => {
                    return Err(io_error("cannot lock the index database file", &lock_path)(
                        error,
                    ))
                }
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(_) => return Err(LogReaderError::StoreRunning(dir.to_path_buf())),
            }
        }

        let log_dir = dir.join(LOG_DIR);
        let mut segments = Vec::new();
        for (first_position, path) in
            log::list_segments(&log_dir).map_err(io_error("cannot list the segments", &log_dir))?
        {
            let file = File::open(&path).map_err(io_error("cannot open a segment", &path))?;
            segments.push(SegmentFile {
                first_position,
                path,
                file,
            });
        }
        if let Some(first) = segments.first() {
            if first.first_position != 0 {
                return Err(LogReaderError::SegmentGap {
                    segment: first.path.clone(),
                    expected: 0,
                    found: first.first_position,
                });
            }
        }
        let mut reader = Self {
            store_id,
            segments,
            head: 0,
            cursor: Mutex::new(Cursor {
                segment: 0,
                offset: 0,
                position: 0,
            }),
            _lock: lock,
        };
        reader.head = reader.find_head()?;
        Ok(reader)
    }

    /// The store's id.
    pub fn store_id(&self) -> Uuid {
        self.store_id
    }

    /// The position after the last whole event.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Counts the last segment's whole records (checksums checked).
    fn find_head(&self) -> Result<u64, LogReaderError> {
        let Some(last) = self.segments.last() else {
            return Ok(0);
        };
        let mut reader = FrameReader::new(&last.file, 0, READ_AHEAD);
        let mut position = last.first_position;
        loop {
            match reader
                .next_frame(true)
                .map_err(StorageError::io("cannot read a segment"))?
            {
                Frame::Record { .. } => position += 1,
                Frame::End | Frame::Damaged { .. } => return Ok(position),
            }
        }
    }

    /// Up to `limit` events from position `from` on, in order; empty at the
    /// head. Reading on from where the last call stopped continues the scan;
    /// any other `from` starts from its segment's first record.
    pub fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StorageError> {
        let end = self.head.min(from.saturating_add(limit as u64));
        let mut events = Vec::with_capacity(end.saturating_sub(from) as usize);
        if from >= end {
            return Ok(events);
        }
        let mut cursor = self.cursor.lock();
        if cursor.position != from {
            let segment = self
                .segments
                .iter()
                .rposition(|s| s.first_position <= from)
                .ok_or(StorageError::MissingSegment { position: from })?;
            *cursor = Cursor {
                segment,
                offset: 0,
                position: self.segments[segment].first_position,
            };
        }
        while cursor.position < end {
            let segment =
                self.segments
                    .get(cursor.segment)
                    .ok_or(StorageError::MissingSegment {
                        position: cursor.position,
                    })?;
            let last_segment = cursor.segment + 1 == self.segments.len();
            let mut reader = FrameReader::new(&segment.file, cursor.offset, READ_AHEAD);
            while cursor.position < end {
                let wanted = cursor.position >= from;
                match reader
                    .next_frame(wanted)
                    .map_err(StorageError::io("cannot read a segment"))?
                {
                    Frame::Record { offset, payload } => {
                        if wanted {
                            let corrupt = |reason: String| StorageError::Corrupt {
                                position: cursor.position,
                                segment: segment.path.clone(),
                                offset,
                                reason,
                            };
                            let event: RecordedEvent = codec::decode(payload)
                                .map_err(|error| corrupt(format!("undecodable: {error}")))?;
                            if event.position != cursor.position {
                                return Err(corrupt(format!(
                                    "the record says position {}",
                                    event.position
                                )));
                            }
                            events.push(event);
                        }
                        cursor.position += 1;
                        cursor.offset = reader.offset();
                    }
                    // The head was found below here: only a file that changed
                    // since (it must not) ends early.
                    Frame::End | Frame::Damaged { .. } if last_segment => {
                        return Err(StorageError::Corrupt {
                            position: cursor.position,
                            segment: segment.path.clone(),
                            offset: reader.offset(),
                            reason: "the log ends before its head".into(),
                        });
                    }
                    Frame::End => {
                        let next = &self.segments[cursor.segment + 1];
                        if next.first_position != cursor.position {
                            return Err(StorageError::Corrupt {
                                position: cursor.position,
                                segment: next.path.clone(),
                                offset: 0,
                                reason: format!(
                                    "the segment starts at position {}, expected {}",
                                    next.first_position, cursor.position
                                ),
                            });
                        }
                        cursor.segment += 1;
                        cursor.offset = 0;
                        break;
                    }
                    Frame::Damaged { offset, damage } => {
                        return Err(StorageError::Corrupt {
                            position: cursor.position,
                            segment: segment.path.clone(),
                            offset,
                            reason: damage.to_string(),
                        });
                    }
                }
            }
        }
        Ok(events)
    }
}
