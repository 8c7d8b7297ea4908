//! The order fulfillment saga's runtime (`shop saga`).
//!
//! It consumes its own durable queue, `<ns>.saga`, bound to the events it
//! reacts to that none of its own commands cause
//! ([`domain::saga::OUTSIDE_TRIGGERS`]: an order placed or cancelled, a
//! shipment dispatched or delivered). For each event (a *trigger*) it runs
//! the domain's saga decider against `fulfillment-<order>`, records the
//! decision there (event ids derived from the trigger's id, so recording
//! twice writes once), then sends the commands the decision asks for, each
//! with an idempotency key derived from the trigger. A delivery is
//! acknowledged only once every command it caused was accepted or refused
//! for good; while a service is down the saga retries with backoff and acks
//! nothing. A redelivered trigger re-sends the commands recorded for it: the
//! services drop the duplicates by key, so nothing has two effects.
//!
//! Answers (docs/adr/0014): each command is sent with `Prefer:
//! return=representation`, and its answer carries the events it appended,
//! exactly as stored (a repeat answers with the first try's events). The
//! saga handles those triggers at once, in the same order's chain; that is
//! how it learns what its commands caused. The delivery that started the
//! chain is acknowledged only once the whole chain is handled: a saga that
//! dies halfway gets it again, re-sends the recorded commands, and follows
//! the same answers. It remembers the triggers it has fully handled, so one
//! that the broker brings anyway (a queue bound the old way, a cancellation
//! the saga itself asked for) is only acknowledged. A trigger the domain
//! never decides on (`domain::saga::may_react_to`: an order confirmed,
//! shipped or delivered, a reservation committed) is acknowledged without
//! loading the order's saga state, which would cost a store read.
//!
//! Ordering (DESIGN.md guarantee 5): deliveries of one order are handled in
//! sequence, sorted by global position. For the per-order streams
//! (`order-`, `payment-`, `shipment-`) the saga keeps the last version it
//! applied; an event beyond the next one first fetches the missing versions
//! from the store and applies them in order, and an older one is a duplicate.
//! Stock streams are shared by every order of a SKU, so their versions say
//! nothing about one order; there the saga relies on causality instead: it
//! asks for a release or a commit only after it noted the reservation, so an
//! order's stock events cannot overtake each other, and duplicates are
//! dropped by trigger id.
//!
//! Modules: [`fulfillment`] (the saga's aggregate for the repository),
//! [`dispatch`] (commands over HTTP).

pub mod dispatch;
pub mod fulfillment;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use domain::envelope::{EventMetadata, RecordedEvent};
use domain::saga::{self, Trigger};
use domain::values::OrderId;
use messaging::{Backoff, ConsumerName, ConsumerSpec, Delivery, DeliveryTag, SharedTransport};
use service_runtime::ops::ReadyCheck;
use service_runtime::shutdown::Shutdown;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::event_log::EventLog;
use crate::idempotency::IdempotencyKey;
use crate::repository::{CommandError, Repository, RepositoryOptions, Request};
use crate::snapshots::SnapshotStore;
use dispatch::{Delivered, Dispatcher, ServiceUrls, ShuttingDown};
use fulfillment::Fulfillment;

/// How the saga runs. Every flag also reads a `SHOP_…` variable.
#[derive(Clone, Debug, clap::Args)]
pub struct SagaConfig {
    /// Address of its `/health`, `/ready` and `/metrics`.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:7010")]
    pub listen: SocketAddr,

    /// The event store's base URL.
    #[arg(long, env = "SHOP_STORE_URL", default_value = "http://127.0.0.1:2113")]
    pub store_url: String,

    /// RabbitMQ.
    #[arg(
        long,
        env = "SHOP_AMQP",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp: String,

    /// Prefix of every RabbitMQ name; the saga's queue is `<ns>.saga`.
    #[arg(long, env = "SHOP_NAMESPACE", default_value = "shop")]
    pub namespace: String,

    /// The orders service.
    #[arg(long, env = "SHOP_ORDERS_URL", default_value = "http://127.0.0.1:7005")]
    pub orders_url: String,

