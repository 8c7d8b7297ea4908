//! `wishlists`: each customer's wishlist.

use domain::{catalogue::DomainEvent, envelope::RecordedEvent, wishlist};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, Home, ViewTx},
};

/// The `wishlists` view, by customer id.
pub const WISHLISTS: Collection<WishlistDoc> = Collection::new("wishlists");

/// A wishlist as served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WishlistDoc {
    /// Whose wishlist.
    pub customer_id: String,
    /// The products, in the order they were added.
    pub skus: Vec<String>,
}

/// The wishlists projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wishlists;

impl Projection for Wishlists {
    fn name(&self) -> ProjectorName {
        ProjectorName::Wishlists
    }

    fn categories(&self) -> &'static [&'static str] {
        &[wishlist::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["wishlists"]
    }

    fn layout(&self) -> u64 {
        // 2: documents hold their stream's position (see `homes`).
        2
    }

    fn homes(&self) -> Vec<Home> {
        vec![Home::new(wishlist::STREAM_CATEGORY, WISHLISTS.name())]
    }

    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        _recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let DomainEvent::Wishlist(event) = event else {
            return Ok(());
        };
        let customer_id = event.customer_id().to_string();
        let doc = tx.upsert_with(WISHLISTS, &customer_id.clone(), || WishlistDoc {
            customer_id,
            skus: Vec::new(),
        })?;
        match event {
            wishlist::Event::WishlistItemAdded { sku, .. } => {
                if !doc.skus.iter().any(|s| s == sku.as_str()) {
                    doc.skus.push(sku.to_string());
                }
            }
            wishlist::Event::WishlistItemRemoved { sku, .. } => {
                doc.skus.retain(|s| s != sku.as_str());
            }
        }
        Ok(())
    }
}
