//! The consumer runtime every projector shares.
//!
//! A [`Projector`] owns one read model's database and applies events to it
//! from two places: the store (catch-up on start, and a sweep whenever the
//! queue is idle) and its RabbitMQ queue. Both go through the
//! [`Applier`], so each event has one effect however often and in whatever
//! order it arrives.
//!
//! One batch of deliveries becomes one sled batch (documents, positions,
//! bookkeeping), flushed, and only then are the deliveries acknowledged, with
//! one `multiple` ack. A batch is readable as soon as it is written; one
//! flush runs at a time in the background, and the batches written while it
//! runs wait for the next one, so a slow `fsync` does not hold back the
//! next batch's apply (only its acknowledgement). A finished flush is
//! settled (acknowledged) while the next batch is gathered or applied: the
//! acknowledgements are what lets the broker send more. Poison messages are
//! handed back for another attempt until their last one, then dead-lettered
//! with the reason while the batch goes on. Start-up order matters for a
//! new projector: its queue is declared first, so that everything published
//! from then on waits in it; then history is read from the store; then the
//! queue is consumed, where whatever catch-up already applied is skipped as
//! a duplicate.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use domain::envelope::RecordedEvent;
use messaging::{
    Backoff, ConsumerName, ConsumerSpec, Delivery, QueueRole, SharedTransport, TransportError,
};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use service_runtime::shutdown::Shutdown;
use service_runtime::waits::{TooManyWaits, WaitSlot, WaitSlots};
use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use crate::{
    applier::{decode, Applier, ApplyError, Decoded, OnPoison, Outcome},
    layout::ViewDir,
    name::ProjectorName,
    projection::{projection_for, SharedProjection},
    source::SharedSource,
    viewdb::{Carry, DbOptions, ViewDb, ViewError, ViewTx},
};

/// How a projector consumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Unacknowledged deliveries the broker may hand out at once.
    pub prefetch: u16,
    /// The most deliveries applied in one sled batch.
    pub batch: usize,
    /// How long to gather deliveries into a batch.
    pub linger: Duration,
    /// Deliveries of a poison message before it is dead-lettered.
    pub max_attempts: u32,
    /// The queue's delivery limit (the broker dead-letters past it).
    pub delivery_limit: u32,
    /// After this long with no delivery, read the store for anything missed.
    pub idle_sweep: Duration,
    /// After a batch's first deliveries arrive, wait this long for more
    /// before applying it (zero: apply what has arrived at once). Under a
    /// trickle of deliveries, one sled batch then serves several: each
    /// costs a log write on sled's I/O threads, whatever its size.
    pub gather: Duration,
    /// sled's cache per database.
    pub cache_bytes: u64,
    /// The most `/positions` long polls waiting at once.
    pub max_waits: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            prefetch: 2000,
            // A quarter of the prefetch: while one batch is applied and
            // another waits for its flush, the broker already sends the next
            // two (`shop bench projectors`: ~13% faster than half of 1000).
            batch: 500,
            linger: Duration::from_millis(1),
            max_attempts: 3,
            delivery_limit: 5,
            idle_sweep: Duration::from_secs(1),
            // Longer than sled's batch write costs to wake up for; short
            // beside a client's wait for a view (a long poll).
            gather: Duration::from_millis(20),
            // sled holds several times its cache size in memory.
            cache_bytes: 4 * 1024 * 1024,
            max_waits: WaitSlots::DEFAULT,
        }
    }
}

/// The most documents a transaction hands on to the next one.
const CARRY_DOCUMENTS: usize = 2_000;

/// How long `/status` reuses the dead-letter queue's depth.
const DEAD_LETTER_DEPTH_AGE: Duration = Duration::from_secs(1);

/// Events of its own categories `/status` counts one by one to tell a
/// view's lag.
const LAG_COUNTED: usize = 100;

/// Events read from the store per catch-up batch.
const CATCH_UP_BATCH: usize = 5000;

/// Why the runtime stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The view's files.
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    /// The view's database.
    #[error(transparent)]
    View(#[from] ViewError),
    /// The view was built from another event store.
    #[error(
        "the {name} view was built from event store {view_store} but the store is {store}; \
         rebuild it with `shop replay {name}`"
    )]
    ForeignStore {
        /// The projector.
        name: ProjectorName,
        /// The store the view remembers.
        view_store: Uuid,
        /// The store it reads now.
        store: Uuid,
    },
    /// Applying failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The broker.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A blocking task panicked or was cancelled.
    #[error("a blocking task failed: {0}")]
    Task(String),
    /// A position query would wait, and every wait slot is taken.
    #[error(transparent)]
    TooManyWaits(#[from] TooManyWaits),
}

/// What `GET /status` says.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Status {
    /// The projector.
    pub name: String,
    /// The highest global position applied, if any.
    pub applied_position: Option<u64>,
    /// The store's next position (number of events), if the store answered.
    pub store_head: Option<u64>,
    /// Events of the view's categories in the store that it has not
    /// applied: counted one by one up to [`LAG_COUNTED`], an upper bound
    /// past that.
    pub lag_events: u64,
    /// Events of any category in the store past both the applied and the
    /// swept position (what the view has not looked at yet; events of
    /// other categories stay here until a sweep moves past them).
    pub log_lag_events: u64,
    /// Messages in the dead-letter queue (or dead-lettered by this process
    /// when the broker cannot be asked).
    pub dead_letters: u64,
    /// Events applied to this database.
    pub events_applied: u64,
    /// Stored events skipped as poison.
    pub skipped: u64,
    /// Whether the initial catch-up is done.
    pub caught_up: bool,
    /// The store the view follows.
    pub store_id: Option<Uuid>,
}

