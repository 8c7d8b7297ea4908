//! Load → decide → append with the expected version → retry on conflict, for
//! any [`Aggregate`].
//!
//! Each stream has a slot holding its folded state in memory. Commands for
//! one stream queue up on the slot; whoever takes the slot's lock decides
//! every queued command in order against the evolving state and appends all
//! their events in **one** append with the expected version. A hot aggregate
//! therefore costs one store round trip per batch, not per command, and
//! concurrent commands on it do not conflict with each other inside one
//! service instance. Another writer (a second instance) shows up as a wrong
//! expected version: the slot catches up from the store and decides the batch
//! again, a bounded number of times.
//!
//! The state in memory is trusted for appends only, because the expected
//! version checks it: a refusal or a no-op is answered only after the slot
//! has read the stream's tail in the same batch, so that a second instance's
//! writes are never ignored. A stream never seen before is first assumed
//! empty: if every command of the batch is accepted with events, they are
//! appended with `no_stream`, which the store refuses if the stream does
//! exist. Creating an aggregate thus costs one round trip.
//!
//! The processing of a batch runs in its own task, so a client that goes
//! away cannot cancel a batch that other clients' commands are part of.

use std::collections::HashMap;
use std::sync::Arc;

use domain::decider::DomainError;
use domain::envelope::{EventMetadata, NewEvent, RecordedEvent};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::aggregates::Aggregate;
use crate::event_log::{read_all_from, EventLog, Expected, LogError};
use crate::idempotency::{event_id, IdempotencyKey, Landed, RecentIds};
use crate::snapshots::{SnapshotRecord, SnapshotStore};
use crate::wire;

/// Why a command was refused by the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal.
    pub kind: RefusalKind,
    /// A stable code, e.g. `out_of_stock`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

/// The kinds of refusal, which map to HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// The aggregate does not exist, or is not the caller's (404).
    NotFound,
    /// A business rule refused the command (409).
    Rule,
    /// The caller may not issue this command (403).
    Forbidden,
}

impl Refusal {
    /// A refusal from the domain: codes ending in `not_found` are 404s, the
    /// rest are rule refusals.
    pub fn from_domain<E: DomainError>(error: &E) -> Self {
        let code = error.code();
        let kind = if code.ends_with("not_found") {
            RefusalKind::NotFound
        } else {
            RefusalKind::Rule
        };
        Self {
            kind,
            code: code.to_owned(),
            message: error.to_string(),
        }
    }

    /// A 404 refusal.
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::NotFound,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// A 403 refusal.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            kind: RefusalKind::Forbidden,
            code: "forbidden".to_owned(),
            message: message.into(),
        }
    }
}

/// Why a command did not complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The rules refused it; nothing was written.
    #[error("{}: {}", .0.code, .0.message)]
    Refused(Refusal),
    /// The store is unreachable; whether it was written is unknown (retry with
    /// the same idempotency key).
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// Other writers kept moving the stream; nothing was written.
    #[error("the stream kept changing; gave up after {attempts} attempts")]
    Contention {
        /// How many times it was decided.
        attempts: u32,
    },
    /// A fault on our side (undecodable history, a refused request).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What an accepted command achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The stream.
    pub stream: String,
    /// The stream's version after the command (`None`: still no stream).
    pub version: Option<u64>,
    /// The global position of the command's last event, or of the stream's
    /// last event for a no-op.
    pub position: Option<u64>,
    /// How many events the command appended (0 for a no-op or a retry).
    pub appended: usize,
    /// The events it appended, exactly as stored; for a retry, those the
    /// first try appended (read back from the store); empty for a no-op.
    pub events: Vec<RecordedEvent>,
}

/// The stream's state as a command sees it.
pub type Decision<A> = Box<
    dyn FnMut(
            &<A as domain::decider::Decider>::State,
        ) -> Result<Vec<<A as domain::decider::Decider>::Event>, Refusal>
        + Send,
>;

/// A command for the repository: how to decide it, and what to stamp on its events.
pub struct Request<A: Aggregate> {
    /// Decides against the current state (called again after a conflict).
    pub decide: Decision<A>,
    /// Event ids are derived from it when given.
    pub key: Option<IdempotencyKey>,
    /// Metadata for every event.
    pub metadata: EventMetadata,
    /// Called, if the command succeeds, with the stream's state after the
    /// batch it was part of (also when it was a retry answered from memory).
    pub observe: Option<Observer<A>>,
}

