//! The relay: tails the log from its checkpoint and publishes every event, in
//! order, to the events exchange (DESIGN.md guarantee 4, "no dual write").
//!
//! Each event goes out persistent, `mandatory`, under its routing key
//! `<category>.<EventType>`, with the headers of
//! [`messaging::MessageHeaders::for_event`] (the store id included) and the
//! encoded [`RecordedEvent`](domain::envelope::RecordedEvent) as its body.
//! Up to [`RelayOptions::window`] messages are unconfirmed at a time. The
//! checkpoint is the first position the broker has not confirmed: it moves
//! only past confirmed events. A nack or a lost connection makes the relay
//! publish again from the checkpoint, so every event reaches the broker at
//! least once and, per stream, in order: a version never arrives before the
//! versions under it have (repeats aside). A publisher never carries on over
//! a lost channel with messages unconfirmed, which would put later events
//! ahead of lost ones. After a nack (a full queue) later messages already
//! sent may be ahead of the re-sent ones; consumers repair such a gap from
//! the store (DESIGN.md guarantee 5).
//!
//! An event no queue is bound for is returned by the broker and then
//! confirmed: no consumer wants that event type, so the relay counts it in
//! [`metric::UNROUTABLE`] and moves on (docs/adr/0005). A consumer declared
//! later catches up from the store when it starts, so nothing is lost by not
//! holding the relay for it.
//!
//! Events of the [`RelayOptions::unpublished`] categories (by default
//! [`domain::catalogue::UNPUBLISHED_CATEGORIES`], the saga's own record) are
//! not published at all: the relay moves past them, and the checkpoint moves
//! past them as soon as every event before them is confirmed
//! (docs/adr/0012).
//!
//! - [`checkpoint`]: the checkpoint file;
//! - [`bench`](mod@bench): the relay benchmark beside a raw publish-with-confirms baseline.

pub mod bench;
pub mod checkpoint;

use std::{
    collections::{HashSet, VecDeque},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use messaging::{
    AmqpConfig, AmqpTransport, Backoff, Namespace, OutgoingMessage, PublishError, PublishReport,
    Publisher, SharedTransport, Transport, TransportError,
};
use service_runtime::shutdown::Shutdown;
use tokio::{sync::watch, time::Instant};

use crate::store::Store;

/// Relay metric names.
pub mod metric {
    /// Events appended but not yet confirmed by the broker (head − checkpoint).
    pub const LAG: &str = "relay_lag_events";
    /// The relay's checkpoint: the first position not confirmed.
    pub const CHECKPOINT: &str = "relay_checkpoint";
    /// Events sent to the broker (re-sends included).
    pub const SENT: &str = "relay_sent_total";
    /// Seconds from an event's recording (before the log is synced) to its
    /// sending by the relay: the store's sync plus the relay's own delay.
    pub const AGE_AT_SEND: &str = "relay_event_age_at_send_seconds";
    /// Events confirmed by the broker.
    pub const CONFIRMED: &str = "relay_confirmed_total";
    /// Times the relay went back to its checkpoint, by reason
    /// (`nacked`, `connection`, `invalid`).
    pub const RESTARTS: &str = "relay_restarts_total";
    /// Events confirmed without reaching any queue (none bound for their
    /// routing key), by stream category.
    pub const UNROUTABLE: &str = "relay_unroutable_total";
    /// Events not published because their category is unpublished, by
    /// stream category (read again after a restart, counted again).
    pub const UNPUBLISHED: &str = "relay_unpublished_total";
}

/// How the relay works.
#[derive(Clone, Debug)]
pub struct RelayOptions {
    /// The most messages unconfirmed at a time.
    pub window: usize,
    /// The most events read from the log at a time.
    pub read_batch: usize,
    /// How often the checkpoint file is rewritten while it moves (in the
    /// background: publishing goes on meanwhile).
    pub checkpoint_interval: Duration,
    /// Delays before publishing again after a nack (a lost connection is
    /// retried by the transport with its own backoff).
    pub retry: Backoff,
    /// How long, on shutdown, the relay waits for the confirms of what it sent.
    pub drain_timeout: Duration,
    /// Stream categories whose events are not published (docs/adr/0012).
    pub unpublished: Vec<String>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            window: 1024,
            read_batch: 512,
            checkpoint_interval: Duration::from_millis(200),
            retry: Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(10),
            },
            drain_timeout: Duration::from_secs(5),
            unpublished: domain::catalogue::UNPUBLISHED_CATEGORIES
                .iter()
                .map(|category| (*category).to_owned())
                .collect(),
        }
    }
}

