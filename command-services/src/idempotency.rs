//! Idempotency keys: the same key has one effect and gets the same answer.
//!
//! The ids of the events a keyed command appends are derived from the key,
//! the stream and the event's index in the command ([`event_id`]), so a
//! retried command appends the very same ids and the store's id dedupe holds
//! even across restarts of the service. The repository also remembers the
//! positions of recent event ids per stream ([`RecentIds`]) so that a retry
//! is answered with the first answer instead of being decided again.

use std::collections::{HashMap, VecDeque};

use uuid::Uuid;

/// A caller's `Idempotency-Key`: 1 to 200 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to {max} visible ASCII characters")]
pub struct InvalidKey {
    /// The longest key.
    pub max: usize,
}

impl IdempotencyKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 200;

    /// Parses a header value.
    pub fn parse(raw: &str) -> Result<Self, InvalidKey> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidKey { max: Self::MAX_LEN })
        }
    }

    /// A key derived from another key and a purpose, for commands one request
    /// causes (checkout places an order: `key` → `key/place-order`).
    pub fn derived(&self, purpose: &str) -> Self {
        Self(format!("{}/{purpose}", self.0))
    }

    /// The key as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A UUID derived from the key alone, e.g. the id of the order a keyed
    /// `place-order` without an `order_id` creates.
    pub fn derived_uuid(&self, purpose: &str) -> Uuid {
        domain::derive_event_id(&format!("{purpose}:{}", self.0), 0)
    }
}

/// The id of the `index`-th event a command with `key` appends to `stream`.
pub fn event_id(key: &IdempotencyKey, stream: &str, index: usize) -> Uuid {
    domain::derive_event_id(&format!("{stream}|{}", key.0), index)
}

/// Where a recently appended event landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Landed {
    /// Its version in the stream.
    pub version: u64,
    /// Its global position.
    pub position: u64,
}

/// The last [`RecentIds::CAPACITY`] event ids of one stream and where they
/// landed. A retry older than that is decided again; its events then carry
/// the same derived ids, which the store refuses to write twice.
#[derive(Clone, Debug, Default)]
pub struct RecentIds {
    order: VecDeque<Uuid>,
    landed: HashMap<Uuid, Landed>,
}

impl RecentIds {
    /// How many ids are remembered per stream.
    pub const CAPACITY: usize = 1024;

    /// Remembers an event.
    pub fn insert(&mut self, id: Uuid, landed: Landed) {
        if self.landed.insert(id, landed).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.landed.remove(&old);
            }
        }
    }

    /// Whether an event id is known.
    pub fn contains(&self, id: &Uuid) -> bool {
        self.landed.contains_key(id)
    }

    /// Where the first and the last event of an earlier command with `key`
    /// landed, if that command appended anything that is still remembered.
    pub fn command(&self, key: &IdempotencyKey, stream: &str) -> Option<(Landed, Landed)> {
        let first = *self.landed.get(&event_id(key, stream, 0))?;
        let mut last = first;
        for index in 1.. {
            match self.landed.get(&event_id(key, stream, index)) {
                Some(landed) => last = *landed,
                None => break,
            }
        }
        Some((first, last))
    }

    /// The remembered ids, oldest first (for snapshots).
    pub fn entries(&self) -> Vec<(Uuid, Landed)> {
        self.order
            .iter()
            .filter_map(|id| self.landed.get(id).map(|landed| (*id, *landed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("order-42/attempt-1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(201)).is_err());
    }

    #[test]
    fn event_ids_depend_on_key_stream_and_index_only() {
        let key = IdempotencyKey::parse("k1").unwrap();
        assert_eq!(event_id(&key, "order-1", 0), event_id(&key, "order-1", 0));
        assert_ne!(event_id(&key, "order-1", 0), event_id(&key, "order-1", 1));
        assert_ne!(event_id(&key, "order-1", 0), event_id(&key, "order-2", 0));
        let other = IdempotencyKey::parse("k2").unwrap();
        assert_ne!(event_id(&key, "order-1", 0), event_id(&other, "order-1", 0));
    }

    #[test]
    fn a_command_is_found_by_its_key_at_its_first_and_last_events_until_forgotten() {
        let key = IdempotencyKey::parse("k").unwrap();
        let mut recent = RecentIds::default();
        assert_eq!(recent.command(&key, "s-1"), None);
        recent.insert(
            event_id(&key, "s-1", 0),
            Landed {
                version: 3,
                position: 10,
            },
        );
        recent.insert(
            event_id(&key, "s-1", 1),
            Landed {
                version: 4,
                position: 11,
            },
        );
        assert_eq!(
            recent.command(&key, "s-1"),
            Some((
                Landed {
                    version: 3,
                    position: 10
                },
                Landed {
                    version: 4,
                    position: 11
                }
            ))
        );
        for n in 0..RecentIds::CAPACITY as u64 {
            recent.insert(
                Uuid::from_u128(u128::from(n) + 1),
                Landed {
                    version: n,
                    position: n,
                },
            );
        }
        assert_eq!(recent.command(&key, "s-1"), None);
        assert_eq!(recent.entries().len(), RecentIds::CAPACITY);
    }
}