/// See [`Request::observe`].
pub type Observer<A> = Box<dyn FnOnce(&<A as domain::decider::Decider>::State) + Send>;

impl<A: Aggregate> Request<A> {
    /// A request that runs the domain's `decide` on `command`.
    pub fn command(
        command: A::Command,
        key: Option<IdempotencyKey>,
        metadata: EventMetadata,
    ) -> Self {
        Self {
            decide: Box::new(move |state| {
                A::decide(state, command.clone()).map_err(|e| Refusal::from_domain(&e))
            }),
            key,
            metadata,
            observe: None,
        }
    }
}

/// A state as loaded, for commands that read one aggregate to write another.
#[derive(Clone, Debug)]
pub struct Loaded<S> {
    /// The folded state.
    pub state: S,
    /// The stream's version (`None`: no stream).
    pub version: Option<u64>,
}

/// Tuning of a repository.
#[derive(Clone, Copy, Debug)]
pub struct RepositoryOptions {
    /// Snapshot every this many events (0: never).
    pub snapshot_every: u64,
    /// How many times a batch is decided again after a conflict.
    pub conflict_retries: u32,
    /// How many streams are kept in memory.
    pub cache_capacity: usize,
}

impl Default for RepositoryOptions {
    fn default() -> Self {
        Self {
            snapshot_every: 200,
            conflict_retries: 20,
            cache_capacity: 100_000,
        }
    }
}

/// Loads, decides and appends for one aggregate type.
pub struct Repository<A: Aggregate> {
    log: Arc<dyn EventLog>,
    snapshots: SnapshotStore,
    options: RepositoryOptions,
    slots: parking_lot::Mutex<HashMap<String, Arc<Slot<A>>>>,
}

struct Slot<A: Aggregate> {
    queue: parking_lot::Mutex<Vec<Pending<A>>>,
    entry: tokio::sync::Mutex<Entry<A>>,
}

struct Pending<A: Aggregate> {
    request: Request<A>,
    reply: oneshot::Sender<Result<Outcome, CommandError>>,
}

/// How much the slot knows about its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Knowledge {
    /// A fresh slot: nothing tried yet; a command may assume no stream.
    Unknown,
    /// Must be loaded: snapshot, then the stream.
    Unloaded,
    /// Never loaded, and the stream is assumed not to exist (no snapshot).
    AssumedEmpty,
    /// Loaded, but the store may hold more (after a conflict or an error).
    Behind,
    /// Up to date as far as this instance knows.
    Current,
}

struct Entry<A: Aggregate> {
    state: A::State,
    version: Option<u64>,
    last_position: Option<u64>,
    recent: RecentIds,
    since_snapshot: u64,
    knowledge: Knowledge,
}

impl<A: Aggregate> Entry<A> {
    fn new() -> Self {
        Self {
            state: A::State::default(),
            version: None,
            last_position: None,
            recent: RecentIds::default(),
            since_snapshot: 0,
            knowledge: Knowledge::Unknown,
        }
    }

    fn forget(&mut self) {
        *self = Self::new();
    }
}

/// What deciding one pending command came to, before the append.
enum Planned {
    /// Appends `count` events starting at index `first` of the batch's events.
    Append { first: usize, count: usize },
    /// No events; the stream was at `version` when it was decided.
    NoOp { events_before: usize },
    /// A retry of a command already stored: where its first and last events landed.
    Done(Landed, Landed),
    /// A retry of an earlier command of the same batch.
    SameAs(usize),
    /// Refused.
    Refused(Refusal),
}

impl<A: Aggregate> Repository<A> {
    /// A repository over `log`, keeping snapshots in `snapshots`.
    pub fn new(
        log: Arc<dyn EventLog>,
        snapshots: SnapshotStore,
        options: RepositoryOptions,
    ) -> Self {
        Self {
            log,
            snapshots,
            options,
            slots: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Decides `request` against `stream` and appends its events.
    pub async fn execute(
        self: &Arc<Self>,
        stream: String,
        request: Request<A>,
    ) -> Result<Outcome, CommandError> {
        let slot = self.slot(&stream);
        let (reply, answer) = oneshot::channel();
        slot.queue.lock().push(Pending { request, reply });
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut entry = slot.entry.lock().await;
            let batch = std::mem::take(&mut *slot.queue.lock());
            if !batch.is_empty() {
                this.process(&stream, &mut entry, batch).await;
            }
        });
        answer
            .await
            .unwrap_or_else(|_| Err(CommandError::Internal("the command was dropped".into())))
    }

