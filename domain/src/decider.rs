//! The decider shape every aggregate module follows, as a trait.
//!
//! Each aggregate module (`product`, `order`, …) has free functions `decide`
//! and `evolve`; its marker type (`product::Product`, …) implements
//! [`Decider`] so that a command service can load, decide and append for any
//! aggregate with one generic function.

use crate::catalogue::DomainEvent;

/// A business-rule error with a stable machine-readable code.
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    /// A stable code such as `out_of_stock` or `already_shipped`.
    fn code(&self) -> &'static str;
}

/// An aggregate as a decider: pure `decide` and `evolve` over its own types.
pub trait Decider {
    /// The stream category, e.g. `order`; streams are `<category>-<id>`.
    const STREAM_CATEGORY: &'static str;
    /// What can be asked of the aggregate.
    type Command;
    /// What it records.
    type Event: Clone;
    /// What it knows; `Default` is "not yet created".
    type State: Default + Clone;
    /// Why a command is refused.
    type Error: DomainError;

    /// Decides what happens for a command, given the current state.
    fn decide(state: &Self::State, command: Self::Command)
        -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies one event to the state.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Wraps one of its events into the catalogue's event.
    fn wrap(event: Self::Event) -> DomainEvent;

    /// Picks its own events out of the catalogue's event.
    fn unwrap(event: DomainEvent) -> Option<Self::Event>;

    /// Folds a history into a state.
    fn fold<'a, I>(events: I) -> Self::State
    where
        I: IntoIterator<Item = &'a Self::Event>,
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), |state, event| {
                Self::evolve(state, event)
            })
    }
}

/// Implements [`Decider`] for an aggregate module's marker type from its free functions.
macro_rules! impl_decider {
    ($marker:ident, $variant:ident) => {
        impl $crate::decider::Decider for $marker {
            const STREAM_CATEGORY: &'static str = STREAM_CATEGORY;
            type Command = Command;
            type Event = Event;
            type State = State;
            type Error = Error;

            fn decide(state: &State, command: Command) -> Result<Vec<Event>, Error> {
                decide(state, command)
            }

            fn evolve(state: State, event: &Event) -> State {
                evolve(state, event)
            }

            fn wrap(event: Event) -> $crate::catalogue::DomainEvent {
                $crate::catalogue::DomainEvent::$variant(event)
            }

            fn unwrap(event: $crate::catalogue::DomainEvent) -> Option<Event> {
                match event {
                    $crate::catalogue::DomainEvent::$variant(event) => Some(event),
                    _ => None,
                }
            }
        }

        impl $crate::decider::DomainError for Error {
            fn code(&self) -> &'static str {
                Error::code(self)
            }
        }
    };
}
pub(crate) use impl_decider;

#[cfg(test)]
pub(crate) mod given {
    //! The given / when / then helper every aggregate's tests use.

    use super::Decider;
    use std::fmt::Debug;

    /// A history to decide against.
    pub(crate) struct Given<D: Decider> {
        state: D::State,
    }

    /// The outcome of a command.
    pub(crate) struct When<D: Decider> {
        outcome: Result<Vec<D::Event>, D::Error>,
    }

    /// Starts a test from a history of events.
    pub(crate) fn given<D: Decider>(events: Vec<D::Event>) -> Given<D> {
        Given {
            state: D::fold(&events),
        }
    }

    impl<D: Decider> Given<D> {
        /// Decides a command against the history.
        pub(crate) fn when(self, command: D::Command) -> When<D> {
            When {
                outcome: D::decide(&self.state, command),
            }
        }
    }

    impl<D: Decider> When<D>
    where
        D::Event: Debug + PartialEq,
        D::Error: Debug + PartialEq,
    {
        /// Asserts the command was accepted with exactly these events.
        #[track_caller]
        pub(crate) fn then(self, expected: Vec<D::Event>) {
            match self.outcome {
                Ok(events) => assert_eq!(events, expected),
                Err(error) => panic!("expected events {expected:?}, got error {error:?}"),
            }
        }

        /// Asserts the command was refused with this error.
        #[track_caller]
        pub(crate) fn then_error(self, expected: D::Error) {
            match self.outcome {
                Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
                Err(error) => assert_eq!(error, expected),
            }
        }
    }
}
