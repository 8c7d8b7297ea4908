//! Applying events exactly once (DESIGN.md guarantee 5), whatever the
//! broker does: an event is applied only if its stream version is the last
//! applied + 1; a lower one is a duplicate and skipped; a higher one means
//! events are missing, and they are fetched from the store and applied first.
//!
//! Positions come from two places: each stream's last applied version, and
//! the view's *swept position* (see [`crate::viewdb`]): every event at or
//! below it is known to be applied. A rebuild writes only the latter, so a
//! stream untouched since has no version of its own; its first new event
//! then looks ahead of nothing, its history is read from the store, and the
//! events found at or below the swept position are taken as applied, which
//! sets the stream's version without applying anything twice.
//!
//! A stored event that cannot be applied (its payload does not decode, or
//! the projection rejects it) is a poison event. Every path that meets it
//! with no retry left — replay, catch-up, gap repair, the last delivery
//! attempt — skips it the same way: the stream's position moves past it and
//! the reason is kept beside the view. A replayed view therefore skips what
//! the live one skipped and ends up identical.

use domain::{
    catalogue::{self, DomainEvent},
    envelope::RecordedEvent,
};

use crate::{
    projection::{ProjectionError, SharedProjection},
    source::{EventSource, SourceError},
    viewdb::{ViewError, ViewTx},
};

/// Where an event stands against its stream's last applied version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// It is the next one: apply it.
    Next,
    /// It was applied before: skip it.
    Duplicate,
    /// Versions from `missing_from` up to it (excluded) have not been applied.
    Ahead {
        /// The first missing version.
        missing_from: u64,
    },
}

/// Places `version` after `last_applied` (`None`: nothing applied yet).
pub fn place(last_applied: Option<u64>, version: u64) -> Placement {
    let expected = last_applied.map_or(0, |last| last.saturating_add(1));
    match version.cmp(&expected) {
        std::cmp::Ordering::Less => Placement::Duplicate,
        std::cmp::Ordering::Equal => Placement::Next,
        std::cmp::Ordering::Greater => Placement::Ahead {
            missing_from: expected,
        },
    }
}

/// A domain event read from its envelope, or why it could not be read.
pub type Decoded = Result<DomainEvent, String>;

/// Reads the domain event of a recorded event (upcasting old schemas).
pub fn decode(event: &RecordedEvent) -> Decoded {
    catalogue::decode(event).map_err(|error| error.to_string())
}

/// What to do with an event that cannot be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnPoison {
    /// Skip it for good and remember why.
    Skip,
    /// Leave it unapplied: it will be delivered again.
    Defer,
}

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It changed the view.
    Applied,
    /// It was applied before.
    Duplicate,
    /// Its category is not one this view reads.
    Ignored,
    /// It cannot be applied and was skipped for good.
    Poisoned {
        /// Why.
        reason: String,
    },
    /// It was skipped as poison before (and is delivered again).
    PoisonedBefore {
        /// Why it was skipped.
        reason: String,
    },
    /// It cannot be applied now and was left for another delivery.
    Deferred {
        /// Why.
        reason: String,
    },
}

/// Why applying stopped; the transaction must be dropped and the batch retried.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The view's database failed.
    #[error(transparent)]
    View(#[from] ViewError),
    /// Missing events could not be fetched.
    #[error("cannot fetch missing events: {0}")]
    Source(#[from] SourceError),
    /// An event arrived ahead of its stream on a path that cannot fetch.
    #[error("{stream} version {version} arrived before version {missing_from}")]
    Ahead {
        /// The stream.
        stream: String,
        /// The version that arrived.
        version: u64,
        /// The first version not applied.
        missing_from: u64,
    },
    /// The store does not have versions the broker delivered a successor of.
    #[error("the store has no {stream} versions {from}..{to}")]
    MissingInStore {
        /// The stream.
        stream: String,
        /// First missing version.
        from: u64,
        /// The version delivered.
        to: u64,
    },
}

/// The most events fetched per store read when repairing a gap.
const GAP_READ: usize = 1000;

/// Applies events to one projection through a [`ViewTx`].
#[derive(Clone)]
pub struct Applier {
    projection: SharedProjection,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("projection", &self.projection.name())
            .finish()
    }
}

impl Applier {
    /// An applier for `projection`.
    pub fn new(projection: SharedProjection) -> Self {
        Self { projection }
    }

    /// The projection.
    pub fn projection(&self) -> &SharedProjection {
        &self.projection
    }

    /// Applies an event that must not be ahead of its stream (replay and
    /// catch-up read the log in order, so it never is there).
    pub fn apply_in_order(
        &self,
        tx: &mut ViewTx,
        event: &RecordedEvent,
        decoded: &Decoded,
        on_poison: OnPoison,
    ) -> Result<Outcome, ApplyError> {
        if !self.projection.wants(event.category()) {
            tx.note_position(event.position);
            return Ok(Outcome::Ignored);
        }
        if tx.swept().is_some_and(|swept| event.position <= swept) {
            // Applied before, as part of an in-order read of the log.
            if tx
                .position(&event.stream)?
                .is_none_or(|version| version < event.version)
            {
                tx.mark_known(&event.stream, event.version);
            }
            return Ok(match tx.poisoned(&event.stream, event.version)? {
                Some(reason) => Outcome::PoisonedBefore { reason },
                None => Outcome::Duplicate,
            });
        }
        match place(tx.position(&event.stream)?, event.version) {
            Placement::Duplicate => {
                tx.note_position(event.position);
                Ok(match tx.poisoned(&event.stream, event.version)? {
                    Some(reason) => Outcome::PoisonedBefore { reason },
                    None => Outcome::Duplicate,
                })
            }
            Placement::Ahead { missing_from } => Err(ApplyError::Ahead {
                stream: event.stream.clone(),
                version: event.version,
                missing_from,
            }),
            Placement::Next => self.apply_next(tx, event, decoded, on_poison),
        }
    }

