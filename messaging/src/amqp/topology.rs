//! Declaring and deleting exchanges and queues, idempotently.

use lapin::{
    options::{
        ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    },
    protocol::{AMQPErrorKind, AMQPSoftError},
    types::{AMQPValue, FieldTable, LongString, ShortString},
    Channel, ErrorKind, ExchangeKind,
};

use crate::{
    namespace::{ConsumerName, Namespace},
    transport::{ConsumerSpec, TransportError},
};

/// Maps a client error: what the broker refused on purpose is final, the rest
/// (a lost connection) may succeed after a reconnect.
pub(crate) fn classify(
    operation: &'static str,
    object: &str,
    source: lapin::Error,
) -> TransportError {
    if let ErrorKind::ProtocolError(error) = source.kind() {
        if let AMQPErrorKind::Soft(
            AMQPSoftError::PRECONDITIONFAILED
            | AMQPSoftError::NOTFOUND
            | AMQPSoftError::ACCESSREFUSED
            | AMQPSoftError::RESOURCELOCKED,
        ) = error.kind()
        {
            return TransportError::Refused {
                operation,
                object: object.to_owned(),
                message: error.get_message().to_string(),
            };
        }
    }
    TransportError::Broker { operation, source }
}

fn short(name: &str) -> Result<ShortString, TransportError> {
    ShortString::try_new(name).map_err(|_| TransportError::InvalidBinding {
        pattern: name.to_owned(),
        reason: "longer than 255 bytes",
    })
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

/// The durable topic exchange for events and the direct exchange for dead letters.
pub(crate) async fn declare_exchanges(
    channel: &Channel,
    namespace: &Namespace,
) -> Result<(), TransportError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for (name, kind) in [
        (namespace.events_exchange(), ExchangeKind::Topic),
        (namespace.dead_letter_exchange(), ExchangeKind::Direct),
    ] {
        channel
            .exchange_declare(short(&name)?, kind, durable, FieldTable::default())
            .await
            .map_err(|e| classify("exchange.declare", &name, e))?;
    }
    Ok(())
}

/// A consumer's quorum queue, bound to its patterns, dead-lettering
/// at least once into its own quorum dead-letter queue.
pub(crate) async fn declare_consumer(
    channel: &Channel,
    namespace: &Namespace,
    spec: &ConsumerSpec,
) -> Result<(), TransportError> {
    declare_exchanges(channel, namespace).await?;
    let durable = QueueDeclareOptions::durable();
    let dlx = namespace.dead_letter_exchange();
    let dlq = namespace.dead_letter_queue(&spec.name);
    let queue = namespace.queue(&spec.name);

    let mut dlq_args = FieldTable::default();
    dlq_args.insert("x-queue-type".into(), text("quorum"));
    channel
        .queue_declare(short(&dlq)?, durable, dlq_args)
        .await
        .map_err(|e| classify("queue.declare", &dlq, e))?;
    channel
        .queue_bind(
            short(&dlq)?,
            short(&dlx)?,
            short(spec.name.as_str())?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| classify("queue.bind", &dlq, e))?;

    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(spec.delivery_limit)),
    );
    args.insert("x-dead-letter-exchange".into(), text(&dlx));
    args.insert("x-dead-letter-routing-key".into(), text(spec.name.as_str()));
    // At-least-once dead-lettering: the queue keeps a dead letter until the
    // dead-letter queue confirmed it, which requires reject-publish overflow.
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    args.insert("x-overflow".into(), text("reject-publish"));
    channel
        .queue_declare(short(&queue)?, durable, args)
        .await
        .map_err(|e| classify("queue.declare", &queue, e))?;
    for pattern in &spec.bindings {
        channel
            .queue_bind(
                short(&queue)?,
                short(&namespace.events_exchange())?,
                short(pattern)?,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| classify("queue.bind", &queue, e))?;
    }
    Ok(())
}

/// How many messages are ready in a queue (a passive declare).
pub(crate) async fn ready_messages(channel: &Channel, queue: &str) -> Result<u64, TransportError> {
    let declared = channel
        .queue_declare(
            short(queue)?,
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| classify("queue.declare", queue, e))?;
    Ok(u64::from(declared.message_count()))
}

/// Deletes a consumer's queue and dead-letter queue.
pub(crate) async fn delete_consumer(
    channel: &Channel,
    namespace: &Namespace,
    consumer: &ConsumerName,
) -> Result<(), TransportError> {
    for queue in [
        namespace.queue(consumer),
        namespace.dead_letter_queue(consumer),
    ] {
        channel
            .queue_delete(short(&queue)?, QueueDeleteOptions::default())
            .await
            .map_err(|e| classify("queue.delete", &queue, e))?;
    }
    Ok(())
}

/// Deletes both exchanges.
pub(crate) async fn delete_exchanges(
    channel: &Channel,
    namespace: &Namespace,
) -> Result<(), TransportError> {
    for exchange in [
        namespace.events_exchange(),
        namespace.dead_letter_exchange(),
    ] {
        channel
            .exchange_delete(short(&exchange)?, ExchangeDeleteOptions::default())
            .await
            .map_err(|e| classify("exchange.delete", &exchange, e))?;
    }
    Ok(())
}
