//! Pipelined publishing with confirms and `mandatory`.
//!
//! A message no queue is bound for is returned (`basic.return`, 312
//! NO_ROUTE) and then confirmed; it is settled, and reported [`Unroutable`].

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use async_trait::async_trait;
use futures::FutureExt;
use lapin::{
    message::BasicReturnMessage,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::ShortString,
    BasicProperties, Channel, Confirmation, PublisherConfirm,
};

use super::{connector::Connector, fields};
use crate::{
    message::OutgoingMessage,
    metrics,
    transport::{PublishError, PublishReport, Publisher, TransportError, Unroutable},
};

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// Messages handed to lapin together by [`Publisher::send_all`]: each
/// publish is queued for lapin's I/O thread at once, and their writes are
/// awaited together. (`join_all` polls up to 30 futures in order, which is
/// what keeps their sequence numbers in the order they are sent.)
const PIPELINE: usize = 30;

#[derive(Debug)]
enum Outcome {
    Ack,
    Nack,
    Failed(lapin::Error),
}

struct InFlight {
    seq: u64,
    routing_key: String,
    confirm: Option<PublisherConfirm>,
    outcome: Option<Outcome>,
}

#[derive(Debug)]
struct Returned {
    routing_key: String,
    reply_code: u16,
    reply_text: String,
}

/// A publisher on its own confirm-mode channel.
pub(crate) struct AmqpPublisher {
    connector: Arc<Connector>,
    exchange: ShortString,
    channel: Option<Channel>,
    in_flight: VecDeque<InFlight>,
    /// Messages the broker returned, by sequence number. lapin hands a
    /// returned message to whichever confirm completes next, which is not
    /// always the confirm of that message, so each message carries its
    /// sequence number and returns are matched by it.
    returned: HashMap<u64, Returned>,
    next_seq: u64,
}

impl AmqpPublisher {
    pub(crate) fn new(connector: Arc<Connector>, exchange: ShortString) -> Self {
        Self {
            connector,
            exchange,
            channel: None,
            in_flight: VecDeque::new(),
            returned: HashMap::new(),
            next_seq: 0,
        }
    }

