//! Where a read model's files live, and how a rebuilt database replaces
//! the current one atomically.
//!
//! ```text
//! <data>/projectors/<name>/CURRENT      the name of the live generation
//! <data>/projectors/<name>/gen-000007/  a sled database (one per generation)
//! ```
//!
//! Replay builds the next generation beside the live one, then swaps
//! `CURRENT` with a write-to-temp, fsync, rename, fsync-directory sequence:
//! after a crash the file names either the old generation or the new one,
//! never something half-built. Generations `CURRENT` does not name are
//! leftovers (a replay that did not finish, a database swapped out) and are
//! deleted when the projector opens.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use crate::name::ProjectorName;

const CURRENT: &str = "CURRENT";
const GENERATION_PREFIX: &str = "gen-";

/// Why the layout could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `CURRENT` does not name a generation.
    #[error("{path} does not name a generation: {content:?}")]
    BadCurrent {
        /// The file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LayoutError {
    let path = path.to_owned();
    move |source| LayoutError::Io {
        action,
        path,
        source,
    }
}

/// The files of one read model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewDir {
    root: PathBuf,
}

/// The directory holding every projector's files under a data directory.
pub fn projectors_dir(data: &Path) -> PathBuf {
    data.join("projectors")
}

impl ViewDir {
    /// The directory of `name` under the data directory `data`.
    pub fn new(data: &Path, name: ProjectorName) -> Self {
        Self {
            root: projectors_dir(data).join(name.as_str()),
        }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn generation_path(&self, generation: u64) -> PathBuf {
        self.root
            .join(format!("{GENERATION_PREFIX}{generation:06}"))
    }

    fn parse_generation(name: &str) -> Option<u64> {
        name.strip_prefix(GENERATION_PREFIX)?.parse().ok()
    }

    /// The live generation, if one was ever made.
    pub fn current(&self) -> Result<Option<(u64, PathBuf)>, LayoutError> {
        let path = self.root.join(CURRENT);
        let content = match fs::read_to_string(&path) {
            Ok(content) => content,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("cannot read", &path)(error)),
        };
        let generation =
            Self::parse_generation(content.trim()).ok_or_else(|| LayoutError::BadCurrent {
                path: path.clone(),
                content: content.clone(),
            })?;
        Ok(Some((generation, self.generation_path(generation))))
    }

    /// The live generation's path, creating the first one if there is none.
    pub fn current_or_create(&self) -> Result<PathBuf, LayoutError> {
        if let Some((_, path)) = self.current()? {
            return Ok(path);
        }
        fs::create_dir_all(&self.root).map_err(io_error("cannot create", &self.root))?;
        let path = self.generation_path(1);
        self.swap_to(&path)?;
        Ok(path)
    }

    /// A fresh, empty path for the next generation (to rebuild into).
    pub fn next_generation(&self) -> Result<PathBuf, LayoutError> {
        fs::create_dir_all(&self.root).map_err(io_error("cannot create", &self.root))?;
        let mut highest = self.current()?.map_or(0, |(generation, _)| generation);
        for entry in fs::read_dir(&self.root).map_err(io_error("cannot list", &self.root))? {
            let entry = entry.map_err(io_error("cannot list", &self.root))?;
            if let Some(generation) = entry.file_name().to_str().and_then(Self::parse_generation) {
                highest = highest.max(generation);
            }
        }
        let path = self.generation_path(highest + 1);
        if path.exists() {
            fs::remove_dir_all(&path).map_err(io_error("cannot remove", &path))?;
        }
        Ok(path)
    }

    /// Makes `generation_path` the live generation, atomically and durably.
    pub fn swap_to(&self, generation_path: &Path) -> Result<(), LayoutError> {
        let name = generation_path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| Self::parse_generation(n).is_some())
            .ok_or_else(|| LayoutError::BadCurrent {
                path: generation_path.to_owned(),
                content: generation_path.display().to_string(),
            })?;
        let temp = self.root.join("CURRENT.tmp");
        let mut file = fs::File::create(&temp).map_err(io_error("cannot create", &temp))?;
        file.write_all(name.as_bytes())
            .map_err(io_error("cannot write", &temp))?;
        file.sync_all().map_err(io_error("cannot sync", &temp))?;
        drop(file);
        let current = self.root.join(CURRENT);
        fs::rename(&temp, &current).map_err(io_error("cannot rename", &current))?;
        fs::File::open(&self.root)
            .and_then(|dir| dir.sync_all())
            .map_err(io_error("cannot sync", &self.root))?;
        Ok(())
    }

    /// Deletes every generation but the live one.
    pub fn remove_stale(&self) -> Result<(), LayoutError> {
        let live = self.current()?.map(|(generation, _)| generation);
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(io_error("cannot list", &self.root)(error)),
        };
        for entry in entries {
            let entry = entry.map_err(io_error("cannot list", &self.root))?;
            let Some(generation) = entry.file_name().to_str().and_then(Self::parse_generation)
            else {
                continue;
            };
            if Some(generation) != live {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(io_error("cannot remove", &path))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_open_creates_generation_one_and_names_it_current() {
        let temp = tempfile::tempdir().unwrap();
        let dir = ViewDir::new(temp.path(), ProjectorName::Orders);
        assert_eq!(dir.current().unwrap(), None);
        let path = dir.current_or_create().unwrap();
        assert!(path.ends_with("projectors/orders/gen-000001"));
        assert_eq!(dir.current().unwrap(), Some((1, path.clone())));
        assert_eq!(dir.current_or_create().unwrap(), path);
    }

    #[test]
    fn a_swap_names_the_new_generation_and_stale_ones_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = ViewDir::new(temp.path(), ProjectorName::Sales);
        let first = dir.current_or_create().unwrap();
        fs::create_dir_all(&first).unwrap();
        let next = dir.next_generation().unwrap();
        assert!(next.ends_with("gen-000002"));
        fs::create_dir_all(&next).unwrap();
        // An abandoned rebuild is not reused.
        let after = dir.next_generation().unwrap();
        assert!(after.ends_with("gen-000003"));
        dir.swap_to(&next).unwrap();
        assert_eq!(dir.current().unwrap(), Some((2, next.clone())));
        dir.remove_stale().unwrap();
        assert!(!first.exists());
        assert!(next.exists());
    }

    #[test]
    fn a_current_file_with_garbage_is_an_error_naming_the_file() {
        let temp = tempfile::tempdir().unwrap();
        let dir = ViewDir::new(temp.path(), ProjectorName::Carts);
        fs::create_dir_all(dir.root()).unwrap();
        fs::write(dir.root().join(CURRENT), "nonsense").unwrap();
        let err = dir.current().unwrap_err();
        assert!(err.to_string().contains("CURRENT"), "{err}");
    }
}