/// The progress of a rebuild, for `GET /admin/replay`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ReplayProgress {
    /// `idle`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// Events read so far.
    pub processed: u64,
    /// Events to read (the store's head when it started).
    pub total: u64,
    /// Read rate.
    pub events_per_second: f64,
    /// The new view's digest, when done.
    pub digest: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One running read model.
pub struct Projector {
    name: ProjectorName,
    applier: Applier,
    dir: Option<ViewDir>,
    db_options: DbOptions,
    db: RwLock<Arc<ViewDb>>,
    source: SharedSource,
    transport: Option<SharedTransport>,
    settings: RuntimeSettings,
    store_id: Mutex<Option<Uuid>>,
    /// Held while a batch is applied and committed, and while the database is swapped.
    commit_lock: tokio::sync::Mutex<()>,
    /// Bumped after every commit, so position waits can wake up.
    committed: watch::Sender<u64>,
    /// Bumped each time `consume` starts consuming its queue.
    consumer_starts: watch::Sender<u64>,
    caught_up: AtomicBool,
    dead_lettered: AtomicU64,
    /// The dead-letter queue's depth as last asked of the broker, and when.
    dead_letter_depth: Mutex<Option<(Instant, u64)>>,
    /// What the last transaction held, for the next one (see [`Carry`]).
    carry: Mutex<Option<Carry>>,
    pub(crate) replay: Mutex<ReplayProgress>,
    /// The position long polls of the read API.
    waits: WaitSlots,
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish()
    }
}

/// Runs disk work off the async threads: in place on a multi-threaded
/// runtime (no hand-over to another thread, which costs milliseconds on a
/// busy machine), else on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ViewError> + Send + 'static,
) -> Result<T, RuntimeError> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        return tokio::task::block_in_place(work).map_err(RuntimeError::from);
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| RuntimeError::Task(error.to_string()))?
        .map_err(RuntimeError::from)
}

impl Projector {
    /// Opens the read model `name` in `dir` (its live generation, created if
    /// needed; leftovers of unfinished rebuilds are removed).
    pub fn open(
        name: ProjectorName,
        dir: ViewDir,
        source: SharedSource,
        transport: Option<SharedTransport>,
        settings: RuntimeSettings,
    ) -> Result<Arc<Self>, RuntimeError> {
        let path = dir.current_or_create()?;
        dir.remove_stale()?;
        let db_options = DbOptions {
            cache_bytes: settings.cache_bytes,
        };
        let mut db = ViewDb::open(&path, db_options)?;
        let projection = projection_for(name);
        let wanted = projection.layout();
        let homes = projection.homes();
        if let Some(found) = db.adopt_layout(wanted, &homes)? {
            // Documents this code cannot read: start a new, empty
            // generation; catching up from the store on start rebuilds it.
            tracing::warn!(
                projector = %name,
                found,
                wanted,
                "the view's documents are laid out for another version of this projector; \
                 rebuilding it from the event store"
            );
            let next = dir.next_generation()?;
            let fresh = ViewDb::open(&next, db_options)?;
            fresh.set_homes(&homes)?;
            fresh.set_layout(wanted)?;
            drop(std::mem::replace(&mut db, fresh));
            dir.swap_to(&next)?;
            dir.remove_stale()?;
        }
        Ok(Self::with_db(
            name,
            Some(dir),
            Arc::new(db),
            source,
            transport,
            settings,
        ))
    }

    /// A projector over an in-memory database (tests).
    pub fn temporary(
        name: ProjectorName,
        source: SharedSource,
        transport: Option<SharedTransport>,
        settings: RuntimeSettings,
    ) -> Result<Arc<Self>, RuntimeError> {
        let db = ViewDb::temporary()?;
        db.set_homes(&projection_for(name).homes())?;
        Ok(Self::with_db(
            name,
            None,
            Arc::new(db),
            source,
            transport,
            settings,
        ))
    }

    fn with_db(
        name: ProjectorName,
        dir: Option<ViewDir>,
        db: Arc<ViewDb>,
        source: SharedSource,
        transport: Option<SharedTransport>,
        settings: RuntimeSettings,
    ) -> Arc<Self> {
        let store_id = db.meta().ok().and_then(|meta| meta.store_id);
        Arc::new(Self {
            name,
            applier: Applier::new(projection_for(name)),
            dir,
            db_options: DbOptions {
                cache_bytes: settings.cache_bytes,
            },
            db: RwLock::new(db),
            source,
            transport,
            store_id: Mutex::new(store_id),
            commit_lock: tokio::sync::Mutex::new(()),
            committed: watch::channel(0).0,
            consumer_starts: watch::channel(0).0,
            caught_up: AtomicBool::new(false),
            dead_lettered: AtomicU64::new(0),
            dead_letter_depth: Mutex::new(None),
            carry: Mutex::new(None),
            replay: Mutex::new(ReplayProgress {
                state: "idle",
                ..ReplayProgress::default()
            }),
            waits: WaitSlots::new(settings.max_waits),
            settings,
        })
    }

    /// Its name.
    pub fn name(&self) -> ProjectorName {
        self.name
    }

    /// The bound on the read API's position long polls (how many wait now).
    pub fn waits(&self) -> &WaitSlots {
        &self.waits
    }

    /// Its projection.
    pub fn projection(&self) -> &SharedProjection {
        self.applier.projection()
    }

    /// The live database.
    pub fn db(&self) -> Arc<ViewDb> {
        Arc::clone(&self.db.read())
    }

    /// Where history is read from.
    pub fn source(&self) -> &SharedSource {
        &self.source
    }

    /// Its files, unless it is a temporary projector.
    pub fn dir(&self) -> Option<&ViewDir> {
        self.dir.as_ref()
    }

