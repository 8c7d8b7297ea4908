//! Consuming a queue with manual acks and a prefetch, across reconnects.

use std::{
    collections::{BTreeSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
        BasicQosOptions, ConfirmSelectOptions,
    },
    types::{FieldTable, ShortString},
    BasicProperties, Channel,
};

use super::{connector::Connector, fields, topology};
use crate::{
    headers::names,
    message::{Delivery, DeliveryTag},
    metrics,
    namespace::Namespace,
    transport::{Consumer, ConsumerSpec, PublishError, QueueRole, TransportError},
};

struct Live {
    channel: Channel,
    stream: lapin::Consumer,
}

/// A consumer of one queue on its own channel.
pub(crate) struct AmqpConsumer {
    connector: Arc<Connector>,
    namespace: Namespace,
    spec: ConsumerSpec,
    role: QueueRole,
    queue: String,
    live: Option<Live>,
    /// Bumped for every new channel: tags of an older epoch are stale.
    epoch: u64,
    /// Deliveries received but not yet handed out (kept here so that a
    /// caller abandoning `next_batch` loses none).
    buffer: VecDeque<Delivery>,
    /// Tags of the current channel handed out and not yet settled.
    unsettled: BTreeSet<u64>,
    /// A confirm-mode channel for copying poison messages to the DLQ.
    dead_letter_channel: Option<Channel>,
}

impl AmqpConsumer {
    pub(crate) fn new(
        connector: Arc<Connector>,
        namespace: Namespace,
        spec: ConsumerSpec,
        role: QueueRole,
    ) -> Self {
        let queue = match role {
            QueueRole::Main => namespace.queue(&spec.name),
            QueueRole::DeadLetter => namespace.dead_letter_queue(&spec.name),
        };
        Self {
            connector,
            namespace,
            spec,
            role,
            queue,
            live: None,
            epoch: 0,
            buffer: VecDeque::new(),
            unsettled: BTreeSet::new(),
            dead_letter_channel: None,
        }
    }

    async fn start(&self) -> Result<Live, TransportError> {
        let channel = self.connector.channel().await?;
        topology::declare_consumer(&channel, &self.namespace, &self.spec).await?;
        channel
            .basic_qos(self.spec.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| topology::classify("basic.qos", &self.queue, e))?;
        let tag = format!("{}-{}", self.queue, uuid::Uuid::new_v4().simple());
        let stream = channel
            .basic_consume(
                ShortString::try_new(self.queue.as_str()).map_err(|_| {
                    TransportError::InvalidBinding {
                        pattern: self.queue.clone(),
                        reason: "queue name longer than 255 bytes",
                    }
                })?,
                ShortString::try_new(tag).unwrap_or_else(|_| "consumer".into()),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| topology::classify("basic.consume", &self.queue, e))?;
        Ok(Live { channel, stream })
    }

