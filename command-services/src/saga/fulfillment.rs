//! The saga's own aggregate, `fulfillment-<order>`, for the repository: the
//! domain's saga state plus the saga events recorded for each trigger, so
//! that a redelivered trigger re-sends exactly the commands decided for it.

use std::collections::BTreeMap;

use domain::catalogue::DomainEvent;
use domain::decider::{Decider, DomainError};
use domain::saga;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregates::Aggregate;

/// The fulfillment aggregate, driven by triggers.
#[derive(Clone, Copy, Debug)]
pub struct Fulfillment;

/// What the saga knows of one order, and what it decided for each trigger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentState {
    /// The domain's saga state.
    pub saga: saga::State,
    /// The saga events recorded for each trigger (event id), in order.
    pub decisions: BTreeMap<Uuid, Vec<saga::Event>>,
}

/// The saga decides for every trigger; it never refuses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the saga does not refuse triggers")]
pub enum Never {}

impl DomainError for Never {
    fn code(&self) -> &'static str {
        match *self {}
    }
}

impl Decider for Fulfillment {
    const STREAM_CATEGORY: &'static str = saga::STREAM_CATEGORY;
    type Command = saga::Trigger;
    type Event = saga::Event;
    type State = FulfillmentState;
    type Error = Never;

    fn decide(state: &FulfillmentState, trigger: saga::Trigger) -> Result<Vec<saga::Event>, Never> {
        Ok(saga::decide(&state.saga, &trigger))
    }

    fn evolve(mut state: FulfillmentState, event: &saga::Event) -> FulfillmentState {
        state
            .decisions
            .entry(event.trigger())
            .or_default()
            .push(event.clone());
        state.saga = saga::evolve(state.saga, event);
        state
    }

    fn wrap(event: saga::Event) -> DomainEvent {
        DomainEvent::Fulfillment(event)
    }

    fn unwrap(event: DomainEvent) -> Option<saga::Event> {
        match event {
            DomainEvent::Fulfillment(event) => Some(event),
            _ => None,
        }
    }
}

impl Aggregate for Fulfillment {
    const SNAPSHOT_SCHEMA: u32 = 1;

    fn snapshot(state: &FulfillmentState) -> Option<serde_json::Value> {
        serde_json::to_value(state).ok()
    }

    fn restore(snapshot: serde_json::Value) -> Option<FulfillmentState> {
        serde_json::from_value(snapshot).ok()
    }
}