    /// The payments service.
    #[arg(
        long,
        env = "SHOP_PAYMENTS_URL",
        default_value = "http://127.0.0.1:7006"
    )]
    pub payments_url: String,

    /// The inventory service.
    #[arg(
        long,
        env = "SHOP_INVENTORY_URL",
        default_value = "http://127.0.0.1:7007"
    )]
    pub inventory_url: String,

    /// The shipping service.
    #[arg(
        long,
        env = "SHOP_SHIPPING_URL",
        default_value = "http://127.0.0.1:7008"
    )]
    pub shipping_url: String,

    /// How many deliveries the broker hands out unacknowledged, and the
    /// largest batch handled at once.
    #[arg(long, env = "SHOP_SAGA_PREFETCH", default_value_t = 256)]
    pub prefetch: u16,
}

impl Default for SagaConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7010)),
            store_url: "http://127.0.0.1:2113".to_owned(),
            amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            namespace: "shop".to_owned(),
            orders_url: "http://127.0.0.1:7005".to_owned(),
            payments_url: "http://127.0.0.1:7006".to_owned(),
            inventory_url: "http://127.0.0.1:7007".to_owned(),
            shipping_url: "http://127.0.0.1:7008".to_owned(),
            prefetch: 256,
        }
    }
}

impl SagaConfig {
    fn urls(&self) -> ServiceUrls {
        ServiceUrls {
            orders: self.orders_url.clone(),
            payments: self.payments_url.clone(),
            inventory: self.inventory_url.clone(),
            shipping: self.shipping_url.clone(),
        }
    }
}

/// The saga's consumer: its queue name and bindings.
pub fn consumer_spec(prefetch: u16) -> anyhow::Result<ConsumerSpec> {
    let name = ConsumerName::parse("saga")?;
    // Only what no command of its own causes: the rest comes back in the
    // commands' answers (docs/adr/0014).
    let bindings = saga::OUTSIDE_TRIGGERS
        .iter()
        .map(|(category, event_type)| format!("{category}.{event_type}"));
    Ok(ConsumerSpec::new(name, bindings)?
        .with_prefetch(prefetch)
        .with_delivery_limit(20))
}

/// Runs the saga against RabbitMQ and the store over HTTP until `shutdown`.
pub async fn run(config: SagaConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let namespace = messaging::Namespace::parse(&config.namespace)?;
    let transport = messaging::AmqpTransport::connect(
        messaging::AmqpConfig::new(config.amqp.clone(), namespace)
            .with_connection_name("shop saga"),
    )
    .await
    .context("cannot reach RabbitMQ")?;
    let log: Arc<dyn EventLog> = Arc::new(crate::event_log::StoreLog::new(&config.store_url)?);
    run_with(config, Arc::new(transport), log, shutdown).await
}

/// Runs the saga over any transport and store port (`shop dev` passes the
/// in-process ones) until `shutdown`.
pub async fn run_with(
    config: SagaConfig,
    transport: SharedTransport,
    log: Arc<dyn EventLog>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let spec = consumer_spec(config.prefetch)?;
    let consumer = transport
        .consumer(&spec)
        .await
        .context("cannot consume the saga's queue")?;
    tracing::info!(
        listen = %listener.local_addr().map_or_else(|_| config.listen.to_string(), |a| a.to_string()),
        queue = consumer.queue(),
        transport = transport.kind(),
        store = %config.store_url,
        orders = %config.orders_url,
        payments = %config.payments_url,
        inventory = %config.inventory_url,
        shipping = %config.shipping_url,
        "saga started"
    );
    let ready_log = Arc::clone(&log);
    let ready_transport = Arc::clone(&transport);
    let ready: ReadyCheck = Arc::new(move || {
        let log = Arc::clone(&ready_log);
        let transport = Arc::clone(&ready_transport);
        Box::pin(async move {
            log.ping().await.map_err(|e| format!("event store: {e}"))?;
            transport.ready().await.map_err(|e| format!("broker: {e}"))
        })
    });
    let http = tokio::spawn(service_runtime::serve(
        listener,
        service_runtime::ops::ops_router(ready),
        shutdown.waiter(),
    ));
    let saga = Saga::new(
        log,
        Dispatcher::new(config.urls(), Backoff::default()),
        shutdown.clone(),
    );
    let result = saga
        .consume(consumer, usize::from(config.prefetch.max(1)))
        .await;
    shutdown.trigger();
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "the saga's HTTP server failed"),
        Err(error) => tracing::warn!(%error, "the saga's HTTP task failed"),
    }
    tracing::info!("saga stopped");
    result
}

