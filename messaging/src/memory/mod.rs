//! An in-process transport with the semantics of the AMQP one, for
//! `shop dev --broker memory` and for tests of code above the transport.
//!
//! Topic routing with `*` and `#`, one queue per consumer, manual acks with
//! a prefetch, unacknowledged messages handed back when a consumer goes away,
//! a delivery limit past which messages move to the consumer's dead-letter
//! queue, and unroutable messages returned to the publisher. Nothing is
//! durable: the queues live as long as the process.

mod topic;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::{
    headers::{names, MessageHeaders},
    message::{Delivery, DeliveryTag, OutgoingMessage},
    metrics,
    namespace::{ConsumerName, Namespace},
    transport::{
        Consumer, ConsumerSpec, PublishError, PublishReport, Publisher, QueueRole, Transport,
        TransportError, Unroutable,
    },
};

#[derive(Clone, Debug)]
struct Stored {
    routing_key: String,
    body: Vec<u8>,
    headers: MessageHeaders,
    delivery_count: u32,
    redelivered: bool,
}

#[derive(Debug, Default)]
struct Queue {
    bindings: BTreeSet<String>,
    ready: VecDeque<Stored>,
    /// Handed out and not settled, by consumer id and tag.
    unacked: HashMap<u64, BTreeMap<u64, Stored>>,
    /// `Some` for a consumer's main queue; its dead letters go to `dead_letters`.
    delivery_limit: Option<u32>,
    dead_letters: Option<(String, String)>,
    notify: Arc<Notify>,
}

#[derive(Debug, Default)]
struct State {
    exchanges: bool,
    queues: HashMap<String, Queue>,
    declared: BTreeSet<ConsumerName>,
    next_consumer: u64,
}

impl State {
    fn route(&mut self, message: &OutgoingMessage) -> usize {
        let mut routed = 0;
        for queue in self.queues.values_mut() {
            if queue
                .bindings
                .iter()
                .any(|pattern| topic::matches(pattern, &message.routing_key))
            {
                queue.ready.push_back(Stored {
                    routing_key: message.routing_key.clone(),
                    body: message.body.clone(),
                    headers: message.headers.clone(),
                    delivery_count: 0,
                    redelivered: false,
                });
                queue.notify.notify_waiters();
                routed += 1;
            }
        }
        routed
    }

    /// Moves a message to a queue's dead-letter queue, as the broker would.
    fn dead_letter(&mut self, queue: &str, mut message: Stored, headers: &[(&str, &str)]) {
        // A dead-letter queue's own dead letters go back into it, as they do
        // through the broker's dead-letter exchange.
        let (dlq, routing_key) = self
            .queues
            .get(queue)
            .and_then(|q| q.dead_letters.clone())
            .unwrap_or_else(|| (queue.to_owned(), message.routing_key.clone()));
        message
            .headers
            .extra
            .entry(names::ORIGINAL_ROUTING_KEY.to_owned())
            .or_insert_with(|| message.routing_key.clone());
        for (name, value) in headers {
            message
                .headers
                .extra
                .insert((*name).to_owned(), (*value).to_owned());
        }
        message.routing_key = routing_key;
        message.delivery_count = 0;
        message.redelivered = false;
        if let Some(target) = self.queues.get_mut(&dlq) {
            target.ready.push_back(message);
            target.notify.notify_waiters();
        }
    }

    /// Hands a message back to its queue, or dead-letters it past the limit.
    fn give_back(&mut self, queue: &str, mut message: Stored) {
        message.delivery_count = message.delivery_count.saturating_add(1);
        message.redelivered = true;
        let limit = self.queues.get(queue).and_then(|q| q.delivery_limit);
        if limit.is_some_and(|limit| message.delivery_count > limit) {
            self.dead_letter(queue, message, &[(names::DEATH_REASON, "delivery_limit")]);
        } else if let Some(q) = self.queues.get_mut(queue) {
            q.ready.push_front(message);
            q.notify.notify_waiters();
        }
    }
}

/// The in-process transport. Clones share the same queues.
#[derive(Clone, Debug)]
pub struct MemoryTransport {
    namespace: Namespace,
    state: Arc<Mutex<State>>,
}