/// Publishes a store's log to a transport; see the module doc.
pub struct Relay {
    store: Store,
    transport: SharedTransport,
    options: RelayOptions,
    checkpoint_path: PathBuf,
    checkpoint: watch::Sender<u64>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("checkpoint_path", &self.checkpoint_path)
            .field("checkpoint", &*self.checkpoint.borrow())
            .field("options", &self.options)
            .finish()
    }
}

impl Relay {
    /// A relay of `store` to `transport`, resuming from the checkpoint kept in
    /// the store's directory for the transport's namespace.
    pub fn new(
        store: Store,
        transport: SharedTransport,
        options: RelayOptions,
    ) -> anyhow::Result<Self> {
        let checkpoint_path = checkpoint::path(store.dir(), transport.namespace());
        let position = checkpoint::read(&checkpoint_path)?;
        let head = store.head();
        anyhow::ensure!(
            position <= head,
            "the relay checkpoint {} is at {position}, past the store's head {head}: \
             it does not belong to this store",
            checkpoint_path.display()
        );
        let (checkpoint, _) = watch::channel(position);
        Ok(Self {
            store,
            transport,
            options: RelayOptions {
                window: options.window.max(1),
                read_batch: options.read_batch.max(1),
                ..options
            },
            checkpoint_path,
            checkpoint,
        })
    }

    /// The checkpoint as it moves (after confirms, before it is written to disk).
    pub fn watch_checkpoint(&self) -> watch::Receiver<u64> {
        self.checkpoint.subscribe()
    }

    /// Where the checkpoint is kept.
    pub fn checkpoint_path(&self) -> &std::path::Path {
        &self.checkpoint_path
    }