/// The saga: the fulfillment repository, the dispatcher and what it knows
/// of stream versions.
struct Saga {
    log: Arc<dyn EventLog>,
    fulfillments: Arc<Repository<Fulfillment>>,
    dispatcher: Dispatcher,
    shutdown: Shutdown,
    /// Last applied version of each per-order stream (`order-`, `payment-`,
    /// `shipment-`); forgotten on restart, which only costs a read.
    applied: parking_lot::Mutex<HashMap<String, u64>>,
    /// Triggers whose decision is recorded and whose commands were all
    /// answered, most recent last; forgotten on restart, which only costs
    /// handling a redelivery again.
    handled: parking_lot::Mutex<RecentTriggers>,
    backoff: Backoff,
}

/// A bounded set of trigger ids, oldest forgotten first.
#[derive(Default)]
struct RecentTriggers {
    ids: std::collections::HashSet<uuid::Uuid>,
    order: std::collections::VecDeque<uuid::Uuid>,
}

impl RecentTriggers {
    /// How many it keeps: at 300 orders/s and five triggers an order, the
    /// last ~30 s, well beyond what the broker takes to redeliver after a
    /// reconnect or to bring the saga's own `cancel-order`'s event.
    const CAPACITY: usize = 50_000;

    fn insert(&mut self, id: uuid::Uuid) {
        if self.ids.insert(id) {
            self.order.push_back(id);
            if self.order.len() > Self::CAPACITY {
                if let Some(oldest) = self.order.pop_front() {
                    self.ids.remove(&oldest);
                }
            }
        }
    }

    fn contains(&self, id: &uuid::Uuid) -> bool {
        self.ids.contains(id)
    }
}

/// How the handling of one delivery ended.
enum Handled {
    /// Done: every command was accepted or refused.
    Done,
    /// The event cannot be handled; dead-letter it.
    Poison(String),
    /// The saga is shutting down; leave it unacknowledged.
    Stopped,
}

/// What the consumer loop woke up for.
enum Next {
    Stop,
    Done(Finished),
    Batch(Result<Vec<Delivery>, messaging::TransportError>),
}

/// A handler task's report: how its delivery ended, and which chain it was.
struct Finished {
    tag: DeliveryTag,
    handled: Handled,
    order: OrderId,
    chain: u64,
}

/// The last handler task of each order with a delivery in flight: the next
/// delivery of that order waits for it. An order's entry is dropped as soon
/// as its last task reports, because a finished task's memory (its whole
/// future) lives until its handle is dropped; keeping the handles of every
/// order seen cost the saga ~10 KB per order.
#[derive(Default)]
struct Chains {
    last: HashMap<OrderId, (u64, JoinHandle<()>)>,
    next_id: u64,
}

impl Chains {
    /// Takes the order's last task (to be awaited by the next) and numbers the next one.
    fn take(&mut self, order: OrderId) -> (Option<JoinHandle<()>>, u64) {
        let id = self.next_id;
        self.next_id += 1;
        (self.last.remove(&order).map(|(_, handle)| handle), id)
    }

    fn put(&mut self, order: OrderId, id: u64, handle: JoinHandle<()>) {
        self.last.insert(order, (id, handle));
    }

    /// Forgets the order's chain if `id` is still its last task.
    fn finished(&mut self, order: OrderId, id: u64) {
        if self.last.get(&order).is_some_and(|(last, _)| *last == id) {
            self.last.remove(&order);
        }
    }

    fn len(&self) -> usize {
        self.last.len()
    }

    fn drain(&mut self) -> impl Iterator<Item = JoinHandle<()>> + '_ {
        self.last.drain().map(|(_, (_, handle))| handle)
    }
}

/// Deliveries handed out and not yet acknowledged, in tag order; the
/// finished prefix is acknowledged at once with `multiple`.
#[derive(Default)]
struct AckWindow {
    open: BTreeMap<DeliveryTag, Delivery>,
    finished: std::collections::BTreeSet<DeliveryTag>,
}

impl AckWindow {
    fn start(&mut self, delivery: Delivery) {
        self.open.insert(delivery.tag, delivery);
    }

    fn finish(&mut self, tag: DeliveryTag) {
        if self.open.contains_key(&tag) {
            self.finished.insert(tag);
        }
    }

    /// Drops a delivery that is settled another way (dead-lettered).
    fn forget(&mut self, tag: DeliveryTag) -> Option<Delivery> {
        self.finished.remove(&tag);
        self.open.remove(&tag)
    }