    /// The current state of `stream`, caught up with the store.
    pub async fn load(self: &Arc<Self>, stream: &str) -> Result<Loaded<A::State>, CommandError> {
        let slot = self.slot(stream);
        let mut entry = slot.entry.lock().await;
        entry.knowledge = match entry.knowledge {
            Knowledge::Unknown | Knowledge::AssumedEmpty | Knowledge::Unloaded => {
                Knowledge::Unloaded
            }
            Knowledge::Behind | Knowledge::Current => Knowledge::Behind,
        };
        self.catch_up(stream, &mut entry).await?;
        Ok(Loaded {
            state: entry.state.clone(),
            version: entry.version,
        })
    }

    fn slot(&self, stream: &str) -> Arc<Slot<A>> {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(stream) {
            return Arc::clone(slot);
        }
        if slots.len() >= self.options.cache_capacity.max(1) {
            // Evict idle slots (nobody holds them) until a tenth is free.
            let target = self.options.cache_capacity.max(1) * 9 / 10;
            let idle: Vec<String> = slots
                .iter()
                .filter(|(_, slot)| Arc::strong_count(slot) == 1)
                .map(|(name, _)| name.clone())
                .take(slots.len().saturating_sub(target))
                .collect();
            for name in idle {
                slots.remove(&name);
            }
        }
        let slot = Arc::new(Slot {
            queue: parking_lot::Mutex::new(Vec::new()),
            entry: tokio::sync::Mutex::new(Entry::new()),
        });
        slots.insert(stream.to_owned(), Arc::clone(&slot));
        slot
    }

    /// Brings the entry up to date (snapshot, then the rest of the stream);
    /// answers whether it read the store.
    async fn catch_up(&self, stream: &str, entry: &mut Entry<A>) -> Result<bool, CommandError> {
        match entry.knowledge {
            Knowledge::Current | Knowledge::AssumedEmpty => return Ok(false),
            Knowledge::Unknown | Knowledge::Unloaded => {
                let optimistic = entry.knowledge == Knowledge::Unknown;
                entry.forget();
                let restored =
                    self.snapshots
                        .get(stream, A::SNAPSHOT_SCHEMA)
                        .and_then(|snapshot| {
                            let state = A::restore(snapshot.state)?;
                            Some((
                                snapshot.version,
                                snapshot.last_position,
                                snapshot.recent,
                                state,
                            ))
                        });
                match restored {
                    Some((version, last_position, recent, state)) => {
                        entry.state = state;
                        entry.version = Some(version);
                        entry.last_position = Some(last_position);
                        for (id, landed) in recent {
                            entry.recent.insert(id, landed);
                        }
                    }
                    None if optimistic => {
                        // No snapshot: most likely a new aggregate. Commands
                        // that create it are appended with `no_stream`, which
                        // verifies the guess.
                        entry.knowledge = Knowledge::AssumedEmpty;
                        return Ok(false);
                    }
                    None => {}
                }
            }
            Knowledge::Behind => {}
        }
        let from = entry.version.map_or(0, |v| v + 1);
        let records = read_all_from(self.log.as_ref(), stream, from)
            .await
            .map_err(|e| self.store_failure(e))?;
        self.fold(entry, &records)?;
        entry.knowledge = Knowledge::Current;
        Ok(true)
    }

    fn fold(&self, entry: &mut Entry<A>, records: &[RecordedEvent]) -> Result<(), CommandError> {
        for record in records {
            if entry.version.is_some_and(|v| record.version <= v) {
                continue;
            }
            let event =
                wire::decode::<A>(record).map_err(|e| CommandError::Internal(e.to_string()))?;
            let state = std::mem::take(&mut entry.state);
            entry.state = A::evolve(state, &event);
            entry.version = Some(record.version);
            entry.last_position = Some(record.position);
            entry.recent.insert(
                record.event_id,
                Landed {
                    version: record.version,
                    position: record.position,
                },
            );
            entry.since_snapshot += 1;
        }
        Ok(())
    }

