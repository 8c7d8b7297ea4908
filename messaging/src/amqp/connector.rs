//! One broker connection shared by a transport's publishers and consumers,
//! re-established with capped exponential backoff when it is lost.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use lapin::{uri::AMQPUri, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::{backoff::Backoff, metrics, transport::TransportError};

/// How long closing the connection waits for the broker's confirmation.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct Connector {
    uri: AMQPUri,
    endpoint: String,
    connection_name: String,
    backoff: Backoff,
    connect_timeout: Duration,
    current: Mutex<Option<Arc<Connection>>>,
    /// The latest connection, readable without waiting for a reconnection.
    latest: parking_lot::Mutex<Option<Arc<Connection>>>,
    closed: AtomicBool,
}

impl Connector {
    pub(crate) fn new(
        uri: AMQPUri,
        connection_name: String,
        backoff: Backoff,
        connect_timeout: Duration,
    ) -> Self {
        let endpoint = format!(
            "{}:{}/{}",
            uri.authority.host, uri.authority.port, uri.vhost
        );
        Self {
            uri,
            endpoint,
            connection_name,
            backoff,
            connect_timeout,
            current: Mutex::new(None),
            latest: parking_lot::Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// Host, port and virtual host, without credentials.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn backoff(&self) -> Backoff {
        self.backoff
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    async fn connect_once(&self) -> Result<Connection, TransportError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(self.connection_name.clone().into());
        let connect = Connection::connect_uri(self.uri.clone(), properties);
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(connected) => connected.map_err(|source| TransportError::Connect {
                endpoint: self.endpoint.clone(),
                source,
            }),
            Err(_) => Err(TransportError::ConnectTimeout {
                endpoint: self.endpoint.clone(),
                after: self.connect_timeout,
            }),
        }
    }

    /// Makes the first connection, once: a broker that does not answer is
    /// reported at once so the caller can decide what to do.
    pub(crate) async fn connect_first(&self) -> Result<(), TransportError> {
        let connection = self.connect_once().await?;
        tracing::info!(
            endpoint = %self.endpoint,
            name = %self.connection_name,
            heartbeat_s = connection.configuration().heartbeat(),
            "connected to the broker"
        );
        let connection = Arc::new(connection);
        self.remember(&connection);
        *self.current.lock().await = Some(connection);
        Ok(())
    }

    /// The live connection, reconnecting with backoff (for ever, until the
    /// transport is closed) if it was lost.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, TransportError> {
        let mut current = self.current.lock().await;
        if self.is_closed() {
            return Err(TransportError::Closed);
        }
        if let Some(connection) = current.as_ref() {
            if connection.status().connected() {
                return Ok(Arc::clone(connection));
            }
            tracing::warn!(
                endpoint = %self.endpoint,
                name = %self.connection_name,
                "lost the broker connection; reconnecting"
            );
            *current = None;
        }
        let mut delays = self.backoff.delays();
        let mut attempt = 1u32;
        loop {
            match self.connect_once().await {
                Ok(connection) => {
                    let connection = Arc::new(connection);
                    ::metrics::counter!(metrics::RECONNECTS, "transport" => "amqp").increment(1);
                    tracing::info!(
                        endpoint = %self.endpoint,
                        name = %self.connection_name,
                        attempt,
                        "reconnected to the broker"
                    );
                    self.remember(&connection);
                    *current = Some(Arc::clone(&connection));
                    return Ok(connection);
                }
                Err(error) => {
                    let delay = delays.next().unwrap_or(self.backoff.max);
                    tracing::warn!(
                        %error,
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot reconnect to the broker"
                    );
                    drop(current);
                    tokio::time::sleep(delay).await;
                    current = self.current.lock().await;
                    if self.is_closed() {
                        return Err(TransportError::Closed);
                    }
                    // Someone else may have reconnected while we waited.
                    if let Some(connection) = current.as_ref() {
                        if connection.status().connected() {
                            return Ok(Arc::clone(connection));
                        }
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Whether a connection is up now (without waiting for a reconnection).
    pub(crate) fn is_connected(&self) -> bool {
        self.latest
            .lock()
            .as_ref()
            .is_some_and(|connection| connection.status().connected())
    }

    fn remember(&self, connection: &Arc<Connection>) {
        *self.latest.lock() = Some(Arc::clone(connection));
    }

    /// A new channel on the live connection, reconnecting first if needed.
    pub(crate) async fn channel(&self) -> Result<Channel, TransportError> {
        let mut delays = self.backoff.delays();
        loop {
            let connection = self.connection().await?;
            match connection.create_channel().await {
                Ok(channel) => return Ok(channel),
                Err(source) if connection.status().connected() => {
                    return Err(TransportError::Broker {
                        operation: "channel.open",
                        source,
                    })
                }
                Err(error) => {
                    // The connection died under us; the next round reconnects.
                    tracing::debug!(%error, "channel.open failed on a dying connection");
                    let delay = delays.next().unwrap_or(self.backoff.max);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Closes the connection; later calls fail with [`TransportError::Closed`].
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.latest.lock().take();
        let connection = self.current.lock().await.take();
        if let Some(connection) = connection {
            if connection.status().connected() {
                // A busy broker may be slow to confirm: the socket goes anyway.
                match tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "closing".into()))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "closing the broker connection failed");
                    }
                    Err(_) => tracing::debug!("the broker did not confirm the close in time"),
                }
            }
        }
    }
}
