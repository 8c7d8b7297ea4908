//! An in-memory Bloom filter of every event id in the store, so an append of
//! new ids (nearly all of them) needs no index read to know they are new.
//!
//! It answers "certainly not stored" or "maybe stored"; only a "maybe" (a real
//! re-append, or about one id in a hundred by chance) is looked up in the
//! index. It is filled from the log when the store opens (recovery reads every
//! record anyway) and by the writer as it writes. It grows as a list of
//! filters, each twice as large as the last, so it never has to be rebuilt;
//! about 10 bits per id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use uuid::Uuid;

/// Bits per id: with [`HASHES`] hashes, about a 1% false-positive rate.
const BITS_PER_ID: usize = 10;
/// Hash functions per id.
const HASHES: u64 = 7;
/// Ids the first filter holds.
const FIRST_CAPACITY: usize = 1 << 20;

struct Filter {
    bits: Vec<AtomicU64>,
    capacity: usize,
    len: AtomicU64,
}

impl Filter {
    fn new(capacity: usize) -> Self {
        let words = (capacity * BITS_PER_ID).div_ceil(64);
        Self {
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
            capacity,
            len: AtomicU64::new(0),
        }
    }

    fn bit_count(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn bits_of(&self, (h1, h2): (u64, u64)) -> impl Iterator<Item = (usize, u64)> + '_ {
        let bit_count = self.bit_count();
        (0..HASHES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % bit_count;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn insert(&self, hashes: (u64, u64)) {
        for (word, mask) in self.bits_of(hashes) {
            self.bits[word].fetch_or(mask, Ordering::Release);
        }
        self.len.fetch_add(1, Ordering::Relaxed);
    }

    fn might_contain(&self, hashes: (u64, u64)) -> bool {
        self.bits_of(hashes)
            .all(|(word, mask)| self.bits[word].load(Ordering::Acquire) & mask != 0)
    }

    fn is_full(&self) -> bool {
        self.len.load(Ordering::Relaxed) as usize >= self.capacity
    }
}

/// SplitMix64's finaliser: ids may be anything but random (`Uuid::from_u128(7)`).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hashes(id: Uuid) -> (u64, u64) {
    let (high, low) = id.as_u64_pair();
    let h1 = mix(high ^ mix(low));
    // The step must be odd so the probes cover the filter.
    let h2 = mix(low.wrapping_add(0x9e37_79b9_7f4a_7c15) ^ high) | 1;
    (h1, h2)
}

/// The filter of every stored event id; see the module doc.
#[derive(Clone)]
pub(crate) struct IdFilter {
    filters: Arc<RwLock<Vec<Arc<Filter>>>>,
}

impl Default for IdFilter {
    fn default() -> Self {
        Self {
            filters: Arc::new(RwLock::new(vec![Arc::new(Filter::new(FIRST_CAPACITY))])),
        }
    }
}

impl IdFilter {
    /// Records an id. Called by one thread at a time (recovery, then the writer).
    pub(crate) fn insert(&self, id: Uuid) {
        let current = self.filters.read().last().cloned();
        let current = match current {
            Some(filter) if !filter.is_full() => filter,
            full => {
                let capacity = full.map_or(FIRST_CAPACITY, |f| f.capacity * 2);
                let filter = Arc::new(Filter::new(capacity));
                self.filters.write().push(filter.clone());
                filter
            }
        };
        current.insert(hashes(id));
    }

    /// `false` if the id was certainly never inserted.
    pub(crate) fn might_contain(&self, id: Uuid) -> bool {
        let hashes = hashes(id);
        self.filters
            .read()
            .iter()
            .any(|filter| filter.might_contain(hashes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_ids_are_always_found_and_others_rarely() {
        let filter = IdFilter::default();
        let inserted: Vec<Uuid> = (0..50_000u128).map(Uuid::from_u128).collect();
        for id in &inserted {
            filter.insert(*id);
        }
        assert!(inserted.iter().all(|id| filter.might_contain(*id)));
        let false_positives = (1_000_000..1_100_000u128)
            .map(Uuid::from_u128)
            .filter(|id| filter.might_contain(*id))
            .count();
        assert!(
            false_positives < 1_000,
            "{false_positives} false positives in 100000"
        );
    }

    #[test]
    fn a_full_filter_gets_a_larger_successor_and_keeps_its_ids() {
        let filter = IdFilter::default();
        let count = FIRST_CAPACITY + 10;
        for n in 0..count as u128 {
            filter.insert(Uuid::from_u128(n << 64));
        }
        assert_eq!(filter.filters.read().len(), 2);
        assert_eq!(filter.filters.read()[1].capacity, FIRST_CAPACITY * 2);
        assert!(filter.might_contain(Uuid::from_u128(0)));
        assert!(filter.might_contain(Uuid::from_u128(((count - 1) as u128) << 64)));
    }
}