    fn store_failure(&self, error: LogError) -> CommandError {
        match error {
            LogError::Unavailable { reason } => CommandError::Unavailable(reason),
            other => CommandError::Internal(other.to_string()),
        }
    }

    async fn process(&self, stream: &str, entry: &mut Entry<A>, mut batch: Vec<Pending<A>>) {
        metrics::histogram!("command_batch_size", "category" => A::STREAM_CATEGORY)
            .record(batch.len() as f64);
        let mut conflicts = 0u32;
        let mut reloaded_for_reuse = false;
        loop {
            let read_now = match self.catch_up(stream, entry).await {
                Ok(read) => read,
                Err(error) => {
                    entry.forget();
                    return reply_all(batch, Err(error));
                }
            };
            let assumed = entry.knowledge == Knowledge::AssumedEmpty;
            let (plans, events, state) = match self.plan(stream, entry, &mut batch) {
                Ok(planned) => planned,
                Err(error) => return reply_all(batch, Err(error)),
            };
            let unverified = plans
                .iter()
                .any(|plan| matches!(plan, Planned::NoOp { .. } | Planned::Refused(_)));
            if unverified && !read_now {
                // An append is checked by its expected version; a refusal or
                // a no-op is only trusted against the stream as it is now,
                // which another instance may have moved.
                entry.knowledge = if assumed {
                    Knowledge::Unloaded
                } else {
                    Knowledge::Behind
                };
                continue;
            }
            let repeated = match self.repeated_events(stream, &plans).await {
                Ok(repeated) => repeated,
                Err(error) => return reply_all(batch, Err(error)),
            };
            if events.is_empty() {
                let answers = self.answers(stream, entry, &plans, None, &[], &repeated);
                return reply_each(batch, answers, &entry.state);
            }
            let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
            let count = events.len() as u64;
            let sent = events.clone();
            match self
                .log
                .append(stream, Expected::from_version(entry.version), events)
                .await
            {
                Ok(appended) => {
                    let first_version = entry.version.map_or(0, |v| v + 1);
                    if appended.last_version != first_version + count - 1 {
                        // The store answered with an earlier append of the same
                        // ids: what we decided is stale. Catch up and decide
                        // again; the retry is then found by its ids.
                        entry.knowledge = Knowledge::Behind;
                        if entry.version.is_none() {
                            entry.knowledge = Knowledge::Unloaded;
                        }
                        conflicts += 1;
                        if conflicts > self.options.conflict_retries {
                            return reply_all(
                                batch,
                                Err(CommandError::Contention {
                                    attempts: conflicts,
                                }),
                            );
                        }
                        continue;
                    }
                    let recorded = match appended.recorded_at {
                        Some(recorded_at) if !appended.repeat => {
                            as_recorded(stream, first_version, &appended, recorded_at, sent)
                        }
                        // Stored before: the answer carries them as stored then.
                        _ => match self.read_back(stream, first_version, count).await {
                            Ok(recorded) => recorded,
                            Err(error) => return reply_all(batch, Err(error)),
                        },
                    };
                    let answers = self.answers(
                        stream,
                        entry,
                        &plans,
                        Some(appended.first_position),
                        &recorded,
                        &repeated,
                    );
                    for (index, id) in ids.iter().enumerate() {
                        entry.recent.insert(
                            *id,
                            Landed {
                                version: first_version + index as u64,
                                position: appended.first_position + index as u64,
                            },
                        );
                    }
                    // The store answers a re-append of ids it has with the
                    // first answer, without checking the expected version,
                    // and says so: a keyed append to a stream assumed new
                    // may be a repeat of the stream's first events. The
                    // state is right either way (the same events at the
                    // same versions), but there may be more after them:
                    // after a repeat, catch up before the next decision.
                    entry.state = state;
                    entry.version = Some(appended.last_version);
                    entry.last_position = Some(appended.last_position);
                    entry.knowledge = if appended.repeat {
                        Knowledge::Behind
                    } else {
                        Knowledge::Current
                    };
                    entry.since_snapshot += count;
                    self.maybe_snapshot(stream, entry);
                    return reply_each(batch, answers, &entry.state);
                }
                Err(LogError::WrongExpectedVersion { .. }) => {
                    conflicts += 1;
                    metrics::counter!("command_conflicts_total", "category" => A::STREAM_CATEGORY)
                        .increment(1);
                    if conflicts > self.options.conflict_retries {
                        entry.knowledge = Knowledge::Behind;
                        return reply_all(
                            batch,
                            Err(CommandError::Contention {
                                attempts: conflicts,
                            }),
                        );
                    }
                    entry.knowledge = if entry.version.is_none() {
                        Knowledge::Unloaded
                    } else {
                        Knowledge::Behind
                    };
                }
                Err(LogError::EventIdReused { reason }) => {
                    // A keyed command whose first try is stored but no longer
                    // remembered (or stored with other content): reload, and
                    // the retry is found by its ids; if not, the key was
                    // reused for another command.
                    if reloaded_for_reuse {
                        entry.knowledge = Knowledge::Behind;
                        return reply_all(
                            batch,
                            Err(CommandError::Refused(Refusal {
                                kind: RefusalKind::Rule,
                                code: "idempotency_key_reused".into(),
                                message: format!(
                                    "this Idempotency-Key was used for another command ({reason})"
                                ),
                            })),
                        );
                    }
                    reloaded_for_reuse = true;
                    entry.knowledge = Knowledge::Unloaded;
                }
                Err(error) => {
                    // Whether it was written is unknown: forget what we know.
                    entry.forget();
                    return reply_all(batch, Err(self.store_failure(error)));
                }
            }
        }
    }

