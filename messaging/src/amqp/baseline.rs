//! A raw publish-with-confirms loop straight on lapin, with none of this
//! crate's bookkeeping: the baseline benchmarks compare a publisher against.

use std::{collections::VecDeque, time::Duration};

use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::ShortString,
    BasicProperties, Connection, ConnectionProperties,
};

use super::{fields, AmqpConfig};
use crate::{message::OutgoingMessage, transport::PublishError, transport::TransportError};

fn broker(operation: &'static str) -> impl FnOnce(lapin::Error) -> TransportError {
    move |source| TransportError::Broker { operation, source }
}

/// Publishes `messages` persistent and `mandatory` to the namespace's events
/// exchange on a fresh connection, keeping at most `window` unconfirmed, and
/// returns how long it took from the first publish to the last confirm.
/// Every message must be acked and routed.
pub async fn raw_publish_with_confirms(
    config: &AmqpConfig,
    messages: &[OutgoingMessage],
    window: usize,
) -> Result<Duration, PublishError> {
    let uri = config.broker_uri()?;
    let connection = Connection::connect_uri(
        uri,
        ConnectionProperties::default()
            .with_connection_name(format!("{} baseline", config.connection_name).into()),
    )
    .await
    .map_err(|source| TransportError::Connect {
        endpoint: "the benchmark broker".to_owned(),
        source,
    })?;
    let channel = connection
        .create_channel()
        .await
        .map_err(broker("channel.open"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(broker("confirm.select"))?;
    let exchange = ShortString::from(config.namespace.events_exchange());
    // Everything a publish needs is built before the clock starts.
    let mut prepared = Vec::with_capacity(messages.len());
    for message in messages {
        let routing_key = ShortString::try_new(message.routing_key.as_str()).map_err(|_| {
            PublishError::Invalid {
                routing_key: message.routing_key.clone(),
                reason: "routing key longer than 255 bytes",
            }
        })?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(fields::to_table(&message.headers, None));
        prepared.push((routing_key, properties, &message.body));
    }
    let options = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let started = tokio::time::Instant::now();
    let window = window.max(1);
    let mut pending = VecDeque::with_capacity(window);
    for (index, (routing_key, properties, body)) in prepared.into_iter().enumerate() {
        if pending.len() >= window {
            if let Some((sent, confirm)) = pending.pop_front() {
                check(confirm, &messages[sent]).await?;
            }
        }
        let confirm = channel
            .basic_publish(exchange.clone(), routing_key, options, body, properties)
            .await
            .map_err(broker("basic.publish"))?;
        pending.push_back((index, confirm));
    }
    while let Some((sent, confirm)) = pending.pop_front() {
        check(confirm, &messages[sent]).await?;
    }
    let elapsed = started.elapsed();
    let _ = connection.close(200, "benchmark done".into()).await;
    Ok(elapsed)
}

async fn check(
    confirm: lapin::PublisherConfirm,
    message: &OutgoingMessage,
) -> Result<(), PublishError> {
    let confirmation = confirm.await.map_err(broker("basic.publish confirm"))?;
    if confirmation.is_nack() {
        return Err(PublishError::Nacked {
            routing_key: message.routing_key.clone(),
        });
    }
    if let Some(returned) = confirmation.take_message() {
        return Err(PublishError::Returned {
            routing_key: returned.routing_key.to_string(),
            reply_code: returned.reply_code,
            reply_text: returned.reply_text.to_string(),
        });
    }
    Ok(())
}

/// Consumes `count` messages from `queue` on a fresh connection with
/// `prefetch`, acknowledging every `ack_every` with one `multiple` ack and
/// decoding nothing; returns how long it took from the first delivery to
/// the last ack. The queue must already hold the messages.
pub async fn raw_consume_with_batched_acks(
    config: &AmqpConfig,
    queue: &str,
    count: usize,
    prefetch: u16,
    ack_every: usize,
) -> Result<Duration, TransportError> {
    use futures::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};

    let uri = config.broker_uri()?;
    let connection = Connection::connect_uri(
        uri,
        ConnectionProperties::default()
            .with_connection_name(format!("{} consume baseline", config.connection_name).into()),
    )
    .await
    .map_err(|source| TransportError::Connect {
        endpoint: "the benchmark broker".to_owned(),
        source,
    })?;
    let channel = connection
        .create_channel()
        .await
        .map_err(broker("channel.open"))?;
    channel
        .basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(broker("basic.qos"))?;
    let queue_name = ShortString::try_new(queue).map_err(|_| TransportError::InvalidBinding {
        pattern: queue.to_owned(),
        reason: "queue name longer than 255 bytes",
    })?;
    let mut deliveries = channel
        .basic_consume(
            queue_name,
            "consume-baseline".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .map_err(broker("basic.consume"))?;
    let ack_every = ack_every.max(1);
    let mut started = None;
    let mut received = 0usize;
    let mut last_tag = None;
    while received < count {
        let delivery = match deliveries.next().await {
            Some(delivery) => delivery.map_err(broker("basic.deliver"))?,
            None => {
                return Err(TransportError::NoSuchQueue {
                    queue: queue.to_owned(),
                })
            }
        };
        started.get_or_insert_with(tokio::time::Instant::now);
        received += 1;
        last_tag = Some(delivery.delivery_tag);
        if received % ack_every == 0 || received == count {
            channel
                .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true })
                .await
                .map_err(broker("basic.ack"))?;
            last_tag = None;
        }
    }
    if let Some(tag) = last_tag {
        channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .map_err(broker("basic.ack"))?;
    }
    let elapsed = started.map_or(Duration::ZERO, |started| started.elapsed());
    let _ = connection.close(200, "benchmark done".into()).await;
    Ok(elapsed)
}
