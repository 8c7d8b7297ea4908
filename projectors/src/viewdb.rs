//! A read model's sled database and the transaction a batch of events is
//! applied in.
//!
//! Everything of one read model lives in sled's default tree, under one-byte
//! prefixes, so that one `apply_batch` changes documents, per-stream
//! positions and bookkeeping atomically (DESIGN.md guarantee 5):
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `d` | collection `\0` document key | the document, JSON, and maybe its home stream's position (below) |
//! | `p` | stream | last applied version, u64 big-endian |
//! | `x` | stream `\0` version (u64 BE) | why that stored event was skipped |
//! | `m` | name | bookkeeping (applied and swept positions, store id, counters) |
//!
//! Only the `d` keyspace is the view's content: the digest hashes it alone.
//!
//! **Home documents.** A projection may name, per stream category, a
//! collection whose document keyed by the stream's id belongs to that stream
//! (the `orders` document of `order-<id>`); the database records these
//! *homes* when it is created. While a stream's home document exists, the
//! stream's position is written into it, as a 9-byte trailer after the JSON
//! (the version, u64 big-endian, then `0xFF`, a byte UTF-8 never holds),
//! instead of under its own `p` key: one sled write where there were two.
//! Every reader of a document strips the trailer, so the served JSON and
//! the digest do not see it. A stream's position is its home document's
//! trailer when there is one, else its `p` key: a `p` key is only written
//! while the home document does not exist (a removed one hands its
//! trailer's position to the key in the same batch), and a document that
//! exists takes every later position of its stream, so the trailer is never
//! behind.
//!
//! The *swept position* is a watermark: every event at or below it has
//! been applied (or ignored, or skipped as poison). It moves only when the
//! log is read in order (replay, catch-up, the idle sweep), never with
//! deliveries from the broker, which may come out of order. An event at or
//! below it is a duplicate whatever the per-stream positions say; this is
//! what lets a rebuild write no per-stream positions at all (see
//! [`crate::applier`]).
//!
//! A [`ViewTx`] keeps every document it touched decoded in memory and
//! encodes each one once, at commit: an order that goes through five events
//! in one batch is serialized once, which is what makes replay fast.

use std::{
    any::Any,
    collections::HashMap,
    marker::PhantomData,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

/// The maps a transaction keeps its documents and positions in: hashed with
/// foldhash (seeded per process) rather than SipHash, which showed in the
/// replay's profile.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

const DOC: u8 = b'd';
const POSITION: u8 = b'p';
const POISONED: u8 = b'x';
const META: u8 = b'm';

const META_APPLIED_POSITION: &str = "applied_position";
const META_STORE_ID: &str = "store_id";
const META_SKIPPED: &str = "skipped";
const META_EVENTS: &str = "events_applied";
const META_SWEPT: &str = "swept_position";
/// The layout version of the documents (see `Projection::layout`).
const META_LAYOUT: &str = "layout";
/// The position homes (see the module docs): `category\tcollection` lines.
const META_HOMES: &str = "homes";
/// The last byte of a document that carries its home stream's position.
const TRAILER_MARK: u8 = 0xFF;
/// The trailer's length: the version, then the mark.
const TRAILER_LEN: usize = 9;
/// Events below this global position may have been applied without their
/// stream's own position being written (a rebuild writes none, to be fast):
/// 0 for a database that only ever applied events live, the rebuild's swept
/// position + 1 after a rebuild. A database from before this key existed
/// has none, and is taken to be untracked throughout.
const META_UNTRACKED_BELOW: &str = "untracked_below";

/// Why a read model's database failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// sled failed (I/O, corruption it detected).
    #[error("the view database failed: {0}")]
    Sled(#[from] sled::Error),
    /// A stored document does not decode as the type its collection holds.
    #[error("document {collection}/{key} is corrupt: {source}")]
    Corrupt {
        /// The collection.
        collection: &'static str,
        /// The document key.
        key: String,
        /// What the decoder said.
        source: serde_json::Error,
    },
    /// A document could not be encoded.
    #[error("cannot encode document {collection}/{key}: {source}")]
    Encode {
        /// The collection.
        collection: &'static str,
        /// The document key.
        key: String,
        /// What the encoder said.
        source: serde_json::Error,
    },
    /// Two collections with one name hold different types (a programming error).
    #[error("collection {collection} was used with two document types")]
    TypeMismatch {
        /// The collection.
        collection: &'static str,
    },
    /// A bookkeeping value has the wrong size.
    #[error("bookkeeping value {name} is corrupt")]
    CorruptMeta {
        /// Which value.
        name: String,
    },
}

/// A document type: anything serde can round-trip through JSON.
pub trait Document: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Document for T {}

/// A named set of documents of one type.
pub struct Collection<T> {
    name: &'static str,
    _doc: PhantomData<fn() -> T>,
}

impl<T> Collection<T> {
    /// A collection; the name must not contain a NUL byte.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _doc: PhantomData,
        }
    }

    /// Its name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Collection<T> {}

fn doc_prefix(collection: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(collection.len() + 2);
    key.push(DOC);
    key.extend_from_slice(collection.as_bytes());
    key.push(0);
    key
}

fn doc_key(collection: &str, key: &str) -> Vec<u8> {
    let mut full = doc_prefix(collection);
    full.extend_from_slice(key.as_bytes());
    full
}

fn position_key(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 1);
    key.push(POSITION);
    key.extend_from_slice(stream.as_bytes());
    key
}

/// The write of a stream's position under its own key.
fn own_position(stream: &str, version: u64) -> (Vec<u8>, Option<Vec<u8>>) {
    (position_key(stream), Some(version.to_be_bytes().to_vec()))
}

fn poisoned_key(stream: &str, version: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 10);
    key.push(POISONED);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn meta_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(META);
    key.extend_from_slice(name.as_bytes());
    key
}

fn read_u64(name: &str, bytes: &[u8]) -> Result<u64, ViewError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| ViewError::CorruptMeta {
            name: name.to_owned(),
        })
}

/// A stored document's JSON and the position its trailer carries, if any.
fn split_trailer(bytes: &[u8]) -> (&[u8], Option<u64>) {
    match bytes.split_last() {
        Some((&TRAILER_MARK, rest)) if rest.len() >= TRAILER_LEN - 1 => {
            let (json, version) = rest.split_at(rest.len() - (TRAILER_LEN - 1));
            let version = <[u8; 8]>::try_from(version).map(u64::from_be_bytes).ok();
            (json, version)
        }
        _ => (bytes, None),
    }
}

/// A stored document without its trailer.
fn strip_trailer(bytes: sled::IVec) -> sled::IVec {
    let len = split_trailer(&bytes).0.len();
    if len == bytes.len() {
        bytes
    } else {
        bytes.subslice(0, len)
    }
}

/// `json` with a trailer carrying `version`.
fn with_trailer(mut json: Vec<u8>, version: u64) -> Vec<u8> {
    json.reserve_exact(TRAILER_LEN);
    json.extend_from_slice(&version.to_be_bytes());
    json.push(TRAILER_MARK);
    json
}