    /// The settings.
    pub fn settings(&self) -> &RuntimeSettings {
        &self.settings
    }

    /// Whether the initial catch-up is done.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// A receiver that changes after every commit.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// A receiver that changes each time [`Self::consume`] starts consuming
    /// its queue: after its catch-up, and again after a reconnect.
    pub fn consumer_starts(&self) -> watch::Receiver<u64> {
        self.consumer_starts.subscribe()
    }

    /// The name of its queue's consumer: `projector.<name>`.
    pub fn consumer_name(&self) -> Result<ConsumerName, messaging::NameError> {
        ConsumerName::parse(&format!("projector.{}", self.name))
    }

    /// Its queue: bound to `<category>.*` for each category it reads.
    pub fn consumer_spec(&self) -> Result<ConsumerSpec, TransportError> {
        let bindings = self
            .projection()
            .categories()
            .iter()
            .map(|category| format!("{category}.*"));
        Ok(ConsumerSpec::new(self.consumer_name()?, bindings)?
            .with_prefetch(self.settings.prefetch)
            .with_delivery_limit(self.settings.delivery_limit))
    }

    /// Adopts the store's id, checking that the view was built from that store.
    pub async fn adopt_store(&self, store: Uuid) -> Result<(), RuntimeError> {
        let db = self.db();
        match db.meta()?.store_id {
            Some(view_store) if view_store != store => {
                return Err(RuntimeError::ForeignStore {
                    name: self.name,
                    view_store,
                    store,
                })
            }
            Some(_) => {}
            None => blocking(move || db.set_store_id(store)).await?,
        }
        *self.store_id.lock() = Some(store);
        Ok(())
    }

    /// Asks the store for its id (retrying until it answers) and adopts it.
    async fn connect_store(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let store = retry_until(
            shutdown,
            &Backoff::default(),
            "reach the event store",
            || self.source.store_id(),
        )
        .await?;
        self.adopt_store(store).await?;
        Ok(())
    }

    /// Reads the store from the swept position to its head and applies
    /// what it finds (covering at least `limit` positions of the log if
    /// there are that many; `None`: all). Returns how many positions of the
    /// log it covered.
    pub async fn catch_up(&self, limit: Option<u64>) -> Result<u64, RuntimeError> {
        let mut covered = 0u64;
        loop {
            if limit.is_some_and(|limit| covered >= limit) {
                return Ok(covered);
            }
            let _guard = self.commit_lock.lock().await;
            let step = self.catch_up_step(&self.db()).await?;
            if step == 0 {
                return Ok(covered);
            }
            covered += step;
        }
    }

    /// One catch-up batch into `db`: returns how many positions of the log
    /// it covered. Only the view's own categories are read (the store's
    /// category index), so a view that reads a few categories does not
    /// fetch the whole log to move its swept position. The caller holds the
    /// commit lock.
    async fn catch_up_step(&self, db: &Arc<ViewDb>) -> Result<u64, RuntimeError> {
        // From the swept position: events the broker delivered past it are
        // read again and skipped as duplicates, and the swept position
        // moves over them.
        let from = db.meta()?.swept_position.map_or(0, |p| p + 1);
        let head = self.source.head().await.map_err(ApplyError::from)?;
        if head <= from {
            return Ok(0);
        }
        let read = self
            .source
            .read_categories(self.projection().categories(), from, head, CATCH_UP_BATCH)
            .await
            .map_err(ApplyError::from)?;
        if read.complete_below <= from {
            return Ok(0);
        }
        let events = read.events;
        let mut tx = self.begin(db)?;
        let mut skipped = 0u64;
        for event in &events {
            let decoded = self.decode_if_wanted(event);
            let outcome = self
                .applier
                .deliver(&mut tx, event, &decoded, OnPoison::Skip, &*self.source)
                .await?;
            if let Outcome::Poisoned { reason } = outcome {
                skipped += 1;
                tracing::error!(
                    projector = %self.name,
                    stream = %event.stream,
                    version = event.version,
                    %reason,
                    "skipped a poison event read from the store"
                );
            }
        }
        // Every position below the read's end was applied or is of a
        // category this view ignores (which a read of the whole log would
        // have noted too).
        tx.note_position(read.complete_below - 1);
        tx.set_swept(read.complete_below - 1);
        let applied = tx.events();
        let newest = events.last().map(|e| e.recorded_at);
        let commit_db = Arc::clone(db);
        let carry = blocking(move || {
            let (_, carry) = tx.commit_carrying(CARRY_DOCUMENTS)?;
            commit_db.flush()?;
            Ok(carry)
        })
        .await?;
        *self.carry.lock() = carry;
        self.after_commit(applied, skipped, newest);
        Ok(read.complete_below - from)
    }

    /// A transaction on `db`, starting from what the last one held. The
    /// caller holds the commit lock, so no other writer can make it stale.
    fn begin(&self, db: &Arc<ViewDb>) -> Result<ViewTx, ViewError> {
        let carry = self.carry.lock().take();
        db.begin_with(carry)
    }

    fn decode_if_wanted(&self, event: &RecordedEvent) -> Decoded {
        if self.projection().wants(event.category()) {
            decode(event)
        } else {
            Err(String::new())
        }
    }

