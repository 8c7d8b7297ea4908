//! The RabbitMQ transport (lapin).
//!
//! One connection per transport, shared by its publishers and consumers,
//! each on its own channel; heartbeats on; lost connections re-established
//! with capped exponential backoff (see [`Backoff`]).

pub mod baseline;
mod connector;
mod consumer;
mod fields;
mod publisher;
mod topology;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use async_trait::async_trait;
use lapin::{types::ShortString, uri::AMQPUri};
use parking_lot::Mutex;

use crate::{
    backoff::Backoff,
    namespace::{ConsumerName, Namespace},
    transport::{Consumer, ConsumerSpec, Publisher, QueueRole, Transport, TransportError},
};
use connector::Connector;

/// Closes a channel used for one operation; a channel the broker already
/// closed (after a refusal) needs nothing more.
async fn close_quietly(channel: lapin::Channel) {
    if channel.status().connected() {
        if let Err(error) = channel.close(200, "done".into()).await {
            tracing::debug!(%error, "closing a channel failed");
        }
    }
}

/// How to reach RabbitMQ.
#[derive(Clone, Debug)]
pub struct AmqpConfig {
    /// `amqp://user:password@host:port/vhost`.
    pub uri: String,
    /// Prefix of every exchange and queue name.
    pub namespace: Namespace,
    /// Shown by the broker (`rabbitmqctl list_connections client_properties`).
    pub connection_name: String,
    /// Heartbeat interval asked for when the URI does not say (`?heartbeat=`).
    pub heartbeat: Duration,
    /// The largest AMQP frame asked for when the URI does not say
    /// (`?frame_max=`); see [`AmqpConfig::DEFAULT_FRAME_MAX`].
    pub frame_max: u32,
    /// Delays between reconnection attempts.
    pub backoff: Backoff,
    /// How long one connection attempt (TCP and AMQP handshake) may take.
    pub connect_timeout: Duration,
}

impl AmqpConfig {
    /// The default heartbeat interval.
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

    /// The default largest frame: 8 KiB. lapin keeps a send and a receive
    /// buffer of 32 frames each and fills them with zeros when it connects,
    /// so RabbitMQ's own default (128 KiB) costs every connected process
    /// 8 MiB of resident memory; 8 KiB costs 512 KiB. An event is a few
    /// hundred bytes; a larger message is sent in several frames.
    pub const DEFAULT_FRAME_MAX: u32 = 8 * 1024;

