//! The relay's checkpoint: the first position not yet confirmed by the
//! broker, kept in a small file in the store's directory, one per namespace.
//!
//! A checkpoint that is behind only makes the relay publish some events
//! again (delivery is at least once anyway), so it is written every so often
//! rather than after every confirm; each write is a whole new file synced
//! and renamed into place, so a crash leaves the old value or the new one.
//! The relay writes it in the background ([`Background`]): two syncs take
//! about 10 ms here, which the events appended meanwhile should not wait.

use std::{
    fs, io,
    io::Write,
    path::{Path, PathBuf},
};

use messaging::Namespace;
use tokio::{task::JoinHandle, time::Instant};

/// Why the checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file operation failed.
    #[error("relay checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file does not hold a position.
    #[error("relay checkpoint {path} is not a position: {content:?}")]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// What it holds (at most 64 characters).
        content: String,
    },
}

/// The checkpoint file of the relay to `namespace` in the store directory `dir`.
pub fn path(dir: &Path, namespace: &Namespace) -> PathBuf {
    dir.join(format!("relay-{}.checkpoint", namespace.as_str()))
}

/// Reads a checkpoint; a missing file is position 0.
pub fn read(path: &Path) -> Result<u64, CheckpointError> {
    let content = match fs::read_to_string(path) {
        Ok(content) => content,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    content
        .trim()
        .parse()
        .map_err(|_| CheckpointError::Corrupt {
            path: path.to_owned(),
            content: content.chars().take(64).collect(),
        })
}

/// Writes a checkpoint durably: temporary file, `fsync`, rename, `fsync` of the directory.
pub fn write(path: &Path, position: u64) -> Result<(), CheckpointError> {
    let io_error = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("checkpoint.tmp");
    let mut file = fs::File::create(&temporary).map_err(io_error)?;
    file.write_all(format!("{position}\n").as_bytes())
        .map_err(io_error)?;
    file.sync_data().map_err(io_error)?;
    drop(file);
    fs::rename(&temporary, path).map_err(io_error)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error)?;
    }
    Ok(())
}

/// Why a background write failed.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    /// The write failed.
    #[error(transparent)]
    Write(#[from] CheckpointError),
    /// The blocking task writing it panicked or was cancelled.
    #[error("the checkpoint writer task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Writes a checkpoint file off the caller's path, one write at a time.
#[derive(Debug)]
pub(crate) struct Background {
    path: PathBuf,
    /// The position the file holds (once the write in progress, if any, is done).
    written: u64,
    /// When the last write started.
    started: Instant,
    /// The write in progress, with the position it writes.
    writing: Option<(u64, JoinHandle<Result<(), CheckpointError>>)>,
}

impl Background {
    /// A writer of `path`, which holds `written` now.
    pub(crate) fn new(path: PathBuf, written: u64) -> Self {
        Self {
            path,
            written,
            started: Instant::now(),
            writing: None,
        }
    }

    /// Whether a write is in progress.
    pub(crate) fn is_busy(&self) -> bool {
        self.writing.is_some()
    }

    /// When the next write is due, if `position` differs from what the file
    /// holds and no write is in progress, `interval` after the last one started.
    pub(crate) fn due(&self, position: u64, interval: std::time::Duration) -> Option<Instant> {
        (self.writing.is_none() && position != self.written).then(|| self.started + interval)
    }

    /// Starts writing `position`, unless a write is in progress or the file
    /// holds it already.
    pub(crate) fn start(&mut self, position: u64) {
        if self.writing.is_some() || position == self.written {
            return;
        }
        let path = self.path.clone();
        self.started = Instant::now();
        self.writing = Some((
            position,
            tokio::task::spawn_blocking(move || write(&path, position)),
        ));
    }

    /// Waits for the write in progress to end (for ever if there is none).
    /// Cancel-safe: a write given up on is awaited by the next call.
    pub(crate) async fn finished(&mut self) -> Result<(), BackgroundError> {
        let Some((position, handle)) = &mut self.writing else {
            return std::future::pending().await;
        };
        let position = *position;
        let outcome = handle.await;
        self.writing = None;
        outcome??;
        self.written = position;
        Ok(())
    }

    /// Waits for any write in progress, then writes `position` and waits for it.
    pub(crate) async fn flush(&mut self, position: u64) -> Result<(), BackgroundError> {
        if self.is_busy() {
            self.finished().await?;
        }
        self.start(position);
        if self.is_busy() {
            self.finished().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_read_back_and_a_missing_one_is_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), &Namespace::parse("shop").unwrap());
        assert!(path.ends_with("relay-shop.checkpoint"));
        assert_eq!(read(&path).unwrap(), 0);
        write(&path, 42).unwrap();
        assert_eq!(read(&path).unwrap(), 42);
        write(&path, 7).unwrap();
        assert_eq!(read(&path).unwrap(), 7);
    }

    #[tokio::test]
    async fn a_background_write_is_one_at_a_time_and_a_flush_writes_the_last_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path(), &Namespace::parse("shop").unwrap());
        let mut writer = Background::new(path.clone(), 0);
        let interval = std::time::Duration::from_millis(200);
        assert_eq!(writer.due(0, interval), None, "nothing to write");
        assert!(writer.due(5, interval).is_some());
        writer.start(5);
        assert!(writer.is_busy());
        assert_eq!(
            writer.due(9, interval),
            None,
            "not while one is in progress"
        );
        // A second start while busy does nothing; the first one completes.
        writer.start(9);
        writer.finished().await.unwrap();
        assert!(!writer.is_busy());
        assert_eq!(read(&path).unwrap(), 5);
        writer.start(7);
        writer.flush(9).await.unwrap();
        assert!(!writer.is_busy());
        assert_eq!(read(&path).unwrap(), 9);
        assert_eq!(writer.due(9, interval), None);
    }

    #[test]
    fn a_garbled_checkpoint_is_an_error_not_a_restart_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay-x.checkpoint");
        fs::write(&path, "12x").unwrap();
        assert!(matches!(read(&path), Err(CheckpointError::Corrupt { .. })));
    }
}