    async fn acknowledge(&mut self, consumer: &mut dyn messaging::Consumer) {
        let mut last = None;
        while let Some((&first, _)) = self.open.first_key_value() {
            if !self.finished.remove(&first) {
                break;
            }
            self.open.remove(&first);
            last = Some(first);
        }
        if let Some(tag) = last {
            if let Err(error) = consumer.ack_up_to(tag).await {
                // Unacknowledged deliveries come back; handling them again
                // has no second effect.
                tracing::warn!(%error, "cannot acknowledge; the deliveries will come again");
            }
        }
    }
}

impl Saga {
    /// Versions remembered before the map is cleared (~100 bytes each; a
    /// stream forgotten costs its next trigger one store read, the gap
    /// repair, whose events the saga state has already handled).
    const MAX_TRACKED_STREAMS: usize = 100_000;

    fn new(log: Arc<dyn EventLog>, dispatcher: Dispatcher, shutdown: Shutdown) -> Arc<Self> {
        let options = RepositoryOptions {
            snapshot_every: 0,
            conflict_retries: 20,
            // An order's saga state and recent ids take ~6 KB; its
            // triggers mostly come within a second of each other, and a
            // later one (dispatch, delivery) loads an evicted one again.
            cache_capacity: 2_000,
        };
        Arc::new(Self {
            fulfillments: Arc::new(Repository::new(
                Arc::clone(&log),
                SnapshotStore::disabled(),
                options,
            )),
            log,
            dispatcher,
            shutdown,
            applied: parking_lot::Mutex::new(HashMap::new()),
            handled: parking_lot::Mutex::new(RecentTriggers::default()),
            backoff: Backoff::default(),
        })
    }

