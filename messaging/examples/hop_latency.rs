//! How long one message takes from `basic.publish` to a consumer, through a
//! queue as this crate declares it (quorum) and through a classic durable
//! queue beside it, at a steady rate:
//! `cargo run --release -p messaging --example hop_latency [RATE] [COUNT]`
//! (`SHOP_AMQP` picks the broker). Messages are persistent and published
//! with confirms, as the relay publishes; both queues are bound to the same
//! routing key, so each message goes to both. Everything it declares is
//! deleted at the end.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use lapin::{
    options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
    Connection, ConnectionProperties,
};
use messaging::{
    AmqpConfig, AmqpTransport, ConsumerName, ConsumerSpec, MessageHeaders, Namespace,
    OutgoingMessage, Transport,
};
use tokio::time::Instant;

/// Latencies in milliseconds, as "p50 … p90 … p99 … max …".
fn summary(mut latencies: Vec<f64>) -> String {
    if latencies.is_empty() {
        return "no messages".to_owned();
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    format!(
        "n {} p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    )
}

/// Milliseconds from `start` to now, minus the send time carried in `body`.
fn latency(start: Instant, body: &[u8]) -> Option<f64> {
    let sent_ns = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let now_ns = start.elapsed().as_nanos() as u64;
    Some(now_ns.saturating_sub(sent_ns) as f64 / 1e6)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rate: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200.0);
    let count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let uri = std::env::var("SHOP_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let namespace = Namespace::parse(&format!("hop-{}", &id[..12]))?;
    let transport: Arc<dyn Transport> = Arc::new(
        AmqpTransport::connect(
            AmqpConfig::new(uri.clone(), namespace.clone()).with_connection_name("hop latency"),
        )
        .await?,
    );
    let spec = ConsumerSpec::new(ConsumerName::parse("hop")?, ["hop.*"])?;
    let mut quorum = transport.consumer(&spec).await?;

    // A classic durable queue on the same exchange, consumed with auto-ack.
    let connection = Connection::connect(&uri, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let classic = format!("{namespace}.hop-classic");
    channel
        .queue_declare(
            classic.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            classic.as_str().into(),
            namespace.events_exchange().into(),
            "hop.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut classic_stream = channel
        .basic_consume(
            classic.as_str().into(),
            "hop-classic".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;

    let start = Instant::now();
    let quorum_task = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(count);
        while latencies.len() < count {
            let batch = quorum.next_batch(1000, Duration::ZERO).await?;
            latencies.extend(batch.iter().filter_map(|d| latency(start, &d.body)));
            if let Some(last) = batch.last() {
                quorum.ack_up_to(last.tag).await?;
            }
        }
        anyhow::Ok(latencies)
    });
    let classic_task = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(count);
        while latencies.len() < count {
            match classic_stream.next().await {
                Some(Ok(delivery)) => latencies.extend(latency(start, &delivery.data)),
                Some(Err(error)) => return Err(error.into()),
                None => anyhow::bail!("the classic queue's consumer was cancelled"),
            }
        }
        anyhow::Ok(latencies)
    });

    let mut publisher = transport.publisher().await?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    for n in 0..count {
        tokio::time::sleep_until(start + interval.mul_f64(n as f64)).await;
        let sent_ns = start.elapsed().as_nanos() as u64;
        let message = OutgoingMessage {
            routing_key: "hop.Probe".to_owned(),
            body: sent_ns.to_le_bytes().to_vec(),
            headers: MessageHeaders::default(),
        };
        publisher.send(&message).await?;
        while publisher.in_flight() > 256 {
            let report = publisher.confirmed().await;
            if let Some(error) = report.error {
                return Err(error.into());
            }
        }
    }
    while publisher.in_flight() > 0 {
        if let Some(error) = publisher.confirmed().await.error {
            return Err(error.into());
        }
    }
    let deadline = Duration::from_secs(60);
    let quorum = tokio::time::timeout(deadline, quorum_task).await???;
    let classic_latencies = tokio::time::timeout(deadline, classic_task).await???;
    println!("{rate} msg/s, {count} messages, publish -> consume");
    println!(
        "  quorum queue (this crate's topology): {}",
        summary(quorum)
    );
    println!(
        "  classic durable queue:                {}",
        summary(classic_latencies)
    );

    channel
        .queue_delete(classic.as_str().into(), QueueDeleteOptions::default())
        .await?;
    connection.close(200, "done".into()).await?;
    transport.delete_namespace().await?;
    transport.close().await;
    Ok(())
}