    /// A config with the default heartbeat and backoff.
    pub fn new(uri: impl Into<String>, namespace: Namespace) -> Self {
        Self {
            uri: uri.into(),
            namespace,
            connection_name: "shop".to_owned(),
            heartbeat: Self::DEFAULT_HEARTBEAT,
            frame_max: Self::DEFAULT_FRAME_MAX,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Names the connection, for the broker's tools.
    pub fn with_connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// The broker's URI with this config's heartbeat and frame size where
    /// the URI does not set its own.
    pub fn broker_uri(&self) -> Result<AMQPUri, TransportError> {
        let mut uri: AMQPUri = self
            .uri
            .parse()
            .map_err(|reason: String| TransportError::InvalidUri { reason })?;
        if uri.query.heartbeat.is_none() {
            let seconds = u16::try_from(self.heartbeat.as_secs()).unwrap_or(u16::MAX);
            uri.query.heartbeat = Some(seconds);
        }
        if uri.query.frame_max.is_none() {
            uri.query.frame_max = Some(self.frame_max);
        }
        Ok(uri)
    }

    /// Sets the reconnection backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// The RabbitMQ transport.
#[derive(Debug, Clone)]
pub struct AmqpTransport {
    connector: Arc<Connector>,
    namespace: Namespace,
    /// Consumers declared through this transport, for `delete_namespace`.
    declared: Arc<Mutex<BTreeSet<ConsumerName>>>,
}

impl AmqpTransport {
    /// Connects, once: if the broker does not answer, the error says so at
    /// once (later losses are retried for ever with backoff).
    pub async fn connect(config: AmqpConfig) -> Result<Self, TransportError> {
        let uri = config.broker_uri()?;
        let connector = Arc::new(Connector::new(
            uri,
            config.connection_name,
            config.backoff,
            config.connect_timeout,
        ));
        connector.connect_first().await?;
        crate::metrics::describe();
        Ok(Self {
            connector,
            namespace: config.namespace,
            declared: Arc::new(Mutex::new(BTreeSet::new())),
        })
    }

    /// Host, port and virtual host of the broker (no credentials).
    pub fn endpoint(&self) -> &str {
        self.connector.endpoint()
    }

    fn events_exchange(&self) -> Result<ShortString, TransportError> {
        let name = self.namespace.events_exchange();
        ShortString::try_new(name.as_str()).map_err(|_| TransportError::InvalidBinding {
            pattern: name,
            reason: "exchange name longer than 255 bytes",
        })
    }
}

#[async_trait]
impl Transport for AmqpTransport {
    fn kind(&self) -> &'static str {
        "amqp"
    }

    fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    async fn ready(&self) -> Result<(), TransportError> {
        if self.connector.is_closed() {
            return Err(TransportError::Closed);
        }
        if self.connector.is_connected() {
            Ok(())
        } else {
            Err(TransportError::NotConnected {
                endpoint: self.connector.endpoint().to_owned(),
            })
        }
    }

    async fn declare_exchanges(&self) -> Result<(), TransportError> {
        let channel = self.connector.channel().await?;
        let declared = topology::declare_exchanges(&channel, &self.namespace).await;
        close_quietly(channel).await;
        declared
    }

    async fn declare_consumer(&self, spec: &ConsumerSpec) -> Result<(), TransportError> {
        let channel = self.connector.channel().await?;
        self.declared.lock().insert(spec.name.clone());
        let declared = topology::declare_consumer(&channel, &self.namespace, spec).await;
        close_quietly(channel).await;
        declared
    }

    async fn publisher(&self) -> Result<Box<dyn Publisher>, TransportError> {
        self.declare_exchanges().await?;
        Ok(Box::new(publisher::AmqpPublisher::new(
            Arc::clone(&self.connector),
            self.events_exchange()?,
        )))
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, TransportError> {
        self.declare_consumer(spec).await?;
        Ok(Box::new(consumer::AmqpConsumer::new(
            Arc::clone(&self.connector),
            self.namespace.clone(),
            spec.clone(),
            QueueRole::Main,
        )))
    }

    async fn dead_letter_consumer(
        &self,
        spec: &ConsumerSpec,
    ) -> Result<Box<dyn Consumer>, TransportError> {
        self.declare_consumer(spec).await?;
        Ok(Box::new(consumer::AmqpConsumer::new(
            Arc::clone(&self.connector),
            self.namespace.clone(),
            spec.clone(),
            QueueRole::DeadLetter,
        )))
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
        let channel = self.connector.channel().await?;
        let ready = topology::ready_messages(&channel, &queue).await;
        close_quietly(channel).await;
        ready
    }

    async fn delete_consumer_topology(
        &self,
        consumer: &ConsumerName,
    ) -> Result<(), TransportError> {
        let channel = self.connector.channel().await?;
        let deleted = topology::delete_consumer(&channel, &self.namespace, consumer).await;
        close_quietly(channel).await;
        deleted?;
        self.declared.lock().remove(consumer);
        Ok(())
    }

    async fn delete_namespace(&self) -> Result<(), TransportError> {
        let declared: Vec<ConsumerName> = self.declared.lock().iter().cloned().collect();
        for consumer in &declared {
            self.delete_consumer_topology(consumer).await?;
        }
        let channel = self.connector.channel().await?;
        let deleted = topology::delete_exchanges(&channel, &self.namespace).await;
        close_quietly(channel).await;
        deleted
    }

    async fn close(&self) {
        self.connector.close().await;
    }
}