impl MemoryTransport {
    /// An empty broker.
    pub fn new(namespace: Namespace) -> Self {
        crate::metrics::describe();
        Self {
            namespace,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn declare(&self, spec: &ConsumerSpec) {
        let queue = self.namespace.queue(&spec.name);
        let dlq = self.namespace.dead_letter_queue(&spec.name);
        let mut state = self.state.lock();
        state.exchanges = true;
        state.declared.insert(spec.name.clone());
        state.queues.entry(dlq.clone()).or_default();
        let main = state.queues.entry(queue).or_default();
        main.bindings.extend(spec.bindings.iter().cloned());
        main.delivery_limit = Some(spec.delivery_limit);
        main.dead_letters = Some((dlq, spec.name.as_str().to_owned()));
    }

    fn consumer_for(&self, spec: &ConsumerSpec, queue: String) -> Box<dyn Consumer> {
        let id = {
            let mut state = self.state.lock();
            state.next_consumer += 1;
            state.next_consumer
        };
        Box::new(MemoryConsumer {
            state: Arc::clone(&self.state),
            queue,
            id,
            next_tag: 0,
            prefetch: usize::from(spec.prefetch.max(1)),
            taken: Vec::new(),
        })
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    async fn ready(&self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn declare_exchanges(&self) -> Result<(), TransportError> {
        self.state.lock().exchanges = true;
        Ok(())
    }

    async fn declare_consumer(&self, spec: &ConsumerSpec) -> Result<(), TransportError> {
        self.declare(spec);
        Ok(())
    }

    async fn publisher(&self) -> Result<Box<dyn Publisher>, TransportError> {
        self.state.lock().exchanges = true;
        Ok(Box::new(MemoryPublisher {
            state: Arc::clone(&self.state),
            in_flight: VecDeque::new(),
        }))
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, TransportError> {
        self.declare(spec);
        Ok(self.consumer_for(spec, self.namespace.queue(&spec.name)))
    }

    async fn dead_letter_consumer(
        &self,
        spec: &ConsumerSpec,
    ) -> Result<Box<dyn Consumer>, TransportError> {
        self.declare(spec);
        Ok(self.consumer_for(spec, self.namespace.dead_letter_queue(&spec.name)))
    }

    async fn ready_messages(
        &self,
        consumer: &ConsumerName,
        role: QueueRole,
    ) -> Result<u64, TransportError> {
        let queue = match role {
            QueueRole::Main => self.namespace.queue(consumer),
            QueueRole::DeadLetter => self.namespace.dead_letter_queue(consumer),
        };
        let state = self.state.lock();
        let q = state
            .queues
            .get(&queue)
            .ok_or(TransportError::NoSuchQueue { queue })?;
        Ok(q.ready.len() as u64)
    }

    async fn delete_consumer_topology(
        &self,
        consumer: &ConsumerName,
    ) -> Result<(), TransportError> {
        let mut state = self.state.lock();
        for queue in [
            self.namespace.queue(consumer),
            self.namespace.dead_letter_queue(consumer),
        ] {
            if let Some(q) = state.queues.remove(&queue) {
                q.notify.notify_waiters();
            }
        }
        state.declared.remove(consumer);
        Ok(())
    }

    async fn delete_namespace(&self) -> Result<(), TransportError> {
        let mut state = self.state.lock();
        for (_, q) in state.queues.drain() {
            q.notify.notify_waiters();
        }
        state.declared.clear();
        state.exchanges = false;
        Ok(())
    }

    async fn close(&self) {}
}

struct MemoryPublisher {
    state: Arc<Mutex<State>>,
    /// The routing key of each message sent and not yet reported, with
    /// whether it reached a queue. Routing happens in `send`, so every
    /// message is settled at once; none is ever nacked.
    in_flight: VecDeque<(String, bool)>,
}

#[async_trait]
impl Publisher for MemoryPublisher {
    async fn send(&mut self, message: &OutgoingMessage) -> Result<(), PublishError> {
        if message.routing_key.len() > 255 {
            return Err(PublishError::Invalid {
                routing_key: message.routing_key.clone(),
                reason: "routing key longer than 255 bytes",
            });
        }
        let routed = {
            let mut state = self.state.lock();
            if state.exchanges {
                state.route(message)
            } else {
                0
            }
        };
        ::metrics::counter!(metrics::PUBLISHED, "transport" => "memory").increment(1);
        self.in_flight
            .push_back((message.routing_key.clone(), routed > 0));
        Ok(())
    }

    async fn confirmed(&mut self) -> PublishReport {
        let mut report = PublishReport::default();
        for (routing_key, routed) in self.in_flight.drain(..) {
            if !routed {
                ::metrics::counter!(metrics::RETURNED, "transport" => "memory").increment(1);
                report.unroutable.push(Unroutable {
                    index: report.confirmed,
                    routing_key,
                    reply_code: 312,
                    reply_text: "NO_ROUTE".to_owned(),
                });
            }
            report.confirmed += 1;
        }
        ::metrics::counter!(metrics::CONFIRMED, "transport" => "memory")
            .increment(report.confirmed as u64);
        report
    }

    fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

struct MemoryConsumer {
    state: Arc<Mutex<State>>,
    queue: String,
    id: u64,
    next_tag: u64,
    prefetch: usize,
    taken: Vec<Delivery>,
}

impl MemoryConsumer {
    /// Moves ready messages into `self.taken`, up to `max` there in all;
    /// returns the queue's notifier.
    fn take(&mut self, max: usize) -> Result<Arc<Notify>, TransportError> {
        let mut state = self.state.lock();
        let queue =
            state
                .queues
                .get_mut(&self.queue)
                .ok_or_else(|| TransportError::NoSuchQueue {
                    queue: self.queue.clone(),
                })?;
        let unacked = queue.unacked.entry(self.id).or_default();
        let room = max
            .saturating_sub(self.taken.len())
            .min(self.prefetch.saturating_sub(unacked.len()));
        for _ in 0..room {
            let Some(message) = queue.ready.pop_front() else {
                break;
            };
            self.next_tag += 1;
            self.taken.push(Delivery {
                routing_key: message.routing_key.clone(),
                body: message.body.clone(),
                headers: message.headers.clone(),
                redelivered: message.redelivered,
                delivery_count: message.delivery_count,
                tag: DeliveryTag {
                    epoch: self.id,
                    tag: self.next_tag,
                },
            });
            unacked.insert(self.next_tag, message);
        }
        Ok(Arc::clone(&queue.notify))
    }

    /// Removes settled messages from this consumer's unacknowledged ones.
    fn settle(&self, state: &mut State, tag: DeliveryTag, multiple: bool) -> Vec<Stored> {
        if tag.epoch != self.id {
            return Vec::new();
        }
        let Some(unacked) = state
            .queues
            .get_mut(&self.queue)
            .and_then(|q| q.unacked.get_mut(&self.id))
        else {
            return Vec::new();
        };
        if multiple {
            let rest = unacked.split_off(&(tag.tag + 1));
            std::mem::replace(unacked, rest).into_values().collect()
        } else {
            unacked.remove(&tag.tag).into_iter().collect()
        }
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        let Some(unacked) = state
            .queues
            .get_mut(&self.queue)
            .and_then(|q| q.unacked.remove(&self.id))
        else {
            return;
        };
        // Back to the front, in their original order.
        for (_, message) in unacked.into_iter().rev() {
            state.give_back(&self.queue, message);
        }
    }
}

#[async_trait]
impl Consumer for MemoryConsumer {
    fn queue(&self) -> &str {
        &self.queue
    }

    async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery>, TransportError> {
        let max = max.max(1);
        // Taken deliveries wait in `self.taken` across every await, so that
        // a caller giving up on this call gets them from the next one.
        let deadline = tokio::time::Instant::now() + linger;
        let mut yielded = false;
        loop {
            let before = self.taken.len();
            let notify = self.take(max)?;
            if self.taken.len() >= max {
                break;
            }
            if !self.taken.is_empty() {
                // Never wait for more: a lone message goes out at once. Let
                // a publisher in the middle of a burst run once, then stop.
                let grew = self.taken.len() > before;
                if (yielded && !grew) || tokio::time::Instant::now() >= deadline {
                    break;
                }
                yielded = true;
                tokio::task::yield_now().await;
                continue;
            }
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Something may have arrived between `take` and `enable`.
            self.take(max)?;
            if self.taken.is_empty() {
                notified.await;
            }
        }
        let batch = std::mem::take(&mut self.taken);
        ::metrics::counter!(metrics::CONSUMED, "transport" => "memory", "queue" => self.queue.clone())
            .increment(batch.len() as u64);
        Ok(batch)
    }

    async fn ack_up_to(&mut self, tag: DeliveryTag) -> Result<(), TransportError> {
        let n = self.settle(&mut self.state.lock(), tag, true).len();
        ::metrics::counter!(metrics::ACKED, "transport" => "memory", "queue" => self.queue.clone())
            .increment(n as u64);
        Ok(())
    }

    async fn ack(&mut self, tag: DeliveryTag) -> Result<(), TransportError> {
        let n = self.settle(&mut self.state.lock(), tag, false).len();
        ::metrics::counter!(metrics::ACKED, "transport" => "memory", "queue" => self.queue.clone())
            .increment(n as u64);
        Ok(())
    }

    async fn retry(&mut self, tag: DeliveryTag) -> Result<(), TransportError> {
        let mut state = self.state.lock();
        for message in self.settle(&mut state, tag, false) {
            state.give_back(&self.queue, message);
            ::metrics::counter!(metrics::RETRIED, "transport" => "memory", "queue" => self.queue.clone())
                .increment(1);
        }
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), TransportError> {
        let mut state = self.state.lock();
        for message in self.settle(&mut state, delivery.tag, false) {
            state.dead_letter(&self.queue, message, &[(names::ERROR, reason)]);
            tracing::warn!(queue = %self.queue, routing_key = %delivery.routing_key, reason, "dead-lettered a message");
            ::metrics::counter!(metrics::DEAD_LETTERED, "transport" => "memory", "queue" => self.queue.clone())
                .increment(1);
        }
        Ok(())
    }
}