    fn after_commit(
        &self,
        applied: u64,
        skipped: u64,
        newest: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let name = self.name.as_str();
        metrics::counter!("projector_events_applied_total", "projector" => name).increment(applied);
        if skipped > 0 {
            metrics::counter!("projector_poison_skipped_total", "projector" => name)
                .increment(skipped);
        }
        if let Some(newest) = newest {
            let lag = (chrono::Utc::now() - newest).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!("projector_lag_seconds", "projector" => name).set(lag);
        }
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Applies one batch of deliveries in one sled batch, flushes, then
    /// settles them: poison retried or dead-lettered, the rest acked with
    /// one `multiple` ack. On an error nothing is acknowledged.
    pub async fn process(
        &self,
        consumer: &mut dyn messaging::Consumer,
        deliveries: Vec<Delivery>,
    ) -> Result<BatchReport, RuntimeError> {
        let committed = self.apply_batch(Arc::new(deliveries)).await?;
        let db = Arc::clone(&committed.db);
        blocking(move || db.flush()).await?;
        self.settle(consumer, committed).await
    }

    /// Applies one batch of deliveries and writes it in one atomic sled
    /// batch, not yet flushed: nothing may be acknowledged before the flush.
    /// On an error nothing is written.
    /// The deliveries are shared, so that a batch tried again after an error
    /// is not copied first.
    pub async fn apply_batch(
        &self,
        deliveries: Arc<Vec<Delivery>>,
    ) -> Result<Committed, RuntimeError> {
        let started = Instant::now();
        let _guard = self.commit_lock.lock().await;
        let db = self.db();
        let mut tx = self.begin(&db)?;
        let store_id = *self.store_id.lock();
        let mut settles = Vec::with_capacity(deliveries.len());
        let mut report = BatchReport::default();
        let mut newest = None;
        for delivery in deliveries.iter() {
            let last_attempt =
                delivery.delivery_count.saturating_add(1) >= self.settings.max_attempts;
            let event = match delivery.decode_event() {
                Ok(event) => event,
                Err(error) => {
                    let reason = format!("undecodable message body: {error}");
                    settles.push(if last_attempt {
                        Settle::DeadLetter(reason)
                    } else {
                        Settle::Retry
                    });
                    continue;
                }
            };
            if let (Some(theirs), Some(ours)) = (delivery.headers.store_id, store_id) {
                if theirs != ours {
                    settles.push(Settle::DeadLetter(format!(
                        "message from event store {theirs}; this projector follows store {ours}"
                    )));
                    continue;
                }
            }
            let decoded = self.decode_if_wanted(&event);
            let on_poison = if last_attempt {
                OnPoison::Skip
            } else {
                OnPoison::Defer
            };
            let outcome = self
                .applier
                .deliver(&mut tx, &event, &decoded, on_poison, &*self.source)
                .await?;
            settles.push(match outcome {
                Outcome::Applied => {
                    newest = Some(event.recorded_at);
                    Settle::Ack
                }
                Outcome::Duplicate => {
                    report.duplicates += 1;
                    Settle::Ack
                }
                Outcome::Ignored => Settle::Ack,
                Outcome::Poisoned { reason } => {
                    report.skipped += 1;
                    Settle::DeadLetter(reason)
                }
                Outcome::PoisonedBefore { reason } => Settle::DeadLetter(reason),
                Outcome::Deferred { .. } => Settle::Retry,
            });
        }
        report.applied = tx.events();
        let carry = blocking(move || Ok(tx.commit_carrying(CARRY_DOCUMENTS)?.1)).await?;
        *self.carry.lock() = carry;
        self.after_commit(report.applied, report.skipped, newest);
        Ok(Committed {
            db,
            deliveries,
            settles,
            report,
            started,
        })
    }

    /// Settles a committed batch once it is flushed: poison handed back or
    /// dead-lettered first (the `multiple` ack covers every earlier tag),
    /// then everything else acked at once.
    pub async fn settle(
        &self,
        consumer: &mut dyn messaging::Consumer,
        committed: Committed,
    ) -> Result<BatchReport, RuntimeError> {
        let Committed {
            deliveries,
            settles,
            mut report,
            started,
            ..
        } = committed;
        let mut individual_acks = false;
        let mut last_ack = None;
        for (delivery, settle) in deliveries.iter().zip(&settles) {
            match settle {
                Settle::Ack => last_ack = Some(delivery.tag),
                Settle::Retry => {
                    report.retried += 1;
                    if let Err(error) = consumer.retry(delivery.tag).await {
                        tracing::warn!(projector = %self.name, %error, "cannot hand a message back");
                        individual_acks = true;
                    }
                }
                Settle::DeadLetter(reason) => {
                    tracing::warn!(
                        projector = %self.name,
                        routing_key = %delivery.routing_key,
                        %reason,
                        "dead-lettering a message"
                    );
                    match consumer.dead_letter(delivery, reason).await {
                        Ok(()) => {
                            report.dead_lettered += 1;
                            self.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            // The broker's count changed: ask it again.
                            *self.dead_letter_depth.lock() = None;
                            metrics::counter!("projector_dead_letters_total", "projector" => self.name.as_str())
                                .increment(1);
                        }
                        Err(error) => {
                            // Left unacknowledged: it comes back and is dead-lettered then.
                            tracing::warn!(projector = %self.name, %error, "cannot dead-letter a message");
                            individual_acks = true;
                        }
                    }
                }
            }
        }
        if individual_acks {
            for (delivery, settle) in deliveries.iter().zip(&settles) {
                if matches!(settle, Settle::Ack) {
                    consumer.ack(delivery.tag).await?;
                }
            }
        } else if let Some(tag) = last_ack {
            consumer.ack_up_to(tag).await?;
        }
        metrics::histogram!("projector_batch_size", "projector" => self.name.as_str())
            .record(deliveries.len() as f64);
        metrics::histogram!("projector_batch_seconds", "projector" => self.name.as_str())
            .record(started.elapsed().as_secs_f64());
        Ok(report)
    }

    /// The last applied version of a stream, waiting up to `wait` for it to
    /// reach `at_least`. Only a query that has to wait takes one of the
    /// bounded wait slots; with none free it is refused at once.
    pub async fn position(
        &self,
        stream: &str,
        at_least: Option<u64>,
        wait: Duration,
    ) -> Result<Option<u64>, RuntimeError> {
        let mut commits = self.commits();
        let deadline = tokio::time::Instant::now() + wait;
        let mut slot: Option<WaitSlot> = None;
        loop {
            let version = self.known_position(stream).await?;
            let reached = match at_least {
                None => true,
                Some(wanted) => version.is_some_and(|v| v >= wanted),
            };
            if reached || wait.is_zero() {
                return Ok(version);
            }
            if slot.is_none() {
                slot = Some(self.waits.enter()?);
            }
            match tokio::time::timeout_at(deadline, commits.changed()).await {
                Ok(Ok(())) => {}
                _ => return Ok(version),
            }
        }
    }

    /// A stream's last applied version: its own, or, for a stream untouched
    /// since the view was rebuilt, its last version at or below the swept
    /// position, read from the store. A view never rebuilt holds every
    /// applied stream's position, and answers without the store: a client
    /// waiting for an order the view has not reached yet must not cost the
    /// store a read at every commit.
    async fn known_position(&self, stream: &str) -> Result<Option<u64>, RuntimeError> {
        let db = self.db();
        if let Some(version) = db.position(stream)? {
            return Ok(Some(version));
        }
        let category = domain::envelope::stream_category(stream);
        if !self.projection().wants(category) || db.untracked_below()? == 0 {
            // Nothing of the stream applied (every event applied live or in
            // a catch-up wrote its stream's position): nothing to look up.
            return Ok(None);
        }
        let Some(swept) = db.meta()?.swept_position else {
            return Ok(None);
        };
        let mut last = None;
        let mut from = 0u64;
        loop {
            let events = self
                .source
                .read_stream(stream, from, 1000)
                .await
                .map_err(ApplyError::from)?;
            let Some(tail) = events.last() else {
                return Ok(last);
            };
            from = tail.version + 1;
            for event in &events {
                if event.position <= swept {
                    last = Some(event.version);
                } else {
                    return Ok(last);
                }
            }
        }
    }

    /// The digest of the live view, taken between two batches.
    pub async fn digest(&self) -> Result<String, RuntimeError> {
        let _guard = self.commit_lock.lock().await;
        let db = self.db();
        blocking(move || crate::digest::digest(&db)).await
    }

    /// How many messages wait in the dead-letter queue: asked of the broker
    /// at most once per [`DEAD_LETTER_DEPTH_AGE`] (a poll of `/status`
    /// costs the broker a channel and a passive declare otherwise), else
    /// what this process dead-lettered.
    async fn dead_letter_depth(&self) -> u64 {
        let counted = self.dead_lettered.load(Ordering::Relaxed);
        let (Some(transport), Ok(consumer)) = (&self.transport, self.consumer_name()) else {
            return counted;
        };
        if let Some((at, depth)) = *self.dead_letter_depth.lock() {
            if at.elapsed() < DEAD_LETTER_DEPTH_AGE {
                return depth;
            }
        }
        match tokio::time::timeout(
            Duration::from_secs(2),
            transport.ready_messages(&consumer, QueueRole::DeadLetter),
        )
        .await
        {
            Ok(Ok(depth)) => {
                *self.dead_letter_depth.lock() = Some((Instant::now(), depth));
                depth
            }
            _ => counted,
        }
    }

    /// How many events of the view's categories lie in `next..head` (the
    /// store's category index): exact up to [`LAG_COUNTED`], past that
    /// those counted plus the positions not looked at. `None` if the store
    /// did not answer in time.
    async fn own_lag(&self, next: u64, head: u64) -> Option<u64> {
        let read = tokio::time::timeout(
            Duration::from_secs(2),
            self.source
                .read_categories(self.projection().categories(), next, head, LAG_COUNTED),
        )
        .await
        .ok()?
        .ok()?;
        let unread = head.saturating_sub(read.complete_below.max(next));
        Some(read.events.len() as u64 + unread)
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<Status, ViewError> {
        let meta = self.db().meta()?;
        let store_head = tokio::time::timeout(Duration::from_secs(2), self.source.head())
            .await
            .ok()
            .and_then(Result::ok);
        let next = meta
            .applied_position
            .max(meta.swept_position)
            .map_or(0, |p| p + 1);
        let log_lag_events = store_head.map_or(0, |head| head.saturating_sub(next));
        let lag_events = match store_head {
            Some(head) if log_lag_events > 0 => {
                self.own_lag(next, head).await.unwrap_or(log_lag_events)
            }
            _ => log_lag_events,
        };
        let dead_letters = self.dead_letter_depth().await;
        Ok(Status {
            name: self.name.to_string(),
            applied_position: meta.applied_position,
            store_head,
            lag_events,
            log_lag_events,
            dead_letters,
            events_applied: meta.events_applied,
            skipped: meta.skipped,
            caught_up: self.is_caught_up(),
            store_id: meta.store_id,
        })
    }

    /// Consumes the projector's queue until `shutdown`: declares it, catches
    /// up from the store, then applies batches, reconnecting with backoff.
    pub async fn consume(
        self: Arc<Self>,
        transport: SharedTransport,
        shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        let spec = self.consumer_spec()?;
        let backoff = Backoff::default();
        // The queue first: from now on nothing published is missed.
        retry_until(&shutdown, &backoff, "declare the queue", || {
            transport.declare_consumer(&spec)
        })
        .await?;
        if shutdown.is_triggered() {
            return Ok(());
        }
        self.connect_store(&shutdown).await?;
        let read = retry_until(&shutdown, &backoff, "catch up from the store", || {
            self.catch_up(None)
        })
        .await?;
        self.caught_up.store(true, Ordering::Release);
        tracing::info!(projector = %self.name, events = read, "caught up from the event store");

        let mut consumer = retry_until(&shutdown, &backoff, "start consuming", || {
            transport.consumer(&spec)
        })
        .await?;
        self.consumer_starts.send_modify(|n| *n = n.wrapping_add(1));
        let mut failures = backoff.delays();
        // Batches written and not yet acknowledged: one flush runs at a
        // time in the background, and batches arriving meanwhile are applied
        // (readable) at once and wait for the next flush.
        let mut unflushed = Unflushed::default();
        while !shutdown.is_triggered() {
            let next = tokio::select! {
                _ = shutdown.wait() => break,
                flushed = unflushed.flushed(), if unflushed.is_flushing() => {
                    self.settle_flushed(&mut *consumer, &mut unflushed, flushed, &shutdown)
                        .await;
                    continue;
                }
                next = tokio::time::timeout(
                    self.settings.idle_sweep,
                    consumer.next_batch(self.settings.batch, self.settings.linger),
                ) => next,
            };
            let deliveries = match next {
                // Batches still to settle: their flush wakes the loop.
                Err(_idle) if !unflushed.is_empty() => continue,
                Err(_idle) => {
                    // Nothing delivered for a while: read the store for events
                    // the queue does not carry (other categories move the
                    // swept position) or that were missed.
                    if let Err(error) = self.catch_up(Some(CATCH_UP_BATCH as u64 * 4)).await {
                        tracing::warn!(projector = %self.name, %error, "idle sweep failed");
                    }
                    continue;
                }
                Ok(Ok(mut deliveries)) => {
                    self.gather(&mut *consumer, &mut deliveries, &mut unflushed, &shutdown)
                        .await;
                    Arc::new(deliveries)
                }
                Ok(Err(error)) => {
                    self.finish(&mut *consumer, &mut unflushed, &shutdown).await;
                    let delay = failures.next().unwrap_or(backoff.max);
                    tracing::warn!(projector = %self.name, %error, ?delay, "consuming failed; reconnecting");
                    if sleep_or_shutdown(&shutdown, delay).await {
                        break;
                    }
                    match transport.consumer(&spec).await {
                        Ok(fresh) => {
                            consumer = fresh;
                            self.consumer_starts.send_modify(|n| *n = n.wrapping_add(1));
                        }
                        Err(error) => {
                            tracing::warn!(projector = %self.name, %error, "cannot reconnect yet")
                        }
                    }
                    continue;
                }
            };
            // A batch that fails (the store down during gap repair, a disk
            // error) is tried again as it is: its deliveries stay unacked.
            let mut delays = backoff.delays();
            let committed = loop {
                let applied = self.apply_settling(
                    Arc::clone(&deliveries),
                    &mut *consumer,
                    &mut unflushed,
                    &shutdown,
                );
                match applied.await {
                    Ok(committed) => break Some(committed),
                    Err(error) => {
                        self.finish(&mut *consumer, &mut unflushed, &shutdown).await;
                        let delay = delays.next().unwrap_or(backoff.max);
                        tracing::warn!(projector = %self.name, %error, ?delay, "batch failed; retrying");
                        if sleep_or_shutdown(&shutdown, delay).await {
                            break None;
                        }
                    }
                }
            };
            let Some(committed) = committed else { break };
            failures = backoff.delays();
            unflushed.push(committed);
        }
        self.finish(&mut *consumer, &mut unflushed, &shutdown).await;
        tracing::info!(projector = %self.name, "consumer stopped");
        Ok(())
    }

    /// Adds to `deliveries` what arrives within [`RuntimeSettings::gather`]
    /// (up to a full batch). A failure to receive ends the wait; the next
    /// receive meets it again. Flushes that finish meanwhile are settled at
    /// once: their acknowledgements are what lets the broker send more
    /// (prefetch), so holding them back would stall the very wait; and with
    /// the window full and no flush to wait for, it ends at once.
    async fn gather(
        &self,
        consumer: &mut dyn messaging::Consumer,
        deliveries: &mut Vec<Delivery>,
        unflushed: &mut Unflushed,
        shutdown: &Shutdown,
    ) {
        if self.settings.gather.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.settings.gather;
        while deliveries.len() < self.settings.batch {
            // With the prefetch window full, nothing more comes before an
            // acknowledgement, and none comes unless a flush runs.
            let held = deliveries.len() + unflushed.deliveries();
            if held >= usize::from(self.settings.prefetch.max(1)) && !unflushed.is_flushing() {
                break;
            }
            let wanted = self.settings.batch - deliveries.len();
            // `next_batch` is cancel-safe: what it received stays buffered.
            tokio::select! {
                biased;
                flushed = unflushed.flushed(), if unflushed.is_flushing() => {
                    self.settle_flushed(consumer, unflushed, flushed, shutdown).await;
                }
                more = tokio::time::timeout_at(
                    deadline,
                    consumer.next_batch(wanted, self.settings.linger),
                ) => match more {
                    Ok(Ok(more)) => deliveries.extend(more),
                    Ok(Err(_)) | Err(_) => break,
                },
            }
        }
    }

    /// [`Self::apply_batch`], settling the flushes that finish meanwhile:
    /// the previous batch is acknowledged while this one is applied, so the
    /// broker sends the next one meanwhile instead of after.
    async fn apply_settling(
        &self,
        deliveries: Arc<Vec<Delivery>>,
        consumer: &mut dyn messaging::Consumer,
        unflushed: &mut Unflushed,
        shutdown: &Shutdown,
    ) -> Result<Committed, RuntimeError> {
        let apply = self.apply_batch(deliveries);
        tokio::pin!(apply);
        loop {
            tokio::select! {
                biased;
                flushed = unflushed.flushed(), if unflushed.is_flushing() => {
                    self.settle_flushed(consumer, unflushed, flushed, shutdown).await;
                }
                applied = &mut apply => return applied,
            }
        }
    }

    /// Settles the batches a finished flush covered, in order, and starts
    /// the flush of those committed since. A failed flush is tried again
    /// (nothing is acknowledged before one succeeds) until shutdown, when
    /// the batches are left unacknowledged for redelivery.
    async fn settle_flushed(
        &self,
        consumer: &mut dyn messaging::Consumer,
        unflushed: &mut Unflushed,
        flushed: (Result<(), String>, Vec<Committed>),
        shutdown: &Shutdown,
    ) {
        let (mut result, batches) = flushed;
        let mut delays = Backoff::default().delays();
        while let Err(error) = result {
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            tracing::warn!(projector = %self.name, %error, ?delay, "cannot flush the view; retrying");
            if sleep_or_shutdown(shutdown, delay).await {
                return;
            }
            let dbs = Unflushed::databases(&batches);
            result = blocking(move || Unflushed::flush_all(&dbs))
                .await
                .map_err(|error| error.to_string());
        }
        for committed in batches {
            if let Err(error) = self.settle(consumer, committed).await {
                // The broker redelivers what was not acknowledged; those are duplicates now.
                tracing::warn!(projector = %self.name, %error, "cannot settle a batch");
            }
        }
        unflushed.start();
    }

    /// Flushes and settles every batch written and not yet acknowledged.
    async fn finish(
        &self,
        consumer: &mut dyn messaging::Consumer,
        unflushed: &mut Unflushed,
        shutdown: &Shutdown,
    ) {
        // Each settled flush starts the next for what was committed since.
        while unflushed.is_flushing() {
            let flushed = unflushed.flushed().await;
            self.settle_flushed(consumer, unflushed, flushed, shutdown)
                .await;
        }
    }

    /// Runs without a broker: catches up, then follows the store by polling
    /// (used when no transport is configured).
    pub async fn follow_store(self: Arc<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        self.connect_store(&shutdown).await?;
        let mut first = true;
        while !shutdown.is_triggered() {
            match self.catch_up(None).await {
                Ok(_) => {
                    if first {
                        self.caught_up.store(true, Ordering::Release);
                        first = false;
                    }
                }
                Err(error) => tracing::warn!(projector = %self.name, %error, "catch-up failed"),
            }
            if sleep_or_shutdown(&shutdown, self.settings.idle_sweep / 4).await {
                break;
            }
        }
        Ok(())
    }

    /// Rebuilds the view from the store into a new database beside the live
    /// one while this one keeps serving, then swaps it in. Returns the new
    /// digest.
    pub async fn replay_live(self: &Arc<Self>) -> anyhow::Result<String> {
        let dir = self
            .dir
            .clone()
            .context("a temporary projector cannot be replayed")?;
        let path = dir.next_generation()?;
        let fresh = Arc::new(ViewDb::open(&path, self.db_options)?);
        let head = self.source.head().await?;
        {
            let mut progress = self.replay.lock();
            *progress = ReplayProgress {
                state: "running",
                total: head,
                ..ReplayProgress::default()
            };
        }
        let this = Arc::clone(self);
        let report = crate::replay::rebuild_with(
            vec![crate::replay::Target {
                projection: Arc::clone(self.projection()),
                db: Arc::clone(&fresh),
            }],
            Arc::clone(&self.source),
            head,
            Arc::new(move |processed, rate| {
                let mut progress = this.replay.lock();
                progress.processed = processed;
                progress.events_per_second = rate;
            }),
            crate::replay::LIVE_BATCHING,
        )
        .await?;
        tracing::info!(projector = %self.name, events = report.events, seconds = report.seconds, "rebuilt; swapping in");
        // Pause the consumer, bring the new database up to the head, swap.
        let _guard = self.commit_lock.lock().await;
        let store_id = self.source.store_id().await?;
        fresh.set_store_id(store_id)?;
        while self.catch_up_step(&fresh).await? > 0 {}
        {
            let flush_db = Arc::clone(&fresh);
            blocking(move || flush_db.flush()).await?;
        }
        dir.swap_to(&path)?;
        *self.carry.lock() = None;
        let old = std::mem::replace(&mut *self.db.write(), Arc::clone(&fresh));
        drop(old);
        self.committed.send_modify(|n| *n = n.wrapping_add(1));
        let digest_db = Arc::clone(&fresh);
        let digest = blocking(move || crate::digest::digest(&digest_db)).await?;
        let cleanup = dir.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(error) = cleanup.remove_stale() {
                tracing::warn!(%error, "cannot remove the replaced database");
            }
        });
        Ok(digest)
    }
}