    /// Relays until `shutdown` fires or the store closes; then waits (at most
    /// [`RelayOptions::drain_timeout`]) for the confirms of what it sent and
    /// writes the checkpoint.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let store_id = self.store.store_id();
        let checkpoint = *self.checkpoint.borrow();
        let mut state = RunState {
            checkpoint,
            next: checkpoint,
            sent: VecDeque::new(),
            unroutable_seen: HashSet::new(),
        };
        let mut persisting =
            checkpoint::Background::new(self.checkpoint_path.clone(), state.checkpoint);
        tracing::info!(
            checkpoint = state.checkpoint,
            head = self.store.head(),
            namespace = %self.transport.namespace(),
            transport = self.transport.kind(),
            window = self.options.window,
            unpublished = ?self.options.unpublished,
            "relay started"
        );
        let mut head = self.store.watch_head();
        let mut store_open = true;
        let mut retry_delays = self.options.retry.delays();
        let mut publisher: Option<Box<dyn Publisher>> = None;
        'session: loop {
            if shutdown.is_triggered() {
                break;
            }
            let publisher = match &mut publisher {
                Some(publisher) => publisher,
                None => {
                    let created = tokio::select! {
                        created = self.transport.publisher() => created,
                        _ = shutdown.wait() => break 'session,
                    };
                    match created {
                        Ok(created) => publisher.insert(created),
                        Err(error) => {
                            let delay = retry_delays.next().unwrap_or(self.options.retry.max);
                            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "relay cannot get a publisher");
                            tokio::select! {
                                _ = tokio::time::sleep(delay) => continue 'session,
                                _ = shutdown.wait() => break 'session,
                            }
                        }
                    }
                }
            };
            // Everything from the checkpoint on is (re)sent in this session.
            state.next = state.checkpoint;
            state.sent.clear();
            let error: PublishError = 'pipeline: loop {
                // Fill the window from the log.
                'fill: while state.next - state.checkpoint < self.options.window as u64
                    && state.next < self.store.head()
                {
                    let next = state.next;
                    let room = self.options.window - (next - state.checkpoint) as usize;
                    let limit = room.min(self.options.read_batch);
                    let events = tokio::select! {
                        events = self.store.read_all(next, limit) => events,
                        _ = shutdown.wait() => break 'session,
                    };
                    let events = match events {
                        Ok(events) => events,
                        Err(error) => {
                            let delay = retry_delays.next().unwrap_or(self.options.retry.max);
                            tracing::error!(%error, position = next, retry_in_ms = delay.as_millis() as u64, "relay cannot read the log");
                            tokio::select! {
                                _ = tokio::time::sleep(delay) => continue 'fill,
                                _ = shutdown.wait() => break 'session,
                            }
                        }
                    };
                    let unpublished: Vec<bool> = events
                        .iter()
                        .map(|event| {
                            let category = event.category();
                            self.options.unpublished.iter().any(|c| c == category)
                        })
                        .collect();
                    let mut messages = Vec::with_capacity(events.len());
                    for (event, _) in events.iter().zip(&unpublished).filter(|(_, skip)| !**skip) {
                        messages.push(OutgoingMessage::for_event(event, store_id).with_context(
                            || format!("failed to encode the event at position {}", event.position),
                        )?);
                    }
                    // The batch goes to the broker together; a send waits
                    // while the transport reconnects.
                    let sent = tokio::select! {
                        sent = publisher.send_all(&messages) => sent,
                        _ = shutdown.wait() => break 'session,
                    };
                    if let Err(error) = sent {
                        break 'pipeline error;
                    }
                    let now = chrono::Utc::now();
                    for (event, skip) in events.iter().zip(&unpublished) {
                        state.next += 1;
                        if *skip {
                            ::metrics::counter!(metric::UNPUBLISHED, "category" => event.category().to_owned())
                                .increment(1);
                            continue;
                        }
                        let age = (now - event.recorded_at).to_std().unwrap_or_default();
                        ::metrics::histogram!(metric::AGE_AT_SEND).record(age.as_secs_f64());
                        tracing::trace!(
                            position = event.position,
                            stream = %event.stream,
                            age_us = age.as_micros() as u64,
                            "relay sent an event"
                        );
                        state.sent.push_back(event.position);
                        ::metrics::counter!(metric::SENT).increment(1);
                    }
                    // Unpublished events with nothing sent before them are done.
                    self.advance(&mut state);
                }

                let in_flight = state.next - state.checkpoint;
                if !store_open && in_flight == 0 {
                    tracing::info!("the store closed; relay stopping");
                    break 'session;
                }
                let window_full = in_flight >= self.options.window as u64;
                let persist_at = persisting.due(state.checkpoint, self.options.checkpoint_interval);
                let busy = persisting.is_busy();
                tokio::select! {
                    report = publisher.confirmed(), if in_flight > 0 => {
                        if report.confirmed > 0 {
                            retry_delays = self.options.retry.delays();
                        }
                        if let Some(error) = self.settle(&mut state, report) {
                            break 'pipeline error;
                        }
                    }
                    changed = head.changed(), if store_open && !window_full => {
                        // The sender lives in the writer: an error means the store closed.
                        store_open = changed.is_ok();
                    }
                    _ = sleep_until(persist_at) => persisting.start(state.checkpoint),
                    written = persisting.finished(), if busy => written?,
                    _ = shutdown.wait() => break 'session,
                }
                self.record_lag(state.checkpoint);
            };
            let reason = match &error {
                PublishError::Nacked { .. } => "nacked",
                PublishError::Returned { .. } => "returned",
                PublishError::Invalid { .. } => "invalid",
                PublishError::Transport(_) => "connection",
            };
            ::metrics::counter!(metric::RESTARTS, "reason" => reason).increment(1);
            tracing::warn!(
                %error,
                checkpoint = state.checkpoint,
                unconfirmed = state.next - state.checkpoint,
                "relay publishing again from its checkpoint"
            );
            if let PublishError::Invalid { .. } = error {
                anyhow::bail!(
                    "the relay cannot publish the event at {}: {error}",
                    state.checkpoint
                );
            }
            if !matches!(error, PublishError::Transport(_)) {
                // The broker refused it: give it time (a queue to drain)
                // before trying again.
                let delay = retry_delays.next().unwrap_or(self.options.retry.max);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => break 'session,
                }
            }
        }
        self.drain(publisher, &mut state).await;
        persisting.flush(state.checkpoint).await?;
        self.record_lag(state.checkpoint);
        tracing::info!(
            checkpoint = state.checkpoint,
            head = self.store.head(),
            "relay stopped"
        );
        Ok(())
    }

    /// On the way out: collects the confirms of what was sent, for a while.
    async fn drain(&self, publisher: Option<Box<dyn Publisher>>, state: &mut RunState) {
        let Some(mut publisher) = publisher else {
            return;
        };
        let deadline = Instant::now() + self.options.drain_timeout;
        while publisher.in_flight() > 0 {
            match tokio::time::timeout_at(deadline, publisher.confirmed()).await {
                Ok(report) => {
                    if self.settle(state, report).is_some() {
                        break;
                    }
                }
                Err(_) => {
                    tracing::warn!(
                        unconfirmed = publisher.in_flight(),
                        "relay stopping without every confirm; those events will be sent again"
                    );
                    break;
                }
            }
        }
    }

    /// Moves the checkpoint past what `report` confirms, unroutable events
    /// included; returns its error.
    fn settle(&self, state: &mut RunState, report: PublishReport) -> Option<PublishError> {
        for unroutable in &report.unroutable {
            let position = state
                .sent
                .get(unroutable.index)
                .copied()
                .unwrap_or(state.checkpoint + unroutable.index as u64);
            let category = unroutable
                .routing_key
                .split_once('.')
                .map_or(unroutable.routing_key.as_str(), |(category, _)| category);
            ::metrics::counter!(metric::UNROUTABLE, "category" => category.to_owned()).increment(1);
            if state.unroutable_seen.insert(unroutable.routing_key.clone()) {
                tracing::info!(
                    routing_key = %unroutable.routing_key,
                    position,
                    "no queue is bound for this routing key; the relay skips such events \
                     (consumers declared later catch up from the store)"
                );
            } else {
                tracing::debug!(
                    routing_key = %unroutable.routing_key,
                    position,
                    "relay skipped an event no queue is bound for"
                );
            }
        }
        if report.confirmed > 0 {
            let confirmed = report.confirmed.min(state.sent.len());
            state.sent.drain(..confirmed);
            ::metrics::counter!(metric::CONFIRMED).increment(report.confirmed as u64);
            self.advance(state);
        }
        report.error
    }

    /// Moves the checkpoint to the first event sent and not confirmed, or,
    /// with none, to the first event not read: the unpublished events
    /// between need no confirm.
    fn advance(&self, state: &mut RunState) {
        let checkpoint = state.sent.front().copied().unwrap_or(state.next);
        if checkpoint > state.checkpoint {
            state.checkpoint = checkpoint;
            self.checkpoint.send_replace(checkpoint);
        }
    }

    fn record_lag(&self, checkpoint: u64) {
        let head = self.store.head();
        ::metrics::gauge!(metric::LAG).set(head.saturating_sub(checkpoint) as f64);
        ::metrics::gauge!(metric::CHECKPOINT).set(checkpoint as f64);
    }
}

