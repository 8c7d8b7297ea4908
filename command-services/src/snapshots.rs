//! Aggregate snapshots: a cache of folded state, so that long streams (a hot
//! SKU's stock) load without replaying every event.
//!
//! A snapshot is taken every N events and kept in a local sled tree beside
//! the service (`<data>/snapshots-<service>`), not in the event store: it is
//! derived data, and storing it as events would relay it to every consumer.
//! Losing the tree costs only time. A snapshot whose schema version differs
//! from the code's ([`crate::aggregates::Aggregate::SNAPSHOT_SCHEMA`]) is
//! ignored and the stream is replayed from the start.

use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::idempotency::Landed;

/// A stored snapshot of one stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The schema version of `state`.
    pub schema: u32,
    /// The version of the last event folded in.
    pub version: u64,
    /// The global position of that event.
    pub last_position: u64,
    /// The folded state.
    pub state: serde_json::Value,
    /// The stream's recent event ids (see [`crate::idempotency::RecentIds`]).
    pub recent: Vec<(Uuid, Landed)>,
}

/// Why the snapshot tree could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the snapshot database at {path}: {source}")]
pub struct OpenError {
    /// Where.
    pub path: String,
    /// What sled said.
    pub source: sled::Error,
}

/// Where snapshots are kept: a sled tree, or nowhere.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    tree: Option<sled::Db>,
}

impl SnapshotStore {
    /// No persistent snapshots (the in-memory aggregate cache still serves).
    pub fn disabled() -> Self {
        Self { tree: None }
    }

    /// Opens (or creates) the sled database at `path`.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(2 * 1024 * 1024)
            .open()
            .map_err(|source| OpenError {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self { tree: Some(db) })
    }

    /// Whether snapshots are kept.
    pub fn is_enabled(&self) -> bool {
        self.tree.is_some()
    }

    /// The snapshot of `stream` with schema `schema`, if any. Unreadable
    /// snapshots and ones of another schema are ignored.
    pub fn get(&self, stream: &str, schema: u32) -> Option<SnapshotRecord> {
        let tree = self.tree.as_ref()?;
        let bytes = match tree.get(stream.as_bytes()) {
            Ok(found) => found?,
            Err(error) => {
                tracing::warn!(%error, stream, "cannot read a snapshot; replaying the stream");
                return None;
            }
        };
        match serde_json::from_slice::<SnapshotRecord>(&bytes) {
            Ok(record) if record.schema == schema => Some(record),
            Ok(record) => {
                tracing::info!(
                    stream,
                    stored = record.schema,
                    current = schema,
                    "ignoring a snapshot of another schema"
                );
                None
            }
            Err(error) => {
                tracing::warn!(%error, stream, "ignoring an unreadable snapshot");
                None
            }
        }
    }

    /// Stores the snapshot of `stream`; failures are logged, never fatal.
    pub fn put(&self, stream: &str, record: &SnapshotRecord) {
        let Some(tree) = self.tree.as_ref() else {
            return;
        };
        let result = serde_json::to_vec(record)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                tree.insert(stream.as_bytes(), bytes)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => metrics::counter!("command_snapshots_taken_total").increment(1),
            Err(error) => tracing::warn!(%error, stream, "cannot store a snapshot"),
        }
    }

    /// Writes buffered snapshots to disk (on shutdown).
    pub fn flush(&self) {
        if let Some(tree) = self.tree.as_ref() {
            if let Err(error) = tree.flush() {
                tracing::warn!(%error, "cannot flush the snapshot database");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(schema: u32) -> SnapshotRecord {
        SnapshotRecord {
            schema,
            version: 41,
            last_position: 900,
            state: serde_json::json!({"available": 3}),
            recent: vec![(
                Uuid::from_u128(1),
                Landed {
                    version: 41,
                    position: 900,
                },
            )],
        }
    }

    #[test]
    fn a_snapshot_survives_reopening_and_another_schema_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshots");
        {
            let store = SnapshotStore::open(&path).unwrap();
            store.put("stock-A", &record(1));
            store.flush();
        }
        let store = SnapshotStore::open(&path).unwrap();
        let back = store.get("stock-A", 1).expect("snapshot kept");
        assert_eq!(back.version, 41);
        assert_eq!(back.recent.len(), 1);
        assert!(store.get("stock-A", 2).is_none());
        assert!(store.get("stock-B", 1).is_none());
    }

    #[test]
    fn a_disabled_store_keeps_nothing() {
        let store = SnapshotStore::disabled();
        store.put("stock-A", &record(1));
        assert!(store.get("stock-A", 1).is_none());
        assert!(!store.is_enabled());
    }
}