/// Where a stream category's positions live while its home document exists:
/// in the document of `collection` keyed by the stream's id (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Home {
    /// The stream category (`order` for `order-<id>`).
    pub category: String,
    /// The collection whose document keyed by the id is the stream's home.
    pub collection: String,
}

impl Home {
    /// The home of `category`'s streams in `collection`.
    pub fn new(category: &str, collection: &str) -> Self {
        Self {
            category: category.to_owned(),
            collection: collection.to_owned(),
        }
    }

    /// The stream whose home the document under the full key `key` is, if
    /// it is in this collection.
    fn stream_of(&self, key: &[u8]) -> Option<String> {
        let id = key.strip_prefix(doc_prefix(&self.collection).as_slice())?;
        let id = std::str::from_utf8(id).ok().filter(|id| !id.is_empty())?;
        Some(format!("{}-{id}", self.category))
    }

    /// The full key of `stream`'s home document, if the stream is of this category.
    fn key_of(&self, stream: &str) -> Option<Vec<u8>> {
        let id = stream
            .strip_prefix(self.category.as_str())?
            .strip_prefix('-')?;
        (!id.is_empty()).then(|| doc_key(&self.collection, id))
    }
}

fn encode_homes(homes: &[Home]) -> Vec<u8> {
    homes
        .iter()
        .map(|home| format!("{}\t{}\n", home.category, home.collection))
        .collect::<String>()
        .into_bytes()
}

fn decode_homes(bytes: &[u8]) -> Result<Vec<Home>, ViewError> {
    let corrupt = || ViewError::CorruptMeta {
        name: META_HOMES.to_owned(),
    };
    std::str::from_utf8(bytes)
        .map_err(|_| corrupt())?
        .lines()
        .map(|line| {
            let (category, collection) = line.split_once('\t').ok_or_else(corrupt)?;
            Ok(Home::new(category, collection))
        })
        .collect()
}

/// How a view database is opened.
#[derive(Clone, Copy, Debug)]
pub struct DbOptions {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            // sled counts its cache in on-disk bytes; what it holds in
            // memory for them is several times more. Views are small and
            // the OS caches their files: a small cache costs little.
            cache_bytes: 4 * 1024 * 1024,
        }
    }
}

/// One read model's sled database.
#[derive(Debug)]
pub struct ViewDb {
    db: sled::Db,
    path: PathBuf,
    /// The position homes recorded in the database.
    homes: parking_lot::RwLock<Vec<Home>>,
}

/// The bookkeeping of a view database.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ViewMeta {
    /// The highest global position applied (or skipped), if any.
    pub applied_position: Option<u64>,
    /// Every event at or below this position was applied, ignored or skipped.
    pub swept_position: Option<u64>,
    /// The store the view was built from.
    pub store_id: Option<Uuid>,
    /// How many stored events were skipped because they could not be applied.
    pub skipped: u64,
    /// How many events were applied in total.
    pub events_applied: u64,
}