struct RunState {
    /// The first position not confirmed.
    checkpoint: u64,
    /// The first position not read from the log yet in this session.
    next: u64,
    /// Positions sent and not confirmed yet, oldest first (unpublished ones
    /// between them are not here).
    sent: VecDeque<u64>,
    /// Routing keys already reported unroutable at `info` (one line each).
    unroutable_seen: HashSet<String>,
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Relays `store` to `transport` until `shutdown` fires, with the default
/// [`RelayOptions`]; the checkpoint lives in the store's directory.
pub async fn run_relay(
    store: Store,
    transport: SharedTransport,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    Relay::new(store, transport, RelayOptions::default())?
        .run(shutdown)
        .await
}

/// Connects to RabbitMQ at `amqp_uri` (retrying with backoff, so the store
/// serves while the broker is away) and relays `store` to the `namespace`
/// with `options` until `shutdown` fires: what `shop event-store --amqp URL`
/// runs.
pub async fn run_amqp_relay(
    store: Store,
    amqp_uri: String,
    namespace: Namespace,
    options: RelayOptions,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    describe_metrics();
    let config = AmqpConfig::new(amqp_uri, namespace)
        .with_connection_name(format!("shop event-store relay {}", store.store_id()));
    let mut delays = config.backoff.delays();
    let transport = loop {
        let connect = tokio::select! {
            connect = AmqpTransport::connect(config.clone()) => connect,
            _ = shutdown.wait() => return Ok(()),
        };
        match connect {
            Ok(transport) => break transport,
            Err(TransportError::InvalidUri { reason }) => {
                anyhow::bail!("invalid --amqp URL: {reason}")
            }
            Err(error) => {
                let delay = delays.next().unwrap_or(config.backoff.max);
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "the relay cannot reach RabbitMQ");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return Ok(()),
                }
            }
        }
    };
    let transport = Arc::new(transport);
    let relayed = Relay::new(store, transport.clone(), options)?
        .run(shutdown)
        .await;
    transport.close().await;
    relayed
}

/// Registers the relay's metric descriptions.
pub fn describe_metrics() {
    ::metrics::describe_gauge!(
        metric::LAG,
        "Events appended but not yet confirmed by the broker"
    );
    ::metrics::describe_gauge!(
        metric::CHECKPOINT,
        "First position not confirmed by the broker"
    );
    ::metrics::describe_counter!(metric::SENT, "Events sent to the broker, re-sends included");
    ::metrics::describe_histogram!(
        metric::AGE_AT_SEND,
        ::metrics::Unit::Seconds,
        "Time from an event's recording (before the log sync) to its sending by the relay"
    );
    ::metrics::describe_counter!(metric::CONFIRMED, "Events confirmed by the broker");
    ::metrics::describe_counter!(
        metric::RESTARTS,
        "Times the relay went back to its checkpoint"
    );
    ::metrics::describe_counter!(
        metric::UNROUTABLE,
        "Events confirmed without reaching a queue (none bound for their routing key), skipped"
    );
    ::metrics::describe_counter!(
        metric::UNPUBLISHED,
        "Events not published because their category is unpublished"
    );
}