/// What to do with one delivery once its batch is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Settle {
    Ack,
    Retry,
    DeadLetter(String),
}

/// Batches committed to the view (readable) and not yet acknowledged: those
/// a running flush covers, and those committed since, which the next flush
/// covers. One flush runs at a time; a flush started after a batch's commit
/// makes it durable, so one flush serves every batch committed before it.
#[derive(Default)]
struct Unflushed {
    flushing: Option<(Flush, Vec<Committed>)>,
    waiting: Vec<Committed>,
}

/// A flush running on the blocking pool.
type Flush = JoinHandle<Result<(), ViewError>>;

impl Unflushed {
    fn is_flushing(&self) -> bool {
        self.flushing.is_some()
    }

    fn is_empty(&self) -> bool {
        self.flushing.is_none() && self.waiting.is_empty()
    }

    /// Deliveries held unacknowledged by the batches here.
    fn deliveries(&self) -> usize {
        let flushing = self.flushing.iter().flat_map(|(_, batches)| batches.iter());
        flushing
            .chain(self.waiting.iter())
            .map(|committed| committed.deliveries.len())
            .sum()
    }

    /// Adds a committed batch: flushed at once if no flush runs, else by the next.
    fn push(&mut self, committed: Committed) {
        self.waiting.push(committed);
        self.start();
    }