    /// Applies an event of a rebuild, which reads the whole log in order
    /// into a fresh database: every event is the next of its stream.
    pub fn apply_replayed(
        &self,
        tx: &mut ViewTx,
        event: &RecordedEvent,
        decoded: &Decoded,
    ) -> Result<Outcome, ApplyError> {
        if !self.projection.wants(event.category()) {
            tx.note_position(event.position);
            return Ok(Outcome::Ignored);
        }
        self.apply_next(tx, event, decoded, OnPoison::Skip)
    }

    fn apply_next(
        &self,
        tx: &mut ViewTx,
        event: &RecordedEvent,
        decoded: &Decoded,
        on_poison: OnPoison,
    ) -> Result<Outcome, ApplyError> {
        let result = match decoded {
            Ok(domain_event) => self.projection.apply(tx, domain_event, event),
            Err(reason) => {
                return Ok(poison(
                    tx,
                    event,
                    format!("undecodable event: {reason}"),
                    on_poison,
                ))
            }
        };
        match result {
            Ok(()) => {
                tx.mark_applied(&event.stream, event.version, event.position);
                Ok(Outcome::Applied)
            }
            Err(error @ ProjectionError::Rejected { .. }) => {
                Ok(poison(tx, event, error.to_string(), on_poison))
            }
            Err(ProjectionError::View(error)) => Err(error.into()),
        }
    }

    /// Applies a delivered event: fetches and applies missing versions of
    /// its stream first (skipping poison among them), then the event.
    pub async fn deliver(
        &self,
        tx: &mut ViewTx,
        event: &RecordedEvent,
        decoded: &Decoded,
        on_poison: OnPoison,
        source: &dyn EventSource,
    ) -> Result<Outcome, ApplyError> {
        if self.projection.wants(event.category()) {
            self.repair_gap(tx, event, source).await?;
        }
        self.apply_in_order(tx, event, decoded, on_poison)
    }

    async fn repair_gap(
        &self,
        tx: &mut ViewTx,
        event: &RecordedEvent,
        source: &dyn EventSource,
    ) -> Result<(), ApplyError> {
        loop {
            if tx.swept().is_some_and(|swept| event.position <= swept) {
                return Ok(());
            }
            let Placement::Ahead { missing_from } =
                place(tx.position(&event.stream)?, event.version)
            else {
                return Ok(());
            };
            let wanted = usize::try_from(event.version - missing_from)
                .unwrap_or(usize::MAX)
                .min(GAP_READ);
            let missing = source
                .read_stream(&event.stream, missing_from, wanted)
                .await?;
            metrics::counter!("projector_gap_events_fetched_total", "projector" => self.projection.name().as_str())
                .increment(missing.len() as u64);
            let before = tx.position(&event.stream)?;
            for earlier in missing.iter().filter(|e| e.version < event.version) {
                let known = tx.swept().is_some_and(|swept| earlier.position <= swept);
                // Events at or below the swept position are not applied again: no need to decode.
                let decoded = if known {
                    Err(String::new())
                } else {
                    decode(earlier)
                };
                if let Outcome::Poisoned { reason } =
                    self.apply_in_order(tx, earlier, &decoded, OnPoison::Skip)?
                {
                    tracing::error!(
                        projector = %self.projection.name(),
                        stream = %earlier.stream,
                        version = earlier.version,
                        %reason,
                        "skipped a poison event while repairing a gap"
                    );
                }
            }
            let progressed = tx.position(&event.stream)? != before;
            if !progressed {
                return Err(ApplyError::MissingInStore {
                    stream: event.stream.clone(),
                    from: missing_from,
                    to: event.version,
                });
            }
        }
    }
}

fn poison(tx: &mut ViewTx, event: &RecordedEvent, reason: String, on_poison: OnPoison) -> Outcome {
    match on_poison {
        OnPoison::Skip => {
            tx.mark_poisoned(&event.stream, event.version, event.position, &reason);
            Outcome::Poisoned { reason }
        }
        OnPoison::Defer => Outcome::Deferred { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_version_is_applied_lower_ones_are_duplicates_higher_ones_are_gaps() {
        assert_eq!(place(None, 0), Placement::Next);
        assert_eq!(place(None, 2), Placement::Ahead { missing_from: 0 });
        assert_eq!(place(Some(4), 5), Placement::Next);
        assert_eq!(place(Some(4), 4), Placement::Duplicate);
        assert_eq!(place(Some(4), 0), Placement::Duplicate);
        assert_eq!(place(Some(4), 9), Placement::Ahead { missing_from: 5 });
        assert_eq!(place(Some(u64::MAX), 0), Placement::Duplicate);
    }
}