    /// Decides every pending command in order against the evolving state.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
        stream: &str,
        entry: &Entry<A>,
        batch: &mut [Pending<A>],
    ) -> Result<(Vec<Planned>, Vec<NewEvent>, A::State), CommandError> {
        let mut state = entry.state.clone();
        let mut events: Vec<NewEvent> = Vec::new();
        let mut plans = Vec::with_capacity(batch.len());
        let mut keys: HashMap<IdempotencyKey, usize> = HashMap::new();
        for (index, pending) in batch.iter_mut().enumerate() {
            let request = &mut pending.request;
            if let Some(key) = &request.key {
                if let Some(earlier) = keys.get(key) {
                    plans.push(Planned::SameAs(*earlier));
                    continue;
                }
                keys.insert(key.clone(), index);
                if let Some((first, last)) = entry.recent.command(key, stream) {
                    plans.push(Planned::Done(first, last));
                    continue;
                }
            }
            match (request.decide)(&state) {
                Err(refusal) => plans.push(Planned::Refused(refusal)),
                Ok(decided) if decided.is_empty() => plans.push(Planned::NoOp {
                    events_before: events.len(),
                }),
                Ok(decided) => {
                    let first = events.len();
                    let count = decided.len();
                    let metadata = request.metadata.to_json();
                    for (n, event) in decided.into_iter().enumerate() {
                        state = A::evolve(state, &event);
                        let id = match &request.key {
                            Some(key) => event_id(key, stream, n),
                            // Time-ordered, so the store's id index grows at its end.
                            None => Uuid::now_v7(),
                        };
                        let record = wire::encode::<A>(event, id, &metadata)
                            .map_err(|e| CommandError::Internal(e.to_string()))?;
                        events.push(record);
                    }
                    plans.push(Planned::Append { first, count });
                }
            }
        }
        Ok((plans, events, state))
    }

    /// The events of each retried command of the batch (by index), read
    /// back from the store: a retry is answered with the events the first
    /// try appended, as a first answer is (the saga follows them).
    async fn repeated_events(
        &self,
        stream: &str,
        plans: &[Planned],
    ) -> Result<HashMap<usize, Vec<RecordedEvent>>, CommandError> {
        let mut repeated = HashMap::new();
        for (index, plan) in plans.iter().enumerate() {
            if let Planned::Done(first, last) = plan {
                let count = last.version.saturating_sub(first.version) + 1;
                repeated.insert(index, self.read_back(stream, first.version, count).await?);
            }
        }
        Ok(repeated)
    }

    /// `count` events of `stream` from `first_version`, as stored.
    async fn read_back(
        &self,
        stream: &str,
        first_version: u64,
        count: u64,
    ) -> Result<Vec<RecordedEvent>, CommandError> {
        let wanted = usize::try_from(count).unwrap_or(usize::MAX);
        let mut events = self
            .log
            .read_stream(stream, first_version, wanted)
            .await
            .map_err(|e| self.store_failure(e))?;
        events.retain(|event| event.version < first_version + count);
        if events.len() as u64 != count {
            return Err(CommandError::Internal(format!(
                "{stream} lacks versions {first_version}..{} of a stored command",
                first_version + count
            )));
        }
        Ok(events)
    }

    /// The answer of each planned command once the batch's events are stored
    /// from `first_position` on (or nothing was appended); `recorded` holds
    /// the batch's events as stored, when known.
    fn answers(
        &self,
        stream: &str,
        entry: &Entry<A>,
        plans: &[Planned],
        first_position: Option<u64>,
        recorded: &[RecordedEvent],
        repeated: &HashMap<usize, Vec<RecordedEvent>>,
    ) -> Vec<Result<Outcome, CommandError>> {
        let base_version = entry.version;
        let at = |events_before: usize| -> (Option<u64>, Option<u64>) {
            match (events_before, first_position) {
                (0, _) | (_, None) => (base_version, entry.last_position),
                (n, Some(first)) => (
                    Some(base_version.map_or(0, |v| v + 1) + n as u64 - 1),
                    Some(first + n as u64 - 1),
                ),
            }
        };
        let mut answers: Vec<Result<Outcome, CommandError>> = Vec::with_capacity(plans.len());
        for (index, plan) in plans.iter().enumerate() {
            let answer = match plan {
                Planned::Append { first, count } => {
                    let (version, position) = at(first + count);
                    Ok(Outcome {
                        stream: stream.to_owned(),
                        version,
                        position,
                        appended: *count,
                        events: recorded
                            .get(*first..first + count)
                            .map(<[RecordedEvent]>::to_vec)
                            .unwrap_or_default(),
                    })
                }
                Planned::NoOp { events_before } => {
                    let (version, position) = at(*events_before);
                    Ok(Outcome {
                        stream: stream.to_owned(),
                        version,
                        position,
                        appended: 0,
                        events: Vec::new(),
                    })
                }
                Planned::Done(_, last) => Ok(Outcome {
                    stream: stream.to_owned(),
                    version: Some(last.version),
                    position: Some(last.position),
                    appended: 0,
                    events: repeated.get(&index).cloned().unwrap_or_default(),
                }),
                Planned::SameAs(earlier) => answers[*earlier].clone().map(|mut outcome| {
                    outcome.appended = 0;
                    outcome
                }),
                Planned::Refused(refusal) => Err(CommandError::Refused(refusal.clone())),
            };
            answers.push(answer);
        }
        answers
    }

    fn maybe_snapshot(&self, stream: &str, entry: &mut Entry<A>) {
        let every = self.options.snapshot_every;
        if every == 0 || entry.since_snapshot < every || !self.snapshots.is_enabled() {
            return;
        }
        let (Some(version), Some(last_position)) = (entry.version, entry.last_position) else {
            return;
        };
        let Some(state) = A::snapshot(&entry.state) else {
            return;
        };
        self.snapshots.put(
            stream,
            &SnapshotRecord {
                schema: A::SNAPSHOT_SCHEMA,
                version,
                last_position,
                state,
                recent: entry.recent.entries(),
            },
        );
        entry.since_snapshot = 0;
    }

    /// Writes buffered snapshots (on shutdown).
    pub fn flush_snapshots(&self) {
        self.snapshots.flush();
    }
}

/// The events of one append as the store recorded them: `first_version`
/// and `appended.first_position` on, all at `recorded_at`.
fn as_recorded(
    stream: &str,
    first_version: u64,
    appended: &crate::event_log::Appended,
    recorded_at: chrono::DateTime<chrono::Utc>,
    events: Vec<NewEvent>,
) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            event.into_recorded(
                stream.to_owned(),
                first_version + index as u64,
                appended.first_position + index as u64,
                recorded_at,
            )
        })
        .collect()
}

fn reply_all<A: Aggregate>(batch: Vec<Pending<A>>, answer: Result<Outcome, CommandError>) {
    for pending in batch {
        let _ = pending.reply.send(answer.clone());
    }
}

fn reply_each<A: Aggregate>(
    batch: Vec<Pending<A>>,
    answers: Vec<Result<Outcome, CommandError>>,
    state: &A::State,
) {
    for (pending, answer) in batch.into_iter().zip(answers) {
        if let (Ok(_), Some(observe)) = (&answer, pending.request.observe) {
            observe(state);
        }
        // The caller may have gone away; its command stands all the same.
        let _ = pending.reply.send(answer);
    }
}
