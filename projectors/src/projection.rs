//! What a read model is: a [`Projection`] folds domain events into documents.

use std::sync::Arc;

use domain::{catalogue::DomainEvent, envelope::RecordedEvent};

use crate::{
    name::ProjectorName,
    viewdb::{Home, ViewDb, ViewError, ViewTx},
};

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The view's database failed; the batch is not committed and is tried again.
    #[error(transparent)]
    View(#[from] ViewError),
    /// The event cannot be applied to this view (a poison event): it is
    /// skipped and, when it came from the broker, dead-lettered.
    ///
    /// A projection returns this before it changes anything.
    #[error("{event_type} cannot be applied: {reason}")]
    Rejected {
        /// The event's type.
        event_type: String,
        /// Why.
        reason: String,
    },
}

/// A document put together at read time (from several stored ones) as
/// served JSON; `view` names it in an error.
pub fn assembled<T: serde::Serialize>(
    view: &'static str,
    key: &str,
    document: Option<T>,
) -> Result<Option<serde_json::Value>, ViewError> {
    document
        .map(|document| {
            serde_json::to_value(document).map_err(|source| ViewError::Encode {
                collection: view,
                key: key.to_owned(),
                source,
            })
        })
        .transpose()
}

/// A read model: which events it needs and how it folds them.
///
/// Views combine streams (the catalog joins `product-*` and `stock-*`), and
/// the broker only keeps each stream in order, so `apply` must give the same
/// documents whatever the interleaving of different streams: documents that
/// several streams touch keep sorted lists and sums, never arrival order.
pub trait Projection: Send + Sync + 'static {
    /// Its name.
    fn name(&self) -> ProjectorName;

    /// The stream categories it consumes (its queue is bound to `<category>.*`).
    fn categories(&self) -> &'static [&'static str];

    /// The views served by `GET /views/{view}/{key}`.
    fn views(&self) -> &'static [&'static str];

    /// Applies one event, the next of its stream.
    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError>;

    /// A served document as JSON, or `None`. By default the stored document
    /// of the collection named like the view.
    fn document(
        &self,
        db: &ViewDb,
        view: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, ViewError> {
        db.get_raw(view, key)?
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|source| ViewError::Corrupt {
                    collection: "view",
                    key: key.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// The layout version of its documents: raised whenever a new version
    /// of the code stores documents in a way the old one did not (other
    /// collections, keys or shapes). A projector that finds a database of
    /// another layout rebuilds it from the event store.
    fn layout(&self) -> u64 {
        1
    }

    /// The collections whose documents hold their stream's position (see
    /// [`crate::viewdb`]): a new database records them, and a change to them
    /// is a change of [`Projection::layout`]. Each must map a stream to a
    /// document no other stream's position goes to: one category, one
    /// collection keyed by the stream's id.
    fn homes(&self) -> Vec<Home> {
        Vec::new()
    }

    /// Whether it consumes streams of `category`.
    fn wants(&self, category: &str) -> bool {
        self.categories().contains(&category)
    }
}

/// A projection shared between the consumer, the HTTP API and replay.
pub type SharedProjection = Arc<dyn Projection>;

/// The projection of a read model.
pub fn projection_for(name: ProjectorName) -> SharedProjection {
    use crate::views;
    match name {
        ProjectorName::Orders => Arc::new(views::orders::Orders),
        ProjectorName::Customers => Arc::new(views::customers::Customers),
        ProjectorName::Catalog => Arc::new(views::catalog::Catalog),
        ProjectorName::Inventory => Arc::new(views::inventory::Inventory),
        ProjectorName::Search => Arc::new(views::search::Search),
        ProjectorName::Recommendations => Arc::new(views::recommendations::Recommendations),
        ProjectorName::Notifications => Arc::new(views::notifications::Notifications),
        ProjectorName::Sales => Arc::new(views::sales::Sales),
        ProjectorName::Carts => Arc::new(views::carts::Carts),
        ProjectorName::Wishlists => Arc::new(views::wishlists::Wishlists),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_home_is_a_category_the_projection_reads_in_a_collection_of_its_own() {
        for name in ProjectorName::ALL {
            let projection = projection_for(name);
            let homes = projection.homes();
            for home in &homes {
                assert!(projection.wants(&home.category), "{name}: {home:?}");
                let sharing = homes
                    .iter()
                    .filter(|other| other.collection == home.collection)
                    .count();
                assert_eq!(sharing, 1, "{name}: two categories in {}", home.collection);
            }
            if matches!(name, ProjectorName::Orders) {
                assert_eq!(homes, vec![Home::new("order", "orders")]);
            }
        }
    }

    #[test]
    fn no_projection_reads_a_category_the_relay_does_not_publish() {
        for name in ProjectorName::ALL {
            let projection = projection_for(name);
            for category in domain::catalogue::UNPUBLISHED_CATEGORIES {
                assert!(
                    !projection.wants(category),
                    "{name} reads {category}, which only the store holds (docs/adr/0012)"
                );
            }
            for category in projection.categories() {
                assert!(
                    domain::catalogue::types_of(category).is_some(),
                    "{category}"
                );
            }
        }
    }
}