    /// Starts the flush of the waiting batches, if any and none runs.
    fn start(&mut self) {
        if self.flushing.is_some() || self.waiting.is_empty() {
            return;
        }
        let batches = std::mem::take(&mut self.waiting);
        let dbs = Self::databases(&batches);
        let flush = tokio::task::spawn_blocking(move || Self::flush_all(&dbs));
        self.flushing = Some((flush, batches));
    }

    /// Waits for the running flush (pending forever if none runs) and
    /// returns its outcome with the batches it covered.
    async fn flushed(&mut self) -> (Result<(), String>, Vec<Committed>) {
        let Some((flush, _)) = self.flushing.as_mut() else {
            return std::future::pending().await;
        };
        let result = match flush.await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(error) => Err(format!("the flush task failed: {error}")),
        };
        let batches = self.flushing.take().map(|(_, b)| b).unwrap_or_default();
        (result, batches)
    }

    /// The databases the batches were written to (a live replay may swap
    /// the view between two of them), each once.
    fn databases(batches: &[Committed]) -> Vec<Arc<ViewDb>> {
        let mut dbs: Vec<Arc<ViewDb>> = Vec::new();
        for committed in batches {
            if !dbs.iter().any(|db| Arc::ptr_eq(db, &committed.db)) {
                dbs.push(Arc::clone(&committed.db));
            }
        }
        dbs
    }

    fn flush_all(dbs: &[Arc<ViewDb>]) -> Result<(), ViewError> {
        dbs.iter().try_for_each(|db| db.flush())
    }
}