    /// Consumes until shutdown. Deliveries of one order are handled in
    /// sequence, different orders at once, so an order waiting on a service
    /// that is down holds back only itself (and the acknowledgement of what
    /// came after it, which is a prefix acknowledgement with `multiple`).
    async fn consume(
        self: &Arc<Self>,
        mut consumer: Box<dyn messaging::Consumer>,
        max_batch: usize,
    ) -> anyhow::Result<()> {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
        let mut window = AckWindow::default();
        let mut chains = Chains::default();
        loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.wait() => Next::Stop,
                Some(done) = done_rx.recv() => Next::Done(done),
                batch = consumer.next_batch(max_batch, Duration::from_millis(2)) => Next::Batch(batch),
            };
            match next {
                Next::Stop => break,
                Next::Done(finished) => {
                    self.complete(&mut window, consumer.as_mut(), &mut chains, finished)
                        .await;
                    while let Ok(finished) = done_rx.try_recv() {
                        self.complete(&mut window, consumer.as_mut(), &mut chains, finished)
                            .await;
                    }
                    metrics::gauge!("saga_orders_in_flight").set(chains.len() as f64);
                    window.acknowledge(consumer.as_mut()).await;
                }
                Next::Batch(Err(error)) => {
                    tracing::warn!(%error, "the saga's consumer failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = self.shutdown.wait() => break,
                    }
                }
                Next::Batch(Ok(batch)) => {
                    metrics::histogram!("saga_batch_size").record(batch.len() as f64);
                    self.dispatch_batch(
                        batch,
                        &mut window,
                        consumer.as_mut(),
                        &mut chains,
                        &done_tx,
                    )
                    .await;
                    window.acknowledge(consumer.as_mut()).await;
                }
            }
        }
        // Let the handlers notice the shutdown, then acknowledge what they finished.
        drop(done_tx);
        let pending: Vec<JoinHandle<()>> = chains.drain().collect();
        for chain in pending {
            let _ = chain.await;
        }
        while let Some(finished) = done_rx.recv().await {
            self.complete(&mut window, consumer.as_mut(), &mut chains, finished)
                .await;
        }
        window.acknowledge(consumer.as_mut()).await;
        Ok(())
    }

    /// Starts handling a batch: each delivery is chained after the previous
    /// one of its order.
    async fn dispatch_batch(
        self: &Arc<Self>,
        batch: Vec<Delivery>,
        window: &mut AckWindow,
        consumer: &mut dyn messaging::Consumer,
        chains: &mut Chains,
        done: &mpsc::UnboundedSender<Finished>,
    ) {
        let mut readable = Vec::with_capacity(batch.len());
        for delivery in batch {
            let read = delivery
                .decode_event()
                .map_err(|error| format!("undecodable body: {error}"))
                .and_then(|record| {
                    Trigger::from_recorded(&record)
                        .map(|trigger| (record, trigger))
                        .map_err(|error| format!("unreadable event: {error}"))
                });
            match read {
                Ok((record, trigger)) => readable.push((delivery, record, trigger)),
                Err(reason) => {
                    tracing::error!(routing_key = %delivery.routing_key, %reason, "dead-lettering an unreadable message");
                    if let Err(error) = consumer.dead_letter(&delivery, &reason).await {
                        tracing::warn!(%error, "cannot dead-letter; it will be redelivered");
                    }
                }
            }
        }
        // In log order, so that an order's events are handled as recorded.
        readable.sort_by_key(|(_, record, _)| record.position);
        for (delivery, record, trigger) in readable {
            let tag = delivery.tag;
            window.start(delivery);
            let Some(order_id) = saga::order_id_of(&trigger.event) else {
                window.finish(tag);
                continue;
            };
            let (previous, id) = chains.take(order_id);
            let this = Arc::clone(self);
            let done = done.clone();
            let chain = tokio::spawn(async move {
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                let handled = match this.handle_delivery(record, trigger, order_id).await {
                    Ok(handled) => handled,
                    Err(ShuttingDown) => Handled::Stopped,
                };
                let _ = done.send(Finished {
                    tag,
                    handled,
                    order: order_id,
                    chain: id,
                });
            });
            chains.put(order_id, id, chain);
        }
    }

    async fn complete(
        &self,
        window: &mut AckWindow,
        consumer: &mut dyn messaging::Consumer,
        chains: &mut Chains,
        finished: Finished,
    ) {
        let Finished {
            tag,
            handled,
            order,
            chain,
        } = finished;
        chains.finished(order, chain);
        match handled {
            Handled::Done => {
                metrics::counter!("saga_events_total").increment(1);
                window.finish(tag);
            }
            // Left unacknowledged: the broker hands it out again.
            Handled::Stopped => {}
            Handled::Poison(reason) => {
                if let Some(delivery) = window.forget(tag) {
                    tracing::error!(routing_key = %delivery.routing_key, %reason, "dead-lettering an event the saga cannot handle");
                    if let Err(error) = consumer.dead_letter(&delivery, &reason).await {
                        tracing::warn!(%error, "cannot dead-letter; it will be redelivered");
                    }
                }
            }
        }
    }

    fn tracks_versions(stream: &str) -> bool {
        matches!(
            domain::envelope::stream_category(stream),
            domain::order::STREAM_CATEGORY
                | domain::payment::STREAM_CATEGORY
                | domain::shipment::STREAM_CATEGORY
        )
    }

    /// Applies missing versions of the event's stream first (per-order
    /// streams), then the event.
    ///
    /// Answers with the events the commands it sent appended (see
    /// [`Self::handle_delivery`]).
    async fn handle_in_order(
        &self,
        record: RecordedEvent,
        trigger: Trigger,
    ) -> Result<(Handled, Vec<RecordedEvent>), ShuttingDown> {
        let tracks = Self::tracks_versions(&record.stream);
        if self.handled.lock().contains(&record.event_id) {
            // Handled already, from a command's answer: nothing to do again.
            metrics::counter!("saga_triggers_already_handled_total").increment(1);
            if tracks {
                self.mark_applied(&record.stream, record.version);
            }
            return Ok((Handled::Done, Vec::new()));
        }
        if !tracks {
            return self.handle(&record, trigger).await;
        }
        let known = self.applied.lock().get(&record.stream).copied();
        let next = known.map_or(0, |version| version + 1);
        let mut answered = Vec::new();
        if record.version > next {
            // A gap (or nothing known since start): fetch what comes before.
            metrics::counter!("saga_gap_repairs_total").increment(1);
            let missing = self.fetch(&record.stream, next, record.version).await?;
            for earlier in missing {
                match Trigger::from_recorded(&earlier) {
                    Ok(earlier_trigger) => match self.handle(&earlier, earlier_trigger).await? {
                        (Handled::Poison(reason), _) => {
                            tracing::error!(%reason, "skipping an unreadable event");
                        }
                        (_, more) => answered.extend(more),
                    },
                    Err(error) => {
                        tracing::error!(%error, stream = %earlier.stream, version = earlier.version, "skipping an unreadable event");
                    }
                }
                self.mark_applied(&earlier.stream, earlier.version);
            }
        }
        // An older version is a duplicate: handling it again only re-sends
        // the commands recorded for it, which the services drop by key.
        let (handled, more) = self.handle(&record, trigger).await?;
        self.mark_applied(&record.stream, record.version);
        answered.extend(more);
        Ok((handled, answered))
    }

    /// Handles a delivered trigger, then the events its commands answered
    /// with, and theirs in turn: the saga is not bound for the events its
    /// own commands cause and takes them from the answers instead
    /// (docs/adr/0014). The delivery is acknowledged only after all of them
    /// are handled, so a saga that stops halfway gets it again and, its
    /// commands being repeats now, the same answers. An answered event that
    /// cannot be handled makes the delivery poison, with the reason.
    async fn handle_delivery(
        &self,
        record: RecordedEvent,
        trigger: Trigger,
        order: OrderId,
    ) -> Result<Handled, ShuttingDown> {
        let (handled, answered) = self.handle_in_order(record, trigger).await?;
        let mut queue = std::collections::VecDeque::from(answered);
        while let Some(event) = queue.pop_front() {
            let trigger = match Trigger::from_recorded(&event) {
                Ok(trigger) => trigger,
                Err(error) => {
                    return Ok(Handled::Poison(format!(
                        "an answered event ({} {} of {}) is unreadable: {error}",
                        event.event_type, event.version, event.stream
                    )))
                }
            };
            if saga::order_id_of(&trigger.event) != Some(order) {
                // A command of this order answered with another order's
                // event: nothing the saga should act on from here.
                tracing::error!(stream = %event.stream, version = event.version, "an answer concerns another order; ignored");
                continue;
            }
            metrics::counter!("saga_answers_handled_total").increment(1);
            let (stream, version) = (event.stream.clone(), event.version);
            match self.handle_in_order(event, trigger).await? {
                (Handled::Done, more) => queue.extend(more),
                (Handled::Poison(reason), _) => {
                    return Ok(Handled::Poison(format!(
                        "an answered event ({version} of {stream}) cannot be handled: {reason}"
                    )))
                }
                (Handled::Stopped, _) => return Ok(Handled::Stopped),
            }
        }
        Ok(handled)
    }

    fn mark_applied(&self, stream: &str, version: u64) {
        let mut applied = self.applied.lock();
        if applied.len() >= Self::MAX_TRACKED_STREAMS {
            applied.clear();
        }
        let entry = applied.entry(stream.to_owned()).or_insert(version);
        *entry = (*entry).max(version);
    }

    /// Versions `from..until` of `stream`, retrying while the store is down.
    async fn fetch(
        &self,
        stream: &str,
        from: u64,
        until: u64,
    ) -> Result<Vec<RecordedEvent>, ShuttingDown> {
        let wanted = usize::try_from(until - from).unwrap_or(usize::MAX);
        let mut delays = self.backoff.delays();
        loop {
            match self.log.read_stream(stream, from, wanted).await {
                Ok(events) => {
                    return Ok(events
                        .into_iter()
                        .filter(|event| event.version < until)
                        .collect())
                }
                Err(error) => {
                    tracing::warn!(%error, stream, "cannot read missing versions; retrying");
                    self.pause(delays.next()).await?;
                }
            }
        }
    }

    async fn pause(&self, delay: Option<Duration>) -> Result<(), ShuttingDown> {
        let delay = delay.unwrap_or(self.backoff.max);
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = self.shutdown.wait() => Err(ShuttingDown),
        }
    }

    /// Records the saga's decision for one trigger and sends its commands,
    /// in a span that carries the event's correlation and causation ids.
    async fn handle(
        &self,
        record: &RecordedEvent,
        trigger: Trigger,
    ) -> Result<(Handled, Vec<RecordedEvent>), ShuttingDown> {
        let metadata = record.parsed_metadata();
        let span = tracing::info_span!(
            "saga",
            stream = %record.stream,
            version = record.version,
            event_type = %record.event_type,
            event_id = %record.event_id,
            correlation_id = ?metadata.correlation_id,
            causation_id = ?metadata.causation_id,
        );
        tracing::Instrument::instrument(self.handle_traced(record, trigger), span).await
    }

    async fn handle_traced(
        &self,
        record: &RecordedEvent,
        trigger: Trigger,
    ) -> Result<(Handled, Vec<RecordedEvent>), ShuttingDown> {
        let Some(order_id) = saga::order_id_of(&trigger.event) else {
            return Ok((Handled::Done, Vec::new()));
        };
        if !saga::may_react_to(&trigger.event) {
            // Nothing to decide, whatever the state: no need to load it.
            metrics::counter!("saga_triggers_without_decision_total").increment(1);
            return Ok((Handled::Done, Vec::new()));
        }
        let trigger_id = trigger.event_id;
        let stream = saga::stream_name(&order_id);
        let key = match IdempotencyKey::parse(&format!("saga:{trigger_id}")) {
            Ok(key) => key,
            Err(error) => return Ok((Handled::Poison(error.to_string()), Vec::new())),
        };
        let source = record.parsed_metadata();
        let metadata = EventMetadata {
            correlation_id: source.correlation_id.or(Some(order_id.as_uuid())),
            causation_id: Some(trigger_id),
            traceparent: source.traceparent.clone(),
            actor: None,
        };
        let mut delays = self.backoff.delays();
        let decided = loop {
            let observed = Arc::new(parking_lot::Mutex::new(None::<Vec<saga::Event>>));
            let observer = Arc::clone(&observed);
            let trigger = trigger.clone();
            let request = Request::<Fulfillment> {
                // A trigger already decided is not decided again: its
                // recorded decision is re-sent below.
                decide: Box::new(move |state| {
                    if state.decisions.contains_key(&trigger.event_id) {
                        return Ok(Vec::new());
                    }
                    Ok(saga::decide(&state.saga, &trigger))
                }),
                key: Some(key.clone()),
                metadata: metadata.clone(),
                observe: Some(Box::new(move |state| {
                    let recorded = state
                        .decisions
                        .get(&trigger_id)
                        .cloned()
                        .unwrap_or_default();
                    *observer.lock() = Some(recorded);
                })),
            };
            match self.fulfillments.execute(stream.clone(), request).await {
                Ok(_) => break observed.lock().take().unwrap_or_default(),
                Err(CommandError::Internal(reason)) => {
                    return Ok((Handled::Poison(reason), Vec::new()));
                }
                Err(error) => {
                    tracing::warn!(%error, %stream, "cannot record a saga decision; retrying");
                    self.pause(delays.next()).await?;
                }
            }
        };
        let commands: Vec<_> = decided.iter().flat_map(saga::commands_for).collect();
        tracing::debug!(
            event_id = %trigger_id,
            stream = %record.stream,
            version = record.version,
            event_type = %record.event_type,
            decided = decided.len(),
            commands = commands.len(),
            "trigger handled"
        );
        let mut answered = Vec::new();
        for command in &commands {
            if let Delivered::Accepted { events } = self
                .dispatcher
                .send(command, metadata.correlation_id, trigger_id, &self.shutdown)
                .await?
            {
                answered.extend(events);
            }
        }
        self.handled.lock().insert(trigger_id);
        Ok((Handled::Done, answered))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_saga_binds_no_category_the_relay_does_not_publish() {
        let spec = super::consumer_spec(10).unwrap();
        assert_eq!(spec.bindings.len(), domain::saga::OUTSIDE_TRIGGERS.len());
        for binding in &spec.bindings {
            let (category, _) = binding.split_once('.').unwrap();
            assert!(
                !domain::catalogue::UNPUBLISHED_CATEGORIES.contains(&category),
                "the saga binds {binding}, which only the store holds (docs/adr/0012)"
            );
        }
    }

    #[tokio::test]
    async fn an_orders_chain_is_forgotten_when_its_last_task_reports_and_kept_while_a_later_one_runs(
    ) {
        let mut chains = super::Chains::default();
        let order = domain::values::OrderId::from_uuid(uuid::Uuid::from_u128(7));
        let (previous, first) = chains.take(order);
        assert!(previous.is_none());
        chains.put(order, first, tokio::spawn(async {}));
        let (previous, second) = chains.take(order);
        let previous = previous.expect("the second delivery waits for the first");
        chains.put(
            order,
            second,
            tokio::spawn(async move {
                let _ = previous.await;
            }),
        );
        // The first task's report comes after the second was chained behind it.
        chains.finished(order, first);
        assert_eq!(chains.len(), 1, "the second task is still the order's last");
        chains.finished(order, second);
        assert_eq!(
            chains.len(),
            0,
            "nothing is kept once the last task reported"
        );
    }
}