impl ViewDb {
    /// Opens (or creates) the database in `path`.
    pub fn open(path: &Path, options: DbOptions) -> Result<Self, ViewError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // We flush after every batch ourselves; no background flusher needed.
            .flush_every_ms(None)
            // Smaller log segments than sled's default (512 KiB): each open
            // database holds a few segment buffers, and ten projectors in one
            // process would keep tens of MiB in them.
            .segment_size(128 * 1024);
        // A view closed and reopened in one process (a test, a replay's
        // swap) may find sled's lock still held for a moment.
        let db = event_store::index::open_sled(&config)?;
        let homes = match db.get(meta_key(META_HOMES))? {
            Some(bytes) => decode_homes(&bytes)?,
            None => Vec::new(),
        };
        let view = Self {
            db,
            path: path.to_owned(),
            homes: parking_lot::RwLock::new(homes),
        };
        if !view.db.was_recovered() {
            view.mark_fresh()?;
        }
        Ok(view)
    }

    /// Records that a new database has no events applied without their
    /// stream's position.
    fn mark_fresh(&self) -> Result<(), ViewError> {
        self.db
            .insert(meta_key(META_UNTRACKED_BELOW), &0u64.to_be_bytes())?;
        Ok(())
    }

    /// A throw-away database in memory (tests).
    pub fn temporary() -> Result<Self, ViewError> {
        let db = sled::Config::new().temporary(true).open()?;
        let view = Self {
            db,
            path: PathBuf::new(),
            homes: parking_lot::RwLock::new(Vec::new()),
        };
        view.mark_fresh()?;
        Ok(view)
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new transaction over this database.
    pub fn begin(self: &Arc<Self>) -> Result<ViewTx, ViewError> {
        let swept = self.meta_u64(META_SWEPT)?;
        Ok(ViewTx::new(Arc::clone(self), swept, None))
    }

    /// A new transaction that starts with what an earlier transaction on
    /// this database left in memory (see [`Carry`]), saving the lookups and
    /// decoding of documents and positions used again. A carry from another
    /// database is ignored.
    pub fn begin_with(self: &Arc<Self>, carry: Option<Carry>) -> Result<ViewTx, ViewError> {
        let mut tx = self.begin()?;
        if let Some(carry) = carry.filter(|c| c.db == Arc::as_ptr(self) as usize) {
            tx.docs = carry.docs;
            tx.known_positions = carry.positions;
        }
        Ok(tx)
    }

    /// A transaction of a rebuild into this (fresh) database: it records no
    /// per-stream positions, and `written` — the keys earlier transactions
    /// of the rebuild wrote, as hashes — spares sled lookups of keys that
    /// cannot exist yet.
    pub fn begin_rebuild(self: &Arc<Self>, written: WrittenKeys) -> Result<ViewTx, ViewError> {
        let swept = self.meta_u64(META_SWEPT)?;
        Ok(ViewTx::new(Arc::clone(self), swept, Some(written)))
    }

    /// Copies every entry into `other` key by key, in key order, and
    /// flushes it; returns how many entries were copied. The cheapest way
    /// sled can be given a database's contents (a benchmark's floor).
    pub fn copy_into(&self, other: &ViewDb) -> Result<u64, ViewError> {
        let mut copied = 0;
        for entry in self.db.iter() {
            let (key, value) = entry?;
            other.db.insert(key, value)?;
            copied += 1;
        }
        other.flush()?;
        Ok(copied)
    }

    /// Writes everything to disk (sled's flush).
    pub fn flush(&self) -> Result<(), ViewError> {
        self.db.flush()?;
        Ok(())
    }

    /// A document's stored JSON.
    pub fn get_raw(&self, collection: &str, key: &str) -> Result<Option<sled::IVec>, ViewError> {
        Ok(self.db.get(doc_key(collection, key))?.map(strip_trailer))
    }

    /// A document, decoded.
    pub fn get<T: Document>(
        &self,
        collection: Collection<T>,
        key: &str,
    ) -> Result<Option<T>, ViewError> {
        self.get_raw(collection.name, key)?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|source| ViewError::Corrupt {
                    collection: collection.name,
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// Documents of a collection in key order, starting after `after` (if given).
    pub fn scan<T: Document>(
        &self,
        collection: Collection<T>,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, T), ViewError>> + '_ {
        let prefix = doc_prefix(collection.name);
        let mut end = prefix.clone();
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        let start = match after {
            Some(after) => {
                let mut key = doc_key(collection.name, after);
                key.push(0);
                key
            }
            None => prefix.clone(),
        };
        let skip = prefix.len();
        self.db.range(start..end).map(move |item| {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key[skip..]).into_owned();
            let doc = serde_json::from_slice(split_trailer(&value).0).map_err(|source| {
                ViewError::Corrupt {
                    collection: collection.name,
                    key: key.clone(),
                    source,
                }
            })?;
            Ok((key, doc))
        })
    }

    /// Documents of a collection whose key starts with `prefix`, in key order.
    pub fn scan_prefix<T: Document>(
        &self,
        collection: Collection<T>,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, T), ViewError>> + '_ {
        let skip = doc_prefix(collection.name).len();
        self.db
            .scan_prefix(doc_key(collection.name, prefix))
            .map(move |item| {
                let (key, value) = item?;
                let key = String::from_utf8_lossy(&key[skip..]).into_owned();
                let doc = serde_json::from_slice(split_trailer(&value).0).map_err(|source| {
                    ViewError::Corrupt {
                        collection: collection.name,
                        key: key.clone(),
                        source,
                    }
                })?;
                Ok((key, doc))
            })
    }

    /// The last applied version of a stream: its home document's trailer
    /// if it has one, else its own key.
    pub fn position(&self, stream: &str) -> Result<Option<u64>, ViewError> {
        if let Some(home) = self.home_key(stream) {
            if let Some(version) = self.db.get(home)?.and_then(|doc| split_trailer(&doc).1) {
                return Ok(Some(version));
            }
        }
        self.db
            .get(position_key(stream))?
            .map(|bytes| read_u64(stream, &bytes))
            .transpose()
    }

    /// The key of a stream's home document, if its category has a home here.
    fn home_key(&self, stream: &str) -> Option<Vec<u8>> {
        self.homes
            .read()
            .iter()
            .find_map(|home| home.key_of(stream))
    }

    /// The position homes recorded in the database.
    pub fn homes(&self) -> Vec<Home> {
        self.homes.read().clone()
    }

    /// Records the position homes of a database nothing was applied to yet
    /// (durably): they must not change under written positions.
    pub fn set_homes(&self, homes: &[Home]) -> Result<(), ViewError> {
        self.db.insert(meta_key(META_HOMES), encode_homes(homes))?;
        self.db.flush()?;
        *self.homes.write() = homes.to_vec();
        Ok(())
    }

    /// Why a stored event was skipped, if it was.
    pub fn poisoned(&self, stream: &str, version: u64) -> Result<Option<String>, ViewError> {
        Ok(self
            .db
            .get(poisoned_key(stream, version))?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn meta_u64(&self, name: &str) -> Result<Option<u64>, ViewError> {
        self.db
            .get(meta_key(name))?
            .map(|bytes| read_u64(name, &bytes))
            .transpose()
    }

    /// The global position below which a stream may lack its own position
    /// although events of it were applied (see [`META_UNTRACKED_BELOW`]):
    /// a stream with no position has nothing applied if this is 0.
    pub fn untracked_below(&self) -> Result<u64, ViewError> {
        Ok(self.meta_u64(META_UNTRACKED_BELOW)?.unwrap_or(u64::MAX))
    }

    /// The layout version of the stored documents; `None` if none was
    /// recorded (a database from before layouts were, or a fresh one).
    pub fn layout(&self) -> Result<Option<u64>, ViewError> {
        self.meta_u64(META_LAYOUT)
    }

    /// Records the layout version of the documents (durably).
    pub fn set_layout(&self, layout: u64) -> Result<(), ViewError> {
        self.db
            .insert(meta_key(META_LAYOUT), &layout.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Takes on the layout `wanted` if nothing was applied yet (recording
    /// it), and tells whether the documents are laid out that way: `None`
    /// if they are, else the layout they have. A database that applied
    /// events before layouts were recorded has layout 1.
    /// A database that takes on `wanted` also records `homes`.
    pub fn adopt_layout(&self, wanted: u64, homes: &[Home]) -> Result<Option<u64>, ViewError> {
        let found = match self.layout()? {
            Some(found) => found,
            None => {
                let meta = self.meta()?;
                if meta.applied_position.is_none() && meta.swept_position.is_none() {
                    self.set_homes(homes)?;
                    self.set_layout(wanted)?;
                    return Ok(None);
                }
                1
            }
        };
        Ok((found != wanted).then_some(found))
    }

    /// The bookkeeping.
    pub fn meta(&self) -> Result<ViewMeta, ViewError> {
        let store_id = self
            .db
            .get(meta_key(META_STORE_ID))?
            .map(|bytes| {
                Uuid::from_slice(&bytes).map_err(|_| ViewError::CorruptMeta {
                    name: META_STORE_ID.to_owned(),
                })
            })
            .transpose()?;
        Ok(ViewMeta {
            applied_position: self.meta_u64(META_APPLIED_POSITION)?,
            swept_position: self.meta_u64(META_SWEPT)?,
            store_id,
            skipped: self.meta_u64(META_SKIPPED)?.unwrap_or(0),
            events_applied: self.meta_u64(META_EVENTS)?.unwrap_or(0),
        })
    }

    /// Records the store the view is built from.
    pub fn set_store_id(&self, store_id: Uuid) -> Result<(), ViewError> {
        self.db
            .insert(meta_key(META_STORE_ID), store_id.as_bytes().as_slice())?;
        self.db.flush()?;
        Ok(())
    }

    /// Every `(key, value)` of the view's content, in key order (for the digest).
    pub fn content(&self) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), ViewError>> {
        self.db.scan_prefix([DOC]).map(|item| {
            item.map(|(key, value)| (key, strip_trailer(value)))
                .map_err(ViewError::from)
        })
    }

    /// Every stored document as JSON, grouped by collection (tests and debugging).
    pub fn dump(&self) -> Result<serde_json::Value, ViewError> {
        let mut out = serde_json::Map::new();
        for item in self.content() {
            let (key, value) = item?;
            let rest = &key[1..];
            let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            let collection = String::from_utf8_lossy(&rest[..split]).into_owned();
            let doc_key = String::from_utf8_lossy(rest.get(split + 1..).unwrap_or_default());
            let doc: serde_json::Value =
                serde_json::from_slice(&value).unwrap_or(serde_json::Value::Null);
            let entry = out
                .entry(collection)
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let serde_json::Value::Object(map) = entry {
                map.insert(doc_key.into_owned(), doc);
            }
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// A document held by a transaction, decoded, with its type erased.
trait Held: Send {
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Document> Held for T {
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

struct Slot {
    collection: &'static str,
    value: Option<Box<dyn Held>>,
    dirty: bool,
    /// Whether the document is stored in sled (so removing it must be written).
    stored: bool,
    /// The position of the stream whose home it is, carried in its trailer.
    trailer: Option<u64>,
}

/// Hashes of the keys a rebuild has written so far. A key whose hash is
/// not here was never written, so it need not be looked up; a hash
/// collision only costs a lookup.
#[derive(Debug, Default)]
pub struct WrittenKeys(std::collections::HashSet<u64>);

fn key_hash(key: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // A fixed-key hasher: the set lives in memory only.
    let mut hasher =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    hasher.write(key);
    hasher.finish()
}

/// The documents and positions a committed transaction held, decoded and
/// clean, for the next transaction on the same database to start with.
/// Only the single writer of a database may use it: every change goes
/// through transactions that take the carry and hand it back.
pub struct Carry {
    db: usize,
    docs: Map<Vec<u8>, Slot>,
    positions: Map<String, u64>,
}

impl Carry {
    /// Documents held.
    pub fn documents(&self) -> usize {
        self.docs.len()
    }
}

/// What one commit wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Documents written or removed.
    pub documents: usize,
    /// Stream positions written.
    pub positions: usize,
    /// Events applied in the transaction.
    pub events: u64,
}

/// The changes of one batch of events: documents, per-stream positions and
/// bookkeeping, committed together in one sled batch.
pub struct ViewTx {
    db: Arc<ViewDb>,
    docs: Map<Vec<u8>, Slot>,
    /// Positions changed in this transaction.
    positions: Map<String, u64>,
    /// Positions known to be stored (carried over from earlier transactions).
    known_positions: Map<String, u64>,
    poisoned: Vec<(String, u64, String)>,
    applied_position: Option<u64>,
    swept: Option<u64>,
    swept_changed: bool,
    events: u64,
    skipped: u64,
    /// `Some` in a rebuild: no positions recorded, and known-absent keys.
    rebuild: Option<WrittenKeys>,
}

impl ViewTx {
    fn new(db: Arc<ViewDb>, swept: Option<u64>, rebuild: Option<WrittenKeys>) -> Self {
        Self {
            db,
            docs: Map::default(),
            positions: Map::default(),
            known_positions: Map::default(),
            poisoned: Vec::new(),
            applied_position: None,
            swept,
            swept_changed: false,
            events: 0,
            skipped: 0,
            rebuild,
        }
    }

    /// The database it will commit to.
    pub fn db(&self) -> &Arc<ViewDb> {
        &self.db
    }

    fn slot<T: Document>(
        &mut self,
        collection: Collection<T>,
        key: &str,
    ) -> Result<&mut Slot, ViewError> {
        let full = doc_key(collection.name, key);
        let db = &self.db;
        let written = self.rebuild.as_ref();
        match self.docs.entry(full) {
            std::collections::hash_map::Entry::Occupied(entry) => Ok(entry.into_mut()),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let unwritten = written.is_some_and(|w| !w.0.contains(&key_hash(entry.key())));
                let stored = if unwritten {
                    None
                } else {
                    db.db.get(entry.key())?
                };
                let (value, trailer) = match stored {
                    Some(bytes) => {
                        let (json, trailer) = split_trailer(&bytes);
                        let doc: T =
                            serde_json::from_slice(json).map_err(|source| ViewError::Corrupt {
                                collection: collection.name,
                                key: key.to_owned(),
                                source,
                            })?;
                        (Some(Box::new(doc) as Box<dyn Held>), trailer)
                    }
                    None => (None, None),
                };
                let stored = value.is_some();
                Ok(entry.insert(Slot {
                    collection: collection.name,
                    value,
                    dirty: false,
                    stored,
                    trailer,
                }))
            }
        }
    }

    /// A document, if it exists.
    pub fn get<T: Document>(
        &mut self,
        collection: Collection<T>,
        key: &str,
    ) -> Result<Option<&T>, ViewError> {
        let slot = self.slot(collection, key)?;
        match &slot.value {
            None => Ok(None),
            Some(held) => {
                held.as_any()
                    .downcast_ref::<T>()
                    .map(Some)
                    .ok_or(ViewError::TypeMismatch {
                        collection: collection.name,
                    })
            }
        }
    }

    /// A document to change, if it exists.
    pub fn get_mut<T: Document>(
        &mut self,
        collection: Collection<T>,
        key: &str,
    ) -> Result<Option<&mut T>, ViewError> {
        let slot = self.slot(collection, key)?;
        match &mut slot.value {
            None => Ok(None),
            Some(held) => {
                slot.dirty = true;
                held.as_any_mut()
                    .downcast_mut::<T>()
                    .map(Some)
                    .ok_or(ViewError::TypeMismatch {
                        collection: collection.name,
                    })
            }
        }
    }

    /// A document to change, created with `init` if it does not exist.
    pub fn upsert_with<T: Document>(
        &mut self,
        collection: Collection<T>,
        key: &str,
        init: impl FnOnce() -> T,
    ) -> Result<&mut T, ViewError> {
        let slot = self.slot(collection, key)?;
        slot.dirty = true;
        let held = slot
            .value
            .get_or_insert_with(|| Box::new(init()) as Box<dyn Held>);
        held.as_any_mut()
            .downcast_mut::<T>()
            .ok_or(ViewError::TypeMismatch {
                collection: collection.name,
            })
    }

    /// A document to change, created as `T::default()` if it does not exist.
    pub fn upsert<T: Document + Default>(
        &mut self,
        collection: Collection<T>,
        key: &str,
    ) -> Result<&mut T, ViewError> {
        self.upsert_with(collection, key, T::default)
    }

    /// Replaces (or creates) a document.
    pub fn put<T: Document>(
        &mut self,
        collection: Collection<T>,
        key: &str,
        doc: T,
    ) -> Result<(), ViewError> {
        let slot = self.slot(collection, key)?;
        slot.value = Some(Box::new(doc));
        slot.dirty = true;
        Ok(())
    }

    /// Removes a document. One that is not stored (created in this
    /// transaction, or never there) is forgotten altogether: there is
    /// nothing to write, and a transaction that creates and removes many
    /// short-lived documents holds none of them.
    pub fn remove<T: Document>(
        &mut self,
        collection: Collection<T>,
        key: &str,
    ) -> Result<(), ViewError> {
        let slot = self.slot(collection, key)?;
        if slot.stored {
            slot.value = None;
            slot.dirty = true;
        } else {
            self.docs.remove(&doc_key(collection.name, key));
        }
        Ok(())
    }

    /// The last applied version of a stream, counting this transaction.
    pub fn position(&self, stream: &str) -> Result<Option<u64>, ViewError> {
        match self
            .positions
            .get(stream)
            .or_else(|| self.known_positions.get(stream))
        {
            Some(version) => Ok(Some(*version)),
            None => self.db.position(stream),
        }
    }

    /// Whether a stored event was skipped as poison, counting this transaction.
    pub fn poisoned(&self, stream: &str, version: u64) -> Result<Option<String>, ViewError> {
        if let Some((_, _, reason)) = self
            .poisoned
            .iter()
            .find(|(s, v, _)| s == stream && *v == version)
        {
            return Ok(Some(reason.clone()));
        }
        self.db.poisoned(stream, version)
    }

    /// Records that `version` of `stream` (at global `position`) was applied.
    pub fn mark_applied(&mut self, stream: &str, version: u64, position: u64) {
        self.set_position(stream, version, position);
        self.events += 1;
    }

    /// Records that the stream is known to be applied up to `version` (an
    /// event at or below the swept position), without applying anything.
    pub fn mark_known(&mut self, stream: &str, version: u64) {
        if self.rebuild.is_none() {
            self.positions.insert(stream.to_owned(), version);
        }
    }

    /// Writes a stream's position even in a rebuild (for long streams,
    /// which would be slow to look up in the store later).
    pub fn keep_position(&mut self, stream: &str, version: u64) {
        self.positions.insert(stream.to_owned(), version);
    }

    /// The swept position, counting this transaction.
    pub fn swept(&self) -> Option<u64> {
        self.swept
    }

    /// Moves the swept position to `position`: every event up to it has
    /// been read in order and applied, ignored or skipped.
    pub fn set_swept(&mut self, position: u64) {
        if self.swept.is_none_or(|swept| position > swept) {
            self.swept = Some(position);
            self.swept_changed = true;
        }
    }

    /// Records that a stored event could not be applied and was skipped.
    pub fn mark_poisoned(&mut self, stream: &str, version: u64, position: u64, reason: &str) {
        self.set_position(stream, version, position);
        self.poisoned
            .push((stream.to_owned(), version, reason.to_owned()));
        self.skipped += 1;
    }

    fn set_position(&mut self, stream: &str, version: u64, position: u64) {
        if self.rebuild.is_some() {
            // A rebuild's positions are implied by its swept position.
            self.note_position(position);
            return;
        }
        match self.positions.get_mut(stream) {
            Some(last) => *last = version,
            None => {
                self.positions.insert(stream.to_owned(), version);
            }
        }
        self.note_position(position);
    }

    /// Moves the applied position forward (to `position` if it is higher):
    /// also for events of categories this view ignores.
    pub fn note_position(&mut self, position: u64) {
        self.applied_position = Some(self.applied_position.map_or(position, |p| p.max(position)));
    }

    /// How many events were applied in this transaction.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// How many documents this transaction holds in memory.
    pub fn held_documents(&self) -> usize {
        self.docs.len()
    }

    /// Whether committing would write anything.
    pub fn is_empty(&self) -> bool {
        self.applied_position.is_none()
            && !self.swept_changed
            && self.positions.is_empty()
            && self.docs.values().all(|slot| !slot.dirty)
    }

    /// Writes every change in one atomic sled batch (not flushed: call
    /// [`ViewDb::flush`] before acknowledging anything).
    pub fn commit(self) -> Result<CommitStats, ViewError> {
        self.commit_carrying(0).map(|(stats, _)| stats)
    }

    /// Like [`ViewTx::commit`], and hands back what the transaction held for
    /// the next one, unless it holds more than `max_documents` documents
    /// (then nothing: the next transaction starts cold).
    pub fn commit_carrying(
        mut self,
        max_documents: usize,
    ) -> Result<(CommitStats, Option<Carry>), ViewError> {
        let (writes, stats) = self.take_writes()?;
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.db.db.apply_batch(batch)?;
        let carry = (self.docs.len() <= max_documents
            && self.known_positions.len() <= max_documents.saturating_mul(4)
            && self.rebuild.is_none())
        .then(|| Carry {
            db: Arc::as_ptr(&self.db) as usize,
            docs: std::mem::take(&mut self.docs),
            positions: std::mem::take(&mut self.known_positions),
        });
        Ok((stats, carry))
    }

    /// Writes every change in key order, key by key: not atomic, for
    /// databases nobody reads yet (a rebuild). sled 0.34 guards every atomic
    /// batch with one write lock shared by *all* its databases in the
    /// process, so batches of views rebuilt side by side (and the event
    /// store's index reads, in an offline replay) would take turns; single
    /// writes only share that lock, and also keep no batch's pages pinned.
    pub fn commit_unbatched(mut self) -> Result<(CommitStats, WrittenKeys), ViewError> {
        let db = Arc::clone(&self.db);
        // The writes first: they record what the rebuild left untracked,
        // which they know from `rebuild` being set.
        let (mut writes, stats) = self.take_writes()?;
        let mut written = self.rebuild.take().unwrap_or_default();
        writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        written.0.extend(
            writes
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| key_hash(k)),
        );
        for (key, value) in writes {
            match value {
                Some(value) => db.db.insert(key, value)?,
                None => db.db.remove(key)?,
            };
        }
        Ok((stats, written))
    }

    /// The write that records `stream` at `version`: none if its home
    /// document is held (it takes the position when it is encoded), the
    /// stored home with a new trailer (not decoded), or the stream's own key
    /// when the home does not exist.
    #[allow(clippy::type_complexity)]
    fn position_write(
        &mut self,
        homes: &[Home],
        stream: &str,
        version: u64,
    ) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>, ViewError> {
        let Some(home) = homes.iter().find_map(|home| home.key_of(stream)) else {
            return Ok(Some(own_position(stream, version)));
        };
        match self.docs.get_mut(&home) {
            Some(slot) if slot.value.is_some() => {
                slot.trailer = Some(version);
                slot.dirty = true;
                Ok(None)
            }
            // Removed in this transaction: the old trailer goes with the
            // document, the new position to the stream's key.
            Some(slot) => {
                slot.trailer = None;
                Ok(Some(own_position(stream, version)))
            }
            None => Ok(Some(match self.db.db.get(&home)? {
                Some(doc) => {
                    let json = split_trailer(&doc).0.to_vec();
                    (home, Some(with_trailer(json, version)))
                }
                None => own_position(stream, version),
            })),
        }
    }

    /// Every key to write (`None`: remove), and what they are; the
    /// documents stay, marked clean, and the positions become known ones.
    #[allow(clippy::type_complexity)]
    fn take_writes(&mut self) -> Result<(Vec<(Vec<u8>, Option<Vec<u8>>)>, CommitStats), ViewError> {
        let mut writes = Vec::with_capacity(self.docs.len() + self.positions.len() + 4);
        let mut stats = CommitStats {
            events: self.events,
            positions: self.positions.len(),
            ..CommitStats::default()
        };
        // Positions first: those whose home document exists go into it.
        let homes = self.db.homes();
        for (stream, version) in std::mem::take(&mut self.positions) {
            if let Some(write) = self.position_write(&homes, &stream, version)? {
                writes.push(write);
            }
            self.known_positions.insert(stream, version);
        }
        for (key, slot) in self.docs.iter_mut() {
            if !slot.dirty {
                continue;
            }
            slot.dirty = false;
            match &slot.value {
                Some(held) => {
                    let mut bytes = held.encode().map_err(|source| ViewError::Encode {
                        collection: slot.collection,
                        key: String::from_utf8_lossy(key).into_owned(),
                        source,
                    })?;
                    if let Some(version) = slot.trailer {
                        bytes = with_trailer(bytes, version);
                    }
                    slot.stored = true;
                    writes.push((key.clone(), Some(bytes)));
                }
                // Created and removed within this transaction: nothing to write.
                None if !slot.stored => continue,
                None => {
                    slot.stored = false;
                    // The position it carried goes to its stream's own key,
                    // as do the stream's later ones until it is stored again.
                    if let Some(version) = slot.trailer.take() {
                        if let Some(stream) = homes.iter().find_map(|home| home.stream_of(key)) {
                            writes.push(own_position(&stream, version));
                        }
                    }
                    writes.push((key.clone(), None));
                }
            }
            stats.documents += 1;
        }
        for (stream, version, reason) in std::mem::take(&mut self.poisoned) {
            writes.push((poisoned_key(&stream, version), Some(reason.into_bytes())));
        }
        let meta = self.db.meta()?;
        if let Some(position) = self.applied_position {
            let position = meta.applied_position.map_or(position, |p| p.max(position));
            writes.push((
                meta_key(META_APPLIED_POSITION),
                Some(position.to_be_bytes().to_vec()),
            ));
        }
        if self.swept_changed {
            if let Some(swept) = self.swept {
                writes.push((meta_key(META_SWEPT), Some(swept.to_be_bytes().to_vec())));
                if self.rebuild.is_some() {
                    // A rebuild wrote no positions for what it applied.
                    writes.push((
                        meta_key(META_UNTRACKED_BELOW),
                        Some(swept.saturating_add(1).to_be_bytes().to_vec()),
                    ));
                }
            }
        }
        if self.events > 0 {
            writes.push((
                meta_key(META_EVENTS),
                Some((meta.events_applied + self.events).to_be_bytes().to_vec()),
            ));
        }
        if self.skipped > 0 {
            writes.push((
                meta_key(META_SKIPPED),
                Some((meta.skipped + self.skipped).to_be_bytes().to_vec()),
            ));
        }
        Ok((writes, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
    struct Counter {
        n: u64,
    }

    const COUNTERS: Collection<Counter> = Collection::new("counters");

    fn db() -> Arc<ViewDb> {
        Arc::new(ViewDb::temporary().unwrap())
    }

    #[test]
    fn a_fresh_database_takes_the_wanted_layout_and_one_with_events_but_none_recorded_has_layout_one(
    ) {
        let fresh = db();
        assert_eq!(fresh.adopt_layout(3, &[]).unwrap(), None);
        assert_eq!(fresh.layout().unwrap(), Some(3));
        assert_eq!(fresh.adopt_layout(4, &[]).unwrap(), Some(3));

        let old = db();
        let mut tx = old.begin().unwrap();
        tx.upsert(COUNTERS, "a").unwrap().n += 1;
        tx.mark_applied("counter-a", 0, 0);
        tx.commit().unwrap();
        assert_eq!(old.adopt_layout(2, &[]).unwrap(), Some(1));
        assert_eq!(old.adopt_layout(1, &[]).unwrap(), None);
        assert_eq!(old.layout().unwrap(), None, "nothing recorded for it");
    }

    /// A database whose `counter-*` streams have their home in `counters`.
    fn homed() -> Arc<ViewDb> {
        let db = db();
        db.set_homes(&[Home::new("counter", COUNTERS.name())])
            .unwrap();
        db
    }

    fn own_key(db: &ViewDb, stream: &str) -> Option<u64> {
        db.db
            .get(position_key(stream))
            .unwrap()
            .map(|bytes| read_u64(stream, &bytes).unwrap())
    }

    #[test]
    fn a_stream_with_its_home_document_keeps_its_position_in_it_out_of_sight_of_readers() {
        let plain = db();
        let db = homed();
        for view in [&db, &plain] {
            let mut tx = view.begin().unwrap();
            tx.upsert(COUNTERS, "a").unwrap().n = 7;
            tx.mark_applied("counter-a", 3, 30);
            // Another category, and an id with no document: own keys.
            tx.mark_applied("other-a", 1, 31);
            tx.mark_applied("counter-b", 2, 32);
            let stats = tx.commit().unwrap();
            assert_eq!((stats.documents, stats.positions), (1, 3));
        }
        assert_eq!(db.position("counter-a").unwrap(), Some(3));
        assert_eq!(own_key(&db, "counter-a"), None, "no key of its own");
        assert_eq!(own_key(&plain, "counter-a"), Some(3));
        for stream in ["other-a", "counter-b"] {
            assert_eq!(own_key(&db, stream), db.position(stream).unwrap());
            assert!(db.position(stream).unwrap().is_some(), "{stream}");
        }
        let raw = db.db.get(doc_key("counters", "a")).unwrap().unwrap();
        assert_eq!(raw.last(), Some(&TRAILER_MARK));
        // Readers see the JSON alone: served bytes, decoded documents, the digest.
        assert_eq!(
            &db.get_raw("counters", "a").unwrap().unwrap()[..],
            br#"{"n":7}"#
        );
        assert_eq!(db.get(COUNTERS, "a").unwrap(), Some(Counter { n: 7 }));
        let scanned: Vec<_> = db.scan(COUNTERS, None).map(Result::unwrap).collect();
        assert_eq!(scanned, vec![("a".to_owned(), Counter { n: 7 })]);
        assert_eq!(
            crate::digest::digest(&db).unwrap(),
            crate::digest::digest(&plain).unwrap()
        );

        // A later transaction (not carried) reads the position and the document.
        let mut tx = db.begin().unwrap();
        assert_eq!(tx.position("counter-a").unwrap(), Some(3));
        tx.get_mut(COUNTERS, "a").unwrap().unwrap().n += 1;
        tx.mark_applied("counter-a", 4, 33);
        tx.commit().unwrap();
        assert_eq!(db.position("counter-a").unwrap(), Some(4));
        assert_eq!(db.get(COUNTERS, "a").unwrap(), Some(Counter { n: 8 }));
    }

    #[test]
    fn a_position_moved_without_its_document_in_hand_is_written_into_it_unchanged() {
        let db = homed();
        let mut tx = db.begin().unwrap();
        tx.upsert(COUNTERS, "a").unwrap().n = 1;
        tx.mark_applied("counter-a", 1, 10);
        tx.commit().unwrap();
        // An event of the stream that does not touch its document.
        let mut tx = db.begin().unwrap();
        tx.mark_applied("counter-a", 2, 11);
        tx.commit().unwrap();
        assert_eq!(db.position("counter-a").unwrap(), Some(2));
        assert_eq!(own_key(&db, "counter-a"), None);
        assert_eq!(
            &db.get_raw("counters", "a").unwrap().unwrap()[..],
            br#"{"n":1}"#
        );
    }

    #[test]
    fn a_removed_home_hands_the_position_to_its_key_and_a_recreated_one_does_not_bring_back_the_old(
    ) {
        let db = homed();
        let mut tx = db.begin().unwrap();
        tx.upsert(COUNTERS, "a").unwrap().n = 1;
        tx.mark_applied("counter-a", 1, 10);
        let (_, carry) = tx.commit_carrying(100).unwrap();
        // Removed, and the stream moves on while it is gone.
        let mut tx = db.begin_with(carry).unwrap();
        tx.remove(COUNTERS, "a").unwrap();
        tx.mark_applied("counter-a", 2, 11);
        let (_, carry) = tx.commit_carrying(100).unwrap();
        assert_eq!(db.position("counter-a").unwrap(), Some(2));
        assert_eq!(own_key(&db, "counter-a"), Some(2));
        let mut tx = db.begin_with(carry).unwrap();
        tx.mark_applied("counter-a", 3, 12);
        let (_, carry) = tx.commit_carrying(100).unwrap();
        assert_eq!(db.position("counter-a").unwrap(), Some(3));
        // Created again by something else (no event of its stream): no
        // trailer, so the key still tells.
        let mut tx = db.begin_with(carry).unwrap();
        tx.upsert(COUNTERS, "a").unwrap().n = 5;
        tx.note_position(13);
        let (_, carry) = tx.commit_carrying(100).unwrap();
        assert_eq!(db.position("counter-a").unwrap(), Some(3));
        // Its stream's next event takes the document again.
        let mut tx = db.begin_with(carry).unwrap();
        tx.mark_applied("counter-a", 4, 14);
        tx.commit().unwrap();
        assert_eq!(db.position("counter-a").unwrap(), Some(4));
        assert_eq!(db.get(COUNTERS, "a").unwrap(), Some(Counter { n: 5 }));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Creates or changes a `counters` document.
        Put(usize),
        Remove(usize),
        /// Applies the next event of a stream.
        Advance(usize),
        /// Commits, handing the transaction's documents on or not.
        Commit(bool),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..2usize).prop_map(Op::Put),
            (0..2usize).prop_map(Op::Remove),
            (0..3usize).prop_map(Op::Advance),
            any::<bool>().prop_map(Op::Commit),
        ]
    }

    proptest::proptest! {
        /// Whatever documents come and go, every stream's position reads back
        /// as the last version applied to it, within a transaction and after
        /// its commit.
        #[test]
        fn positions_read_back_whatever_their_homes_do(ops in proptest::collection::vec(op(), 1..60)) {
            const KEYS: [&str; 2] = ["a", "b"];
            // Two with a home (`counters/a`, `counters/b`), one without.
            const STREAMS: [&str; 3] = ["counter-a", "counter-b", "other-a"];
            let db = homed();
            let mut committed: [Option<u64>; 3] = [None; 3];
            let mut pending = committed;
            let mut docs: [Option<u64>; 2] = [None; 2];
            let mut position = 0;
            let mut tx = db.begin().unwrap();
            for op in ops.into_iter().chain([Op::Commit(false)]) {
                match op {
                    Op::Put(d) => {
                        tx.upsert(COUNTERS, KEYS[d]).unwrap().n += 1;
                        docs[d] = Some(docs[d].unwrap_or(0) + 1);
                    }
                    Op::Remove(d) => {
                        tx.remove(COUNTERS, KEYS[d]).unwrap();
                        docs[d] = None;
                    }
                    Op::Advance(i) => {
                        let version = pending[i].map_or(0, |v| v + 1);
                        position += 1;
                        tx.mark_applied(STREAMS[i], version, position);
                        pending[i] = Some(version);
                    }
                    Op::Commit(carry) => {
                        let (_, kept) = tx.commit_carrying(if carry { 100 } else { 0 }).unwrap();
                        committed = pending;
                        for (i, stream) in STREAMS.iter().enumerate() {
                            proptest::prop_assert_eq!(db.position(stream).unwrap(), committed[i], "{}", stream);
                        }
                        for (d, key) in KEYS.iter().enumerate() {
                            let stored = db.get(COUNTERS, key).unwrap().map(|c| c.n);
                            proptest::prop_assert_eq!(stored, docs[d], "{}", key);
                        }
                        tx = db.begin_with(kept).unwrap();
                    }
                }
                for (i, stream) in STREAMS.iter().enumerate() {
                    proptest::prop_assert_eq!(tx.position(stream).unwrap(), pending[i], "{} in the transaction", stream);
                }
            }
        }
    }

    #[test]
    fn homes_are_recorded_in_the_database_and_read_back_on_open() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("view");
        let homes = [
            Home::new("counter", "counters"),
            Home::new("order", "orders"),
        ];
        {
            let db = ViewDb::open(&path, DbOptions::default()).unwrap();
            assert_eq!(db.adopt_layout(2, &homes).unwrap(), None);
        }
        let db = ViewDb::open(&path, DbOptions::default()).unwrap();
        assert_eq!(db.homes(), homes.to_vec());
        assert_eq!(
            decode_homes(b"no tab here\n").unwrap_err().to_string(),
            "bookkeeping value homes is corrupt"
        );
    }

    #[test]
    fn only_a_trailer_with_its_mark_is_split_off() {
        assert_eq!(split_trailer(br#"{"n":1}"#), (&br#"{"n":1}"#[..], None));
        let with = with_trailer(br#"{"n":1}"#.to_vec(), 258);
        assert_eq!(split_trailer(&with), (&br#"{"n":1}"#[..], Some(258)));
        assert_eq!(
            split_trailer(&[0xFF]),
            (&[0xFF][..], None),
            "too short to hold one"
        );
        assert_eq!(Home::new("order", "orders").key_of("order-"), None);
        assert_eq!(Home::new("order", "orders").key_of("orders-1"), None);
        assert_eq!(
            Home::new("order", "orders").key_of("order-1"),
            Some(doc_key("orders", "1"))
        );
    }

    #[test]
    fn a_new_database_tracks_every_position_and_a_rebuild_records_what_it_left_untracked() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("view");
        {
            let db = Arc::new(ViewDb::open(&path, DbOptions::default()).unwrap());
            assert_eq!(db.untracked_below().unwrap(), 0);
            let mut tx = db.begin().unwrap();
            tx.mark_applied("order-1", 0, 0);
            tx.set_swept(0);
            tx.commit().unwrap();
            assert_eq!(
                db.untracked_below().unwrap(),
                0,
                "live commits track positions"
            );
            let mut tx = db.begin_rebuild(WrittenKeys::default()).unwrap();
            tx.mark_applied("order-2", 0, 41);
            tx.set_swept(41);
            tx.commit_unbatched().unwrap();
            assert_eq!(db.untracked_below().unwrap(), 42);
            db.flush().unwrap();
        }
        let db = ViewDb::open(&path, DbOptions::default()).unwrap();
        assert_eq!(db.untracked_below().unwrap(), 42, "kept when reopened");
        db.db.remove(meta_key(META_UNTRACKED_BELOW)).unwrap();
        assert_eq!(
            db.untracked_below().unwrap(),
            u64::MAX,
            "a database from before the key may lack any position"
        );
    }

    #[test]
    fn changes_are_invisible_until_commit_and_then_all_visible() {
        let db = db();
        let mut tx = db.begin().unwrap();
        tx.upsert(COUNTERS, "a").unwrap().n += 2;
        tx.upsert(COUNTERS, "a").unwrap().n += 3;
        tx.mark_applied("order-1", 0, 7);
        assert_eq!(db.get(COUNTERS, "a").unwrap(), None);
        assert_eq!(db.position("order-1").unwrap(), None);
        assert_eq!(tx.position("order-1").unwrap(), Some(0));
        let stats = tx.commit().unwrap();
        assert_eq!(stats.documents, 1);
        assert_eq!(db.get(COUNTERS, "a").unwrap(), Some(Counter { n: 5 }));
        assert_eq!(db.position("order-1").unwrap(), Some(0));
        let meta = db.meta().unwrap();
        assert_eq!(meta.applied_position, Some(7));
        assert_eq!(meta.events_applied, 1);
    }

    #[test]
    fn a_transaction_reads_committed_documents_and_can_remove_them() {
        let db = db();
        let mut tx = db.begin().unwrap();
        tx.put(COUNTERS, "a", Counter { n: 1 }).unwrap();
        tx.put(COUNTERS, "b", Counter { n: 2 }).unwrap();
        tx.commit().unwrap();
        let mut tx = db.begin().unwrap();
        assert_eq!(tx.get(COUNTERS, "a").unwrap(), Some(&Counter { n: 1 }));
        tx.remove(COUNTERS, "a").unwrap();
        assert_eq!(tx.get(COUNTERS, "a").unwrap(), None);
        tx.commit().unwrap();
        let all: Vec<_> = db.scan(COUNTERS, None).map(Result::unwrap).collect();
        assert_eq!(all, vec![("b".to_owned(), Counter { n: 2 })]);
    }

    #[test]
    fn a_document_created_and_removed_in_one_transaction_is_neither_held_nor_written() {
        let db = db();
        let mut tx = db.begin().unwrap();
        tx.put(COUNTERS, "kept", Counter { n: 1 }).unwrap();
        tx.put(COUNTERS, "brief", Counter { n: 2 }).unwrap();
        assert_eq!(tx.held_documents(), 2);
        tx.remove(COUNTERS, "brief").unwrap();
        tx.remove(COUNTERS, "never").unwrap();
        assert_eq!(tx.held_documents(), 1, "only the kept one is held");
        assert_eq!(tx.get(COUNTERS, "brief").unwrap(), None);
        tx.upsert(COUNTERS, "again").unwrap().n = 5;
        tx.remove(COUNTERS, "again").unwrap();
        let stats = tx.commit().unwrap();
        assert_eq!(stats.documents, 1);
        let all: Vec<_> = db.scan(COUNTERS, None).map(Result::unwrap).collect();
        assert_eq!(all, vec![("kept".to_owned(), Counter { n: 1 })]);
    }

    #[test]
    fn scanning_after_a_key_starts_past_it_and_stays_in_the_collection() {
        let db = db();
        let mut tx = db.begin().unwrap();
        for key in ["a", "ab", "b", "c"] {
            tx.put(COUNTERS, key, Counter::default()).unwrap();
        }
        tx.put(
            Collection::<Counter>::new("counters2"),
            "z",
            Counter::default(),
        )
        .unwrap();
        tx.commit().unwrap();
        let keys: Vec<String> = db
            .scan(COUNTERS, Some("a"))
            .map(|item| item.unwrap().0)
            .collect();
        assert_eq!(keys, ["ab", "b", "c"]);
    }

    #[test]
    fn the_applied_position_never_moves_back() {
        let db = db();
        let mut tx = db.begin().unwrap();
        tx.note_position(10);
        tx.commit().unwrap();
        let mut tx = db.begin().unwrap();
        tx.note_position(4);
        tx.commit().unwrap();
        assert_eq!(db.meta().unwrap().applied_position, Some(10));
    }

    #[test]
    fn a_poisoned_event_moves_the_stream_on_and_is_remembered_with_its_reason() {
        let db = db();
        let mut tx = db.begin().unwrap();
        tx.mark_poisoned("order-1", 0, 3, "bad payload");
        assert_eq!(
            tx.poisoned("order-1", 0).unwrap().as_deref(),
            Some("bad payload")
        );
        tx.commit().unwrap();
        assert_eq!(db.position("order-1").unwrap(), Some(0));
        assert_eq!(
            db.poisoned("order-1", 0).unwrap().as_deref(),
            Some("bad payload")
        );
        assert_eq!(db.meta().unwrap().skipped, 1);
        assert_eq!(db.content().count(), 0, "poison is not content");
    }

    #[test]
    fn a_transaction_carried_over_sees_and_changes_what_the_last_one_wrote() {
        let db = db();
        let mut tx = db.begin().unwrap();
        tx.put(COUNTERS, "a", Counter { n: 1 }).unwrap();
        tx.put(COUNTERS, "gone", Counter { n: 9 }).unwrap();
        tx.mark_applied("order-1", 0, 0);
        let (_, carry) = tx.commit_carrying(100).unwrap();
        let carry = carry.unwrap();
        assert_eq!(carry.documents(), 2);
        let mut tx = db.begin_with(Some(carry)).unwrap();
        assert_eq!(tx.position("order-1").unwrap(), Some(0));
        tx.upsert(COUNTERS, "a").unwrap().n += 1;
        tx.remove(COUNTERS, "gone").unwrap();
        let (_, carry) = tx.commit_carrying(100).unwrap();
        assert_eq!(db.get(COUNTERS, "a").unwrap(), Some(Counter { n: 2 }));
        assert_eq!(db.get(COUNTERS, "gone").unwrap(), None);
        // Nothing left dirty: committing the carried documents again writes nothing.
        let tx = db.begin_with(carry).unwrap();
        assert!(tx.is_empty());
        assert_eq!(tx.commit().unwrap().documents, 0);
    }

    #[test]
    fn a_carry_from_another_database_or_over_the_limit_is_not_used() {
        let first = db();
        let second = db();
        let mut tx = first.begin().unwrap();
        tx.put(COUNTERS, "a", Counter { n: 1 }).unwrap();
        let (_, carry) = tx.commit_carrying(100).unwrap();
        let mut tx = second.begin_with(carry).unwrap();
        assert_eq!(tx.get(COUNTERS, "a").unwrap(), None);
        tx.put(COUNTERS, "a", Counter { n: 5 }).unwrap();
        tx.put(COUNTERS, "b", Counter { n: 6 }).unwrap();
        let (_, carry) = tx.commit_carrying(1).unwrap();
        assert!(carry.is_none());
    }

    #[test]
    fn a_corrupt_document_is_an_error_naming_it() {
        let db = db();
        db.db
            .insert(doc_key("counters", "a"), b"nope".as_slice())
            .unwrap();
        let mut tx = db.begin().unwrap();
        let err = tx.get(COUNTERS, "a").unwrap_err();
        assert!(err.to_string().contains("counters/a"), "{err}");
    }
}