/// A batch of deliveries applied and written, waiting for its flush before
/// it is settled (see [`Projector::apply_batch`] and [`Projector::settle`]).
pub struct Committed {
    db: Arc<ViewDb>,
    deliveries: Arc<Vec<Delivery>>,
    settles: Vec<Settle>,
    report: BatchReport,
    started: Instant,
}

impl Committed {
    /// The database it was written to (flush it before settling).
    pub fn db(&self) -> &Arc<ViewDb> {
        &self.db
    }
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Events applied.
    pub applied: u64,
    /// Duplicates skipped.
    pub duplicates: u64,
    /// Poison events skipped for good.
    pub skipped: u64,
    /// Messages handed back for another attempt.
    pub retried: u64,
    /// Messages moved to the dead-letter queue.
    pub dead_lettered: u64,
}

/// Sleeps `delay` unless shutdown comes first; returns whether it did.
async fn sleep_or_shutdown(shutdown: &Shutdown, delay: Duration) -> bool {
    tokio::select! {
        _ = shutdown.wait() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

/// Runs `attempt` until it succeeds, with backoff, or shutdown.
async fn retry_until<T, E, F, Fut>(
    shutdown: &Shutdown,
    backoff: &Backoff,
    what: &str,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delays = backoff.delays();
    loop {
        let error = tokio::select! {
            _ = shutdown.wait() => anyhow::bail!("shut down before managing to {what}"),
            result = attempt() => match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            },
        };
        let delay = delays.next().unwrap_or(backoff.max);
        tracing::warn!(%error, ?delay, "cannot {what} yet; retrying");
        if sleep_or_shutdown(shutdown, delay).await {
            anyhow::bail!("shut down before managing to {what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(db: &Arc<ViewDb>, applied: u64) -> Committed {
        Committed {
            db: Arc::clone(db),
            deliveries: Arc::new(Vec::new()),
            settles: Vec::new(),
            report: BatchReport {
                applied,
                ..BatchReport::default()
            },
            started: Instant::now(),
        }
    }

    #[tokio::test]
    async fn one_flush_at_a_time_covers_every_batch_committed_before_it_in_order() {
        let temp = tempfile::tempdir().unwrap();
        let first = Arc::new(ViewDb::open(&temp.path().join("a"), DbOptions::default()).unwrap());
        let second = Arc::new(ViewDb::open(&temp.path().join("b"), DbOptions::default()).unwrap());
        let mut unflushed = Unflushed::default();
        assert!(unflushed.is_empty());

        unflushed.push(committed(&first, 1));
        assert!(
            unflushed.is_flushing(),
            "a flush starts with the first batch"
        );
        // Committed while it runs: they wait for the next flush, a swapped
        // database among them.
        unflushed.push(committed(&first, 2));
        unflushed.push(committed(&second, 3));
        assert_eq!(unflushed.waiting.len(), 2);

        let (result, batches) = unflushed.flushed().await;
        result.unwrap();
        let applied: Vec<u64> = batches.iter().map(|b| b.report.applied).collect();
        assert_eq!(applied, [1]);
        assert!(!unflushed.is_flushing() && !unflushed.is_empty());

        unflushed.start();
        let (result, batches) = unflushed.flushed().await;
        result.unwrap();
        let applied: Vec<u64> = batches.iter().map(|b| b.report.applied).collect();
        assert_eq!(applied, [2, 3], "the next flush takes the rest, in order");
        assert_eq!(
            Unflushed::databases(&batches).len(),
            2,
            "both databases are flushed"
        );
        assert!(unflushed.is_empty());
    }
}
