//! A small cache of hot catalog reads (products by SKU), shared by all requests.
//!
//! An entry remembers when the read that filled it *started*. A query that
//! waited for a consistency token knows the instant the catalog view was seen
//! to include that write; an entry whose read started before that instant
//! may predate the write and is never served to that query. Entries also
//! expire after a short time, and a catalog or stock mutation through this
//! gateway drops the SKU's entry at once.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

#[derive(Clone, Debug)]
struct Entry {
    document: serde_json::Value,
    read_started: Instant,
}

/// Product documents by SKU.
#[derive(Debug)]
pub struct CatalogCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

impl CatalogCache {
    /// A cache keeping entries for `ttl`, at most `capacity` of them; a zero
    /// `ttl` or `capacity` turns it off.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
            hits: metrics::counter!("query_api_catalog_cache_total", "outcome" => "hit"),
            misses: metrics::counter!("query_api_catalog_cache_total", "outcome" => "miss"),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.capacity > 0
    }

    /// The cached document of `sku`, if it is fresh and was read no earlier
    /// than `not_before`.
    pub fn get(&self, sku: &str, not_before: Option<Instant>) -> Option<serde_json::Value> {
        self.get_at(sku, not_before, Instant::now())
    }

    /// [`get`](Self::get) as of `now`.
    pub fn get_at(
        &self,
        sku: &str,
        not_before: Option<Instant>,
        now: Instant,
    ) -> Option<serde_json::Value> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.lock();
        let hit = entries.get(sku).filter(|entry| {
            let fresh = now.saturating_duration_since(entry.read_started) < self.ttl;
            fresh && not_before.is_none_or(|not_before| entry.read_started >= not_before)
        });
        match hit {
            Some(entry) => {
                self.hits.increment(1);
                Some(entry.document.clone())
            }
            None => {
                self.misses.increment(1);
                None
            }
        }
    }

    /// Stores `document` of `sku`, read by a call that started at `read_started`,
    /// unless a newer read is already stored.
    pub fn put(&self, sku: &str, document: serde_json::Value, read_started: Instant) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(sku) {
            let ttl = self.ttl;
            entries.retain(|_, entry| entry.read_started.elapsed() < ttl);
            if entries.len() >= self.capacity {
                // Still full of fresh entries: start over rather than track recency.
                entries.clear();
            }
        }
        match entries.get(sku) {
            Some(existing) if existing.read_started > read_started => {}
            _ => {
                entries.insert(
                    sku.to_owned(),
                    Entry {
                        document,
                        read_started,
                    },
                );
            }
        }
    }

    /// Drops the entry of `sku` (after a write to it).
    pub fn invalidate(&self, sku: &str) {
        self.entries.lock().remove(sku);
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_read_before_a_consistency_point_is_not_served_for_it() {
        let cache = CatalogCache::new(Duration::from_secs(60), 10);
        let read = Instant::now();
        cache.put("SKU-1", json!({"price_cents": 100}), read);
        assert_eq!(cache.get("SKU-1", None), Some(json!({"price_cents": 100})));
        assert_eq!(
            cache.get("SKU-1", Some(read)),
            Some(json!({"price_cents": 100}))
        );
        let caught_up = read + Duration::from_millis(1);
        assert_eq!(cache.get("SKU-1", Some(caught_up)), None);
        cache.put("SKU-1", json!({"price_cents": 200}), caught_up);
        assert_eq!(
            cache.get("SKU-1", Some(caught_up)),
            Some(json!({"price_cents": 200}))
        );
    }

    #[test]
    fn an_older_read_never_replaces_a_newer_one() {
        let cache = CatalogCache::new(Duration::from_secs(60), 10);
        let first = Instant::now();
        let second = first + Duration::from_millis(5);
        cache.put("SKU-1", json!({"v": 2}), second);
        cache.put("SKU-1", json!({"v": 1}), first);
        assert_eq!(cache.get("SKU-1", None), Some(json!({"v": 2})));
    }

    #[test]
    fn entries_expire_and_can_be_invalidated_and_a_zero_ttl_turns_the_cache_off() {
        let cache = CatalogCache::new(Duration::from_secs(60), 10);
        let read = Instant::now();
        cache.put("OLD", json!({}), read);
        assert_eq!(
            cache.get_at("OLD", None, read + Duration::from_secs(120)),
            None
        );
        cache.put("SKU-1", json!({}), Instant::now());
        cache.invalidate("SKU-1");
        assert_eq!(cache.get("SKU-1", None), None);
        let off = CatalogCache::new(Duration::ZERO, 10);
        off.put("SKU-1", json!({}), Instant::now());
        assert!(off.is_empty());
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = CatalogCache::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        cache.put("A", json!({}), now);
        cache.put("B", json!({}), now);
        cache.put("C", json!({}), now);
        assert!(cache.len() <= 2);
        assert_eq!(cache.get("C", None), Some(json!({})));
    }
}