    async fn channel(&mut self) -> Result<Channel, TransportError> {
        if let Some(channel) = &self.channel {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
            // Messages sent on the lost channel may be lost: carrying on on a
            // new channel would put later messages ahead of them.
            if !self.in_flight.is_empty() {
                return Err(TransportError::ChannelLost {
                    unconfirmed: self.in_flight.len(),
                });
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
        self.channel = Some(channel.clone());
        Ok(channel)
    }

    /// Forgets everything in flight and the channel they were sent on, so
    /// that nothing from before the error is confused with what comes after.
    fn reset(&mut self) {
        self.in_flight.clear();
        self.returned.clear();
        self.channel = None;
    }

    fn record_return(&mut self, message: BasicReturnMessage) {
        let parsed = fields::from_table(message.properties.headers().as_ref());
        let oldest = self.in_flight.front().map(|entry| entry.seq);
        match parsed.publish_seq {
            // Its confirm was taken as a plain ack before the return came in
            // (lapin may attach a return to another confirm of the same
            // `multiple` ack, resolved a moment later). It is settled either
            // way; only the count misses it.
            Some(seq) if oldest.is_none_or(|oldest| seq < oldest) => tracing::debug!(
                routing_key = %message.routing_key,
                "a message already confirmed turns out to have been returned"
            ),
            Some(seq) => {
                self.returned.insert(
                    seq,
                    Returned {
                        routing_key: message.routing_key.to_string(),
                        reply_code: message.reply_code,
                        reply_text: message.reply_text.to_string(),
                    },
                );
            }
            None => tracing::warn!(
                routing_key = %message.routing_key,
                "a returned message carries no sequence number"
            ),
        }
    }

    fn settle(&mut self, index: usize, result: lapin::Result<Confirmation>) {
        let outcome = match result {
            Ok(confirmation) => {
                let nack = confirmation.is_nack();
                if let Some(message) = confirmation.take_message() {
                    self.record_return(message);
                }
                if nack {
                    Outcome::Nack
                } else {
                    Outcome::Ack
                }
            }
            Err(error) => Outcome::Failed(error),
        };
        if let Some(entry) = self.in_flight.get_mut(index) {
            entry.outcome = Some(outcome);
        }
    }

    /// Settles every confirm that has already completed, without waiting.
    fn sweep(&mut self) {
        for index in 0..self.in_flight.len() {
            let ready = match self.in_flight.get_mut(index) {
                Some(InFlight {
                    confirm: Some(confirm),
                    outcome: None,
                    ..
                }) => confirm.now_or_never(),
                _ => None,
            };
            if let Some(result) = ready {
                if let Some(entry) = self.in_flight.get_mut(index) {
                    entry.confirm = None;
                }
                self.settle(index, result);
            }
        }
    }

    fn fail(&mut self, mut report: PublishReport, error: PublishError) -> PublishReport {
        self.reset();
        report.error = Some(error);
        report
    }
}

#[async_trait]
impl Publisher for AmqpPublisher {
    async fn send(&mut self, message: &OutgoingMessage) -> Result<(), PublishError> {
        self.send_all(std::slice::from_ref(message)).await
    }

    /// Queues each chunk's publishes with lapin at once and then waits for
    /// their writes together: sent one by one, every message waited for a
    /// round trip through lapin's I/O thread, which on a busy machine held
    /// the relay back by tens of milliseconds.
    async fn send_all(&mut self, messages: &[OutgoingMessage]) -> Result<(), PublishError> {
        for chunk in messages.chunks(PIPELINE) {
            let mut prepared = Vec::with_capacity(chunk.len());
            for message in chunk {
                let routing_key =
                    ShortString::try_new(message.routing_key.as_str()).map_err(|_| {
                        PublishError::Invalid {
                            routing_key: message.routing_key.clone(),
                            reason: "routing key longer than 255 bytes",
                        }
                    })?;
                prepared.push((message, routing_key));
            }
            let channel = match self.channel().await {
                Ok(channel) => channel,
                Err(error) => {
                    self.reset();
                    return Err(error.into());
                }
            };
            let options = BasicPublishOptions {
                mandatory: true,
                immediate: false,
            };
            let first_seq = self.next_seq;
            self.next_seq += prepared.len() as u64;
            let publishes =
                prepared
                    .iter()
                    .zip(first_seq..)
                    .map(|((message, routing_key), seq)| {
                        let mut properties = BasicProperties::default()
                            .with_delivery_mode(PERSISTENT)
                            .with_headers(fields::to_table(&message.headers, Some(seq)));
                        if let Some(event_id) = message.headers.event_id {
                            properties = properties.with_message_id(event_id.to_string().into());
                        }
                        channel.basic_publish(
                            self.exchange.clone(),
                            routing_key.clone(),
                            options,
                            &message.body,
                            properties,
                        )
                    });
            let results = futures::future::join_all(publishes).await;
            for ((result, (message, _)), seq) in results.into_iter().zip(&prepared).zip(first_seq..)
            {
                match result {
                    Ok(confirm) => {
                        ::metrics::counter!(metrics::PUBLISHED, "transport" => "amqp").increment(1);
                        self.in_flight.push_back(InFlight {
                            seq,
                            routing_key: message.routing_key.clone(),
                            confirm: Some(confirm),
                            outcome: None,
                        });
                    }
                    Err(source) => {
                        self.reset();
                        return Err(TransportError::Broker {
                            operation: "basic.publish",
                            source,
                        }
                        .into());
                    }
                }
            }
        }
        Ok(())
    }

    async fn confirmed(&mut self) -> PublishReport {
        let Some(front) = self.in_flight.front_mut() else {
            return PublishReport::default();
        };
        // The confirm stays in place while awaited, so that a caller giving
        // up on this call (a `select!`) loses nothing.
        if let (None, Some(confirm)) = (&front.outcome, front.confirm.as_mut()) {
            let result = confirm.await;
            front.confirm = None;
            self.settle(0, result);
        }
        // Confirms come in batches (`multiple`); take every one that is in,
        // and with them every return, before deciding on the oldest.
        self.sweep();

        let mut report = PublishReport::default();
        while let Some(entry) = self.in_flight.front() {
            let Some(outcome) = &entry.outcome else {
                break;
            };
            let error = match outcome {
                Outcome::Ack => {
                    if let Some(returned) = self.returned.remove(&entry.seq) {
                        ::metrics::counter!(metrics::RETURNED, "transport" => "amqp").increment(1);
                        report.unroutable.push(Unroutable {
                            index: report.confirmed,
                            routing_key: returned.routing_key,
                            reply_code: returned.reply_code,
                            reply_text: returned.reply_text,
                        });
                    }
                    report.confirmed += 1;
                    self.in_flight.pop_front();
                    continue;
                }
                Outcome::Nack => {
                    ::metrics::counter!(metrics::NACKED, "transport" => "amqp").increment(1);
                    PublishError::Nacked {
                        routing_key: entry.routing_key.clone(),
                    }
                }
                Outcome::Failed(source) => TransportError::Broker {
                    operation: "basic.publish confirm",
                    source: source.clone(),
                }
                .into(),
            };
            ::metrics::counter!(metrics::CONFIRMED, "transport" => "amqp")
                .increment(report.confirmed as u64);
            return self.fail(report, error);
        }
        ::metrics::counter!(metrics::CONFIRMED, "transport" => "amqp")
            .increment(report.confirmed as u64);
        report
    }

    fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}
