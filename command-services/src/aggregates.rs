//! What the repository needs of an aggregate beyond the domain's
//! [`Decider`]: thread-safety bounds and how its state is snapshotted.

use domain::decider::Decider;
use serde::{de::DeserializeOwned, Serialize};

/// An aggregate a command service writes.
pub trait Aggregate:
    Decider<
        Command: Clone + Send + 'static,
        Event: Send + Sync + 'static,
        State: Send + Sync + 'static,
    > + Send
    + Sync
    + 'static
{
    /// The schema version of snapshots of [`Decider::State`]; bump it when
    /// the state's shape changes, and older snapshots are ignored.
    const SNAPSHOT_SCHEMA: u32;

    /// The state as a snapshot.
    fn snapshot(state: &Self::State) -> Option<serde_json::Value>;

    /// The state from a snapshot; `None` if it does not fit.
    fn restore(snapshot: serde_json::Value) -> Option<Self::State>;
}

/// Snapshots through the state's serde form.
fn to_json<T: Serialize>(state: &T) -> Option<serde_json::Value> {
    serde_json::to_value(state).ok()
}

fn from_json<T: DeserializeOwned>(snapshot: serde_json::Value) -> Option<T> {
    serde_json::from_value(snapshot).ok()
}

macro_rules! aggregate {
    ($marker:ty, schema = $schema:expr) => {
        impl Aggregate for $marker {
            const SNAPSHOT_SCHEMA: u32 = $schema;

            fn snapshot(state: &Self::State) -> Option<serde_json::Value> {
                to_json(state)
            }

            fn restore(snapshot: serde_json::Value) -> Option<Self::State> {
                from_json(snapshot)
            }
        }
    };
}

aggregate!(domain::product::Product, schema = 1);
aggregate!(domain::customer::Customer, schema = 1);
aggregate!(domain::cart::Cart, schema = 1);
aggregate!(domain::wishlist::Wishlist, schema = 1);
aggregate!(domain::order::Order, schema = 1);
aggregate!(domain::payment::Payment, schema = 1);
aggregate!(domain::stock::Stock, schema = 1);
aggregate!(domain::shipment::Shipment, schema = 1);