    /// Makes sure a channel is consuming, retrying with backoff on anything
    /// but a final refusal.
    async fn ensure_live(&mut self) -> Result<(), TransportError> {
        if self.live.is_some() {
            return Ok(());
        }
        let mut delays = self.connector.backoff().delays();
        let mut attempt = 1u32;
        loop {
            match self.start().await {
                Ok(live) => {
                    self.live = Some(live);
                    self.epoch += 1;
                    self.unsettled.clear();
                    // Anything still buffered came from the old channel and
                    // will be redelivered.
                    self.buffer.clear();
                    if self.epoch > 1 {
                        tracing::info!(queue = %self.queue, "consumer resumed");
                    }
                    return Ok(());
                }
                Err(
                    error @ (TransportError::Refused { .. }
                    | TransportError::Closed
                    | TransportError::InvalidBinding { .. }
                    | TransportError::InvalidName(_)),
                ) => return Err(error),
                Err(error) => {
                    let delay = delays.next().unwrap_or(self.connector.backoff().max);
                    tracing::warn!(
                        queue = %self.queue,
                        %error,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot start consuming"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    fn lose(&mut self, why: &str) {
        if self.live.take().is_some() {
            tracing::warn!(queue = %self.queue, reason = why, "consumer lost its channel; reconnecting");
        }
        self.unsettled.clear();
    }

    /// Takes one delivery from the channel; `None` if the channel is gone.
    async fn receive(&mut self) -> Option<Delivery> {
        let live = self.live.as_mut()?;
        match live.stream.next().await {
            Some(Ok(delivery)) => {
                let parsed = fields::from_table(delivery.properties.headers().as_ref());
                tracing::trace!(
                    queue = %self.queue,
                    routing_key = %delivery.routing_key,
                    position = parsed.headers.position,
                    stream = parsed.headers.stream.as_deref().unwrap_or_default(),
                    "received a delivery"
                );
                self.unsettled.insert(delivery.delivery_tag);
                Some(Delivery {
                    routing_key: delivery.routing_key.to_string(),
                    body: delivery.data,
                    headers: parsed.headers,
                    redelivered: delivery.redelivered,
                    delivery_count: parsed.delivery_count,
                    tag: DeliveryTag {
                        epoch: self.epoch,
                        tag: delivery.delivery_tag,
                    },
                })
            }
            Some(Err(error)) => {
                self.lose(&error.to_string());
                None
            }
            None => {
                self.lose("the broker cancelled the consumer");
                None
            }
        }
    }

    fn current(&self, tag: DeliveryTag) -> Option<&Channel> {
        match &self.live {
            Some(live) if tag.epoch == self.epoch => Some(&live.channel),
            _ => None,
        }
    }

    /// Removes settled tags, returning how many there were.
    fn settle(&mut self, tag: u64, multiple: bool) -> usize {
        if multiple {
            let rest = self.unsettled.split_off(&(tag + 1));
            let settled = std::mem::replace(&mut self.unsettled, rest);
            settled.len()
        } else {
            usize::from(self.unsettled.remove(&tag))
        }
    }

    async fn dead_letter_channel(&mut self) -> Result<Channel, TransportError> {
        if let Some(channel) = &self.dead_letter_channel {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let channel = self.connector.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|source| TransportError::Broker {
                operation: "confirm.select",
                source,
            })?;
        self.dead_letter_channel = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes a copy of a poison message to the dead-letter exchange and
    /// waits for the broker to confirm it.
    async fn copy_to_dead_letters(
        &mut self,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), PublishError> {
        let channel = self.dead_letter_channel().await?;
        let mut headers = delivery.headers.clone();
        headers
            .extra
            .insert(names::ERROR.to_owned(), reason.to_owned());
        headers
            .extra
            .entry(names::ORIGINAL_ROUTING_KEY.to_owned())
            .or_insert_with(|| delivery.routing_key.clone());
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(fields::to_table(&headers, None));
        let exchange = self.namespace.dead_letter_exchange();
        let routing_key = self.spec.name.as_str();
        let result = async {
            channel
                .basic_publish(
                    ShortString::try_new(exchange.as_str()).unwrap_or_else(|_| "".into()),
                    ShortString::try_new(routing_key).unwrap_or_else(|_| "".into()),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &delivery.body,
                    properties,
                )
                .await?
                .await
        }
        .await;
        match result {
            Ok(confirmation) if confirmation.is_nack() => Err(PublishError::Nacked {
                routing_key: routing_key.to_owned(),
            }),
            Ok(confirmation) => match confirmation.take_message() {
                Some(returned) => Err(PublishError::Returned {
                    routing_key: routing_key.to_owned(),
                    reply_code: returned.reply_code,
                    reply_text: returned.reply_text.to_string(),
                }),
                None => Ok(()),
            },
            Err(source) => {
                self.dead_letter_channel = None;
                Err(TransportError::Broker {
                    operation: "basic.publish to the dead-letter exchange",
                    source,
                }
                .into())
            }
        }
    }

    async fn ack_tag(&mut self, tag: DeliveryTag, multiple: bool) -> Result<(), TransportError> {
        let Some(channel) = self.current(tag).cloned() else {
            tracing::debug!(queue = %self.queue, "ack of a stale delivery tag ignored");
            return Ok(());
        };
        match channel
            .basic_ack(tag.tag, BasicAckOptions { multiple })
            .await
        {
            Ok(()) => {
                let n = self.settle(tag.tag, multiple);
                ::metrics::counter!(metrics::ACKED, "transport" => "amqp", "queue" => self.queue.clone())
                    .increment(n as u64);
            }
            // The broker will redeliver what we could not acknowledge; the
            // consumer's idempotence makes that harmless.
            Err(error) => self.lose(&error.to_string()),
        }
        Ok(())
    }
}

#[async_trait]
impl Consumer for AmqpConsumer {
    fn queue(&self) -> &str {
        &self.queue
    }

    async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<Delivery>, TransportError> {
        let max = max.max(1);
        while self.buffer.is_empty() {
            self.ensure_live().await?;
            if let Some(delivery) = self.receive().await {
                self.buffer.push_back(delivery);
            }
        }
        // Add what has already arrived, without waiting for more: a lone
        // delivery goes out at once. Deliveries still arriving back to back
        // join the batch for at most `linger`.
        let deadline = tokio::time::Instant::now() + linger;
        let mut yielded = false;
        while self.buffer.len() < max && self.live.is_some() {
            match self.receive().now_or_never() {
                Some(Some(delivery)) => {
                    self.buffer.push_back(delivery);
                    yielded = false;
                }
                Some(None) => break,
                // Nothing here yet: let the connection's reader run once
                // (it may be handing over the rest of a burst), then stop.
                None if yielded || tokio::time::Instant::now() >= deadline => break,
                None => {
                    tokio::task::yield_now().await;
                    yielded = true;
                }
            }
        }
        let take = self.buffer.len().min(max);
        let batch: Vec<Delivery> = self.buffer.drain(..take).collect();
        ::metrics::counter!(metrics::CONSUMED, "transport" => "amqp", "queue" => self.queue.clone())
            .increment(batch.len() as u64);
        Ok(batch)
    }

    async fn ack_up_to(&mut self, tag: DeliveryTag) -> Result<(), TransportError> {
        self.ack_tag(tag, true).await
    }

    async fn ack(&mut self, tag: DeliveryTag) -> Result<(), TransportError> {
        self.ack_tag(tag, false).await
    }

    async fn retry(&mut self, tag: DeliveryTag) -> Result<(), TransportError> {
        let Some(channel) = self.current(tag).cloned() else {
            return Ok(());
        };
        match channel
            .basic_nack(
                tag.tag,
                BasicNackOptions {
                    multiple: false,
                    requeue: true,
                },
            )
            .await
        {
            Ok(()) => {
                self.settle(tag.tag, false);
                ::metrics::counter!(metrics::RETRIED, "transport" => "amqp", "queue" => self.queue.clone())
                    .increment(1);
            }
            Err(error) => self.lose(&error.to_string()),
        }
        Ok(())
    }

    async fn dead_letter(
        &mut self,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), TransportError> {
        if self.current(delivery.tag).is_none() {
            // From a channel that is gone: the broker redelivers it and the
            // caller will meet it again.
            return Ok(());
        }
        if let Err(source) = self.copy_to_dead_letters(delivery, reason).await {
            return Err(TransportError::DeadLetter {
                queue: self.queue.clone(),
                source: Box::new(source),
            });
        }
        tracing::warn!(
            queue = %self.queue,
            role = ?self.role,
            routing_key = %delivery.routing_key,
            reason,
            "dead-lettered a message"
        );
        ::metrics::counter!(metrics::DEAD_LETTERED, "transport" => "amqp", "queue" => self.queue.clone())
            .increment(1);
        self.ack_tag(delivery.tag, false).await
    }
}
